"""A bounded load test of a real uvicorn server on 127.0.0.1 (count and time bounded).

24 concurrent clients send 96 distinct images to a server with a deliberately small queue.
The server must batch (some batches hold more than one image), shed what does not fit with
429 ``Overloaded`` + ``Retry-After`` at once, never answer 5xx or drop a connection, answer
every accepted image with its own analysis, and, once clients retry as told, hold every
image exactly once in an intact catalog.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import socket
import sqlite3
import threading
import time

import numpy as np
import pytest
from PIL import Image
from skimage import data

from pixsight.core.config import AnalyzeConfig
from pixsight.pipeline.analyzer import Analyzer
from tests.unit.serve.kit import make_app

uvicorn = pytest.importorskip("uvicorn")

pytestmark = pytest.mark.slow

CLIENTS = 24
PER_CLIENT = 4
BOUNDARY = "pixsightloadtest"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _jpegs(n: int) -> list[bytes]:
    rng = np.random.default_rng(7)
    sources = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    out = []
    for i in range(n):
        img = sources[i % len(sources)]
        h, w = img.shape[:2]
        y, x = int(rng.integers(0, h // 4)), int(rng.integers(0, w // 4))
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(img[y:y + h // 2, x:x + w // 2])).save(buf, "JPEG", quality=85)
        out.append(buf.getvalue())
    assert len({hashlib.sha256(b).hexdigest() for b in out}) == n
    return out


def _body(name: str, blob: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + blob + f"\r\n--{BOUNDARY}--\r\n".encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("load")
    analyzer = Analyzer(AnalyzeConfig(tasks=("classify", "embed")))
    app, keys = make_app(tmp, analyzer=analyzer, max_batch=8, batch_wait_ms=10, queue_size=4,
                         rate_limit_per_min=1e9, rate_limit_burst=10**9, drift_interval_s=3600)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield app, port, keys["viewer"]
    srv.should_exit = True
    thread.join(30)
    analyzer.close()


def test_concurrent_load_batches_sheds_without_5xx_and_loses_nothing(server):
    app, port, key = server
    images = _jpegs(CLIENTS * PER_CLIENT)
    shas = [hashlib.sha256(b).hexdigest() for b in images]
    first_try: dict[int, int] = {}
    answers: dict[int, dict] = {}
    problems: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}

    def client(slot: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        start.wait()
        for i in range(slot * PER_CLIENT, (slot + 1) * PER_CLIENT):
            tries = 0
            while True:
                tries += 1
                t0 = time.perf_counter()
                try:
                    conn.request("POST", "/v1/analyze", body=_body(f"img{i}.jpg", images[i]), headers=headers)
                    resp = conn.getresponse()
                    body = json.loads(resp.read())
                except (OSError, http.client.HTTPException) as err:
                    with lock:
                        problems.append(f"img{i}: connection failed: {err!r}")
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    break
                elapsed = time.perf_counter() - t0
                with lock:
                    first_try.setdefault(i, resp.status)
                if resp.status == 200:
                    with lock:
                        answers[i] = body
                    break
                if resp.status == 429 and body["error"]["type"] == "Overloaded" and resp.getheader("Retry-After"):
                    if elapsed > 2.0:
                        with lock:
                            problems.append(f"img{i}: shedding took {elapsed:.2f} s")
                    if resp.will_close:
                        conn.close()
                    time.sleep(min(float(resp.getheader("Retry-After")), 1.0) * 0.2)  # a polite, quick retry
                    if tries < 200:
                        continue
                with lock:
                    problems.append(f"img{i}: HTTP {resp.status} {body}")
                break
        conn.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(s,)) for s in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert time.monotonic() - t0 < 120, "the load test ran past its time bound"
    assert not problems, problems[:5]
    assert sorted(answers) == list(range(len(images)))
    for i, body in answers.items():  # every caller got the analysis of its own image
        assert body["status"] == "ok" and body["sha256"] == shas[i] and body["path"] == f"img{i}.jpg"
        assert body["classify"]["labels"], i
    assert 429 in first_try.values(), "the small queue never overflowed: the load was too light to test shedding"

    px = app.state.px
    assert px.batcher.images >= len(images) and px.batcher.batches < px.batcher.images  # some batches > 1
    db = px.settings.db
    with sqlite3.connect(db) as con:
        stored = [r[0] for r in con.execute("SELECT sha256 FROM images")]
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert sorted(stored) == sorted(shas)  # every image exactly once
