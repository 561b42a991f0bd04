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


def test_convert_chain_keeps_every_box(tmp_path: Path) -> None:
    """synth (COCO, file names under images/) -> YOLO -> VOC -> COCO: same images and boxes."""
    import numpy as np
    from pycocotools.coco import COCO

    src = tmp_path / "shapes"
    assert run_cli("data", "synth", str(src), "--task", "detect", "--n", "10", "--seed", "2").returncode == 0
    steps = [(src / "train.json", tmp_path / "y", "yolo"), (tmp_path / "y", tmp_path / "v", "voc"),
             (tmp_path / "v", tmp_path / "c" / "ds.json", "coco")]
    for a, b, fmt in steps:
        proc = run_cli("data", "convert", str(a), str(b), "--to", fmt, "--lossy")  # masks can't live in VOC
        assert proc.returncode == 0, proc.stderr
    before, after = COCO(str(src / "train.json")), COCO(str(tmp_path / "c" / "ds.json"))

    def boxes(coco: COCO) -> dict[str, tuple[list, np.ndarray]]:
        out = {}
        for img in coco.loadImgs(coco.getImgIds()):
            anns = sorted(coco.loadAnns(coco.getAnnIds(imgIds=img["id"])), key=lambda a: (a["category_id"], a["bbox"][:2]))
            out[Path(img["file_name"]).name] = ([a["category_id"] for a in anns],
                                                np.array([a["bbox"] for a in anns]).reshape(-1, 4))
        return out

    b, a = boxes(before), boxes(after)
    assert b.keys() == a.keys()
    for name in b:
        assert b[name][0] == a[name][0], name  # same objects, same classes
        # YOLO segments store only the polygon, so the box comes back as the polygon's extent,
        # which synth traces on pixel edges: within half a pixel of the original box
        assert np.abs(b[name][1] - a[name][1]).max(initial=0) <= 0.51, name


def test_convert_without_lossy_refuses_and_leaves_nothing(tmp_path: Path) -> None:
    src = tmp_path / "shapes"
    assert run_cli("data", "synth", str(src), "--task", "segment", "--n", "6", "--seed", "1").returncode == 0
    proc = run_cli("data", "convert", str(src / "train.json"), str(tmp_path / "voc"), "--to", "voc")
    assert proc.returncode == 1 and "--lossy" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "voc").exists()
