"""Run the app under uvicorn; drain in bounded time on SIGTERM / SIGINT.

On a signal the server at once answers ``/readyz`` with 503 (load balancers stop sending),
stops accepting connections, lets requests in flight finish, drains the batcher's queue
and exits 0 — all within about ``settings.drain_timeout_s``.

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

__all__ = ["run_server", "ensure_keys", "DrainingServer", "ServerStartError"]

log = logging.getLogger(__name__)

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ServerStartError(PixsightError):
    """uvicorn could not start (port in use, permission denied ...)."""


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
        app, host=settings.host, port=settings.port, lifespan="on", proxy_headers=False,
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
