"""HTTP hardening (SECURITY.md items 15, 16): headers, upload cap, CORS, URL fetch allow-list.

- :class:`SecurityHeadersMiddleware` adds the CSP and friends to every response.
- :class:`UploadLimitMiddleware` answers 413 for a ``Content-Length`` over the cap before
  the body is read, and cuts a streamed (chunked) body at the cap while it is read.
- :func:`add_cors` allows only the configured origins (none by default).
- :func:`fetch_url` downloads an image for the ``url`` form field, only from allowed hosts.

>>> host_allowed("https://images.example.org/a.jpg", ("images.example.org",))
True
>>> host_allowed("https://evil.example.com/a.jpg", ("images.example.org",))
False
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any, Iterable
from urllib.parse import urljoin, urlsplit

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import ApiError

__all__ = [
    "CSP", "SECURITY_HEADERS", "SecurityHeadersMiddleware", "UploadLimitMiddleware", "add_cors",
    "host_allowed", "fetch_url", "error_body",
]

CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
       "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def error_body(error_type: str, message: str) -> bytes:
    """The JSON error body every error response carries."""
    return json.dumps({"error": {"type": error_type, "message": message}}).encode()


class SecurityHeadersMiddleware:
    """Pure ASGI middleware: CSP, nosniff, DENY framing, no referrer; ``no-store`` on JSON and HTML."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in dict(SECURITY_HEADERS)]
                headers.extend(SECURITY_HEADERS)
                names = {k.lower() for k, _ in headers}
                ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                private = b"json" in ctype or b"html" in ctype or scope["path"].startswith("/v1/")
                if b"cache-control" not in names and private:  # API data and pages (CSRF tokens)
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class UploadLimitMiddleware:
    """Pure ASGI middleware capping request bodies at ``max_bytes`` (413 JSON error).

    A declared ``Content-Length`` over the cap is refused before anything reads the body;
    otherwise the bytes are counted as the app reads them and reading past the cap raises
    a 413 :class:`ApiError` (answered here too, should no handler catch it).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, on_reject: object = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.on_reject = on_reject  # callable() -> None, e.g. a metrics counter

    def _too_large(self) -> ApiError:
        if callable(self.on_reject):
            self.on_reject()
        mib = self.max_bytes / (1024 * 1024)
        return ApiError(413, "PayloadTooLarge", f"request body is over the upload limit of {mib:g} MiB "
                        f"({self.max_bytes} bytes)")

    async def _answer(self, send: Send, err: ApiError) -> None:
        body = error_body(err.error_type, err.message)
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = None
        for key, value in scope.get("headers", []):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await self._answer(send, ApiError(400, "BadRequest", "invalid Content-Length"))
                    return
        if declared is not None and declared > self.max_bytes:
            await self._answer(send, self._too_large())
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise self._too_large()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except ApiError as err:
            if started or err.status_code != 413:
                raise
            await self._answer(send, err)


def add_cors(app: object, origins: Iterable[str]) -> None:
    """Allow cross-origin calls from exactly ``origins`` (none: no CORS headers at all)."""
    origins = [o.rstrip("/") for o in origins if o]
    if not origins:
        return
    from starlette.middleware.cors import CORSMiddleware

    app.add_middleware(  # type: ignore[attr-defined]
        CORSMiddleware, allow_origins=origins, allow_credentials=False,
        allow_methods=["GET", "POST", "DELETE"], allow_headers=["Authorization", "Content-Type", "X-CSRF-Token"],
        max_age=600,
    )


def host_allowed(url: str, allowed: Iterable[str]) -> bool:
    """True when ``url`` is http(s) and its host is one of ``allowed`` (exact, case-insensitive)."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(host) and host in {a.lower() for a in allowed}


def fetch_url(url: str, *, allowed: Iterable[str], max_bytes: int, timeout_s: float = 10.0,
              deadline_s: float | None = 30.0, max_redirects: int = 3,
              transport: httpx.BaseTransport | None = None) -> bytes:
    """Download ``url`` (blocking; call it in a thread) from an allowed host only.

    Redirects are followed by hand, and only to allowed hosts; the body is read in chunks
    and refused past ``max_bytes``. ``timeout_s`` bounds each connect and read;
    ``deadline_s`` the whole download, redirects included: at the deadline a watchdog shuts
    the open sockets down, so a host that trickles bytes (or headers) cannot hold the
    request. ``transport`` is for tests (``httpx.MockTransport``).

    Raises:
        ApiError: 403 host not allowed, 413 too big, 502 unreachable / bad status,
            504 not finished within ``deadline_s``.
    """
    allowed = tuple(allowed)
    deadline = None if deadline_s is None else time.monotonic() + deadline_s
    expired = threading.Event()
    sockets: list[socket.socket] = []
    lock = threading.Lock()

    def trace(event: str, info: dict[str, Any]) -> None:  # httpcore: remember each new socket
        if event == "connection.connect_tcp.complete":
            sock = info["return_value"].get_extra_info("socket")
            if sock is not None:
                with lock:
                    sockets.append(sock)
                if expired.is_set():
                    _shutdown(sock)

    def expire() -> None:
        expired.set()
        with lock:
            for sock in sockets:
                _shutdown(sock)

    def too_slow() -> ApiError:
        return ApiError(504, "FetchTimeout", f"fetching from {urlsplit(url).hostname} did not finish "
                        f"within {deadline_s:g} s")

    watchdog = None if deadline_s is None else threading.Timer(deadline_s, expire)
    if watchdog is not None:
        watchdog.daemon = True
        watchdog.start()
    try:
        with httpx.Client(timeout=timeout_s, follow_redirects=False, trust_env=False,
                          transport=transport) as client:
            for _ in range(max_redirects + 1):
                if not host_allowed(url, allowed):
                    host = urlsplit(url).hostname if url else None
                    raise ApiError(403, "FetchNotAllowed",
                                   f"fetching from host {host!r} is not allowed (pixsight serve --allow-fetch HOST)")
                if deadline is not None and time.monotonic() >= deadline:
                    raise too_slow()
                try:
                    with client.stream("GET", url, extensions={"trace": trace}) as response:
                        if response.is_redirect and response.headers.get("location"):
                            url = urljoin(url, response.headers["location"])
                            continue
                        if response.status_code != 200:
                            raise ApiError(502, "FetchFailed", f"{urlsplit(url).hostname} answered {response.status_code}")
                        declared = response.headers.get("content-length")
                        if declared and declared.isdigit() and int(declared) > max_bytes:
                            raise ApiError(413, "PayloadTooLarge", f"remote file is over the limit of {max_bytes} bytes")
                        chunks: list[bytes] = []
                        total = 0
                        for chunk in response.iter_bytes():
                            if expired.is_set() or (deadline is not None and time.monotonic() >= deadline):
                                raise too_slow()
                            total += len(chunk)
                            if total > max_bytes:
                                raise ApiError(413, "PayloadTooLarge", f"remote file is over the limit of {max_bytes} bytes")
                            chunks.append(chunk)
                        if expired.is_set():  # the watchdog cut the body short
                            raise too_slow()
                        return b"".join(chunks)
                except httpx.HTTPError as err:
                    if expired.is_set():
                        raise too_slow() from err
                    raise ApiError(502, "FetchFailed", f"cannot fetch from {urlsplit(url).hostname}: "
                                   f"{type(err).__name__}") from err
            raise ApiError(502, "FetchFailed", "too many redirects")
    finally:
        if watchdog is not None:
            watchdog.cancel()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
