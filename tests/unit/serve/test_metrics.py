"""Prometheus metrics: values move, labels stay bounded, /metrics needs a key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from pixsight.core.spatial import Detections
from pixsight.core.types import Analysis, Classification, Faces, TextLines
from pixsight.serve.metrics import UNMATCHED, ServeMetrics

from .kit import auth, make_app


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of a text exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def _rich_analysis(needs_review: bool) -> Analysis:
    return Analysis(
        path="x.jpg", sha256="a" * 64, width=100, height=80, needs_review=needs_review,
        timings_ms={"decode": 1.0},
        results={
            "classify": Classification(class_ids=np.array([281, 282]), scores=np.array([0.7, 0.2]),
                                       labels=["tabby", "tiger cat"]),
            "detect": Detections(boxes=np.array([[0, 0, 10, 10], [5, 5, 20, 20]]), scores=np.array([0.9, 0.4]),
                                 class_ids=np.array([0, 1]), labels=["cat", "dog"]),
            "ocr": TextLines(texts=["hello", "world"], scores=np.array([0.95, 0.55]),
                             boxes=np.array([[0, 0, 10, 5], [0, 6, 10, 11]])),
            "faces": Faces(boxes=np.array([[1, 1, 9, 9]]), scores=np.array([0.99])),
        },
        task_errors={"embed": {"type": "ModelUnavailableError", "message": "no weights"}},
    )


def test_observe_analysis_moves_every_counter() -> None:
    m = ServeMetrics()
    m.observe_analysis(_rich_analysis(needs_review=True))
    m.observe_analysis(_rich_analysis(needs_review=False))
    m.observe_analysis(Analysis(path="bad.jpg", status="error",
                                error={"type": "ImageDecodeError", "message": "not an image"}))
    s = _samples(m.render()[0].decode())
    assert _value(s, "pixsight_images_analyzed_total", status="ok") == 2
    assert _value(s, "pixsight_images_analyzed_total", status="error") == 1
    assert _value(s, "pixsight_predictions_total", task="classify", label="tabby") == 2
    assert _value(s, "pixsight_predictions_total", task="classify", label="tiger cat") is None  # top-1 only
    assert _value(s, "pixsight_predictions_total", task="detect", label="cat") == 2
    assert _value(s, "pixsight_predictions_total", task="detect", label="dog") == 2
    assert _value(s, "pixsight_predictions_total", task="faces", label="face") == 2
    assert _value(s, "pixsight_confidence_count", task="classify") == 2
    assert _value(s, "pixsight_confidence_count", task="detect") == 4
    assert _value(s, "pixsight_confidence_count", task="ocr") == 4
    assert _value(s, "pixsight_confidence_count", task="faces") == 2
    assert _value(s, "pixsight_confidence_sum", task="classify") == pytest.approx(1.4, abs=1e-5)
    # 0.4 and 0.9 per image: two detections at or below 0.5
    assert _value(s, "pixsight_confidence_bucket", task="detect", le="0.5") == 2
    assert _value(s, "pixsight_needs_review_total") == 1
    assert _value(s, "pixsight_review_rate") == pytest.approx(0.5)
    assert _value(s, "pixsight_errors_total", type="ModelUnavailableError") == 2
    assert _value(s, "pixsight_errors_total", type="ImageDecodeError") == 1


def test_batches_rejections_reviews_ready_and_drift() -> None:
    m = ServeMetrics()
    m.observe_batch(8, {"classify": 0.04, "embed": 0.04}, {"classify": "effnet@1", "embed": "effnet-embed@1"})
    m.observe_batch(2, {"classify": 0.01}, {"classify": "effnet@1"})
    m.set_queue_depth(5)
    m.count_rejection("queue_full")
    m.count_rejection("queue_full")
    m.count_rejection("too_large")
    m.count_review("accept")
    m.set_ready(True)
    m.set_drift({"status": "drift", "drift": True,
                 "statistics": {"embedding_p_value": 0.002, "labels_psi": 0.31}})
    s = _samples(m.render()[0].decode())
    assert _value(s, "pixsight_batch_size_count") == 2 and _value(s, "pixsight_batch_size_sum") == 10
    assert _value(s, "pixsight_inference_seconds_count", task="classify", model="effnet@1") == 2
    assert _value(s, "pixsight_inference_seconds_sum", task="embed", model="effnet-embed@1") == pytest.approx(0.04)
    assert _value(s, "pixsight_queue_depth") == 5
    assert _value(s, "pixsight_rejected_total", reason="queue_full") == 2
    assert _value(s, "pixsight_rejected_total", reason="too_large") == 1
    assert _value(s, "pixsight_review_decisions_total", decision="accept") == 1
    assert _value(s, "pixsight_ready") == 1
    assert _value(s, "pixsight_drift_detected") == 1
    assert _value(s, "pixsight_drift_statistic", signal="labels_psi") == pytest.approx(0.31)
    m.set_drift({"status": "insufficient_data", "drift": None, "statistics": {}})
    assert m.registry.get_sample_value("pixsight_drift_detected") == -1


def test_each_instance_has_its_own_registry() -> None:
    a, b = ServeMetrics(), ServeMetrics()
    a.count_rejection("rate_limited")
    assert b.registry.get_sample_value("pixsight_rejected_total", {"reason": "rate_limited"}) is None


def test_metrics_route_needs_viewer_and_counts_route_templates(tmp_path: Path) -> None:
    app, keys = make_app(tmp_path)
    with TestClient(app) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=auth("pxs_00000000_" + "A" * 43)).status_code == 401
        key_id = app.state.px.keys.list()[0].id
        assert client.get("/v1/keys", headers=auth(keys["admin"])).status_code == 200
        assert client.delete("/v1/keys/ffffffff", headers=auth(keys["admin"])).status_code == 404
        assert client.get("/no/such/path/0123456789abcdef", headers=auth(keys["viewer"])).status_code == 404
        r = client.get("/metrics", headers=auth(keys["viewer"]))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    body = r.text
    s = _samples(body)
    assert _value(s, "pixsight_http_requests_total", route="/v1/keys", method="GET", status="200") == 1
    assert _value(s, "pixsight_http_requests_total", route="/v1/keys/{key_id}", method="DELETE", status="404") == 1
    assert _value(s, "pixsight_http_requests_total", route=UNMATCHED, method="GET", status="404") == 1
    assert _value(s, "pixsight_http_requests_total", route="/metrics", method="GET", status="401") == 2
    assert _value(s, "pixsight_http_request_duration_seconds_count", route="/v1/keys", method="GET") == 1
    # raw paths and ids never become label values
    assert "ffffffff" not in body and "0123456789abcdef" not in body and key_id not in body
    assert _value(s, "pixsight_ready") == 1
