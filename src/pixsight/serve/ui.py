"""The web UI: server-rendered pages (Jinja2, autoescaped) plus small vanilla-JS files.

Pages: ``/`` gallery, ``/images/{sha256}``, ``/review``, ``/dashboard``, ``/models``,
``/login`` and ``/logout`` (see docs/web-ui.md). Every page but ``/login`` needs a key or
a session; without one it redirects to ``/login?next=...``. The HTML carries no inline
script or style (the CSP forbids them): JavaScript and CSS come from ``/static/``, data
reaches JavaScript through ``data-*`` attributes or by fetching the ``/v1`` JSON routes, and
state-changing fetches send the session's CSRF token from ``<meta name="csrf-token">``.

Pages read the catalog through the same Python functions as the JSON API
(:mod:`pixsight.serve.api_catalog`, :mod:`pixsight.models.registry`), so a page and its
route never disagree; a part whose source is missing shows "unavailable" instead.

``create_app`` includes :data:`router` and calls :func:`mount`:

>>> from fastapi import FastAPI
>>> app = FastAPI()
>>> app.include_router(router)
>>> mount(app)
>>> app.url_path_for("static", path="app.css"), app.url_path_for("login_page")
('/static/app.css', '/login')
"""

from __future__ import annotations

import datetime as _dt
import importlib
import logging
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..core.errors import PixsightError
from ..core.fileio import printable
from .auth import ApiError, Principal, csrf_token, login, logout, optional_principal, require_page

__all__ = ["router", "mount", "templates_env", "PAGE_SIZE"]

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
PAGE_SIZE = 48  # gallery cards per page ("Load more" fetches the next 48)
_SHA = re.compile(r"^[0-9a-f]{64}$")
_TRUE, _FALSE = frozenset({"true", "1", "yes", "on"}), frozenset({"false", "0", "no", "off"})
_FILTERS = ("q", "label", "person", "has_text", "has_faces", "needs_review", "folder", "since", "until")
#: longest accepted value per text filter (the same limits as GET /v1/images)
_MAX_LEN = {"q": 500, "label": 200, "person": 200, "folder": 4096, "since": 40, "until": 40}

router = APIRouter(include_in_schema=False)
viewer_page = Depends(require_page("viewer"))


# -- templates ------------------------------------------------------------------------------
def _basename(path: Any) -> str:
    """Last part of a stored path (``/a/b.png`` -> ``b.png``; Windows separators too)."""
    text = str(path or "")
    return re.split(r"[\\/]", text.rstrip("/\\"))[-1] or text


def _filesize(n: Any) -> str:
    """``18553851`` -> ``17.7 MiB``."""
    try:
        size = float(n)
    except (TypeError, ValueError):
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover - loop always returns


def _datetime(ts: Any) -> str:
    """POSIX time -> ``2026-01-02 03:04:05 UTC``."""
    try:
        return _dt.datetime.fromtimestamp(float(ts), _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (TypeError, ValueError, OverflowError, OSError):
        return "–"


def templates_env() -> jinja2.Environment:
    """The Jinja2 environment of the pages: autoescape on for every template (whatever its
    name), plus the filters ``basename``, ``filesize`` and ``datetime``.

    >>> templates_env().from_string("{{ name }} {{ n | filesize }}").render(name="<b>", n=2048)
    '&lt;b&gt; 2.0 KiB'
    """
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(basename=_basename, filesize=_filesize, datetime=_datetime)
    env.globals["url_for"] = lambda name, path="": f"/{name}/{path}?v={__version__}"
    return env


_ENV = templates_env()


def _render(request: Request, template: str, *, status_code: int = 200, principal: Principal | None = None,
            **context: Any) -> HTMLResponse:
    html = _ENV.get_template(template).render(
        request=request, principal=principal, csrf=csrf_token(request) if principal else "",
        page=template.rsplit(".", 1)[0], **context)
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


def _error_page(request: Request, status: int, title: str, message: str,
                principal: Principal | None = None) -> HTMLResponse:
    return _render(request, "error.html", status_code=status, principal=principal, status=status,
                   title=title, message=message)


def _catalog_api() -> Any | None:
    """:mod:`pixsight.serve.api_catalog` (the JSON routes' Python functions), or None when absent."""
    try:
        return importlib.import_module(f"{__package__}.api_catalog")
    except ModuleNotFoundError as err:
        if err.name != f"{__package__}.api_catalog":
            raise
        return None


# -- login / logout -------------------------------------------------------------------------
def _safe_next(value: Any) -> str:
    """Only local paths: ``/review`` stays, ``//evil.org`` or ``https://...`` become ``/``.

    >>> _safe_next("/review?sha=ab"), _safe_next("//evil.example"), _safe_next("https://x")
    ('/review?sha=ab', '/', '/')
    """
    text = str(value or "")
    if not text.startswith("/") or text.startswith(("//", "/\\")) or any(ord(c) < 32 for c in text):
        return "/"
    return text


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str = "/") -> Response:  # noqa: A002 - the query name
    """The login form; already logged-in browsers go straight to ``next``."""
    if await optional_principal(request) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _render(request, "login.html", next_path=_safe_next(next))


@router.post("/login", response_class=HTMLResponse)
async def login_submit(request: Request) -> Response:
    """Check the posted key (form field ``key``); on success set the session cookie and go on."""
    form = await request.form()
    key, next_path = str(form.get("key") or ""), _safe_next(form.get("next"))
    response = RedirectResponse(next_path, status_code=303)
    try:
        session = await login(request, response, key)
    except ApiError as err:  # too many failed attempts from this address
        return _render(request, "login.html", status_code=err.status_code, next_path=next_path,
                       error=err.message)
    if session is None:
        return _render(request, "login.html", status_code=401, next_path=next_path,
                       error="That key is not valid (unknown, mistyped or revoked).")
    return response


@router.api_route("/logout", methods=["GET", "POST"])
async def logout_route(request: Request) -> Response:
    """End the session. The cookie is ``SameSite=Strict``, so another site cannot log a user out."""
    response = RedirectResponse("/login", status_code=303)
    logout(request, response)
    return response


# -- pages ----------------------------------------------------------------------------------
def _flag(value: str | None) -> bool | None:
    text = (value or "").strip().lower()
    return True if text in _TRUE else False if text in _FALSE else None


def _gallery_filters(request: Request) -> dict[str, Any]:
    q = request.query_params
    out: dict[str, Any] = {k: (q.get(k) or "").strip() or None for k in _FILTERS}
    for k in ("has_text", "has_faces", "needs_review"):
        out[k] = _flag(q.get(k))
    return out


def _query(filters: dict[str, Any], **extra: Any) -> str:
    items = {k: ("true" if v is True else "false" if v is False else v) for k, v in {**filters, **extra}.items()}
    return urlencode({k: v for k, v in items.items() if v not in (None, "")})


def _int_param(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    try:
        return max(low, min(high, int(request.query_params.get(name, default))))
    except ValueError:
        return default


@router.get("/", response_class=HTMLResponse)
async def gallery_page(request: Request, principal: Principal = viewer_page) -> Response:
    """Search box, filters and a grid of thumbnails; "Load more" pages through the results."""
    filters = _gallery_filters(request)
    offset = _int_param(request, "offset", 0, low=0, high=10_000_000)
    context: dict[str, Any] = {"filters": filters, "items": [], "total": 0, "offset": offset, "error": None,
                               "next_url": None, "next_api": None, "prev_url": None}
    too_long = [k for k, n in _MAX_LEN.items() if len(filters[k] or "") > n]
    if too_long:
        context["error"] = f"The {too_long[0]} filter is longer than {_MAX_LEN[too_long[0]]} characters."
        return _render(request, "gallery.html", status_code=400, principal=principal, **context)
    api = _catalog_api()
    if api is None:
        context["error"] = "The image list is unavailable (the catalog routes are not installed)."
        return _render(request, "gallery.html", principal=principal, **context)
    try:  # the JSON route's own function, so the page and GET /v1/images always agree
        args = {k: ("" if k == "q" else None) if v is None else v for k, v in filters.items()}
        page = await run_in_threadpool(lambda: api.list_images(request, **args, limit=PAGE_SIZE, offset=offset,
                                                             principal=principal))
    except ApiError as err:
        context["error"] = printable(err.message)
        return _render(request, "gallery.html", status_code=err.status_code, principal=principal, **context)
    except PixsightError as err:
        context["error"] = printable(str(err))
        return _render(request, "gallery.html", status_code=400, principal=principal, **context)
    page = page.model_dump() if hasattr(page, "model_dump") else page
    items, total = list(page["items"]), int(page["total"])
    shown = offset + len(items)
    context.update(items=items, total=total)
    if shown < total and items:
        context["next_url"] = "/?" + _query(filters, offset=shown)
        context["next_api"] = "/v1/images?" + _query(filters, offset=shown, limit=PAGE_SIZE)
    if offset > 0:
        context["prev_url"] = "/?" + _query(filters, offset=max(0, offset - PAGE_SIZE) or None)
    return _render(request, "gallery.html", principal=principal, **context)


@router.get("/images/{sha256}", response_class=HTMLResponse)
async def image_page(request: Request, sha256: str, principal: Principal = viewer_page) -> Response:
    """One image with its overlays, every result, similar images, people and review history."""
    if not _SHA.match(sha256):
        return _error_page(request, 404, "Not found", "That is not an image id (64 hex digits).", principal)
    api = _catalog_api()
    if api is None:
        return _error_page(request, 503, "Unavailable", "Image details are unavailable "
                           "(the catalog routes are not installed).", principal)
    try:  # the function of GET /v1/images/{sha256}
        detail = await run_in_threadpool(api.get_image, request, sha256, principal=principal)
    except ApiError as err:
        return _error_page(request, err.status_code, "Not found" if err.status_code == 404 else "Error",
                           printable(err.message), principal)
    except PixsightError as err:
        return _error_page(request, 400, "Error", printable(str(err)), principal)
    detail = detail.model_dump() if hasattr(detail, "model_dump") else detail
    return _render(request, "image.html", principal=principal, sha=sha256, analysis=detail["analysis"],
                   paths=detail.get("paths") or [detail["analysis"].get("path")],
                   people=detail.get("people") or [], reviews=detail.get("reviews") or [],
                   can_review=principal.can("reviewer"))


@router.get("/review", response_class=HTMLResponse)
async def review_page(request: Request, principal: Principal = viewer_page, sha: str = "") -> Response:
    """One doubtful image at a time; reviewers judge it with buttons or keys (review.js)."""
    return _render(request, "review.html", principal=principal, can_review=principal.can("reviewer"),
                   sha=sha if _SHA.match(sha) else "")


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard_page(request: Request, principal: Principal = viewer_page) -> Response:
    """Charts and figures drawn by dashboard.js from /v1/stats, /metrics and /v1/drift."""
    return _render(request, "dashboard.html", principal=principal)


def _model_cards() -> list[dict[str, Any]]:
    from ..models.registry import describe, get_registry

    return [describe(spec) for spec in get_registry().list()]


@router.get("/models", response_class=HTMLResponse)
async def models_page(request: Request, principal: Principal = viewer_page) -> Response:
    """A card per registry entry: task, backend, licence, origin, size, offline availability."""
    try:
        models, error = await run_in_threadpool(_model_cards), None
    except PixsightError as err:
        models, error = [], f"The model registry is unavailable: {printable(str(err))}"
    return _render(request, "models.html", principal=principal, models=models, error=error)


def mount(app: FastAPI) -> None:
    """Serve the UI's CSS and JavaScript under ``/static`` (public, like ``/login``)."""
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
