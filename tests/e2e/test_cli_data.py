"""`pixsight data synth` from the outside."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import run_cli


def test_synth_writes_coco_splits_that_pycocotools_reads(tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    out = tmp_path / "shapes"
    proc = run_cli("data", "synth", str(out), "--task", "detect", "--n", "12", "--seed", "5", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["splits"]["train"]["images"] + summary["splits"]["val"]["images"] == 12
    coco = COCO(str(out / "train.json"))
    assert len(coco.getImgIds()) == summary["splits"]["train"]["images"]
    for img in coco.loadImgs(coco.getImgIds()):
        assert (out / img["file_name"]).is_file()


def test_synth_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    proc = run_cli("data", "synth", str(tmp_path), "--task", "classify", "--n", "6")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (tmp_path / "keep.txt").read_text() == "mine"
