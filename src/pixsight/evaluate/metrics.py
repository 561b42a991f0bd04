"""Metrics for every task: pure functions over numpy arrays and datasets.

Training validation, ``pixsight eval`` and the eval report all call these, so a number means
the same thing everywhere. Well-kept libraries do the counting: scikit-learn
(classification, ROC), faster-coco-eval (COCO mAP, equal to pycocotools), jiwer (CER/WER).
Undefined values (ROC-AUC with a class missing, AP of a class without ground truth) are
``None``, never a misleading 0.

>>> import numpy as np
>>> m = classification_metrics(np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), ["a", "b"])
>>> round(m["accuracy"], 3), m["roc_auc"], m["confusion"]
(0.667, 1.0, [[1, 0], [1, 1]])
>>> text_metrics(["hello"], ["hallo"])
{'cer': 0.2, 'wer': 1.0}
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from .calibration import expected_calibration_error, reliability_bins, threshold_sweep
from .detection import detection_metrics

__all__ = ["classification_metrics", "detection_metrics", "SegmentationMeter", "text_metrics",
           "verification_metrics"]

log = logging.getLogger(__name__)


def _check_probs(y_true: np.ndarray, probs: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).ravel()
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != y.size or p.shape[1] != num_classes:
        raise ValueError(f"probs must be (N={y.size}, C={num_classes}), got {p.shape}")
    if y.size and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"y_true must be ints in 0..{num_classes - 1}")
    if not np.all(np.isfinite(p)):
        raise ValueError("probs must be finite")
    return y.astype(np.int64), p


def _roc_auc(y: np.ndarray, p: np.ndarray) -> float | None:
    """Macro one-vs-rest ROC-AUC; ``None`` when any class is missing from ``y``."""
    from sklearn.metrics import roc_auc_score

    c = p.shape[1]
    if y.size == 0 or len(np.unique(y)) < c or c < 2:
        return None
    if c == 2:
        return float(roc_auc_score(y, p[:, 1]))
    rows = p.sum(axis=1, keepdims=True)
    p = p / np.where(rows > 0, rows, 1)  # sklearn's multi-class OvR wants rows summing to 1
    return float(roc_auc_score(y, p, multi_class="ovr", average="macro", labels=list(range(c))))


def _pr_curves(y: np.ndarray, p: np.ndarray, classes: Sequence[str], points: int = 101) -> dict[str, Any]:
    """One-vs-rest precision-recall curve per class, interpolated COCO-style at ``points``
    recall levels (precision = best precision at recall >= r)."""
    from sklearn.metrics import precision_recall_curve

    levels = np.linspace(0.0, 1.0, points)
    out: dict[str, Any] = {}
    for k, name in enumerate(classes):
        pos = y == k
        if not pos.any():
            continue
        prec, rec, _ = precision_recall_curve(pos, p[:, k])
        envelope = np.maximum.accumulate(prec[::-1])[::-1]  # rec is decreasing
        order = np.argsort(rec, kind="stable")
        rec_sorted, env_sorted = rec[order], envelope[order]
        idx = np.searchsorted(rec_sorted, levels, side="left")
        interp = [float(env_sorted[i]) if i < rec_sorted.size else 0.0 for i in idx]
        out[name] = {"recall": [round(float(r), 2) for r in levels], "precision": interp}
    return out


def classification_metrics(y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str], *,
                           calibration_bins: int = 15, target_precision: float = 0.9) -> dict[str, Any]:
    """Accuracy, F1, ROC-AUC, per-class precision/recall/F1, confusion, calibration, thresholds.

    ``y_true`` ``(N,)`` class ids, ``probs`` ``(N, C)`` class probabilities (softmax outputs).
    Keys: ``accuracy, macro_f1, micro_f1, roc_auc`` (macro one-vs-rest, ``None`` when a class
    has no sample), ``per_class {name: {precision, recall, f1, support}}``, ``confusion``
    (rows = truth, columns = prediction), ``ece`` (top-1, ``calibration_bins`` equal bins),
    ``reliability`` (the bins), ``thresholds`` (score threshold reaching ``target_precision``
    per class and for the top-1 decision) and ``curves`` (per-class PR curves, 101 points).

    >>> m = classification_metrics(np.array([0, 0]), np.array([[0.7, 0.3], [0.6, 0.4]]), ["a", "b"])
    >>> m["roc_auc"] is None, m["per_class"]["b"]["support"], round(m["ece"], 2)
    (True, 0, 0.35)
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    classes = list(classes)
    y, p = _check_probs(y_true, probs, len(classes))
    labels = list(range(len(classes)))
    if y.size == 0:
        return {"accuracy": None, "macro_f1": None, "micro_f1": None, "roc_auc": None, "ece": None,
                "per_class": {n: {"precision": None, "recall": None, "f1": None, "support": 0} for n in classes},
                "confusion": [[0] * len(classes) for _ in classes],
                "reliability": reliability_bins(np.zeros(0), np.zeros(0, bool), bins=calibration_bins),
                "thresholds": threshold_sweep(y, p, classes, target_precision=target_precision), "curves": {}}
    pred = p.argmax(axis=1)
    prec, rec, f1, support = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    conf = p[np.arange(y.size), pred]
    correct = pred == y
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "micro_f1": float(f1_score(y, pred, labels=labels, average="micro", zero_division=0)),
        "roc_auc": _roc_auc(y, p),
        "ece": expected_calibration_error(conf, correct, bins=calibration_bins),
        "per_class": {name: {"precision": float(prec[k]), "recall": float(rec[k]), "f1": float(f1[k]),
                             "support": int(support[k])} for k, name in enumerate(classes)},
        "confusion": confusion_matrix(y, pred, labels=labels).tolist(),
        "reliability": reliability_bins(conf, correct, bins=calibration_bins),
        "thresholds": threshold_sweep(y, p, classes, target_precision=target_precision),
        "curves": _pr_curves(y, p, classes),
    }


class SegmentationMeter:
    """Accumulates a confusion matrix over class maps; ``result()`` gives mIoU, Dice, accuracy.

    Class maps hold ``0`` for background and ``k + 1`` for class ``k`` (``semantic_map``).
    Ground-truth pixels equal to ``ignore_index`` (default 255) are skipped. mIoU and Dice
    average over the classes (background included) present in the ground truth *or* the
    prediction; absent classes report ``None``. ``class_names`` lists the foreground names
    (``K - 1``, "background" is prepended) or all ``K`` names.

    >>> m = SegmentationMeter(2, class_names=["cat"])
    >>> m.update(np.array([[0, 1], [1, 255]]), np.array([[0, 1], [0, 0]]))
    >>> r = m.result()
    >>> round(r["miou"], 3), r["per_class_iou"], round(r["pixel_accuracy"], 3)
    (0.5, {'background': 0.5, 'cat': 0.5}, 0.667)
    """

    def __init__(self, num_classes_with_background: int, *, class_names: Sequence[str] | None = None,
                 ignore_index: int | None = 255) -> None:
        k = int(num_classes_with_background)
        if k < 1:
            raise ValueError(f"num_classes_with_background must be >= 1, got {num_classes_with_background}")
        names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(k - 1)]
        if len(names) == k - 1:
            names = ["background", *names]
        if len(names) != k:
            raise ValueError(f"class_names needs {k - 1} foreground names (or {k} with background), got {len(names)}")
        self.num_classes = k
        self.class_names = names
        self.ignore_index = ignore_index
        self.confusion = np.zeros((k, k), dtype=np.int64)

    def update(self, gt_map: np.ndarray, pred_map: np.ndarray) -> None:
        """Add one image (``gt_map`` and ``pred_map`` of the same ``(H, W)`` shape)."""
        gt = np.asarray(gt_map)
        pred = np.asarray(pred_map)
        if gt.shape != pred.shape:
            raise ValueError(f"ground-truth map is {gt.shape} but the prediction is {pred.shape}")
        gt = gt.ravel().astype(np.int64)
        pred = pred.ravel().astype(np.int64)
        if self.ignore_index is not None:
            keep = gt != self.ignore_index
            gt, pred = gt[keep], pred[keep]
        k = self.num_classes
        for name, arr in (("ground-truth", gt), ("predicted", pred)):
            if arr.size and (arr.min() < 0 or arr.max() >= k):
                bad = sorted(set(arr[(arr < 0) | (arr >= k)].tolist()))[:5]
                raise ValueError(f"{name} map has values {bad} outside 0..{k - 1}")
        self.confusion += np.bincount(gt * k + pred, minlength=k * k).reshape(k, k)

    def result(self) -> dict[str, Any]:
        """``miou, per_class_iou, dice, per_class_dice, pixel_accuracy, confusion``."""
        c = self.confusion.astype(np.float64)
        tp = np.diag(c)
        fp = c.sum(axis=0) - tp
        fn = c.sum(axis=1) - tp
        present = (tp + fp + fn) > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(present, tp / (tp + fp + fn), np.nan)
            dice = np.where(present, 2 * tp / (2 * tp + fp + fn), np.nan)
        total = c.sum()

        def named(v: np.ndarray) -> dict[str, float | None]:
            return {n: (None if np.isnan(x) else float(x)) for n, x in zip(self.class_names, v)}

        return {
            "miou": float(np.nanmean(iou)) if present.any() else None,
            "per_class_iou": named(iou),
            "dice": float(np.nanmean(dice)) if present.any() else None,
            "per_class_dice": named(dice),
            "pixel_accuracy": float(tp.sum() / total) if total else None,
            "confusion": self.confusion.tolist(),
        }


def text_metrics(refs: Sequence[str], hyps: Sequence[str]) -> dict[str, float | None]:
    """Character and word error rates (jiwer) of ``hyps`` against ``refs`` (corpus level:
    total edits / total reference length). ``None`` when there is no reference text at all.

    >>> text_metrics(["a b", "c"], ["a b", "d"])
    {'cer': 0.25, 'wer': 0.3333333333333333}
    """
    import jiwer

    refs, hyps = [str(r) for r in refs], [str(h) for h in hyps]
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    out: dict[str, float | None] = {"cer": None, "wer": None}
    if any(refs):
        out["cer"] = float(jiwer.cer(refs, hyps))
    if any(r.split() for r in refs):
        out["wer"] = float(jiwer.wer(refs, hyps))
    return out


def verification_metrics(distances: np.ndarray, same: np.ndarray, *,
                         fpr_targets: Sequence[float] = (1e-3, 1e-2, 1e-1)) -> dict[str, Any]:
    """Face-verification ROC from pair ``distances`` (smaller = more alike) and ``same`` labels.

    ``roc_auc``, ``tpr_at_fpr {"0.001": tpr, ...}`` (best TPR with FPR <= target), ``eer``
    (equal error rate, interpolated) and ``eer_threshold`` (the distance at the EER). All
    ``None`` when only one kind of pair is given.

    >>> r = verification_metrics(np.array([0.1, 0.2, 0.8, 0.9]), np.array([1, 1, 0, 0]))
    >>> r["roc_auc"], r["eer"], r["tpr_at_fpr"]["0.1"]
    (1.0, 0.0, 1.0)
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    d = np.asarray(distances, dtype=np.float64).ravel()
    y = np.asarray(same).astype(bool).ravel()
    if d.shape != y.shape:
        raise ValueError(f"{d.size} distances but {y.size} labels")
    if not np.all(np.isfinite(d)):
        raise ValueError("distances must be finite")
    keys = [f"{t:g}" for t in fpr_targets]
    if y.all() or not y.any():
        return {"roc_auc": None, "tpr_at_fpr": dict.fromkeys(keys), "eer": None, "eer_threshold": None,
                "pairs": int(y.size), "positives": int(y.sum())}
    fpr, tpr, thr = roc_curve(y, -d)
    tpr_at = {k: float(tpr[fpr <= t].max()) for k, t in zip(keys, fpr_targets)}
    fnr = 1.0 - tpr
    diff = fnr - fpr  # decreasing from 1 to -1 along the curve
    i = int(np.flatnonzero(diff <= 0)[0])
    if i == 0 or diff[i] == 0:
        eer, eer_thr = float(fpr[i]), float(-thr[i])
    else:  # linear interpolation between points i-1 and i
        w = diff[i - 1] / (diff[i - 1] - diff[i])
        eer = float(fpr[i - 1] + w * (fpr[i] - fpr[i - 1]))
        eer_thr = float(-(thr[i - 1] + w * (thr[i] - thr[i - 1]))) if np.isfinite(thr[i - 1]) else float(-thr[i])
    return {"roc_auc": float(roc_auc_score(y, -d)), "tpr_at_fpr": tpr_at, "eer": eer,
            "eer_threshold": eer_thr, "pairs": int(y.size), "positives": int(y.sum())}
