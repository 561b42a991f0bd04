"""CVAT XML and Label Studio JSON: round-trips (hypothesis), a conversion chain, unsafe XML
and malformed files with their exact errors."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from PIL import Image

from pixsight.core.errors import DatasetFormatError
from pixsight.data.dataset import Dataset
from pixsight.data.formats import detect_format, read_dataset, write_dataset
from pixsight.data.formats.labelstudio import image_name

from . import test_formats as _tf
from .test_formats import _LAUGHS, _XXE, assert_same, datasets

TEN = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])


_SCRATCH = Path(tempfile.mkdtemp(prefix="pixsight-ls-cvat-"))


def _fresh() -> str:
    return tempfile.mkdtemp(dir=_SCRATCH)


@pytest.fixture(scope="module", autouse=True)
def _cleanup_scratch():
    _tf._SCRATCH.mkdir(exist_ok=True)  # datasets() writes images there; test_formats may have removed it
    yield
    shutil.rmtree(_SCRATCH, ignore_errors=True)
    shutil.rmtree(_tf._SCRATCH, ignore_errors=True)


def _close(a: Dataset, b: Dataset, atol: float) -> None:
    """Same images, classes, splits and shapes, coordinates within ``atol`` pixels."""
    assert b.classes == a.classes
    ra, rb = sorted(a.images, key=lambda r: r.file_name), sorted(b.images, key=lambda r: r.file_name)
    assert [r.file_name for r in rb] == [r.file_name for r in ra]
    for x, y in zip(ra, rb):
        assert (y.width, y.height, y.attributes.get("split")) == (x.width, x.height, x.attributes.get("split"))
        assert [q.class_id for q in y.annotations] == [p.class_id for p in x.annotations]
        for p, q in zip(x.annotations, y.annotations):
            np.testing.assert_allclose(q.box, p.box, atol=atol)
            assert len(q.polygons) == len(p.polygons)
            for pp, qq in zip(p.polygons, q.polygons):
                np.testing.assert_allclose(qq, pp, atol=atol)


@pytest.mark.parametrize("fmt", ["cvat", "labelstudio"])
@pytest.mark.parametrize("kind", ["box", "polygon"])
@TEN
@given(ds=datasets("box"))
def test_round_trip(fmt: str, kind: str, ds: Dataset) -> None:
    if kind == "polygon":  # mixed boxes and polygons: polygons on every other instance
        ds = _with_polygons(ds)
    out = write_dataset(ds, Path(_fresh()) / fmt, fmt)
    assert detect_format(out) == fmt and detect_format(out.parent) == fmt
    back = read_dataset(out)
    if fmt == "cvat":
        assert_same(ds, back)
    else:
        _close(ds, back, 1e-6)
    assert back.task == ("segment" if any(a.polygons for r in ds.images for a in r.annotations) else "detect")


def _with_polygons(ds: Dataset) -> Dataset:
    for rec in ds.images:
        for k, ann in enumerate(rec.annotations):
            if k % 2 == 0:
                x1, y1, x2, y2 = ann.box
                ann.polygons = [np.array([[x1, y1], [x2, (y1 + y2) / 2], [(x1 + x2) / 2, y2]])]
    return ds


@TEN
@given(ds=datasets("polygon"))
def test_chain_coco_cvat_labelstudio_coco(ds: Dataset) -> None:
    cur = ds
    for fmt in ("coco", "cvat", "labelstudio", "coco"):
        cur = read_dataset(write_dataset(cur, Path(_fresh()) / fmt, fmt))
    _close(ds, cur, 1e-3)


def test_chain_keeps_boxes(tmp_path: Path) -> None:
    Image.new("RGB", (640, 480)).save(tmp_path / "a.png")
    Image.new("RGB", (33, 17)).save(tmp_path / "empty.png")
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 640, "height": 480},
                      {"id": 2, "file_name": "empty.png", "width": 33, "height": 17}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10.123, 20.456, 300.789, 200.111]},
                           {"id": 2, "image_id": 1, "category_id": 2, "bbox": [0, 0, 640, 480],
                            "segmentation": [[0, 0, 640, 0, 640, 480, 0, 480]]}],
           "categories": [{"id": 1, "name": "zebra"}, {"id": 2, "name": "ant"}]}
    (tmp_path / "c.json").write_text(json.dumps(doc))
    ds = cur = read_dataset(tmp_path / "c.json")
    for fmt in ("cvat", "labelstudio", "coco"):
        cur = read_dataset(write_dataset(cur, tmp_path / fmt, fmt))
    _close(ds, cur, 1e-3)
    assert cur.classes == ["zebra", "ant"] and len(cur.images) == 2


def test_labelstudio_reads_an_export(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    Image.new("RGB", (20, 10)).save(tmp_path / "images" / "b.png")
    tasks = [{"data": {"image": "/data/upload/7/1f2e-a.jpg"}, "annotations": [
        {"was_cancelled": True, "result": []},
        {"result": [{"type": "rectanglelabels", "original_width": 200, "original_height": 100,
                     "value": {"x": 10, "y": 20, "width": 50, "height": 30, "rectanglelabels": ["car"]}},
                    {"type": "choices", "value": {"choices": ["day"]}},
                    {"type": "polygonlabels", "original_width": 200, "original_height": 100,
                     "value": {"points": [[0, 0], [50, 0], [50, 50]], "polygonlabels": ["bus"]}}]}]},
             {"data": {"image": "/data/local-files/?d=b.png"}, "annotations": []}]
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    assert detect_format(tmp_path / "export.json") == "labelstudio"
    ds = read_dataset(tmp_path / "export.json")
    assert ds.classes == ["bus", "car"] and ds.task == "segment"
    a, b = ds.images
    assert (a.file_name, a.width, a.height, b.file_name, b.width, b.height) == ("1f2e-a.jpg", 200, 100, "b.png", 20, 10)
    np.testing.assert_allclose(a.annotations[0].box, [20, 20, 120, 50])
    np.testing.assert_allclose(a.annotations[1].polygons[0], [[0, 0], [100, 0], [100, 50]])
    assert image_name("http://host:8080/data/local-files/?d=x/a%20b.png") == "x/a b.png"


# ---------------------------------------------------------------- CVAT: unsafe and malformed XML

_CVAT_OK = b"""<?xml version="1.0" encoding="utf-8"?>
<annotations><version>1.1</version><meta><task><labels>
<label><name>dog</name></label><label><name>cat</name></label></labels></task></meta>
<image id="0" name="a.png" width="10" height="8">
<box label="cat" xtl="1" ytl="1" xbr="4" ybr="5.5"/>
<box label="dog" xtl="2" ytl="2" xbr="3" ybr="3"/>
<polygon label="dog" points="1,1;5,1;5,6"/>
</image>
<image id="1" name="empty.png" width="4" height="4" subset="val"/>
</annotations>"""


def _cvat(tmp_path: Path, xml: bytes) -> Path:
    path = tmp_path / "annotations.xml"
    path.write_bytes(xml)
    return path


def test_cvat_reads_boxes_polygons_and_empty_images(tmp_path: Path) -> None:
    path = _cvat(tmp_path, _CVAT_OK)
    assert detect_format(path) == "cvat" and detect_format(tmp_path) == "cvat"
    ds = read_dataset(path)
    assert ds.classes == ["dog", "cat"] and ds.task == "segment"
    a, empty = ds.images
    assert [x.class_id for x in a.annotations] == [1, 0, 0] and empty.annotations == []
    assert a.annotations[2].box.tolist() == [1, 1, 5, 6] and empty.attributes == {"split": "val"}


@pytest.mark.parametrize("xml", [_XXE.replace(b"annotation>", b"annotations>"),
                                 _LAUGHS.replace(b"annotation>", b"annotations>")])
def test_unsafe_cvat_xml_is_rejected(tmp_path: Path, xml: bytes) -> None:
    path = _cvat(tmp_path, xml)
    assert detect_format(path) == "cvat"
    with pytest.raises(DatasetFormatError) as err:
        read_dataset(path)
    assert str(err.value) == (f"{path}: unsafe XML refused (DTDForbidden): DTDs, entities and "
                              "external references are not allowed")


@pytest.mark.parametrize(("old", "new", "message"), [
    (b'ybr="3"/>', b'ybr="x"/>', "image[0] box[1]: ybr must be a number, got 'x'"),
    (b'xbr="4"', b'xbr="40"', "image[0] box[0]: box [1.0, 1.0, 40.0, 5.5] is outside the 10x8 image"),
    (b'xbr="4"', b'xbr="nan"', "image[0] box[0]: xbr is not finite: 'nan'"),
    (b'label="cat"', b'label="cow"', "image[0] box[0]: label 'cow' is not in the meta labels"),
    (b'points="1,1;5,1;5,6"', b'points="1,1;5,1"', "image[0] polygon[0]: a polygon needs at least 3 points, got 2"),
    (b'points="1,1;5,1;5,6"', b'points="1,1;5;5,6"', "image[0] polygon[0]: points must be 'x,y;x,y;...', got '1,1;5;5,6'"),
    (b' width="10"', b"", "image[0]: missing attribute 'width'"),
    (b'width="4"', b'width="0"', "image[1]: width must be a positive int, got 0"),
])
def test_malformed_cvat_names_file_and_record(tmp_path: Path, old: bytes, new: bytes, message: str) -> None:
    assert old in _CVAT_OK
    path = _cvat(tmp_path, _CVAT_OK.replace(old, new, 1))
    with pytest.raises(DatasetFormatError) as err:
        read_dataset(path)
    assert str(err.value) == f"{path}: {message}"


def test_labelstudio_empty_image_without_its_file(tmp_path: Path) -> None:
    (tmp_path / "export.json").write_text(json.dumps([{"data": {"image": "a.png"}}]))
    with pytest.raises(DatasetFormatError) as err:
        read_dataset(tmp_path / "export.json")
    assert str(err.value) == f"{tmp_path / 'a.png'}: image file not found"


# ---------------------------------------------------------------- Label Studio: malformed

def _task(**value) -> list:
    v = {"x": 10, "y": 10, "width": 20, "height": 20, "rectanglelabels": ["car"], **value}
    return [{"data": {"image": "/data/upload/1/a.png"}, "annotations": [{"result": [
        {"type": "rectanglelabels", "original_width": 100, "original_height": 50, "value": v}]}]}]


@pytest.mark.parametrize(("tasks", "message"), [
    (_task(x="10"), "tasks[0] result[0]: value.x must be a number, got '10'"),
    (_task(width=95), "tasks[0] result[0]: box [10.0, 5.0, 105.0, 15.0] is outside the 100x50 image"),
    (_task(rectanglelabels=[]), "tasks[0] result[0]: value.rectanglelabels must hold exactly one label name, got []"),
    (_task(rotation=30), "tasks[0] result[0]: rotated rectangles are not supported (rotation 30)"),
    ([{"data": {"image": "/etc/passwd"}}], "tasks[0]: file_name '/etc/passwd' must be relative and stay inside the dataset folder"),
    ([{"data": {}}], "tasks[0]: missing key 'image'"),
])
def test_malformed_labelstudio_names_file_and_record(tmp_path: Path, tasks: list, message: str) -> None:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    with pytest.raises(DatasetFormatError) as err:
        read_dataset(path)
    assert str(err.value) == f"{path}: {message}"
