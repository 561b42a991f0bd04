"""Which results are doubtful enough to need a human: thresholds come from configuration.

>>> import numpy as np
>>> from pixsight.core.types import Classification
>>> c = Classification(class_ids=np.array([1]), scores=np.array([0.2]), labels=["goldfish"])
>>> review_reasons({"classify": c}, ReviewThresholds())
['classify: top label goldfish scored 0.20, below 0.30']
"""

from __future__ import annotations

from typing import Any

from ..core.config import ReviewThresholds
from ..core.types import Classification, Detections, Faces, TextLines

__all__ = ["review_reasons"]


def review_reasons(results: dict[str, Any], thresholds: ReviewThresholds, *,
                   task_errors: dict[str, Any] | None = None) -> list[str]:
    """Reasons an image needs review (empty list = confident). Never mutates its inputs."""
    reasons: list[str] = []
    for task in sorted(task_errors or {}):
        reasons.append(f"{task}: failed ({task_errors[task].get('type', 'error')})")  # type: ignore[index]
    cls = results.get("classify")
    if isinstance(cls, Classification) and len(cls):
        label = cls.top_label or ""
        limit = thresholds.classify_per_class.get(label, thresholds.classify_conf_threshold)
        if cls.top_score < limit:
            reasons.append(f"classify: top label {label} scored {cls.top_score:.2f}, below {limit:.2f}")
    ocr = results.get("ocr")
    if isinstance(ocr, TextLines) and len(ocr):
        low = int((ocr.scores < thresholds.ocr_conf_threshold).sum())
        if low:
            reasons.append(f"ocr: {low} of {len(ocr)} lines scored below {thresholds.ocr_conf_threshold:.2f}")
    faces = results.get("faces")
    if isinstance(faces, Faces) and len(faces):
        low = int((faces.scores < thresholds.faces_conf_threshold).sum())
        if low:
            reasons.append(f"faces: {low} of {len(faces)} faces scored below {thresholds.faces_conf_threshold:.2f}")
    det = results.get("detect")
    if isinstance(det, Detections) and len(det):
        doubtful: dict[str, int] = {}
        for label, score in zip(det.labels, det.scores.tolist()):
            if score < thresholds.detect_per_class.get(label, thresholds.detect_conf_threshold):
                doubtful[label] = doubtful.get(label, 0) + 1
        if doubtful:
            what = ", ".join(f"{n} {label}" for label, n in sorted(doubtful.items()))
            reasons.append(f"detect: {sum(doubtful.values())} of {len(det)} objects below their review threshold ({what})")
    return reasons
