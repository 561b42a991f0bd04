"""Run the app under uvicorn; drain in bounded time on SIGTERM / SIGINT.

On a signal the server at once answers ``/readyz`` with 503 (load balancers stop sending),
stops accepting connections, lets requests in flight finish, drains the batcher's queue
and exits 0 — all within about ``settings.drain_timeout_s``.

The request head is capped (SECURITY.md: unauthenticated requests must not cost unbounded
memory): a request target over ``settings.max_request_line_bytes`` is answered 414, a request
line plus headers over ``settings.max_header_bytes`` 431, and the connection is closed. With
httptools (uvicorn's default when installed) :class:`HeadLimitedHttpToolsProtocol` counts the
bytes; without it, h11's ``max_incomplete_event_size`` does.

>>> from pixsight.serve.settings import ServeSettings
>>> import tempfile, os
>>> ensure_keys(ServeSettings(db=os.path.join(tempfile.mkdtemp(), "c.sqlite"), host="0.0.0.0"))
Traceback (most recent call last):
...
pixsight.core.errors.PixsightError: binding 0.0.0.0 needs API keys: pixsight keys create --role admin
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
from typing import Any, Callable, Iterator

import uvicorn

from ..core.errors import PixsightError
from .keys import KeyStore
from .settings import ServeSettings

__all__ = ["run_server", "ensure_keys", "DrainingServer", "ServerStartError", "http_protocol"]

log = logging.getLogger(__name__)

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ServerStartError(PixsightError):
    """uvicorn could not start (port in use, permission denied ...)."""


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing an over-size request head."""


def _head_response(status: int, reason: str, message: str, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    body = message.encode("ascii")
    lines = [f"HTTP/1.1 {status} {reason}\r\n".encode("ascii")]
    lines += [name + b": " + value + b"\r\n" for name, value in default_headers]
    lines += [b"content-type: text/plain; charset=utf-8\r\n", b"content-length: %d\r\n" % len(body),
              b"connection: close\r\n", b"\r\n", body]
    return b"".join(lines)


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is not installed: run_server uses h11 and its own limit
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

if HttpToolsProtocol is not None:

    class HeadLimitedHttpToolsProtocol(HttpToolsProtocol):  # type: ignore[misc,valid-type]
        """uvicorn's httptools protocol with a cap on the request head.

        httptools keeps a header's name and value in memory until the header is complete
        and has no size limit of its own, so the bytes fed while the head is incomplete are
        counted here: the request target in ``on_url`` (called for every piece), the whole
        head after each ``feed_data``. Past a cap the client gets 414 / 431 and the
        connection is closed before anything reaches the app. A head that begins in the
        middle of a read (pipelining) is counted from the next read on, so the cap holds
        to within one read buffer.
        """

        max_request_line_bytes = 8 * 1024
        max_header_bytes = 64 * 1024

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            self._px_in_head = True
            self._px_head_bytes = self._px_field_bytes = 0
            self._px_completed = False
            self._px_reject: tuple[int, str, str] | None = None
            super().connection_made(transport)

        def data_received(self, data: bytes) -> None:
            if self._px_reject is not None:
                return
            self._px_completed = False
            super().data_received(data)  # a callback's _HeadTooLarge ends up in send_400_response
            if self._px_reject is not None or self.transport.is_closing():
                return
            if self._px_in_head and not self._px_completed:
                self._px_head_bytes += len(data)
                if self._px_head_bytes > self.max_header_bytes:
                    self._refuse(431, "Request Header Fields Too Large", "request headers too large")

        def on_message_begin(self) -> None:
            self._px_in_head = True
            self._px_head_bytes = self._px_field_bytes = 0
            super().on_message_begin()

        def on_url(self, url: bytes) -> None:
            super().on_url(url)
            if len(self.url) > self.max_request_line_bytes:
                self._px_reject = (414, "URI Too Long", "request line too long")
                raise _HeadTooLarge

        def on_header(self, name: bytes, value: bytes) -> None:
            super().on_header(name, value)
            self._px_field_bytes += len(name) + len(value) + 4
            if self._px_field_bytes > self.max_header_bytes:
                self._px_reject = (431, "Request Header Fields Too Large", "request headers too large")
                raise _HeadTooLarge

        def on_headers_complete(self) -> None:
            self._px_in_head = False
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._px_completed = True
            super().on_message_complete()

        def send_400_response(self, msg: str) -> None:
            if self._px_reject is None:
                super().send_400_response(msg)
            else:
                self._refuse(*self._px_reject)

        def _refuse(self, status: int, reason: str, message: str) -> None:
            self._px_reject = (status, reason, message)
            log.warning("refused a request from %s: %s (%d)", self.client[0] if self.client else "?", message, status)
            if not self.transport.is_closing():
                self.transport.write(_head_response(status, reason, message, self.server_state.default_headers))
                self.transport.close()

    __all__.append("HeadLimitedHttpToolsProtocol")


def http_protocol(settings: ServeSettings) -> dict[str, Any]:
    """``uvicorn.Config`` keyword arguments that cap the request head at ``settings``' limits."""
    if HttpToolsProtocol is None:
        return {"http": "h11", "h11_max_incomplete_event_size": settings.max_header_bytes}
    limited = type("HeadLimitedHttpToolsProtocol", (HeadLimitedHttpToolsProtocol,), {
        "max_request_line_bytes": settings.max_request_line_bytes,
        "max_header_bytes": settings.max_header_bytes,
    })
    return {"http": limited}


def ensure_keys(settings: ServeSettings) -> str | None:
    """Make sure the server can be used safely; returns a newly created key, if any.

    No live keys in the catalog: on a loopback address one admin key named ``local-admin``
    is created and returned (the caller shows it once); on any other address this refuses.

    Raises:
        PixsightError: a non-loopback ``host`` without keys.
    """
    keys = KeyStore(settings.db)
    if keys.count() > 0:
        return None
    if not settings.is_loopback():
        raise PixsightError(f"binding {settings.host} needs API keys: pixsight keys create --role admin")
    _, token = keys.create("admin", "local-admin")
    return token


class DrainingServer(uvicorn.Server):
    """uvicorn's server with pixsight's signal handling: mark the app draining, then stop,
    and exit 0 (uvicorn itself re-raises the signal after shutting down, which would end
    the process with -SIGTERM)."""

    def __init__(self, config: uvicorn.Config, *, on_signal: Callable[[], None], drain_s: float = 10.0) -> None:
        super().__init__(config)
        self._on_signal = on_signal
        self._drain_s = drain_s

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in _SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self.should_exit:
            if sig == signal.SIGINT:
                self.force_exit = True  # a second Ctrl-C: stop waiting
            return
        log.warning("received %s: draining (up to %.0f s)", signal.Signals(sig).name, self._drain_s)
        self._on_signal()
        self.should_exit = True


def run_server(settings: ServeSettings, *, on_new_key: Callable[[str], None] | None = None,
               on_starting: Callable[[], None] | None = None) -> None:
    """Serve ``settings`` until a signal; returns after a clean drain.

    ``on_new_key(token)`` is called when a ``local-admin`` key was just created (the CLI
    prints it once to stderr); ``on_starting()`` once every check passed, just before binding.

    Raises:
        PixsightError: unsafe binding without keys, bad tasks/model/config (before binding).
        ServerStartError: uvicorn could not start.
    """
    from .app import create_app

    if settings.load_models:
        settings.analyze_config()  # refuse bad --tasks/--model/--config before binding
    token = ensure_keys(settings)
    if token is not None and on_new_key is not None:
        on_new_key(token)
    app = create_app(settings)
    px = app.state.px

    def on_signal() -> None:
        px.draining = True
        px.drain_deadline = time.monotonic() + settings.drain_timeout_s
        px.set_ready(False)

    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, lifespan="on", proxy_headers=False, **http_protocol(settings),
        server_header=False, timeout_graceful_shutdown=max(1, math.ceil(settings.drain_timeout_s)),
        log_level=logging.getLogger().getEffectiveLevel() if logging.getLogger().handlers else "info",
    )
    server = DrainingServer(config, on_signal=on_signal, drain_s=settings.drain_timeout_s)
    if on_starting is not None:
        on_starting()
    try:
        server.run()
    except SystemExit as err:  # uvicorn exits on a failed bind / start-up
        if err.code not in (0, None):
            raise ServerStartError(f"the server did not start on {settings.host}:{settings.port} "
                                   "(see the messages above)") from None
    if not server.started:
        raise ServerStartError(f"the server did not start on {settings.host}:{settings.port} (see the messages above)")
