"""The FastAPI application of ``pixsight serve``: state, error format, health, lifespan.

>>> from pixsight.serve.settings import ServeSettings
>>> import tempfile, os
>>> app = create_app(ServeSettings(db=os.path.join(tempfile.mkdtemp(), "c.sqlite"), load_models=False))
>>> app.state.px.ready
False
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from fastapi import Body, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..core.errors import ConfigError, ImageTooLargeError, NotFoundError, PixsightError, UnsupportedFormatError
from ..core.fileio import printable
from ..core.types import Analysis
from .auth import ROLES, ApiError, Principal, RateLimiter, SessionStore, require
from .batcher import DrainingError, QueueFullError
from .keys import KeyStore
from .security import SECURITY_HEADERS, SecurityHeadersMiddleware, UploadLimitMiddleware, add_cors
from .settings import ServeSettings
from .storage import store_upload

__all__ = ["AppState", "create_app", "ROUTER_MODULES", "ERROR_STATUS", "pixsight_error_status"]

log = logging.getLogger(__name__)

ROUTER_MODULES = ("api_analyze", "api_catalog", "api_people", "api_review", "api_monitor", "ui")

_STATUS_TYPES = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
    406: "NotAcceptable", 409: "Conflict", 413: "PayloadTooLarge", 415: "UnsupportedMediaType",
    422: "ValidationError", 429: "RateLimited", 500: "InternalError", 502: "BadGateway", 503: "Unavailable",
}


@dataclass
class AppState:
    """Everything the routes share; ``request.app.state.px``."""

    settings: ServeSettings
    metrics: Any  # serve.metrics.ServeMetrics (None only while that module is absent)
    keys: KeyStore
    batcher: Any = None  # serve.batcher.Batcher, set when models are loaded
    drift: Any = None  # monitor.live.LiveDrift, refreshed in the background
    ready: bool = False  # /readyz 200 only when ready and not draining
    draining: bool = False
    drain_deadline: float | None = None  # time.monotonic() by which a signalled drain must end
    started: float = field(default_factory=time.time)
    sessions: SessionStore = field(default_factory=SessionStore)
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(per_min=600.0, burst=60))
    analyzer: Any = None  # the Analyzer the batcher runs
    load_error: str | None = None  # why the models failed to load, if they did
    tasks: tuple[str, ...] = ()  # the tasks the loaded analyzer runs
    budget: Any = None  # core.image.PixelBudget that every decode holds (serve.decoding)

    def set_ready(self, ready: bool) -> None:
        self.ready = ready
        if self.metrics is not None and hasattr(self.metrics, "set_ready"):
            self.metrics.set_ready(ready and not self.draining)


def _optional_module(name: str) -> Any | None:
    """Import ``pixsight.serve.<name>``; None only when that very module does not exist (yet)."""
    full = f"{__package__}.{name}"
    try:
        return importlib.import_module(full)
    except ModuleNotFoundError as err:
        if err.name != full:
            raise
        return None


# -- errors ---------------------------------------------------------------------------------
def _error_response(status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": error_type, "message": message}}, status_code=status, headers=headers)


#: Error class -> HTTP status, most specific first; the first ``isinstance`` match wins.
ERROR_STATUS: tuple[tuple[type[PixsightError], int], ...] = (
    (UnsupportedFormatError, 415),
    (ImageTooLargeError, 413),
    (NotFoundError, 404),
    (QueueFullError, 429),
    (DrainingError, 503),
)


def pixsight_error_status(err: PixsightError) -> int:
    """The HTTP status of a :class:`PixsightError` from the Python API (400 unless mapped).

    Every :class:`~pixsight.core.errors.NotFoundError` (unknown model, person, dataset,
    image, ...) is 404, whatever module raised it.

    >>> from pixsight.core.errors import UnknownModelError, ConfigError
    >>> pixsight_error_status(UnknownModelError("no such model")), pixsight_error_status(ConfigError("bad"))
    (404, 400)
    """
    for error_type, status in ERROR_STATUS:
        if isinstance(err, error_type):
            return status
    return 400


def _install_error_handlers(app: FastAPI) -> None:
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if 300 <= exc.status_code < 400 and "Location" in headers:
            return RedirectResponse(headers["Location"], status_code=exc.status_code)
        error_type = getattr(exc, "error_type", None) or _STATUS_TYPES.get(exc.status_code, "HttpError")
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code in (503, 429) and "Retry-After" not in headers:
            headers["Retry-After"] = "1"
        return _error_response(exc.status_code, error_type, message, headers or None)

    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        parts = []
        for e in exc.errors()[:5]:
            loc = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path"))
            parts.append(f"{loc}: {e.get('msg', 'invalid')}" if loc else str(e.get("msg", "invalid")))
        return _error_response(422, "ValidationError", printable("; ".join(parts) or "invalid request"))

    async def pixsight_error(request: Request, exc: PixsightError) -> Response:
        status = pixsight_error_status(exc)
        headers = {"Retry-After": "1"} if status in (429, 503) else None
        return _error_response(status, exc.type, printable(str(exc)), headers)

    async def internal_error(request: Request, exc: Exception) -> Response:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        response = _error_response(500, "InternalError", "internal server error (see the server log)")
        for key, value in SECURITY_HEADERS:
            response.headers[key.decode()] = value.decode()
        response.headers["Cache-Control"] = "no-store"
        return response

    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(PixsightError, pixsight_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, internal_error)


# -- the catalog writer -----------------------------------------------------------------------
class _UploadWriter:
    """``on_result`` of the batcher: keeps upload bytes and saves the analysis (worker thread only)."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self._catalog: Any = None
        self._thread: int | None = None

    def __call__(self, analysis: Analysis, data: bytes | None) -> None:
        if analysis.status != "ok" or not analysis.sha256:
            return  # a per-image failure is answered to the client; the catalog keeps images
        from ..catalog.store import Catalog

        if self._catalog is None:
            self._catalog = Catalog(self.settings.db)
            self._thread = threading.get_ident()
        stored = None
        if data is not None:
            stored = store_upload(self.settings.uploads_dir, data, analysis.format or "bin", sha256=analysis.sha256,
                                  name=analysis.path)
        self._catalog.save(analysis, path=str(stored.resolve()) if stored else analysis.path,
                           size=len(data) if data is not None else analysis.bytes)

    def close(self) -> None:
        if self._catalog is not None and self._thread == threading.get_ident():
            self._catalog.close()
        self._catalog = None  # a connection of another thread is closed when collected


# -- lifespan -------------------------------------------------------------------------------
def _start_models(app: FastAPI, analyzer: Any) -> None:
    """Build the batcher over ``analyzer`` and the live drift monitor; mark ready."""
    px: AppState = app.state.px
    s = px.settings
    from .batcher import Batcher

    writer = _UploadWriter(s)
    app.state.writer = writer
    px.analyzer = analyzer
    px.tasks = tuple(getattr(analyzer, "tasks", ()) or ())
    px.batcher = Batcher(analyzer, max_batch=s.max_batch, max_wait_ms=s.batch_wait_ms, queue_size=s.queue_size,
                         metrics=px.metrics, on_result=writer)
    px.batcher.start()


def _start_drift(app: FastAPI) -> None:
    px: AppState = app.state.px
    try:
        live = importlib.import_module("pixsight.monitor.live")
    except ModuleNotFoundError as err:
        if err.name != "pixsight.monitor.live":
            raise
        return
    px.drift = live.LiveDrift(px.settings.db, px.settings.drift_interval_s, metrics=px.metrics)
    px.drift.start()


def _lifespan(analyzer: Any):  # noqa: ANN202 - FastAPI lifespan factory
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        px: AppState = app.state.px
        px.draining, px.drain_deadline = False, None  # a fresh start (tests may run the lifespan again)
        owned: list[Any] = []
        loader: asyncio.Task | None = None
        try:
            _start_drift(app)
        except Exception:  # noqa: BLE001 - drift is a view; the server still serves
            log.exception("live drift monitor did not start")
        if not px.settings.load_models:
            px.set_ready(True)
        elif analyzer is not None:
            _start_models(app, analyzer)
            px.set_ready(True)
        else:
            async def load() -> None:
                from ..pipeline.analyzer import Analyzer

                try:
                    config = px.settings.analyze_config()
                    built = await asyncio.to_thread(Analyzer, config)
                except Exception as err:  # noqa: BLE001 - reported by /readyz and the log
                    px.load_error = printable(str(err) or type(err).__name__)
                    log.error("cannot load models: %s", px.load_error)
                    return
                owned.append(built)
                if not built.tasks:
                    px.load_error = "no task can run: " + "; ".join(f"{t}: {r}" for t, r in built.skipped_tasks.items())
                    log.error("%s", px.load_error)
                    return
                for task, reason in built.skipped_tasks.items():
                    log.warning("skipping %s: %s", task, reason)
                _start_models(app, built)
                px.set_ready(True)
                log.info("models loaded: %s", ", ".join(built.tasks))

            loader = asyncio.create_task(load())
        try:
            yield
        finally:
            px.draining = True
            px.set_ready(False)
            if loader is not None and not loader.done():
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(loader), timeout=px.settings.drain_timeout_s)
            if px.batcher is not None:
                left = px.settings.drain_timeout_s
                if px.drain_deadline is not None:
                    left = max(1.0, px.drain_deadline - time.monotonic())
                drained = await asyncio.to_thread(px.batcher.drain, left)
                if not drained:
                    log.warning("queued work did not finish within %.1f s", px.settings.drain_timeout_s)
            if px.drift is not None:
                with contextlib.suppress(Exception):
                    px.drift.stop()
            for built in owned:
                await asyncio.to_thread(built.close)
            writer = getattr(app.state, "writer", None)
            if writer is not None:
                writer.close()

    return lifespan


# -- the app --------------------------------------------------------------------------------
def create_app(settings: ServeSettings, *, analyzer: Any = None) -> FastAPI:
    """The ``pixsight serve`` app over ``settings.db``.

    ``analyzer``: a ready :class:`~pixsight.pipeline.analyzer.Analyzer` to serve (tests); None
    builds one from ``settings.analyze_config()`` in a thread after start-up (``/readyz`` is
    503 until then). ``settings.load_models=False`` serves the catalog without analysing.
    """
    metrics_mod = _optional_module("metrics")
    metrics = metrics_mod.ServeMetrics() if metrics_mod is not None else None
    app = FastAPI(title="pixsight", version=__version__, lifespan=_lifespan(analyzer),
                  docs_url=None, redoc_url=None, openapi_url=None,
                  description="Offline-first image analysis over HTTP. Send `Authorization: Bearer <key>`.")
    px = AppState(settings=settings, metrics=metrics, keys=KeyStore(settings.db),
                  sessions=SessionStore(hours=settings.session_hours),
                  limiter=RateLimiter(per_min=settings.rate_limit_per_min, burst=settings.rate_limit_burst))
    app.state.px = px
    from .decoding import decode_budget

    log.info("decode budget: %.1f MP at once", decode_budget(px).total / 1e6)
    _install_error_handlers(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        if px.ready and not px.draining:
            return JSONResponse({"status": "ready", "tasks": list(px.tasks)})
        reason = "draining" if px.draining else ("models failed to load: " + px.load_error if px.load_error
                                                  else "loading models")
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503,
                            headers={"Retry-After": "1" if not px.load_error else "30"})

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require("viewer"))])
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    _install_key_routes(app)
    for name in ROUTER_MODULES:
        module = _optional_module(name)
        if module is None:
            log.debug("serve module %s is absent; its routes are off", name)
            continue
        app.include_router(module.router)
        if hasattr(module, "mount"):
            module.mount(app)
    if metrics_mod is not None:
        metrics_mod.install_metrics(app, metrics)
    add_cors(app, settings.cors_origins)
    reject = (lambda: metrics.count_rejection("too_large")) if metrics is not None else None
    app.add_middleware(UploadLimitMiddleware, max_bytes=settings.max_upload_bytes, on_reject=reject)
    app.add_middleware(SecurityHeadersMiddleware)  # outermost: every answer carries the headers
    return app


def _install_key_routes(app: FastAPI) -> None:
    """``/v1/keys`` (admin): list, create, revoke API keys — what ``pixsight keys`` does."""
    admin = Depends(require("admin"))

    @app.get("/v1/keys", tags=["keys"], summary="List API keys (no secrets)")
    async def list_keys(request: Request, principal: Principal = admin) -> dict[str, Any]:
        keys = request.app.state.px.keys
        return {"keys": [k.to_dict() for k in keys.list()]}

    @app.post("/v1/keys", tags=["keys"], status_code=201, summary="Create an API key (shown once)")
    async def create_key(request: Request, role: str = Body(..., embed=True, pattern="^(viewer|reviewer|admin)$"),
                         name: str = Body("", embed=True, max_length=200),
                         principal: Principal = admin) -> dict[str, Any]:
        if role not in ROLES:  # the pattern already refuses it; kept for the error text
            raise ConfigError(f"unknown role {role!r}")
        info, token = request.app.state.px.keys.create(role, name)
        return {"key": token, **info.to_dict()}

    @app.delete("/v1/keys/{key_id}", tags=["keys"], summary="Revoke an API key")
    async def revoke_key(request: Request, key_id: str, principal: Principal = admin) -> dict[str, Any]:
        px = request.app.state.px
        if not px.keys.revoke(key_id):
            raise ApiError(404, "NotFound", f"no live key with id {printable(key_id)!r}")
        px.sessions.drop_key(key_id)
        return {"revoked": key_id}
