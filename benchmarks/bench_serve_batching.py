"""Dynamic batching in ``pixsight serve``: throughput with batches of up to 16 vs one per request.

Starts the real server twice (``pixsight serve`` subprocesses on free 127.0.0.1 ports, each
over a fresh temporary catalog with an admin key made by ``pixsight keys create``): once
with ``--max-batch 16`` and once with ``--max-batch 1`` (the baseline: one inference per
request). The same concurrent clients POST the same distinct JPEGs (scikit-image photos,
randomly cropped, flipped and brightened, so every upload is new content) to
``/v1/analyze``. Reports throughput, p50/p99 latency, the mean batch size read from
``/metrics``, and the ratio (target >= 1.5x).

    python benchmarks/bench_serve_batching.py [--clients 16] [--requests 400] [--tasks classify,embed]
"""

from __future__ import annotations

import argparse
import io
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

TARGET = 1.5


def make_jpegs(n: int, *, seed: int = 0, side: tuple[int, int] = (320, 640)) -> list[bytes]:
    """``n`` distinct real-looking JPEGs: random crops of scikit-image photos, flipped and
    brightened at random, resized to a random side in ``side``; encoded once, in memory."""
    from skimage import data

    sources = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.stereo_motorcycle()[0],
               np.stack([data.camera()] * 3, -1), data.immunohistochemistry(), data.hubble_deep_field()]
    rng = np.random.default_rng(seed)
    out: list[bytes] = []
    seen: set[bytes] = set()
    while len(out) < n:
        img = sources[len(out) % len(sources)]
        h, w = img.shape[:2]
        s = int(rng.integers(min(h, w) // 2, min(h, w) + 1))
        y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        pil = Image.fromarray(np.ascontiguousarray(img[y:y + s, x:x + s]))
        if rng.random() < 0.5:
            pil = pil.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        pil = ImageEnhance.Brightness(pil).enhance(float(rng.uniform(0.7, 1.3)))
        target = int(rng.integers(side[0], side[1] + 1))
        pil = pil.resize((target, int(target * rng.uniform(0.7, 1.0))), Image.Resampling.BILINEAR)
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=88)
        blob = buf.getvalue()
        if blob not in seen:  # distinct bytes -> distinct sha256
            seen.add(blob)
            out.append(blob)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pixsight", *args]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PIXSIGHT_HOME", str(ROOT / ".pixsight-home"))
    return env


@dataclass
class Server:
    """A ``pixsight serve`` subprocess over a fresh catalog, with an admin key."""

    proc: subprocess.Popen
    url: str
    key: str
    db: Path
    log: Path
    tmp: tempfile.TemporaryDirectory = field(repr=False)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.tmp.cleanup()


def start_server(serve_args: list[str], *, ready_timeout_s: float = 300.0) -> Server:
    """Create an admin key with ``pixsight keys create``, start ``pixsight serve`` on a free
    port, and wait until ``/readyz`` answers 200 (models loaded)."""
    import httpx

    tmp = tempfile.TemporaryDirectory(prefix="pixsight-bench-serve-")
    db = Path(tmp.name) / "catalog.sqlite"
    made = subprocess.run(_cli("keys", "create", "--role", "admin", "--name", "bench", "--db", str(db)),
                          capture_output=True, text=True, env=_env(), timeout=120)
    found = re.search(r"pxs_[0-9a-f]{8}_[A-Za-z0-9_-]{43}", made.stdout)
    if made.returncode != 0 or not found:
        tmp.cleanup()
        raise SystemExit(f"pixsight keys create failed ({made.returncode}): {made.stderr.strip()[-500:]}")
    port = free_port()
    log = Path(tmp.name) / "server.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(_cli("serve", "--db", str(db), "--host", "127.0.0.1", "--port", str(port),
                                     *serve_args), stdout=sink, stderr=subprocess.STDOUT, env=_env())
    server = Server(proc=proc, url=f"http://127.0.0.1:{port}", key=found.group(0), db=db, log=log, tmp=tmp)
    deadline = time.monotonic() + ready_timeout_s
    with httpx.Client(timeout=5.0) as client:
        while True:
            if proc.poll() is not None:
                text = log.read_text(errors="replace")[-2000:]
                server.tmp.cleanup()
                raise SystemExit(f"pixsight serve exited with {proc.returncode}:\n{text}")
            try:
                if client.get(server.url + "/readyz").status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                server.stop()
                raise SystemExit(f"pixsight serve was not ready within {ready_timeout_s:.0f} s")
            time.sleep(0.25)


def batch_stats(server: Server) -> tuple[float, float]:
    """(sum, count) of ``pixsight_batch_size`` from ``/metrics``."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(server.url + "/metrics", headers=server.headers, timeout=10).text
    total = count = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "pixsight_batch_size_sum":
                total = s.value
            elif s.name == "pixsight_batch_size_count":
                count = s.value
    return total, count


@dataclass
class LoadResult:
    seconds: float
    latencies: list[float]
    statuses: dict[int, int]

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies, q) * 1000) if self.latencies else float("nan")


def multipart_body(name: str, data: bytes, boundary: str = "pixsightbenchboundary") -> tuple[bytes, str]:
    """A ready-made ``multipart/form-data`` body with one ``file`` field (built once, before
    timing, so the load generator spends its CPU on sending, not on encoding)."""
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post_all(server: Server, images: list[bytes], *, clients: int, offset: int = 0) -> LoadResult:
    """``clients`` threads, each with its own keep-alive ``http.client`` connection, POST every
    image once (shared counter), as fast as answers come back. The client is the standard
    library's: on a 2-core machine the load generator shares the CPU with the server, so it
    must be cheap (pre-built bodies, no per-request encoding)."""
    import http.client
    from urllib.parse import urlsplit

    host = urlsplit(server.url)
    bodies = [multipart_body(f"img{offset + i}.jpg", data) for i, data in enumerate(images)]
    lock = threading.Lock()
    nxt = [0]
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    def worker() -> None:
        conn = http.client.HTTPConnection(host.hostname, host.port, timeout=120.0)
        try:
            while True:
                with lock:
                    i = nxt[0]
                    nxt[0] += 1
                if i >= len(bodies):
                    return
                body, ctype = bodies[i]
                t0 = time.perf_counter()
                try:
                    conn.request("POST", "/v1/analyze", body=body,
                                 headers={**server.headers, "Content-Type": ctype})
                    response = conn.getresponse()
                    response.read()
                    code = response.status
                except (OSError, http.client.HTTPException):
                    code = -1
                    conn.close()
                    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=120.0)
                dt = time.perf_counter() - t0
                with lock:
                    statuses[code] = statuses.get(code, 0) + 1
                    if code == 200:
                        latencies.append(dt)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return LoadResult(time.perf_counter() - t0, latencies, statuses)


def run_mode(max_batch: int, images: list[bytes], warmup: list[bytes], args: argparse.Namespace) -> dict:
    serve_args = ["--tasks", args.tasks, "--max-batch", str(max_batch), "--batch-wait-ms", str(args.batch_wait_ms),
                  "--queue-size", str(max(64, args.clients * 4)), "--rate-limit", "1000000/min",
                  "--rate-burst", "1000000", "--drift-interval", "3600"]
    server = start_server(serve_args)
    try:
        post_all(server, warmup, clients=args.clients, offset=len(images))  # load sessions, fill caches
        before = batch_stats(server)
        result = post_all(server, images, clients=args.clients)
        after = batch_stats(server)
    finally:
        server.stop()
    batches = after[1] - before[1]
    return {"max_batch": max_batch, "result": result,
            "throughput": result.ok / result.seconds if result.seconds > 0 else 0.0,
            "mean_batch": (after[0] - before[0]) / batches if batches else float("nan")}


def model_ceiling(seconds: float = 3.0) -> tuple[float, float]:
    """ms per image of the classify/embed ONNX model alone, one image per call vs batches of 8,
    in a session set up like the server's (both cores, no spinning): the most batching can buy
    on this machine before any per-request work."""
    sys.path.insert(0, str(ROOT / "src"))
    from pixsight.core.config import AnalyzeConfig
    from pixsight.pipeline.analyzer import Analyzer

    with Analyzer(AnalyzeConfig(tasks=("classify", "embed"))) as analyzer:
        stage = analyzer.stages[0]
        session = getattr(stage, "_session", None)
        if session is None:  # the stage runs in another process: no direct session to time
            return float("nan"), float("nan")
        x = np.random.default_rng(0).random((8, 3, stage._size, stage._size), dtype=np.float32)
        out = []
        for bs in (1, 8):
            session.run(stage._fetch, {stage._input: x[:bs]})
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                session.run(stage._fetch, {stage._input: x[:bs]})
                n += bs
            out.append((time.perf_counter() - t0) / n * 1000)
    return out[0], out[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    ap.add_argument("--requests", type=int, default=400, help="measured requests per mode (default 400)")
    ap.add_argument("--warmup", type=int, default=32, help="unmeasured requests first (default 32)")
    ap.add_argument("--tasks", default="classify,embed", help="server tasks (default classify,embed)")
    ap.add_argument("--max-batch", type=int, default=16, help="batched mode's --max-batch (default 16)")
    ap.add_argument("--batch-wait-ms", type=float, default=5.0, help="server --batch-wait-ms (default 5)")
    args = ap.parse_args()
    if args.clients < 1 or args.requests < 1 or args.warmup < 0:
        ap.error("--clients and --requests must be >= 1, --warmup >= 0")

    t0 = time.perf_counter()
    blobs = make_jpegs(args.requests + args.warmup)
    images, warmup = blobs[:args.requests], blobs[args.requests:]
    print(f"{len(blobs)} distinct JPEGs ({sum(map(len, blobs)) / len(blobs) / 1024:.0f} KiB mean) in "
          f"{time.perf_counter() - t0:.1f} s; {args.clients} clients, {args.requests} requests per mode, "
          f"tasks {args.tasks}; cpu count {os.cpu_count()}", flush=True)
    rows = []
    for max_batch in (args.max_batch, 1):
        print(f"... pixsight serve --max-batch {max_batch}", flush=True)
        rows.append(run_mode(max_batch, images, warmup, args))

    print(f"\n{'mode':<26}{'img/s':>9}{'p50 ms':>10}{'p99 ms':>10}{'mean batch':>12}{'ok':>6}{'other':>8}")
    for row in rows:
        r: LoadResult = row["result"]
        other = {k: v for k, v in r.statuses.items() if k != 200}
        name = f"--max-batch {row['max_batch']}" + (" (baseline)" if row["max_batch"] == 1 else "")
        print(f"{name:<26}{row['throughput']:>9.1f}{r.pct(50):>10.0f}{r.pct(99):>10.0f}"
              f"{row['mean_batch']:>12.2f}{r.ok:>6}{str(other or '-'):>8}")
    batched, single = rows
    ratio = batched["throughput"] / single["throughput"] if single["throughput"] > 0 else float("nan")
    failed = any(set(row["result"].statuses) - {200} for row in rows)
    ok = ratio >= TARGET and not failed
    if failed:
        print("some requests did not answer 200 (see the table)")
    one, eight = model_ceiling()
    print(f"model alone (ONNX Runtime, same session settings): {one:.2f} ms/img one per call, {eight:.2f} ms/img "
          f"in batches of 8 -> batching can buy at most {one / eight:.2f}x of the model's time on this machine")
    print(f"RATIO batched/unbatched = {ratio:.2f}x (target >= {TARGET}x) {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
