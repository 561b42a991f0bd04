"""Evaluation: metrics for every task, model and predictions-file scoring, subgroups, reports.

Importing this package is cheap (no torch, no onnxruntime); heavy libraries load on first use.
``pixsight.evaluate.explain`` (Grad-CAM, torch) is a separate module imported on demand.

>>> from pixsight.evaluate import text_metrics
>>> text_metrics(["abcd"], ["abed"])["cer"]
0.25
"""

from __future__ import annotations

from .metrics import (
    SegmentationMeter,
    classification_metrics,
    detection_metrics,
    text_metrics,
    verification_metrics,
)

__all__ = [
    "SegmentationMeter",
    "classification_metrics",
    "detection_metrics",
    "text_metrics",
    "verification_metrics",
]
