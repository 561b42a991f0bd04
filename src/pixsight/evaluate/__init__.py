"""Evaluation: metrics for every task, model and predictions-file scoring, subgroups, reports.

- :mod:`.metrics` — ``classification_metrics``, ``detection_metrics`` (COCO, equal to
  pycocotools), ``SegmentationMeter``, ``text_metrics``, ``verification_metrics``;
- :func:`evaluate_model` — run a trained run over a labelled dataset (``pixsight eval RUN_DIR``);
- :func:`evaluate_predictions` — score an existing predictions file (``pixsight eval --predictions``);
- :class:`EvalResult` — what both return (``to_dict()`` is the ``--json`` output);
- :mod:`.report` — the self-contained HTML report (``report=FILE``); Grad-CAM overlays come
  from the layer above through ``explainer=`` (:func:`pixsight.explain.cam_explainer`).

Importing this package is cheap (no torch, no onnxruntime); heavy libraries load on first use.

>>> from pixsight.evaluate import text_metrics
>>> text_metrics(["abcd"], ["abed"])["cer"]
0.25
"""

from __future__ import annotations

from .evaluator import EvalResult, evaluate_predictions
from .metrics import (
    SegmentationMeter,
    classification_metrics,
    detection_metrics,
    text_metrics,
    verification_metrics,
)
from .model_eval import evaluate_model

__all__ = [
    "EvalResult",
    "SegmentationMeter",
    "classification_metrics",
    "detection_metrics",
    "evaluate_model",
    "evaluate_predictions",
    "text_metrics",
    "verification_metrics",
]
