"""Calibration and operating points for classifiers: ECE, reliability bins, threshold sweeps.

Expected Calibration Error (Guo et al., 2017) bins the top-1 confidence into equal-width bins
and averages ``|accuracy - confidence|`` weighted by bin size. The threshold sweep answers
"which score threshold gives me precision >= p, and what recall do I keep?" using
scikit-learn's precision-recall curve.

>>> import numpy as np
>>> conf = np.array([0.9, 0.9, 0.6, 0.6])
>>> correct = np.array([True, True, True, False])
>>> round(expected_calibration_error(conf, correct, bins=10), 3)
0.1
>>> threshold_for_precision(np.array([1, 1, 0, 1]), np.array([0.9, 0.8, 0.7, 0.6]), target=0.99)
{'threshold': 0.8, 'precision': 1.0, 'recall': 0.667}
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

__all__ = ["expected_calibration_error", "reliability_bins", "threshold_for_precision", "threshold_sweep"]

log = logging.getLogger(__name__)


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, *, bins: int = 15) -> dict[str, Any]:
    """Equal-width confidence bins: per bin ``count``, mean ``confidence`` and ``accuracy``.

    Empty bins report ``None`` for confidence and accuracy. ``edges`` has ``bins + 1`` values.

    >>> r = reliability_bins(np.array([0.1, 0.95]), np.array([False, True]), bins=2)
    >>> r["count"], r["accuracy"]
    ([1, 1], [0.0, 1.0])
    """
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    ok = np.asarray(correct, dtype=bool).ravel()
    if conf.shape != ok.shape:
        raise ValueError(f"confidence has {conf.size} values but correct has {ok.size}")
    edges = np.linspace(0.0, 1.0, bins + 1)
    # bin i holds (edges[i], edges[i+1]]; a confidence of exactly 0 goes to the first bin
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
    count = np.bincount(idx, minlength=bins)
    conf_sum = np.bincount(idx, weights=conf, minlength=bins)
    acc_sum = np.bincount(idx, weights=ok.astype(np.float64), minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = conf_sum / count
        mean_acc = acc_sum / count
    return {
        "edges": [round(float(e), 6) for e in edges],
        "count": [int(c) for c in count],
        "confidence": [None if c == 0 else float(v) for c, v in zip(count, mean_conf)],
        "accuracy": [None if c == 0 else float(v) for c, v in zip(count, mean_acc)],
    }


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, *, bins: int = 15) -> float | None:
    """ECE of top-1 ``confidence`` against whether the top-1 prediction was ``correct``.

    ``None`` for an empty input.

    >>> expected_calibration_error(np.array([1.0, 1.0]), np.array([True, True]))
    0.0
    """
    r = reliability_bins(confidence, correct, bins=bins)
    total = sum(r["count"])
    if total == 0:
        return None
    gap = sum(n * abs(a - c) for n, a, c in zip(r["count"], r["accuracy"], r["confidence"]) if n)
    return float(gap / total)


def threshold_for_precision(y_true: np.ndarray, scores: np.ndarray, *, target: float) -> dict[str, float] | None:
    """The lowest score threshold whose precision reaches ``target`` (maximising recall).

    ``y_true`` is binary (1 = positive). Returns ``{threshold, precision, recall}`` (rounded
    to 3 decimals for precision/recall) or ``None`` when no threshold reaches the target or
    there are no positives.

    >>> threshold_for_precision(np.array([0, 0]), np.array([0.5, 0.4]), target=0.5) is None
    True
    """
    from sklearn.metrics import precision_recall_curve

    y = np.asarray(y_true).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.size == 0 or not y.any():
        return None
    precision, recall, thresholds = precision_recall_curve(y, s)
    # precision/recall have one more entry than thresholds (the final (1, 0) point)
    ok = np.flatnonzero(precision[:-1] >= target)
    if ok.size == 0:
        return None
    best = ok[np.argmax(recall[ok])]
    return {"threshold": float(thresholds[best]), "precision": round(float(precision[best]), 3),
            "recall": round(float(recall[best]), 3)}


def threshold_sweep(y_true: np.ndarray, probs: np.ndarray, classes: list[str], *,
                    target_precision: float = 0.9) -> dict[str, Any]:
    """Per class (one-vs-rest on that class's probability) and for the top-1 decision
    (accept the top-1 label when its probability >= threshold), the threshold reaching
    ``target_precision``.

    >>> y = np.array([0, 1, 1])
    >>> p = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    >>> sorted(threshold_sweep(y, p, ["a", "b"], target_precision=0.9))
    ['per_class', 'target_precision', 'top1']
    """
    y = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(probs, dtype=np.float64)
    per_class = {name: threshold_for_precision(y == k, p[:, k], target=target_precision)
                 for k, name in enumerate(classes)}
    top1 = None
    if y.size:
        correct = p.argmax(axis=1) == y
        top1 = threshold_for_precision(correct, p.max(axis=1), target=target_precision)
    return {"target_precision": target_precision, "per_class": per_class, "top1": top1}
