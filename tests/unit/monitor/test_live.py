"""Live drift over the catalog: photos followed by documents drift; a shuffled order does not."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from pixsight.catalog.store import Catalog
from pixsight.core.image import load_image
from pixsight.core.types import Analysis
from pixsight.monitor.drift import DriftError
from pixsight.monitor.live import DriftGauges, LiveDrift, compute_drift_status
from pixsight.serve.metrics import ServeMetrics

N_EACH = 32
WORDS = "invoice total amount date customer order number page section report summary table".split()


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _photos(n: int) -> list[bytes]:
    from skimage import data

    sources = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    rng = np.random.default_rng(3)
    out = []
    for i in range(n):
        img = sources[i % len(sources)]
        h, w = img.shape[:2]
        s = int(rng.integers(min(h, w) // 3, min(h, w) // 2))
        y, x = int(rng.integers(0, h - s)), int(rng.integers(0, w - s))
        out.append(_jpeg(Image.fromarray(img[y:y + s, x:x + s]).resize((128, 128))))
    return out


def _documents(n: int) -> list[bytes]:
    rng = np.random.default_rng(4)
    out = []
    for _ in range(n):
        page = Image.new("RGB", (128, 160), "white")
        draw = ImageDraw.Draw(page)
        for row in range(int(rng.integers(6, 12))):
            line = " ".join(rng.choice(WORDS, size=3))
            draw.text((4 + int(rng.integers(0, 8)), 6 + row * 13), line, fill="black")
        out.append(_jpeg(page))
    return out


@pytest.fixture(scope="module")
def analyses() -> tuple[list[Analysis], list[Analysis]]:
    """(photo analyses, document analyses) from the real classify+embed models."""
    from pixsight.core.config import AnalyzeConfig
    from pixsight.pipeline.analyzer import Analyzer

    with Analyzer(AnalyzeConfig(tasks=("classify", "embed"))) as analyzer:
        def run(blobs: list[bytes], prefix: str) -> list[Analysis]:
            items = [(load_image(b, max_side=analyzer.decode_side), f"{prefix}{i}.jpg", 0.0)
                     for i, b in enumerate(blobs)]
            found = analyzer.analyze_loaded(items)
            assert all(a.status == "ok" and "embed" in a.results for a in found)
            return found

        return run(_photos(N_EACH), "photo"), run(_documents(N_EACH), "doc")


def _catalog(path: Path, ordered: list[Analysis]) -> Path:
    with Catalog(path) as catalog:
        for a in ordered:
            catalog.save(a, path=f"/data/{a.path}")
            time.sleep(0.001)  # distinct first_seen times, in this order
    return path


@pytest.mark.slow
def test_photos_then_documents_drift_and_a_shuffle_does_not(tmp_path: Path, analyses: Any) -> None:
    photos, docs = analyses
    shifted = compute_drift_status(_catalog(tmp_path / "shift.sqlite", photos + docs))
    assert shifted["status"] == "drift" and shifted["drift"] is True, shifted
    assert shifted["reference"]["n"] == N_EACH and shifted["current"]["n"] == N_EACH
    assert shifted["reference"]["to"] < shifted["current"]["from"]  # non-overlapping, oldest first
    assert shifted["statistics"]["embedding_p_value"] < 0.01
    assert any("MMD" in r for r in shifted["reasons"])
    assert shifted["images"] == 2 * N_EACH and shifted["model"]

    order = np.random.default_rng(0).permutation(2 * N_EACH)
    mixed = [(photos + docs)[i] for i in order]
    quiet = compute_drift_status(_catalog(tmp_path / "mixed.sqlite", mixed))
    assert quiet["status"] == "ok" and quiet["drift"] is False, quiet
    assert quiet["statistics"]["embedding_p_value"] > 0.01


@pytest.mark.slow
def test_window_sizes_pinned_range_and_too_little_data(tmp_path: Path, analyses: Any) -> None:
    photos, docs = analyses
    db = _catalog(tmp_path / "c.sqlite", photos + docs)
    small = compute_drift_status(db, min_size=10, reference_size=12, current_size=20)
    assert (small["reference"]["n"], small["current"]["n"]) == (12, 20)
    assert small["drift"] is True

    too_few = compute_drift_status(db, min_size=40)
    assert too_few["status"] == "insufficient_data" and too_few["drift"] is None
    assert "80" in too_few["message"]

    with Catalog(db) as catalog:
        times = [r[0] for r in catalog._db.execute("SELECT first_seen FROM images ORDER BY first_seen")]
    # pin the reference to the first 20 photos; the current window is the newest 30 (documents)
    pinned = compute_drift_status(db, reference_range=(times[0], times[19]), current_size=30, min_size=15)
    assert pinned["reference"]["n"] == 20 and pinned["reference"]["range"] == [times[0], times[19]]
    assert pinned["current"]["n"] == 30 and pinned["drift"] is True
    # a reference range with too few images
    assert compute_drift_status(db, reference_range=(times[0], times[3]))["status"] == "insufficient_data"

    half = _catalog(tmp_path / "half.sqlite", photos[:20] + docs[:20])
    assert compute_drift_status(half)["status"] == "insufficient_data"
    assert compute_drift_status(db, model="no-such-model@1")["status"] == "insufficient_data"
    with pytest.raises(DriftError, match="at least 2"):
        compute_drift_status(db, min_size=1)


@pytest.mark.slow
def test_live_drift_caches_refreshes_and_sets_gauges(tmp_path: Path, analyses: Any) -> None:
    photos, docs = analyses
    db = tmp_path / "live.sqlite"
    _catalog(db, photos[:20])
    metrics = ServeMetrics()
    live = LiveDrift(db, interval_s=0.05, metrics=metrics)
    first = live.status()
    assert first["status"] == "insufficient_data"
    assert metrics.registry.get_sample_value("pixsight_drift_detected") == -1
    assert live.status() is first  # cached
    assert live.refresh() is first  # catalog unchanged: not recomputed
    live.start()
    try:
        _catalog(db, photos[20:] + docs)
        deadline = time.monotonic() + 20
        while live.status()["status"] == "insufficient_data":
            assert time.monotonic() < deadline, "background refresh never saw the new images"
            time.sleep(0.05)
    finally:
        live.stop()
    status = live.status()
    assert status["status"] == "drift"
    assert metrics.registry.get_sample_value("pixsight_drift_detected") == 1
    assert metrics.registry.get_sample_value("pixsight_drift_statistic", {"signal": "embedding_p_value"}) < 0.01
    assert live.refresh(force=True) is not status


def test_drift_route_needs_a_key_and_answers_the_status(tmp_path: Path) -> None:
    from tests.unit.serve.kit import auth, make_app

    app, keys = make_app(tmp_path)
    with TestClient(app) as client:
        assert client.get("/v1/drift").status_code == 401
        r = client.get("/v1/drift", headers=auth(keys["viewer"]))
        assert r.status_code == 200
        body = r.json()
        assert body["status"] == "insufficient_data" and body["drift"] is None and "computed" in body
        app.state.px.drift = None  # no monitor: computed on request
        assert client.get("/v1/drift", headers=auth(keys["viewer"])).json()["status"] == "insufficient_data"


def test_missing_catalog_is_insufficient_data(tmp_path: Path) -> None:
    status = compute_drift_status(tmp_path / "nothing.sqlite")
    assert status["status"] == "insufficient_data" and "no catalog" in status["message"]
    Catalog(tmp_path / "empty.sqlite").close()
    assert "no image embeddings" in compute_drift_status(tmp_path / "empty.sqlite")["message"]


def test_live_drift_publishes_to_any_gauges_and_the_server_metrics_are_such_gauges(tmp_path):
    """monitor does not import serve: the server's metrics satisfy monitor's DriftGauges protocol."""
    assert isinstance(ServeMetrics(), DriftGauges)
    seen: list[dict[str, Any]] = []

    class Gauges:
        def set_drift(self, status: dict[str, Any]) -> None:
            seen.append(status)

    live = LiveDrift(tmp_path / "none.sqlite", interval_s=0, metrics=Gauges())
    assert live.status()["status"] == "insufficient_data"
    assert [s["status"] for s in seen] == ["insufficient_data"]
