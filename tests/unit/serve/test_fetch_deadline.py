"""fetch_url has a total deadline beside the per-read timeout (issue 9, item 8).

A local server thread trickles one byte every 0.2 s: in the body, in the headers, or not at
all after connecting; each download must fail with 504 FetchTimeout soon after the deadline.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from pixsight.core.errors import ConfigError
from pixsight.serve.auth import ApiError
from pixsight.serve.security import fetch_url
from pixsight.serve.settings import ServeSettings

_DEADLINE = 1.0
_SLACK = 1.5


class _SlowServer:
    """Answers each connection according to ``mode``, one byte per ``interval`` seconds."""

    def __init__(self, mode: str, interval: float = 0.2) -> None:
        self.mode, self.interval = mode, interval
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n"
        try:
            conn.recv(65536)
            if self.interval == 0:
                conn.sendall(head + b"x" * 100000)
                trickle = b""
                self.stop.set()
            elif self.mode == "body":
                conn.sendall(head)
                trickle = b"x" * 100000
            elif self.mode == "headers":
                trickle = head + b"x" * 100000
            else:  # silent
                trickle = b""
            for byte in trickle:
                if self.stop.is_set():
                    break
                conn.sendall(bytes([byte]))
                time.sleep(self.interval)
            while trickle == b"" and not self.stop.is_set():
                time.sleep(0.05)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        self.thread.join(2)


@pytest.mark.parametrize("mode", ["body", "headers", "silent"])
def test_slow_download_stops_at_the_deadline(mode):
    server = _SlowServer(mode)
    try:
        started = time.monotonic()
        with pytest.raises(ApiError) as err:
            fetch_url(f"http://127.0.0.1:{server.port}/slow.png", allowed=("127.0.0.1",),
                      max_bytes=1_000_000, timeout_s=5.0, deadline_s=_DEADLINE)
        took = time.monotonic() - started
    finally:
        server.close()
    assert (err.value.status_code, err.value.error_type) == (504, "FetchTimeout"), err.value.message
    assert "did not finish within 1 s" in err.value.message
    assert _DEADLINE * 0.9 <= took < _DEADLINE + _SLACK, took


def test_fast_download_is_unaffected():
    server = _SlowServer("body", interval=0.0)
    try:
        data = fetch_url(f"http://127.0.0.1:{server.port}/fast.png", allowed=("127.0.0.1",),
                         max_bytes=1_000_000, timeout_s=5.0, deadline_s=10.0)
    finally:
        server.close()
    assert data == b"x" * 100000


def test_deadline_setting(tmp_path):
    assert ServeSettings(db=tmp_path / "c.sqlite").fetch_deadline_s == 30.0
    with pytest.raises(ConfigError):
        ServeSettings(db=tmp_path / "c.sqlite", fetch_deadline_s=0)
