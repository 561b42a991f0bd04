"""detection_metrics equals pycocotools on generated ground truth and predictions."""

from __future__ import annotations

import contextlib
import io
import json
import warnings

import numpy as np
import pytest

from pixsight.data.dataset import Annotation, Dataset, ImageRecord
from pixsight.data.formats.coco import read_coco, write_coco
from pixsight.evaluate.detection import COCO_STAT_KEYS, detection_metrics

CLASSES = ["cat", "dog", "bird"]


def _random_box(rng: np.random.Generator, w: int, h: int) -> list[float]:
    size = rng.choice([rng.uniform(4, 28), rng.uniform(35, 90), rng.uniform(100, 180)])  # small/medium/large
    bw, bh = min(size * rng.uniform(0.6, 1.4), w - 2), min(size * rng.uniform(0.6, 1.4), h - 2)
    x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
    return [x, y, x + bw, y + bh]


def _make(seed: int, n_images: int = 40) -> tuple[Dataset, list]:
    rng = np.random.default_rng(seed)
    images, preds = [], []
    for i in range(n_images):
        w, h = int(rng.integers(200, 400)), int(rng.integers(200, 400))
        anns = []
        n = 0 if i % 7 == 0 else int(rng.integers(1, 6))  # some images have no objects
        for j in range(n):
            box = _random_box(rng, w, h)
            poly = None
            if rng.random() < 0.3:  # a polygon inside the box: mask area differs from box area
                x1, y1, x2, y2 = box
                poly = [[[x1, y1], [x2, y1], [(x1 + x2) / 2, y2]]]
            anns.append(Annotation(int(rng.integers(0, 3)), box, polygons=poly or [],
                                   iscrowd=bool(rng.random() < 0.1)))
        images.append(ImageRecord(f"img_{i}.png", w, h, anns))
        boxes, scores, cls = [], [], []
        if i % 5 != 3:  # some images get no predictions at all
            for a in anns:
                if rng.random() < 0.8:
                    jitter = rng.normal(0, 0.08 * (a.box[2] - a.box[0]), 4)
                    b = np.clip(a.box + jitter, 0, [w, h, w, h])
                    if b[2] > b[0] + 1 and b[3] > b[1] + 1:
                        boxes.append(b)
                        scores.append(rng.uniform(0.3, 1.0))
                        cls.append(a.class_id if rng.random() < 0.85 else int(rng.integers(0, 3)))
            for _ in range(int(rng.integers(0, 4))):  # false positives
                boxes.append(_random_box(rng, w, h))
                scores.append(rng.uniform(0.0, 0.7))
                cls.append(int(rng.integers(0, 3)))
        preds.append((np.array(boxes).reshape(-1, 4), np.array(scores), np.array(cls, dtype=np.int64)))
    return Dataset("/nonexistent", CLASSES, images, "detect", {"category_ids": [3, 7, 11]}), preds


def _pycocotools_stats(gt_json, ds: Dataset, preds: list) -> np.ndarray:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    doc = json.loads(gt_json.read_text())
    id_of = {im["file_name"]: im["id"] for im in doc["images"]}
    results = []
    for rec, (b, s, c) in zip(ds.images, preds):
        for box, score, k in zip(b.tolist(), s.tolist(), c.tolist()):
            results.append({"image_id": id_of[rec.file_name], "category_id": [3, 7, 11][k],
                            "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]], "score": score})
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gt = COCO(str(gt_json))
        dt = gt.loadRes(results) if results else COCO()
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_all_12_stats_equal_pycocotools(tmp_path, seed):
    ds, preds = _make(seed)
    path = write_coco(ds, tmp_path / "gt.json", copy_images=False)
    expected = _pycocotools_stats(path, ds, preds)
    got = detection_metrics(read_coco(path), preds)  # through the file: category ids 3/7/11 remapped
    assert np.allclose(got["stats"], expected, atol=1e-12, rtol=0), (got["stats"], expected.tolist())
    for key, value in zip(COCO_STAT_KEYS, expected):
        assert got[key] == (None if value < 0 else pytest.approx(value, abs=1e-12))
    assert any(a.iscrowd for r in ds.images for a in r.annotations)
    assert expected[3] >= 0 and expected[4] >= 0 and expected[5] >= 0  # all three sizes were present


def test_perfect_and_empty_predictions():
    ds, preds = _make(5, n_images=12)
    perfect = [(np.array([a.box for a in r.annotations if not a.iscrowd]).reshape(-1, 4),
                np.ones(sum(not a.iscrowd for a in r.annotations)),
                np.array([a.class_id for a in r.annotations if not a.iscrowd], dtype=np.int64)) for r in ds.images]
    m = detection_metrics(ds, perfect)
    assert m["map"] == pytest.approx(1.0) and m["map_50"] == pytest.approx(1.0)
    assert all(v["ap"] == pytest.approx(1.0) for v in m["per_class"].values() if v["support"])
    none = detection_metrics(ds, [(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64))] * len(ds.images))
    assert none["map"] == 0.0 and none["map_50"] == 0.0


def test_class_without_ground_truth_is_none():
    ds = Dataset(".", ["a", "b"], [ImageRecord("x.png", 50, 50, [Annotation(0, [5, 5, 30, 30])])])
    m = detection_metrics(ds, [(np.array([[5, 5, 30, 30], [1, 1, 9, 9]]), np.array([0.9, 0.8]), np.array([0, 1]))])
    assert m["per_class"]["b"]["ap"] is None and m["per_class"]["b"]["support"] == 0
    assert m["per_class"]["a"]["ap"] == pytest.approx(1.0)
    assert m["map_large"] is None  # no large objects in the ground truth
    assert set(m["curves"]) == {"a"}


@pytest.mark.parametrize("bad, match", [
    ((np.zeros((1, 4)), np.zeros(2), np.zeros(1, dtype=int)), "differ in length"),
    ((np.array([[0, 0, 1, 1]]), np.array([0.5]), np.array([5])), "class ids"),
    ((np.array([[0, 0, np.nan, 1]]), np.array([0.5]), np.array([0])), "finite"),
])
def test_bad_predictions_raise(bad, match):
    ds = Dataset(".", ["a"], [ImageRecord("x.png", 10, 10)])
    with pytest.raises(ValueError, match=match):
        detection_metrics(ds, [bad])


def test_length_mismatch_raises():
    ds = Dataset(".", ["a"], [ImageRecord("x.png", 10, 10)])
    with pytest.raises(ValueError, match="dataset has 1"):
        detection_metrics(ds, [])
