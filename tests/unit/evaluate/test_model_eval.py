"""evaluate_model on real (tiny, fixed-weight) ONNX runs through the analyze stage."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from pixsight.core.errors import ConfigError, UnknownModelError
from pixsight.data.dataset import Annotation, Dataset, ImageRecord
from pixsight.data.formats.coco import write_coco
from pixsight.evaluate.model_eval import evaluate_model
from tests.unit.tasks.runs import make_run, squares_image

pytestmark = pytest.mark.slow  # exports three ONNX models with torch


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    for task in ("classify", "detect", "segment"):
        make_run(root, task)
    return root


def _squares_dataset(root: Path, *, task: str, with_masks: bool = False) -> Path:
    img, boxes = squares_image()
    recs = []
    for i, site in enumerate(["a", "b"]):
        Image.fromarray(img).save(root / f"{i}.png")
        anns = []
        for k, name in enumerate(["white", "red"]):
            x1, y1, x2, y2 = boxes[name]
            poly = [[[x1, y1], [x2, y1], [x2, y2], [x1, y2]]] if with_masks else []
            anns.append(Annotation(k, boxes[name], polygons=poly))
        recs.append(ImageRecord(f"{i}.png", 200, 120, anns, id=i + 1, attributes={"site": site}))
    return write_coco(Dataset(root, ["white", "red"], recs, task), root / "gt.json", copy_images=False)


def test_detect_run(runs, tmp_path):
    gt = _squares_dataset(tmp_path, task="detect")
    calls = []
    r = evaluate_model(runs / "detect" / "tiny-detect", gt, group_by="site", report=tmp_path / "r.html",
                       progress=lambda done, total: calls.append((done, total)))
    assert r.task == "detect" and r.model and r.metrics["map_50"] == pytest.approx(1.0)
    assert set(r.groups["values"]) == {"a", "b"} and calls[-1] == (2, 2)
    assert (tmp_path / "r.html").stat().st_size > 1000


def test_segment_run(runs, tmp_path):
    gt = _squares_dataset(tmp_path, task="segment", with_masks=True)
    r = evaluate_model(runs / "segment" / "tiny-segment", gt)
    assert r.metrics["miou"] > 0.9 and set(r.metrics["per_class_iou"]) == {"background", "white", "red"}


def test_classify_run_and_class_order(runs, tmp_path):
    img, _ = squares_image()
    white = img.copy()
    white[:, :] = 255
    red = img.copy()
    red[:, :] = (250, 10, 10)
    for split, pix in (("white", white), ("red", red)):
        (tmp_path / "val" / split).mkdir(parents=True)
        Image.fromarray(pix).save(tmp_path / "val" / split / "0.png")
    r = evaluate_model(runs / "classify" / "tiny-classify", tmp_path / "val")
    # folders are read in sorted order (red, white): model and dataset class orders differ
    assert r.metrics["accuracy"] == 1.0 and r.metrics["per_class"]["red"]["recall"] == 1.0


def test_wrong_data_and_unknown_model(runs, tmp_path):
    gt = _squares_dataset(tmp_path, task="detect")
    with pytest.raises(ConfigError, match="classifier"):
        evaluate_model(runs / "classify" / "tiny-classify", gt)
    other = Dataset(tmp_path, ["cat", "dog"], [ImageRecord("0.png", 200, 120, [Annotation(0, [1, 1, 5, 5])])])
    with pytest.raises(ConfigError, match=r"classes \['white', 'red'\] differ"):
        evaluate_model(runs / "detect" / "tiny-detect", other)
    with pytest.raises(UnknownModelError):
        evaluate_model("no-such-model-xyz", gt)
