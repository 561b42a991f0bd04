"""Prometheus metrics of one server: requests, batches, predictions, review, drift.

Each :class:`ServeMetrics` has its own ``CollectorRegistry``, so several apps (tests) in one
process never collide. :func:`install_metrics` adds the request middleware (count and
latency per *route template*, so label values stay bounded) and ``GET /metrics`` (role
viewer). Label values only ever come from bounded sets: route templates, HTTP methods and
statuses, task and model names, model labels, error type names. Never paths or sha256s.

>>> m = ServeMetrics()
>>> m.observe_request("/v1/analyze", "POST", 200, 0.05)
>>> m.observe_batch(4, {"classify": 0.02}, {"classify": "efficientnet-lite0@1"})
>>> body, content_type = m.render()
>>> b'pixsight_batch_size_count 1.0' in body, content_type.startswith("text/plain")
(True, True)
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from fastapi import Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ..core.spatial import Detections
from ..core.types import Analysis, Classification, Faces, TextLines

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ServeMetrics", "MetricsMiddleware", "install_metrics", "route_template", "UNMATCHED"]

log = logging.getLogger(__name__)

#: Route label of requests that matched no route (keeps the label set bounded).
UNMATCHED = "unmatched"

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_INFERENCE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
_CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
_UNKNOWN_PERSON = ("", "unknown")


class ServeMetrics:
    """Every ``pixsight_*`` metric of docs/design/serving.md, in a private registry.

    Thread-safe (``prometheus_client`` metrics are); the batcher's worker thread and the
    event loop both write here.

    >>> m = ServeMetrics()
    >>> m.count_rejection("queue_full")
    >>> m.registry.get_sample_value("pixsight_rejected_total", {"reason": "queue_full"})
    1.0
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter("pixsight_http_requests", "HTTP requests by route template, method and status",
                                     ["route", "method", "status"], registry=r)
        self.http_duration = Histogram("pixsight_http_request_duration_seconds",
                                       "HTTP request latency by route template and method",
                                       ["route", "method"], buckets=_LATENCY_BUCKETS, registry=r)
        self.inference = Histogram("pixsight_inference_seconds", "Model time per batch, per task stage",
                                   ["task", "model"], buckets=_INFERENCE_BUCKETS, registry=r)
        self.batch_size = Histogram("pixsight_batch_size", "Images per inference batch",
                                    buckets=_BATCH_BUCKETS, registry=r)
        self.queue_depth = Gauge("pixsight_queue_depth", "Images waiting in the batcher's queue", registry=r)
        self.images_analyzed = Counter("pixsight_images_analyzed", "Images analysed, by status ok/error",
                                       ["status"], registry=r)
        self.predictions = Counter("pixsight_predictions", "Predictions by task and label (classify top-1, "
                                   "each detection, each face)", ["task", "label"], registry=r)
        self.confidence = Histogram("pixsight_confidence", "Prediction confidence by task (classify top-1, "
                                    "per detection, per OCR line, per face)", ["task"],
                                    buckets=_CONFIDENCE_BUCKETS, registry=r)
        self.needs_review = Counter("pixsight_needs_review", "Analyses flagged for human review", registry=r)
        self.review_decisions = Counter("pixsight_review_decisions", "Review decisions submitted",
                                        ["decision"], registry=r)
        self.review_rate = Gauge("pixsight_review_rate", "Share of analyses needing review (this process)",
                                 registry=r)
        self.errors = Counter("pixsight_errors", "Per-image and per-task errors by type", ["type"], registry=r)
        self.rejected = Counter("pixsight_rejected", "Requests refused before analysis, by reason",
                                ["reason"], registry=r)
        self.drift_statistic = Gauge("pixsight_drift_statistic", "Latest drift statistics of the catalog",
                                     ["signal"], registry=r)
        self.drift_detected = Gauge("pixsight_drift_detected", "1 when the latest drift check found drift, "
                                    "0 when not, -1 when there was too little data", registry=r)
        self.ready = Gauge("pixsight_ready", "1 when the server is ready for analysis requests", registry=r)
        self._lock = threading.Lock()
        self._analyzed = 0
        self._flagged = 0

    # -- requests ---------------------------------------------------------------------------
    def observe_request(self, route: str, method: str, status: int | str, seconds: float) -> None:
        """One finished HTTP request (``route`` must be a template, never a raw path)."""
        self.http_requests.labels(route=route, method=method, status=str(status)).inc()
        self.http_duration.labels(route=route, method=method).observe(max(0.0, seconds))

    def count_rejection(self, reason: str) -> None:
        """A request refused before analysis: ``queue_full``, ``rate_limited``, ``too_large``, ``unsupported``."""
        self.rejected.labels(reason=reason).inc()

    # -- batches ----------------------------------------------------------------------------
    def observe_batch(self, size: int, stage_seconds: dict[str, float], models: dict[str, str]) -> None:
        """One inference batch: its size and the model seconds spent per task."""
        self.batch_size.observe(size)
        for task, seconds in stage_seconds.items():
            self.inference.labels(task=task, model=models.get(task, "")).observe(max(0.0, seconds))

    def set_queue_depth(self, n: int) -> None:
        self.queue_depth.set(n)

    def set_ready(self, ready: bool) -> None:
        self.ready.set(1 if ready else 0)

    # -- results ----------------------------------------------------------------------------
    def observe_analysis(self, analysis: Analysis) -> None:
        """Count one analysis: status, predictions, confidences, review flag, errors.

        >>> import numpy as np
        >>> m = ServeMetrics()
        >>> m.observe_analysis(Analysis(path="a.jpg", results={"classify": Classification(
        ...     class_ids=np.array([281]), scores=np.array([0.9]), labels=["tabby"])}))
        >>> m.registry.get_sample_value("pixsight_predictions_total", {"task": "classify", "label": "tabby"})
        1.0
        """
        self.images_analyzed.labels(status=analysis.status).inc()
        if analysis.status != "ok":
            self.errors.labels(type=(analysis.error or {}).get("type") or "PixsightError").inc()
            return
        for err in analysis.task_errors.values():
            self.errors.labels(type=err.get("type") or "PixsightError").inc()
        for task, result in analysis.results.items():
            self._observe_result(task, result)
        if analysis.needs_review:
            self.needs_review.inc()
        with self._lock:
            self._analyzed += 1
            self._flagged += int(analysis.needs_review)
            self.review_rate.set(self._flagged / self._analyzed)

    def _observe_result(self, task: str, result: Any) -> None:
        if isinstance(result, Classification):
            if len(result) and result.top_label is not None:
                self.predictions.labels(task=task, label=result.top_label).inc()
                self.confidence.labels(task=task).observe(result.top_score)
        elif isinstance(result, Detections):
            for label, score in zip(result.labels, result.scores):
                self.predictions.labels(task=task, label=str(label)).inc()
                self.confidence.labels(task=task).observe(float(score))
        elif isinstance(result, TextLines):
            for score in result.scores:
                self.confidence.labels(task=task).observe(float(score))
        elif isinstance(result, Faces):
            people = result.data.get("person")
            for i, score in enumerate(result.scores):
                name = people[i] if people is not None and i < len(people) else None
                label = str(name) if name not in (None, *_UNKNOWN_PERSON) else "face"
                self.predictions.labels(task=task, label=label).inc()
                self.confidence.labels(task=task).observe(float(score))

    # -- review and drift -------------------------------------------------------------------
    def count_review(self, decision: str) -> None:
        self.review_decisions.labels(decision=decision).inc()

    def set_drift(self, status: dict[str, Any]) -> None:
        """Set the drift gauges from a :func:`pixsight.monitor.live.compute_drift_status` dict."""
        drift = status.get("drift")
        self.drift_detected.set(-1 if drift is None else int(bool(drift)))
        for signal, value in (status.get("statistics") or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.drift_statistic.labels(signal=signal).set(float(value))

    # -- exposition -------------------------------------------------------------------------
    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def route_template(scope: dict[str, Any]) -> str:
    """The path template of the route that handled ``scope`` (``/v1/images/{sha256}``), or
    ``"unmatched"`` when no route matched (so raw paths never become label values)."""
    route = scope.get("route")
    if route is None:  # plain Starlette routes and mounts record only their endpoint
        endpoint = scope.get("endpoint")
        routes = getattr(scope.get("app"), "routes", None) or ()
        route = next((r for r in routes if endpoint is not None
                      and (getattr(r, "endpoint", None) is endpoint or getattr(r, "app", None) is endpoint)), None)
        if route is None:
            return UNMATCHED
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(path, str) or not path:
        return UNMATCHED
    return path  # a Mount's template already ends in /{path}


class MetricsMiddleware:
    """Pure ASGI middleware: counts every HTTP request and its latency per route template.

    The router stores the matched route in the (shared) ``scope``, so the template is read
    after the app has answered. Latency runs until the last body chunk is sent.
    """

    def __init__(self, app: ASGIApp, *, metrics: ServeMetrics | None = None) -> None:
        self.app = app
        self._metrics = metrics

    def _resolve(self, scope: Scope) -> ServeMetrics | None:
        app = scope.get("app")
        px = getattr(getattr(app, "state", None), "px", None)
        found = getattr(px, "metrics", None)
        return found if isinstance(found, ServeMetrics) else self._metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        recorded = False

        def record() -> None:
            nonlocal recorded
            if recorded:
                return
            recorded = True
            metrics = self._resolve(scope)
            if metrics is not None:
                metrics.observe_request(route_template(scope), scope.get("method", "GET"), status,
                                        time.perf_counter() - start)

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                record()

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            record()


def install_metrics(app: Any, metrics: ServeMetrics | None = None) -> ServeMetrics:
    """Add the request middleware and ``GET /metrics`` (role viewer) to a FastAPI ``app``.

    The middleware and the route use ``app.state.px.metrics`` when the app has one (what
    ``create_app`` sets), else ``metrics`` (or a new :class:`ServeMetrics`), which is returned.

    >>> from fastapi import FastAPI
    >>> m = install_metrics(FastAPI())
    >>> isinstance(m, ServeMetrics)
    True
    """
    from .auth import require  # imported here: auth needs the app modules, metrics does not

    px = getattr(app.state, "px", None)
    fallback = metrics or getattr(px, "metrics", None) or ServeMetrics()
    app.add_middleware(MetricsMiddleware, metrics=fallback)

    async def metrics_endpoint(request: Request) -> Response:
        state = getattr(request.app.state, "px", None)
        current = getattr(state, "metrics", None) or fallback
        body, content_type = current.render()
        return Response(content=body, media_type=content_type, headers={"Cache-Control": "no-store"})

    app.add_api_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False,
                      dependencies=[Depends(require("viewer"))], name="metrics")
    return fallback
