"""Rank images by how wrong their prediction is, to show the worst ones in the eval report.

- classify: wrong predictions first, most confident first; then the lowest true-class probability.
- detect: misses + false alarms at IoU ``iou_threshold`` among detections scoring at least
  ``score_threshold`` (class-aware, greedy by score; crowd regions neither count nor match).
- segment: the lowest per-image mean IoU.

>>> import numpy as np
>>> from pixsight.data.dataset import Dataset, ImageRecord
>>> gt = Dataset(".", ["a", "b"], [ImageRecord("1.png", 4, 4, label=0), ImageRecord("2.png", 4, 4, label=1)],
...              task="classify")
>>> [e["file_name"] for e in worst_examples("classify", gt, [np.array([0.9, 0.1]), np.array([0.7, 0.3])], k=1)]
['2.png']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.boxes import box_iou
from ..data.dataset import Dataset, ImageRecord
from .scoring import IGNORE, segmentation_truth

__all__ = ["worst_examples", "detection_errors"]


def detection_errors(rec: ImageRecord, pred: Any, *, score_threshold: float = 0.3,
                     iou_threshold: float = 0.5) -> tuple[int, int]:
    """``(missed, false_alarms)`` for one image.

    >>> from pixsight.data.dataset import Annotation
    >>> r = ImageRecord("a.png", 50, 50, [Annotation(0, [0, 0, 10, 10]), Annotation(0, [20, 20, 40, 40])])
    >>> detection_errors(r, (np.array([[0, 0, 10, 10], [0, 30, 5, 40.]]), np.array([0.9, 0.8]), np.array([0, 0])))
    (1, 1)
    """
    boxes, scores, cls = (np.zeros((0, 4)), np.zeros(0), np.zeros(0, int)) if pred is None else pred
    keep = np.asarray(scores) >= score_threshold
    boxes, scores, cls = np.asarray(boxes)[keep], np.asarray(scores)[keep], np.asarray(cls)[keep]
    order = np.argsort(-scores, kind="stable")
    real = [a for a in rec.annotations if not a.iscrowd]
    crowd = [a for a in rec.annotations if a.iscrowd]
    gt_boxes = np.array([a.box for a in real]).reshape(-1, 4)
    gt_cls = np.array([a.class_id for a in real], dtype=np.int64)
    iou = box_iou(boxes, gt_boxes)
    matched = np.zeros(len(real), dtype=bool)
    false_alarms = 0
    for i in order:
        cand = np.flatnonzero((gt_cls == cls[i]) & ~matched & (iou[i] >= iou_threshold))
        if cand.size:
            matched[cand[np.argmax(iou[i, cand])]] = True
        elif not any(a.class_id == cls[i] and box_iou(boxes[i], a.box)[0, 0] > 0 for a in crowd):
            false_alarms += 1
    return int((~matched).sum()), false_alarms


def _image_miou(gt_map: np.ndarray, pred: np.ndarray) -> float:
    ious = []
    valid = gt_map != IGNORE
    gt_map, pred = gt_map[valid], np.asarray(pred)[valid]
    for v in np.union1d(np.unique(gt_map), np.unique(pred)):
        g, p = gt_map == v, pred == v
        ious.append((g & p).sum() / max((g | p).sum(), 1))
    return float(np.mean(ious)) if ious else 1.0


def worst_examples(task: str, gt: Dataset, items: Sequence[Any], *, k: int = 8, score_threshold: float = 0.3,
                   iou_threshold: float = 0.5) -> list[dict[str, Any]]:
    """The ``k`` worst images: ``{index, file_name, error, why}``, worst first (see module docs)."""
    rows: list[dict[str, Any]] = []
    for i, (rec, pred) in enumerate(zip(gt.images, items)):
        if pred is None and task != "detect":
            continue
        if task == "classify":
            top = int(np.argmax(pred))
            true_p = float(pred[rec.label]) if rec.label is not None else 0.0
            wrong = top != rec.label
            error = (1.0 + float(pred[top])) if wrong else 1.0 - true_p
            truth = gt.classes[rec.label] if rec.label is not None else "?"
            if wrong:
                why = f"predicted {gt.classes[top]} ({pred[top]:.2f}), true {truth} ({true_p:.2f})"
            elif error >= 0.5:
                why = f"correct ({truth}) but unsure ({true_p:.2f})"
            else:
                continue
        elif task == "detect":
            missed, false_alarms = detection_errors(rec, pred, score_threshold=score_threshold,
                                                    iou_threshold=iou_threshold)
            error = float(missed + false_alarms)
            why = f"{missed} missed, {false_alarms} false alarms (score >= {score_threshold:g}, IoU {iou_threshold:g})"
            if not error:
                continue
        elif task == "segment":
            miou = _image_miou(segmentation_truth(rec), pred)
            error, why = 1.0 - miou, f"image mIoU {miou:.3f}"
        else:
            raise ValueError(f"no worst-example ranking for task {task!r}")
        rows.append({"index": i, "file_name": rec.file_name, "error": error, "why": why})
    rows.sort(key=lambda r: -r["error"])
    return rows[:k]
