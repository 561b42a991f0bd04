"""COCO box mAP for a :class:`~pixsight.data.dataset.Dataset` and per-image predictions.

The ground truth and the predictions are turned into COCO dicts in memory (image ids are the
1-based position in ``gt.images``, category ids ``class_id + 1``, boxes ``xyxy -> xywh``) and
scored by faster-coco-eval, which reproduces pycocotools' numbers exactly (tested). Areas
follow COCO: the source file's ``area`` when it had one, else the mask area, else the box
area; ``iscrowd`` regions are honoured (matches to them are neither TP nor FP).

>>> import numpy as np
>>> from pixsight.data.dataset import Annotation, Dataset, ImageRecord
>>> gt = Dataset(".", ["cat"], [ImageRecord("a.png", 64, 64, [Annotation(0, [8, 8, 40, 40])])])
>>> pred = [(np.array([[8, 8, 40, 40.0]]), np.array([0.9]), np.array([0]))]
>>> m = detection_metrics(gt, pred)
>>> m["map"], m["map_50"], m["per_class"]["cat"]["ap"]
(1.0, 1.0, 1.0)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data.dataset import Annotation, Dataset, ImageRecord

__all__ = ["COCO_STAT_KEYS", "Prediction", "as_prediction", "coco_ground_truth", "coco_results",
           "detection_metrics"]

log = logging.getLogger(__name__)

#: Names of the 12 COCO summary stats, in pycocotools' order.
COCO_STAT_KEYS: tuple[str, ...] = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large",
                                   "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large")

#: One image's detections: boxes ``(K, 4)`` xyxy image pixels, scores ``(K,)``, class ids ``(K,)``.
Prediction = tuple[np.ndarray, np.ndarray, np.ndarray]


def as_prediction(pred: Any, *, num_classes: int, where: str = "") -> Prediction:
    """Validate one image's detections (a ``(boxes, scores, class_ids)`` tuple or an object
    with those attributes, such as ``core.types.Detections``) into float/int numpy arrays.

    >>> b, s, c = as_prediction(([[0, 0, 2, 2]], [0.5], [1]), num_classes=2)
    >>> b.shape, s.tolist(), c.tolist()
    ((1, 4), [0.5], [1])
    """
    if hasattr(pred, "boxes") and hasattr(pred, "scores") and hasattr(pred, "class_ids"):
        pred = (pred.boxes, pred.scores, pred.class_ids)
    try:
        boxes, scores, class_ids = pred
    except (TypeError, ValueError):
        raise ValueError(f"{where}expected (boxes, scores, class_ids), got {type(pred).__name__}") from None
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if np.size(boxes) else np.zeros((0, 4))
    s = np.asarray(scores, dtype=np.float64).ravel()
    c = np.asarray(class_ids).ravel()
    if not (len(b) == len(s) == len(c)):
        raise ValueError(f"{where}boxes, scores and class_ids differ in length ({len(b)}, {len(s)}, {len(c)})")
    if c.size and (not np.issubdtype(c.dtype, np.integer) or c.min() < 0 or c.max() >= num_classes):
        raise ValueError(f"{where}class ids must be ints in 0..{num_classes - 1}, got {sorted(set(c.tolist()))}")
    if not (np.all(np.isfinite(b)) and np.all(np.isfinite(s))):
        raise ValueError(f"{where}boxes and scores must be finite")
    return b, s, c.astype(np.int64)


def _area(ann: Annotation, rec: ImageRecord) -> float:
    """COCO's area: the source's ``area``, else the mask area (RLE/polygons), else the box."""
    area = ann.attributes.get("area")
    if isinstance(area, (int, float)) and not isinstance(area, bool) and math.isfinite(area) and area >= 0:
        return float(area)
    if ann.has_mask:
        from pycocotools import mask as mask_utils

        if ann.rle is not None:
            rle = {"size": ann.rle["size"], "counts": ann.rle["counts"].encode("ascii")}
        else:
            rle = mask_utils.merge(mask_utils.frPyObjects([p.ravel().tolist() for p in ann.polygons],
                                                          rec.height, rec.width))
        return float(mask_utils.area(rle))
    x1, y1, x2, y2 = ann.box
    return float((x2 - x1) * (y2 - y1))


def coco_ground_truth(gt: Dataset) -> dict[str, Any]:
    """``gt`` as a COCO dict: image ``id`` = position + 1, ``category_id`` = class id + 1,
    annotation ids 1.. (0 is COCO's "unmatched" marker, so never used).

    >>> from pixsight.data.dataset import Annotation, Dataset, ImageRecord
    >>> d = coco_ground_truth(Dataset(".", ["a"], [ImageRecord("x.png", 4, 4, [Annotation(0, [0, 0, 2, 3])])]))
    >>> d["annotations"][0]["bbox"], d["annotations"][0]["area"]
    ([0.0, 0.0, 2.0, 3.0], 6.0)
    """
    images, annotations = [], []
    for i, rec in enumerate(gt.images, start=1):
        images.append({"id": i, "width": rec.width, "height": rec.height, "file_name": rec.file_name})
        for ann in rec.annotations:
            x1, y1, x2, y2 = (float(v) for v in ann.box)
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": ann.class_id + 1,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": _area(ann, rec),
                                "iscrowd": int(ann.iscrowd)})
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(gt.classes)]
    return {"images": images, "annotations": annotations, "categories": categories}


def coco_results(predictions: Sequence[Any], *, num_classes: int) -> list[dict[str, Any]]:
    """Per-image predictions as a COCO results list (``image_id`` = position + 1).

    >>> coco_results([([[1, 2, 4, 6]], [0.5], [0])], num_classes=1)
    [{'image_id': 1, 'category_id': 1, 'bbox': [1.0, 2.0, 3.0, 4.0], 'score': 0.5}]
    """
    out: list[dict[str, Any]] = []
    for i, pred in enumerate(predictions, start=1):
        b, s, c = as_prediction(pred, num_classes=num_classes, where=f"predictions[{i - 1}]: ")
        wh = b[:, 2:] - b[:, :2]
        for (x, y), (w, h), score, cid in zip(b[:, :2].tolist(), wh.tolist(), s.tolist(), c.tolist()):
            out.append({"image_id": i, "category_id": cid + 1, "bbox": [x, y, w, h], "score": score})
    return out


def _none_if_missing(v: float) -> float | None:
    return None if v is None or v < 0 or not math.isfinite(v) else float(v)


def _mean_valid(a: np.ndarray) -> float | None:
    valid = a[a > -1]
    return float(valid.mean()) if valid.size else None


def detection_metrics(gt: Dataset, predictions: Sequence[Any], *, max_detections: int = 100) -> dict[str, Any]:
    """COCO box metrics of ``predictions`` (aligned with ``gt.images``) against ``gt``.

    Returns ``map, map_50, map_75, map_small, map_medium, map_large, mar_1, mar_10, mar_100,
    mar_small, mar_medium, mar_large`` (``None`` where COCO reports -1, i.e. no ground truth
    in that bucket), ``stats`` (the 12 raw COCO stats), ``per_class {name: {ap, ap_50,
    support}}``, and ``curves {name: {recall, precision}}`` (the 101-point PR curve at IoU 0.5,
    all areas). ``max_detections`` is COCO's largest ``maxDets`` (keep 100 to compare with
    published numbers).
    """
    from faster_coco_eval import COCO, COCOeval_faster

    if len(predictions) != len(gt.images):
        raise ValueError(f"got predictions for {len(predictions)} images but the dataset has {len(gt.images)}")
    gt_doc = coco_ground_truth(gt)
    results = coco_results(predictions, num_classes=len(gt.classes))
    support = dict.fromkeys(gt.classes, 0)
    for a in gt_doc["annotations"]:
        if not a["iscrowd"]:
            support[gt.classes[a["category_id"] - 1]] += 1
    empty: dict[str, Any] = {k: None for k in COCO_STAT_KEYS}
    empty.update(stats=[-1.0] * 12, curves={},
                 per_class={n: {"ap": None, "ap_50": None, "support": support[n]} for n in gt.classes})
    if not gt_doc["images"] or not gt_doc["categories"]:
        return empty
    coco_gt = COCO(gt_doc, print_function=log.debug)
    coco_dt = coco_gt.loadRes(results)
    ev = COCOeval_faster(coco_gt, coco_dt, iouType="bbox", print_function=log.debug)
    ev.params.maxDets = [1, 10, max_detections]
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    stats = [float(v) for v in ev.stats[:12]]
    out: dict[str, Any] = {k: _none_if_missing(v) for k, v in zip(COCO_STAT_KEYS, stats)}
    out["stats"] = stats
    precision = np.asarray(ev.eval["precision"])  # [T, R, K, A, M]
    rec_thrs = [round(float(r), 2) for r in ev.params.recThrs]
    per_class, curves = {}, {}
    for k, name in enumerate(gt.classes):
        p_all = precision[:, :, k, 0, -1]
        per_class[name] = {"ap": _mean_valid(p_all), "ap_50": _mean_valid(p_all[0]), "support": support[name]}
        if support[name]:
            curves[name] = {"recall": rec_thrs, "precision": [max(float(v), 0.0) for v in p_all[0]]}
    out["per_class"] = per_class
    out["curves"] = curves
    return out
