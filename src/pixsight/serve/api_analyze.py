"""``POST /v1/analyze`` and ``POST /v1/analyze/batch``: images in, ``Analysis.to_dict()`` out.

The request is authenticated before its body is read. Each upload is decoded in the
threadpool (``core.image.load_image``: the same safe decoder as the CLI), then handed to
the server's :class:`~pixsight.serve.batcher.Batcher`, which analyses queued images in
batches and stores them in the catalog (the upload bytes are kept for the UI).

    curl -H "Authorization: Bearer $KEY" -F file=@cat.jpg http://127.0.0.1:8000/v1/analyze
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import unquote, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from ..core.errors import ImageTooLargeError, PixsightError, UnsupportedFormatError
from ..core.fileio import printable
from ..core.image import LoadedImage, load_image
from ..core.types import Analysis
from .auth import ApiError, Principal, require
from .decoding import decode_slot
from .security import fetch_url, host_allowed

__all__ = ["router", "error_analysis"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["analyze"])

_TASKS_FIELD = {"type": "string", "description": "comma list: return only these of the server's tasks"}
_ANALYZE_BODY = {
    "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object",
        "properties": {
            "file": {"type": "string", "format": "binary", "description": "the image (JPEG, PNG, WebP, ...)"},
            "url": {"type": "string", "description": "fetch the image from this URL (host must be allowed)"},
            "tasks": _TASKS_FIELD,
        },
    }}}},
    "responses": {"200": {"description": "the analysis, as one line of `pixsight analyze --jsonl`"},
                  "413": {"description": "upload over the size cap"},
                  "415": {"description": "SVG or another refused format"},
                  "429": {"description": "queue full (Overloaded) or rate limited"},
                  "503": {"description": "models loading or server draining"}},
}
_BATCH_BODY = {
    "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}},
                       "tasks": _TASKS_FIELD},
    }}}},
    "responses": {"200": {"description": '{"results": [analysis, ...]} in input order'}},
}


def error_analysis(name: str, err: BaseException) -> Analysis:
    """The analysis of an image that could not be decoded: what a ``pixsight analyze`` line holds.

    >>> from pixsight.core.errors import ImageDecodeError
    >>> error_analysis("a.png", ImageDecodeError("file is empty (0 bytes)", path="a.png")).error["type"]
    'ImageDecodeError'
    """
    if isinstance(err, PixsightError):
        error = {k: printable(v) for k, v in err.to_dict().items()}
    else:
        log.debug("unexpected decode error on %s", name, exc_info=err)
        error = {"type": type(err).__name__, "message": printable(str(err) or type(err).__name__)}
    return Analysis(path=name, status="error", error=error)


def _batcher(px: Any) -> Any:
    """The batcher, or 503 while models load / the server drains."""
    if px.draining:
        raise ApiError(503, "Unavailable", "the server is shutting down", headers={"Retry-After": "5"})
    if px.batcher is None or not px.ready:
        if not px.settings.load_models:
            raise ApiError(503, "Unavailable", "this server runs without models (pixsight serve --no-models)",
                           headers={"Retry-After": "3600"})
        reason = f"models failed to load: {px.load_error}" if px.load_error else "models are loading"
        raise ApiError(503, "Unavailable", reason, headers={"Retry-After": "1"})
    return px.batcher


def _wanted_tasks(request: Request, form: FormData, px: Any) -> tuple[str, ...] | None:
    raw = form.get("tasks")
    raw = raw if isinstance(raw, str) else request.query_params.get("tasks")
    if not raw:
        return None
    tasks = tuple(dict.fromkeys(t.strip() for t in raw.split(",") if t.strip()))
    unknown = [t for t in tasks if t not in px.tasks]
    if unknown or not tasks:
        raise ApiError(400, "BadRequest", f"task(s) {', '.join(printable(t) for t in unknown) or raw!r} are not "
                       f"run by this server; it runs {','.join(px.tasks) or 'none'}")
    return tasks


def _answer(analysis: Analysis, tasks: tuple[str, ...] | None) -> dict[str, Any]:
    data = analysis.to_dict()
    if tasks is not None:
        dropped = [t for t in _tasks_of(data) if t not in tasks]
        for task in dropped:
            data.pop(task, None)
            data.get("models", {}).pop(task, None)
            data.get("task_errors", {}).pop(task, None)
            data.get("timings_ms", {}).pop(task, None)
        if "task_errors" in data and not data["task_errors"]:
            del data["task_errors"]
    return data


def _tasks_of(data: dict[str, Any]) -> list[str]:
    """The task names present in an analysis dict (its models and task errors)."""
    return list(dict.fromkeys([*data.get("models", {}), *data.get("task_errors", {})]))


def _decode(data: bytes, name: str, px: Any) -> tuple[LoadedImage, float]:
    """Decode within the server's pixel budget (503 when it stays spent, 413 when the image
    alone is larger than it); the full-size pixels are freed before the budget is released."""
    analyzer = px.analyzer
    t0 = time.perf_counter()
    with decode_slot(px, data, limits=analyzer.config.limits, name=name):
        image = load_image(data, max_side=analyzer.decode_side, limits=analyzer.config.limits, name=name)
    return image, (time.perf_counter() - t0) * 1000


async def _decode_item(px: Any, data: bytes, name: str, *, strict: bool) -> tuple[LoadedImage, float] | Analysis:
    """Decode one upload: the image, or the error analysis of a bad one. ``strict``: too big
    → 413, refused format → 415, decode budget spent → 503 (single uploads); else those
    become error analyses too (batch items)."""
    try:
        return await run_in_threadpool(_decode, data, name, px)
    except ApiError as err:  # the decode budget stayed spent
        if strict:
            raise
        analysis = Analysis(path=name, status="error", error={"type": err.error_type, "message": err.message})
        if px.metrics is not None:
            px.metrics.observe_analysis(analysis)
        return analysis
    except Exception as err:  # noqa: BLE001 - a bad image is a result, not a crash
        if isinstance(err, UnsupportedFormatError):
            _count(px, "unsupported")
            if strict:
                raise ApiError(415, "UnsupportedFormatError", printable(str(err))) from None
        elif isinstance(err, ImageTooLargeError):
            _count(px, "too_large")
            if strict:
                raise ApiError(413, "ImageTooLargeError", printable(str(err))) from None
        analysis = error_analysis(name, err)
        if px.metrics is not None:
            px.metrics.observe_analysis(analysis)
        return analysis


async def _analyze(px: Any, data: bytes, name: str, *, strict: bool) -> Analysis:
    """Decode and analyse one upload (see :func:`_decode_item` for ``strict``)."""
    batcher = _batcher(px)
    decoded = await _decode_item(px, data, name, strict=strict)
    if isinstance(decoded, Analysis):
        return decoded
    return await _submit(px, batcher, decoded, data, name)


async def _submit(px: Any, batcher: Any, decoded: tuple[LoadedImage, float], data: bytes, name: str) -> Analysis:
    image, decode_ms = decoded
    analysis = await batcher.submit(image, name=name, data=data, decode_ms=decode_ms)
    if analysis.status != "ok" or "faces" not in analysis.results:
        return analysis  # nothing to name: no thread hop
    return await run_in_threadpool(_name_faces, px.settings.db, analysis)


def _count(px: Any, reason: str) -> None:
    if px.metrics is not None:
        px.metrics.count_rejection(reason)


def _name_faces(db: Any, analysis: Analysis) -> Analysis:
    """Name the analysis' faces against the catalog's gallery (a no-op without one)."""
    if analysis.status != "ok" or "faces" not in analysis.results:
        return analysis
    from ..faces.naming import name_faces

    return name_faces(db, analysis)


def _upload_name(upload: UploadFile) -> str:
    return printable(upload.filename or "<upload>")[:500]


async def _read_upload(upload: Any) -> tuple[bytes, str]:
    if not isinstance(upload, UploadFile):
        raise ApiError(422, "ValidationError", "field 'file' must be a file upload (multipart/form-data)")
    return await upload.read(), _upload_name(upload)


async def _form(request: Request, *, max_files: int) -> FormData:
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise ApiError(415, "UnsupportedMediaType", "send the image as multipart/form-data (field 'file')")
    return await request.form(max_files=max_files, max_fields=max_files + 8)


@router.post("/analyze", summary="Analyse one image (upload or allowed URL)", openapi_extra=_ANALYZE_BODY)
async def analyze_one(request: Request, principal: Principal = Depends(require("viewer"))) -> JSONResponse:
    """Multipart ``file`` (or ``url``): 200 with the analysis; a bad image is 200 with status error."""
    px = request.app.state.px
    _batcher(px).reject_if_full()  # 503 / 429 at once, before reading a body that cannot be served
    form = await _form(request, max_files=1)
    try:
        tasks = _wanted_tasks(request, form, px)
        upload, url = form.get("file"), form.get("url")
        if (upload is None) == (not url):
            raise ApiError(422, "ValidationError", "send exactly one of 'file' (an upload) or 'url'")
        if upload is not None:
            data, name = await _read_upload(upload)
        else:
            url = str(url)
            if not host_allowed(url, px.settings.fetch_allow):
                host = urlsplit(url).hostname if "://" in url else None
                raise ApiError(403, "FetchNotAllowed", f"fetching from host {printable(str(host))!r} is not "
                               "allowed (pixsight serve --allow-fetch HOST)")
            data = await run_in_threadpool(fetch_url, url, allowed=px.settings.fetch_allow,
                                           max_bytes=px.settings.max_upload_bytes,
                                           timeout_s=px.settings.fetch_timeout_s,
                                           deadline_s=px.settings.fetch_deadline_s)
            name = printable(unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or url)[:500]
    finally:
        await form.close()
    analysis = await _analyze(px, data, name, strict=True)
    return JSONResponse(_answer(analysis, tasks))


@router.post("/analyze/batch", summary="Analyse several images (repeated 'file' fields)", openapi_extra=_BATCH_BODY)
async def analyze_batch(request: Request, principal: Principal = Depends(require("viewer"))) -> JSONResponse:
    """Several ``file`` fields → ``{"results": [...]}`` in input order (bad files are error items)."""
    px = request.app.state.px
    batcher = _batcher(px)
    batcher.reject_if_full()  # shed load before reading the body
    limit = px.settings.max_batch_files
    form = await _form(request, max_files=limit)
    try:
        tasks = _wanted_tasks(request, form, px)
        uploads = form.getlist("file")
        if not uploads:
            raise ApiError(422, "ValidationError", "send one or more 'file' fields (multipart/form-data)")
        items = [await _read_upload(u) for u in uploads]
    finally:
        await form.close()
    free = px.settings.queue_size - batcher.depth
    if len(items) > free:
        _count(px, "queue_full")
        raise ApiError(429, "Overloaded", f"the analysis queue has room for {max(free, 0)} images, "
                       f"not {len(items)}; retry shortly", headers={"Retry-After": "1"})
    # decode one image at a time (each within the pixel budget, released before the next), and
    # let the decoded (reduced) images queue for analysis together so they still batch
    pending: list[Any] = []
    for data, name in items:
        decoded = await _decode_item(px, data, name, strict=False)
        if isinstance(decoded, Analysis):
            pending.append(decoded)
        else:
            pending.append(asyncio.ensure_future(_submit(px, batcher, decoded, data, name)))
    outcomes = await asyncio.gather(*(p if isinstance(p, asyncio.Future) else _done(p) for p in pending),
                                    return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return JSONResponse({"results": [_answer(a, tasks) for a in outcomes]})  # type: ignore[arg-type]


async def _done(value: Any) -> Any:
    return value


_SIMILAR_BODY = {
    "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary", "description": "the query image"}},
    }}}},
    "responses": {"200": {"description": '{"items": [{"sha256", "path", "score"}], "note"}, nearest first'},
                  "409": {"description": "the server runs without the embed task"}},
}


@router.post("/similar", summary="Catalogued images visually similar to an uploaded one", openapi_extra=_SIMILAR_BODY)
async def similar_to_upload(request: Request, k: int = 12,
                            principal: Principal = Depends(require("viewer"))) -> JSONResponse:
    """Embed the upload with the server's model (it is not stored) and return its nearest
    catalogued images, like ``pixsight search --similar NEW_IMAGE``."""
    from ..catalog.search import hits_for
    from ..catalog.vectors import VectorIndexError, similar

    if not 1 <= k <= 100:
        raise ApiError(422, "ValidationError", "k: must be between 1 and 100")
    px = request.app.state.px
    batcher = _batcher(px)
    if "embed" not in px.tasks:
        raise ApiError(409, "Conflict", "this server runs without the embed task (pixsight serve --tasks ...,embed)")
    batcher.reject_if_full()
    form = await _form(request, max_files=1)
    try:
        data, name = await _read_upload(form.get("file"))
    finally:
        await form.close()
    # a refused format (415) or too big an image (413) is answered by the app's error table
    image, decode_ms = await run_in_threadpool(_decode, data, name, px)
    analysis = await batcher.submit(image, name=name, decode_ms=decode_ms, store=False)
    if analysis.status != "ok" or "embed" not in analysis.results:
        error = analysis.error or analysis.task_errors.get("embed") or {"type": "PixsightError",
                                                                        "message": "no embedding"}
        raise ApiError(422, error.get("type", "PixsightError"), printable(f"cannot embed {name}: {error['message']}"))
    db = px.settings.db
    try:
        scored = await run_in_threadpool(similar, db, analysis.results["embed"].vector, k=k)
    except VectorIndexError as err:  # an empty catalog: nothing to compare with
        return JSONResponse({"items": [], "note": printable(err.message)})
    hits = await run_in_threadpool(hits_for, db, scored)
    return JSONResponse({"items": [{"sha256": h.sha256, "path": printable(h.paths[0]) if h.paths else h.sha256,
                                    "score": h.score} for h in hits], "note": None})
