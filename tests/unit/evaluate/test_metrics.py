"""Classification, calibration, segmentation, text and verification metrics: known answers."""

from __future__ import annotations

import numpy as np
import pytest

from pixsight.evaluate.calibration import expected_calibration_error, threshold_for_precision
from pixsight.evaluate.metrics import (
    SegmentationMeter,
    classification_metrics,
    text_metrics,
    verification_metrics,
)


def _probs(rng: np.random.Generator, y: np.ndarray, c: int, skill: float) -> np.ndarray:
    logits = rng.normal(0, 1, (y.size, c))
    logits[np.arange(y.size), y] += skill
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_classification_known_answer():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([[0.8, 0.1, 0.1], [0.4, 0.5, 0.1], [0.1, 0.8, 0.1],
                  [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.6, 0.2, 0.2]])
    m = classification_metrics(y, p, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["per_class"]["b"] == {"precision": pytest.approx(2 / 3), "recall": 1.0, "f1": pytest.approx(0.8),
                                   "support": 2}
    assert m["micro_f1"] == pytest.approx(m["accuracy"])
    assert m["macro_f1"] == pytest.approx(np.mean([0.5, 0.8, 2 / 3]))
    assert 0.5 < m["roc_auc"] <= 1.0


def test_classification_skill_orders_metrics():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    good = classification_metrics(y, _probs(rng, y, 4, 4.0), list("abcd"))
    bad = classification_metrics(y, _probs(rng, y, 4, 0.2), list("abcd"))
    assert good["accuracy"] > bad["accuracy"] and good["roc_auc"] > bad["roc_auc"] > 0.4
    assert sum(good["reliability"]["count"]) == 400
    assert set(good["curves"]) == set("abcd") and len(good["curves"]["a"]["precision"]) == 101


def test_roc_auc_none_when_a_class_is_missing():
    y = np.array([0, 0, 1])
    p = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    assert classification_metrics(y, p, ["a", "b", "c"])["roc_auc"] is None


def test_ece_perfectly_calibrated_is_small_and_overconfident_is_large():
    rng = np.random.default_rng(1)
    conf = rng.uniform(0.5, 1.0, 20000)
    calibrated = rng.random(20000) < conf
    assert expected_calibration_error(conf, calibrated) < 0.02
    overconfident = rng.random(20000) < conf - 0.3
    assert expected_calibration_error(conf, overconfident) == pytest.approx(0.3, abs=0.02)


def test_threshold_for_precision_picks_lowest_threshold_meeting_target():
    y = np.array([1, 1, 1, 0, 1, 0, 0])
    s = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    r = threshold_for_precision(y, s, target=0.75)
    assert r == {"threshold": 0.6, "precision": 0.8, "recall": 1.0}
    assert threshold_for_precision(y, s, target=1.0)["threshold"] == 0.8


def test_classification_thresholds_in_result():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 300)
    m = classification_metrics(y, _probs(rng, y, 3, 2.5), ["a", "b", "c"], target_precision=0.95)
    t = m["thresholds"]
    assert t["target_precision"] == 0.95 and t["top1"]["precision"] >= 0.95
    assert all(v is None or v["precision"] >= 0.95 for v in t["per_class"].values())


def test_segmentation_meter_ignore_and_absent_classes():
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 255], [2, 2, 255, 255]])
    pred = np.array([[0, 1, 1, 1], [0, 0, 1, 3], [2, 0, 3, 3]])
    m = SegmentationMeter(5, class_names=["a", "b", "c", "d"])
    m.update(gt, pred)
    r = m.result()
    # background: tp 3, fp 1 (from class b), fn 1 -> 3/5; a: tp 3, fp 1 -> 3/4; b: tp 1, fn 1 -> 1/2
    assert r["per_class_iou"] == {"background": 0.6, "a": 0.75, "b": 0.5, "c": None, "d": None}
    assert r["miou"] == pytest.approx((0.6 + 0.75 + 0.5) / 3)
    assert r["pixel_accuracy"] == pytest.approx(7 / 9)
    assert r["per_class_dice"]["a"] == pytest.approx(6 / 7)


def test_segmentation_meter_accumulates_and_rejects_bad_maps():
    m = SegmentationMeter(2)
    m.update(np.ones((2, 2), np.uint8), np.ones((2, 2), np.uint8))
    m.update(np.zeros((1, 3), np.uint8), np.zeros((1, 3), np.uint8))
    assert m.result()["miou"] == 1.0 and m.result()["pixel_accuracy"] == 1.0
    with pytest.raises(ValueError, match="outside 0..1"):
        m.update(np.zeros((2, 2)), np.full((2, 2), 7))
    with pytest.raises(ValueError, match="shape|is"):
        m.update(np.zeros((2, 2)), np.zeros((3, 2)))


def test_text_metrics():
    assert text_metrics(["hello world", "abc"], ["hello world", "abc"]) == {"cer": 0.0, "wer": 0.0}
    r = text_metrics(["hello world"], ["hello word"])
    assert r["cer"] == pytest.approx(1 / 11) and r["wer"] == pytest.approx(0.5)
    assert text_metrics([""], ["x"]) == {"cer": None, "wer": None}
    assert text_metrics(["ab", ""], ["ab", "x"])["cer"] == pytest.approx(0.5)  # insertions on an empty ref count


def test_verification_metrics():
    rng = np.random.default_rng(3)
    same = np.r_[np.ones(2000, bool), np.zeros(2000, bool)]
    d = np.r_[rng.normal(0.4, 0.1, 2000), rng.normal(0.8, 0.1, 2000)]
    r = verification_metrics(d, same)
    # two unit-variance-scaled normals 4 sd apart: EER = Phi(-2) ~ 0.0228
    assert r["eer"] == pytest.approx(0.0228, abs=0.01)
    assert r["eer_threshold"] == pytest.approx(0.6, abs=0.03)
    assert r["tpr_at_fpr"]["0.001"] <= r["tpr_at_fpr"]["0.01"] <= r["tpr_at_fpr"]["0.1"] <= 1.0
    assert r["roc_auc"] > 0.99
    assert verification_metrics(np.array([0.1, 0.2]), np.array([1, 1]))["eer"] is None
