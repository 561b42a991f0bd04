"""``pixsight serve`` as a real process: keys, readiness, analysis, metrics, SIGTERM drain."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image
from skimage import data

from .conftest import free_port as _free_port
from .conftest import run_cli
from .conftest import wait_ready as _wait_ready

pytestmark = pytest.mark.slow


def _jpeg(pixels) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def test_serve_analyze_metrics_and_sigterm_drain(tmp_path: Path):
    db = tmp_path / "c.sqlite"
    created = run_cli("keys", "create", "--role", "viewer", "--name", "e2e", "--db", str(db))
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    # a long batch wait keeps a lone request queued for ~1.5 s: in flight when SIGTERM comes
    proc = subprocess.Popen(
        [sys.executable, "-m", "pixsight", "serve", "--port", str(port), "--db", str(db),
         "--tasks", "classify,embed", "--batch-wait-ms", "1500", "--drain-timeout", "8"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ},
    )
    try:
        _wait_ready(base, proc)
        headers = {"Authorization": f"Bearer {key}"}
        assert httpx.get(f"{base}/v1/keys", headers=headers).status_code == 403  # viewer is not admin
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}

        r = httpx.post(f"{base}/v1/analyze", files={"file": ("cat.jpg", _jpeg(data.chelsea()))},
                       headers=headers, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "ok" and r.json()["classify"]["labels"]
        assert r.headers["content-security-policy"].startswith("default-src 'self'")

        m = httpx.get(f"{base}/metrics", headers=headers)
        if m.status_code != 404:  # the metrics module is present
            assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain")
            assert "pixsight_images_analyzed_total" in m.text

        outcome: dict = {}

        def in_flight() -> None:
            try:
                resp = httpx.post(f"{base}/v1/analyze", files={"file": ("coffee.jpg", _jpeg(data.coffee()))},
                                  headers=headers, timeout=60)
                outcome["status"], outcome["body"] = resp.status_code, resp.json()
            except Exception as err:  # noqa: BLE001 - reported by the assertion below
                outcome["error"] = repr(err)
            outcome["done"] = time.monotonic()

        worker = threading.Thread(target=in_flight)
        worker.start()
        time.sleep(0.5)
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        worker.join(timeout=30)
        code = proc.wait(timeout=20)
        assert "error" not in outcome, outcome
        assert outcome["done"] > signalled  # it really was in flight
        assert outcome["status"] == 200 and outcome["body"]["status"] == "ok"
        assert code == 0, proc.stderr.read()
        assert time.monotonic() - signalled < 10
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{base}/healthz", timeout=2)
        # both analyses were stored, the second during the drain
        import sqlite3

        with sqlite3.connect(db) as con:
            assert con.execute("SELECT COUNT(*) FROM analyses").fetchone()[0] == 2
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
