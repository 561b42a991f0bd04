"""--fix for YOLO, VOC, CVAT and Label Studio: safe fixes applied in the same format, the
rest left for the user, and the fixed dataset loads."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pixsight.core.errors import DatasetFormatError
from pixsight.data.formats import read_dataset
from pixsight.data.validate import fix_dataset, validate_dataset

from .test_validate_formats import edit, edit_json, make


def _yolo(folder: Path) -> None:
    (folder / "labels" / "a.txt").write_text("0 0.95 0.5 0.2 0.2\n5 0.5 0.5 0.2 0.2\n0 0.25 0.5 0.25 0.2\n")
    (folder / "labels" / "b.txt").write_text("x 0.5 0.5 0.2 0.2\n")


def _yolo_unbreak(folder: Path) -> None:
    (folder / "labels" / "b.txt").write_text("")


def _voc(folder: Path) -> None:
    edit(folder / "Annotations" / "a.xml", "<xmax>15</xmax>", "<xmax>50</xmax>")
    edit(folder / "Annotations" / "a.xml", "<name>dog</name>", "<name>lion</name>")
    edit(folder / "Annotations" / "b.xml", "<xmin>1</xmin>", "<xmin>abc</xmin>")


def _voc_unbreak(folder: Path) -> None:
    edit(folder / "Annotations" / "b.xml", "<xmin>abc</xmin>", "<xmin>1</xmin>")


def _cvat(folder: Path) -> None:
    edit(folder / "annotations.xml", 'xbr="15"', 'xbr="50"')
    edit(folder / "annotations.xml", '<box label="dog"', '<box label="lion"')
    edit(folder / "annotations.xml", 'xtl="1"', 'xtl="abc"')


def _cvat_unbreak(folder: Path) -> None:
    edit(folder / "annotations.xml", 'xtl="abc"', 'xtl="1"')


def _ls(folder: Path) -> None:
    def change(doc: list) -> None:
        doc[0]["annotations"][0]["result"][0]["value"]["x"] = 90
        doc[0]["annotations"][0]["result"][1]["value"]["rectanglelabels"] = ["lion"]
        doc[1]["annotations"][0]["result"][0]["value"]["x"] = "abc"
    edit_json(folder / "labelstudio.json", change)


def _ls_unbreak(folder: Path) -> None:
    edit_json(folder / "labelstudio.json", lambda doc: doc[1]["annotations"][0]["result"][0]["value"].update(x=2.5))


CASES = {  # format: (break, unbreak, records clipped, records dropped, boxes of a.png after the fix)
    "yolo": (_yolo, _yolo_unbreak, ["labels/a.txt: line 1"], ["labels/a.txt: line 2"],
             [[34, 12, 40, 18], [5, 12, 15, 18]]),
    "voc": (_voc, _voc_unbreak, ["Annotations/a.xml: object[0]"], ["Annotations/a.xml: object[1]"], [[5, 5, 40, 15]]),
    "cvat": (_cvat, _cvat_unbreak, ["image[0] box[0]"], ["image[0] box[1]"], [[5, 5, 40, 15]]),
    "labelstudio": (_ls, _ls_unbreak, ["tasks[0] result[0]"], ["tasks[0] result[1]"], [[36, 5, 40, 15]]),
}


def _rel(names: list[str], folder: Path) -> list[str]:
    return [n.replace(str(folder.resolve()) + "/", "").replace(str(folder) + "/", "") for n in names]


@pytest.mark.parametrize("fmt", list(CASES))
def test_fix_in_place_applies_the_safe_fixes_only(tmp_path: Path, fmt: str) -> None:
    breaker, unbreak, clipped, dropped, boxes = CASES[fmt]
    folder = make(tmp_path, fmt)
    breaker(folder)
    report = validate_dataset(folder)
    assert len(report.problems) == 3 and len(report.unfixable) == 1
    summary = fix_dataset(folder, report)
    assert _rel(summary.clipped, folder) == clipped and _rel(summary.dropped, folder) == dropped
    after = validate_dataset(folder)
    assert [p.message for p in after.problems] == [p.message for p in report.unfixable]  # same format, rest untouched
    unbreak(folder)
    assert validate_dataset(folder).ok
    ds = read_dataset(folder)
    a = next(r for r in ds.images if r.file_name == "a.png")
    np.testing.assert_allclose([ann.box for ann in a.annotations], boxes, atol=1e-6)


@pytest.mark.parametrize("fmt", ["yolo", "voc"])
def test_fix_into_out_writes_a_fixed_copy_and_leaves_the_source(tmp_path: Path, fmt: str) -> None:
    breaker, _, clipped, dropped, _ = CASES[fmt]
    folder = make(tmp_path, fmt)
    breaker(folder)
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    report = validate_dataset(folder)
    summary = fix_dataset(folder, report, out=tmp_path / "fixed")
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    assert summary.out_path == str(tmp_path / "fixed") and len(summary.clipped) == 1 and len(summary.dropped) == 1
    assert all(Path(f).is_relative_to(tmp_path / "fixed") for f in summary.files)
    assert len(validate_dataset(tmp_path / "fixed").problems) == 1
    assert not list(tmp_path.glob(".fixed.fix-*"))  # the temp folder is gone
    with pytest.raises(DatasetFormatError, match="already exists"):
        fix_dataset(folder, report, out=tmp_path / "fixed")


def test_fix_of_single_file_formats_into_out_keeps_the_source(tmp_path: Path) -> None:
    folder = make(tmp_path, "labelstudio")
    _ls(folder)
    src = folder / "labelstudio.json"
    before = src.read_text()
    report = validate_dataset(folder)
    fix_dataset(folder, report, out=folder / "fixed.json")
    assert src.read_text() == before
    fixed: Callable[[], list] = lambda: json.loads((folder / "fixed.json").read_text())  # noqa: E731
    assert len(fixed()[0]["annotations"][0]["result"]) == 1
