"""``pixsight serve`` as a real uvicorn process caps the request head (issue 9, item 4).

Raw sockets send heads of a few MiB to ``/healthz`` (no key) and to an authenticated route;
each gets 431 / 414 or a closed connection, the server stays up, and its resident memory,
read from ``/proc/<pid>/status``, barely moves.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .conftest import free_port as _free_port
from .conftest import run_cli
from .conftest import wait_ready as _wait_ready

pytestmark = pytest.mark.slow

_MIB = 1024 * 1024


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _send_raw(port: int, head: bytes, body_size: int = 0, chunk: int = 256 * 1024) -> bytes:
    """Send ``head`` (plus ``body_size`` filler bytes of the last header), then read the answer;
    b'' when the server closed (or reset) the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        try:
            sock.sendall(head)
            sent = 0
            filler = b"a" * chunk
            while sent < body_size:
                sock.sendall(filler[: min(chunk, body_size - sent)])
                sent += chunk
            sock.sendall(b"\r\n\r\n")
        except OSError:  # the server closed the connection while we were still sending
            pass
        answer = b""
        try:
            while True:
                part = sock.recv(65536)
                if not part:
                    break
                answer += part
        except OSError:
            pass
        return answer


def _status(answer: bytes) -> int | None:
    if not answer:
        return None
    return int(answer.split(b" ", 2)[1])


def test_oversized_heads_are_refused_and_memory_stays_flat(tmp_path: Path):
    db = tmp_path / "c.sqlite"
    created = run_cli("keys", "create", "--role", "viewer", "--name", "e2e", "--db", str(db))
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pixsight", "serve", "--port", str(port), "--db", str(db), "--no-models"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ},
    )
    try:
        _wait_ready(base, proc)
        auth = {"Authorization": f"Bearer {key}"}
        # normal heads, including a large-but-allowed one, still work
        assert httpx.get(f"{base}/healthz").status_code == 200
        assert httpx.get(f"{base}/v1/images", headers={**auth, "X-Pad": "p" * 40_000}).status_code == 200
        before = _rss_kib(proc.pid)

        for path, extra in [("/healthz", b""), ("/v1/images", f"Authorization: Bearer {key}\r\n".encode())] * 2:
            head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode() + extra + b"X-Big: "
            status = _status(_send_raw(port, head, body_size=4 * _MIB))
            assert status in (431, None), status
            assert proc.poll() is None
            # many small headers add up the same way
            many = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 1000) for i in range(200))
            status = _status(_send_raw(port, f"GET {path} HTTP/1.1\r\nHost: x\r\n".encode() + extra + many))
            assert status in (431, None), status

        long_url = b"GET /healthz?" + b"q" * (2 * _MIB) + b" HTTP/1.1\r\nHost: x\r\n"
        assert _status(_send_raw(port, long_url)) in (414, None)

        time.sleep(0.5)
        after = _rss_kib(proc.pid)
        grown_mib = (after - before) / 1024
        print(f"server RSS before {before / 1024:.1f} MiB, after {after / 1024:.1f} MiB ({grown_mib:+.1f} MiB)")
        assert grown_mib < 16, (before, after)

        # still up and answering
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{base}/v1/images", headers=auth).status_code == 200
    finally:
        proc.kill()
        proc.wait()
