"""Score aligned predictions against a dataset, per task, overall and per subgroup.

``score(task, gt, items)`` turns per-image predictions (aligned with ``gt.images``, ``None``
= no prediction) into the task's metrics dict; ``score_groups`` repeats it for each value of
a per-image attribute and reports the largest gap between groups for every headline metric.

>>> import numpy as np
>>> from pixsight.data.dataset import Dataset, ImageRecord
>>> gt = Dataset(".", ["a", "b"], [ImageRecord("1.png", 4, 4, label=0, attributes={"site": "x"}),
...                                ImageRecord("2.png", 4, 4, label=1, attributes={"site": "y"})], task="classify")
>>> items = [np.array([0.9, 0.1]), np.array([0.8, 0.2])]
>>> score("classify", gt, items)["accuracy"]
0.5
>>> g = score_groups("classify", gt, items, field="site")
>>> g["values"]["x"]["accuracy"], g["gaps"]["accuracy"]
(1.0, {'gap': 1.0, 'best': 'x', 'worst': 'y'})
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..data.dataset import Dataset, ImageRecord, semantic_map
from .metrics import SegmentationMeter, classification_metrics, detection_metrics

__all__ = ["SUMMARY_KEYS", "LOWER_IS_BETTER", "IGNORE", "score", "score_groups", "group_values", "segmentation_truth",
           "NO_VALUE"]

log = logging.getLogger(__name__)

#: Headline metrics per task (the ``--json`` keys), in display order.
SUMMARY_KEYS: dict[str, tuple[str, ...]] = {
    "detect": ("map", "map_50", "map_75", "map_small", "map_medium", "map_large"),
    "classify": ("accuracy", "macro_f1", "micro_f1", "roc_auc", "ece"),
    "segment": ("miou", "pixel_accuracy", "dice"),
    "ocr": ("cer", "wer"),
    "faces": ("roc_auc", "eer"),
}
#: Metrics where a smaller number is better (for "best"/"worst" group naming).
LOWER_IS_BETTER: frozenset[str] = frozenset({"ece", "cer", "wer", "eer"})
#: Group name for images without the grouping attribute.
NO_VALUE = "(none)"

#: Ground-truth class-map value that is not scored (crowd regions).
IGNORE = 255

Progress = Callable[[int, int], None]


def segmentation_truth(rec: ImageRecord) -> np.ndarray:
    """The record's class map (``semantic_map``) with crowd regions set to :data:`IGNORE`.

    >>> from pixsight.data.dataset import Annotation
    >>> r = ImageRecord("a.png", 3, 1, [Annotation(0, [0, 0, 2, 1]), Annotation(0, [2, 0, 3, 1], iscrowd=True)])
    >>> segmentation_truth(r).tolist()
    [[1, 1, 255]]
    """
    out = semantic_map(rec).astype(np.int64)
    for ann in rec.annotations:
        if ann.iscrowd:
            out[ann.mask(rec.height, rec.width)] = IGNORE
    return out


def _empty_detection() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64)


def score(task: str, gt: Dataset, items: Sequence[Any], *, progress: Progress | None = None) -> dict[str, Any]:
    """Metrics of ``items`` (aligned with ``gt.images``) for ``task`` (detect/classify/segment).

    Missing detection predictions count as "no detections" (as in a COCO results file);
    missing classification / segmentation predictions are left out (see ``evaluated``).
    """
    if len(items) != len(gt.images):
        raise ValueError(f"{len(items)} predictions for {len(gt.images)} images")
    if task == "detect":
        out = detection_metrics(gt, [_empty_detection() if p is None else p for p in items])
        out["evaluated"] = len(items)
        return out
    if task == "classify":
        keep = [i for i, p in enumerate(items) if p is not None]
        unlabelled = [gt.images[i].file_name for i in keep if gt.images[i].label is None]
        if unlabelled:
            raise ValueError(f"{len(unlabelled)} images have no class label (first: {unlabelled[0]}); "
                             "is the dataset a classification dataset?")
        y = np.array([gt.images[i].label for i in keep], dtype=np.int64)
        probs = np.array([items[i] for i in keep], dtype=np.float64).reshape(len(keep), len(gt.classes))
        out = classification_metrics(y, probs, gt.classes)
        out["evaluated"] = len(keep)
        return out
    if task == "segment":
        if len(gt.classes) >= IGNORE:
            raise ValueError(f"segmentation scoring supports up to {IGNORE - 1} classes, got {len(gt.classes)}")
        meter = SegmentationMeter(len(gt.classes) + 1, class_names=gt.classes, ignore_index=IGNORE)
        done = 0
        for i, (rec, pred) in enumerate(zip(gt.images, items)):
            if pred is not None:
                meter.update(segmentation_truth(rec), pred)
                done += 1
            if progress is not None:
                progress(i + 1, len(items))
        out = meter.result()
        out["evaluated"] = done
        return out
    raise ValueError(f"cannot score task {task!r} against a dataset (detect, classify or segment)")


def group_values(gt: Dataset, field: str) -> list[str]:
    """Each image's value of attribute ``field`` as a string (``"(none)"`` when absent)."""
    return [str(r.attributes[field]) if r.attributes.get(field) is not None else NO_VALUE for r in gt.images]


def _gaps(values: dict[str, dict[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    gaps: dict[str, Any] = {}
    for key in keys:
        scored = {g: m[key] for g, m in values.items() if isinstance(m.get(key), (int, float))}
        if len(scored) < 2:
            continue
        hi = max(scored, key=lambda g: scored[g])
        lo = min(scored, key=lambda g: scored[g])
        best, worst = (lo, hi) if key in LOWER_IS_BETTER else (hi, lo)
        gaps[key] = {"gap": float(scored[hi] - scored[lo]), "best": best, "worst": worst}
    return gaps


def score_groups(task: str, gt: Dataset, items: Sequence[Any], *, field: str) -> dict[str, Any]:
    """Every metric per value of the per-image attribute ``field``, plus the largest gap.

    Returns ``{"field", "values": {value: {images, <metrics>}}, "gaps": {metric: {gap, best,
    worst}}}``. Raises ``ValueError`` when no image has the attribute.
    """
    labels = group_values(gt, field)
    if all(v == NO_VALUE for v in labels):
        known = sorted({k for r in gt.images for k in r.attributes})
        raise ValueError(f"no image has the attribute {field!r}; per-image attributes here: "
                         f"{', '.join(known) or 'none'}")
    values: dict[str, dict[str, Any]] = {}
    for value in sorted(set(labels)):
        idx = [i for i, v in enumerate(labels) if v == value]
        sub = Dataset(gt.root, gt.classes, [gt.images[i] for i in idx], gt.task, gt.attributes)
        metrics = score(task, sub, [items[i] for i in idx])
        metrics.pop("curves", None)
        values[value] = {"images": len(idx), **metrics}
    return {"field": field, "values": values, "gaps": _gaps(values, SUMMARY_KEYS[task])}
