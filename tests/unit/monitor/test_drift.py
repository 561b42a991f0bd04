"""Drift detection: real shifts are found, random splits of the same data stay quiet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from pixsight.core.types import Analysis, Classification, Embedding
from pixsight.monitor.drift import DriftError, DriftWindow, detect_drift, drift_plot, load_window, psi

LABELS = ["cat", "dog", "car", "tree", "boat"]


def _window(rng: np.random.Generator, n: int, *, shift: float = 0.0, probs=None, conf_mean: float = 0.7) -> DriftWindow:
    base = rng.normal(size=(n, 16))
    base[:, 0] += shift
    labels = rng.choice(LABELS, size=n, p=probs).tolist()
    conf = np.clip(rng.normal(conf_mean, 0.1, size=n), 0, 1)
    return DriftWindow(embeddings=base, labels=labels, confidences=conf)


def test_embedding_shift_detected() -> None:
    rng = np.random.default_rng(0)
    report = detect_drift(_window(rng, 150), _window(rng, 150, shift=1.0))
    assert report.drift and report.embedding["p_value"] < 0.01
    assert any("MMD" in r for r in report.reasons)
    json.dumps(report.to_dict())  # serialisable


def test_no_false_alarm_on_same_distribution_over_seeds() -> None:
    alarms, p_values = 0, []
    for seed in range(10):
        rng = np.random.default_rng(100 + seed)
        report = detect_drift(_window(rng, 120), _window(rng, 120), seed=seed, permutations=200)
        alarms += report.drift
        p_values.append(report.embedding["p_value"])
    assert alarms <= 1, p_values
    assert np.mean(p_values) > 0.2  # p-values under the null are roughly uniform


def test_label_and_confidence_shift_need_a_practical_effect() -> None:
    rng = np.random.default_rng(1)
    ref = _window(rng, 400, probs=[0.2] * 5)
    big = _window(rng, 400, probs=[0.6, 0.1, 0.1, 0.1, 0.1], conf_mean=0.45)
    report = detect_drift(ref, big, max_samples=100)
    assert report.labels is not None and report.labels["psi"] >= 0.2 and report.labels["p_value"] < 0.01
    assert report.confidence is not None and report.confidence["psi"] >= 0.2
    assert any(r.startswith("labels") for r in report.reasons)
    assert any(r.startswith("confidence") for r in report.reasons)
    # a tiny (statistically detectable, practically irrelevant) confidence shift is not drift
    rng = np.random.default_rng(2)
    small = detect_drift(_window(rng, 500), _window(rng, 500, conf_mean=0.72), max_samples=100)
    assert not any(r.startswith("confidence") for r in small.reasons)
    assert small.confidence is not None and small.confidence["psi"] < 0.2


def test_psi_smoothing_handles_empty_bins() -> None:
    assert np.isfinite(psi(np.array([10, 0]), np.array([0, 10])))
    assert psi(np.array([5, 5]), np.array([50, 50])) == pytest.approx(0.0, abs=1e-9)


def test_clear_errors() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(DriftError, match="no embeddings"):
        detect_drift(DriftWindow(labels=["a"] * 20, confidences=[0.5] * 20), rng.normal(size=(20, 4)))
    with pytest.raises(DriftError, match="at least 10"):
        detect_drift(rng.normal(size=(5, 4)), rng.normal(size=(20, 4)))
    with pytest.raises(DriftError, match="sizes differ"):
        detect_drift(rng.normal(size=(20, 4)), rng.normal(size=(20, 5)))


def _records(rng: np.random.Generator, n: int, shift: float) -> list[dict]:
    out = []
    for i in range(n):
        v = rng.normal(size=8)
        v[0] += shift
        a = Analysis(path=f"img{i}.png", sha256=f"{i:064x}", results={
            "embed": Embedding(vector=v, model="m"),
            "classify": Classification(class_ids=[0], scores=[0.8], labels=["cat"])})
        out.append(a.to_dict(with_vectors=True))
    return out


def test_load_window_from_jsonl(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    path = tmp_path / "ref.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _records(rng, 12, 0.0)))
    w = load_window(path)
    assert w.n == 12 and w.model == "m" and w.labels == ["cat"] * 12
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    with pytest.raises(DriftError, match="line 1"):
        load_window(bad)
    with pytest.raises(DriftError, match="no such file"):
        load_window(tmp_path / "missing")


# -- real embeddings from the default embedder ---------------------------------------------------

def _photo_crops(out: Path, n: int, *, transform=None) -> Path:
    from skimage import data

    out.mkdir(parents=True)
    sources = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), np.stack([data.camera()] * 3, -1)]
    rng = np.random.default_rng(len(str(out)))
    for i in range(n):
        img = sources[i % len(sources)]
        h, w = img.shape[:2]
        s = int(rng.integers(min(h, w) // 3, min(h, w) // 2))
        y, x = int(rng.integers(0, h - s)), int(rng.integers(0, w - s))
        pil = Image.fromarray(img[y:y + s, x:x + s]).resize((96, 96))
        if transform is not None:
            pil = transform(pil)
        pil.save(out / f"{i:03d}.png")
    return out


def _analyse(folder: Path) -> list[Analysis]:
    from pixsight.core.config import AnalyzeConfig
    from pixsight.pipeline.analyzer import Analyzer, iter_image_paths

    found: list[Analysis] = []
    with Analyzer(AnalyzeConfig(tasks=("classify", "embed"))) as analyzer:
        analyzer.run(list(iter_image_paths([folder])), on_result=lambda a, _img: found.append(a))
    assert all(a.status == "ok" for a in found)
    return found


def test_real_embeddings_blur_and_darkening_detected_random_split_quiet(tmp_path: Path) -> None:
    clean = _analyse(_photo_crops(tmp_path / "clean", 48))
    shifted = _analyse(_photo_crops(
        tmp_path / "shifted", 24,
        transform=lambda im: im.filter(ImageFilter.GaussianBlur(3)).point(lambda v: int(v * 0.4))))
    report = detect_drift(clean[:24], shifted)
    assert report.drift and report.embedding["p_value"] < 0.01, report.to_dict()
    alarms = 0
    for seed in range(5):
        order = np.random.default_rng(seed).permutation(len(clean))
        split = detect_drift([clean[i] for i in order[:24]], [clean[i] for i in order[24:]], seed=seed)
        alarms += split.drift
    assert alarms == 0
    png = drift_plot(report)
    assert png[:4] == b"\x89PNG"
