"""Grad-CAM overlays for the HTML evaluation report's worst examples.

``pixsight.evaluate`` renders the report but sits below this package, so it takes the
overlays through a parameter: pass :func:`cam_explainer` as ``explainer=`` to
:func:`pixsight.evaluate.evaluate_model` (``pixsight eval RUN_DIR --report FILE`` does).

Example::

    from pixsight.evaluate import evaluate_model
    from pixsight.explain import cam_explainer

    evaluate_model("runs/detect/shapes", "data/val.json", report="eval.html", explainer=cam_explainer)
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..core.errors import PixsightError
from ..evaluate.report import Overlay
from .cam import explain
from .model import load_explainable

__all__ = ["cam_explainer"]

log = logging.getLogger(__name__)


def cam_explainer(model: Any, task: str) -> Overlay | None:
    """The overlay function for a classify or detect ``model`` (a run folder, a built-in name
    or anything :func:`~pixsight.explain.model.load_explainable` takes).

    Returns ``None`` (quietly, logged) for other tasks and when the model cannot be explained
    here (no torch, no weights): a report never fails for want of overlays. The model is
    loaded once; each call explains one image with the default method, and an image whose
    explanation fails gives ``None`` with a warning.

    >>> cam_explainer("runs/segment/leaves", "segment") is None
    True
    """
    if task not in ("classify", "detect"):
        return None
    try:
        loaded = load_explainable(model)
    except (ImportError, PixsightError) as err:
        log.info("eval report: no Grad-CAM overlays (%s)", err)
        return None

    def overlay(pixels: np.ndarray) -> tuple[np.ndarray, str] | None:
        try:
            e = explain(loaded, pixels)
        except Exception as err:  # noqa: BLE001 - an explanation must never break the report
            log.warning("eval report: CAM failed: %s", err)
            return None
        return e.overlay, str(e.method)

    return overlay
