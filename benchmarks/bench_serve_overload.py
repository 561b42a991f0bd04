"""Overload of ``pixsight serve``: a small queue sheds load fast, never 5xx, memory stays flat.

Starts the real server (``pixsight serve --queue-size 8``, fresh catalog, admin key from
``pixsight keys create``, rate limit off) and lets 64 concurrent clients POST distinct
JPEGs to ``/v1/analyze`` for ~20 s, as fast as answers come back. Reports the count per
HTTP status, the latency of accepted (200) and shed (429 ``Overloaded``) answers, the
throughput of accepted requests, the server's resident memory (process tree, sampled
every 0.5 s) over time, and the latency of ``GET /healthz`` under the same load (the floor of
any answer: on a machine where the clients share the server's cores, shed latency can be
no lower than that).

PASS lines: no 5xx; some requests were actually shed (else the load was too low); shedding
is fast: a shed answer's p50 is at most a fifth of an accepted answer's p50 and its p99 below
the accepted p50 (on 2 cores shared with 64 client threads, the event loop's queueing puts a
floor under any answer, which GET /healthz shows, so an absolute millisecond bound measures the
load generator more than the server); RSS flat in steady state (the mean of the last third
within 10 % of the middle third; the first third holds the allocator's and ONNX Runtime's
warm-up and is reported, not judged).

    python benchmarks/bench_serve_overload.py [--clients 64] [--seconds 20] [--queue-size 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve_batching import Server, make_jpegs, start_server  # noqa: E402

RSS_TOLERANCE = 0.10


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(c) for c in f.read().split())
    except OSError:
        pass
    return out


def tree_rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants in MiB (psutil when installed, else /proc)."""
    try:
        import psutil

        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total / 2**20
    except ImportError:
        pass
    total_kib, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total_kib += int(line.split()[1])
                        break
        except OSError:
            continue
        todo.extend(_children(p))
    return total_kib / 1024


def hammer(server: Server, images: list[bytes], *, clients: int, seconds: float) -> dict:
    """``clients`` threads POST images round-robin for ``seconds``; returns counts and latencies.

    Each thread keeps one ``http.client`` connection and sends pre-built multipart bodies, so
    the load generator (which shares the machine's cores with the server) stays cheap. A
    connection the server closed after an answer is reopened once before a request counts
    as dropped (-1)."""
    import http.client
    from urllib.parse import urlsplit

    from bench_serve_batching import multipart_body

    host = urlsplit(server.url)
    bodies = [multipart_body(f"img{i}.jpg", blob) for i, blob in enumerate(images)]
    lock = threading.Lock()
    stop = threading.Event()
    nxt = [0]
    statuses: dict[int, int] = {}
    latency: dict[int, list[float]] = {}
    errors: list[str] = []

    def connect() -> http.client.HTTPConnection:
        return http.client.HTTPConnection(host.hostname, host.port, timeout=60.0)

    def worker() -> None:
        conn = connect()
        while not stop.is_set():
            with lock:
                i = nxt[0]
                nxt[0] += 1
            body, ctype = bodies[i % len(bodies)]
            t0 = time.perf_counter()
            code = -1
            for attempt in range(2):
                try:
                    conn.request("POST", "/v1/analyze", body=body, headers={**server.headers, "Content-Type": ctype})
                    response = conn.getresponse()
                    text = response.read()
                    code = response.status
                    if code >= 500 and len(errors) < 5:
                        errors.append(text[:300].decode(errors="replace"))
                    if response.will_close:
                        conn.close()
                    break
                except (OSError, http.client.HTTPException) as err:
                    conn.close()
                    conn = connect()
                    if attempt == 1 and len(errors) < 5:
                        errors.append(repr(err))
            dt = time.perf_counter() - t0
            with lock:
                statuses[code] = statuses.get(code, 0) + 1
                latency.setdefault(code, []).append(dt)
        conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(120)
    return {"seconds": time.perf_counter() - t0, "statuses": statuses, "latency": latency, "errors": errors}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=64, help="concurrent clients (default 64)")
    ap.add_argument("--seconds", type=float, default=20.0, help="how long to hammer (default 20)")
    ap.add_argument("--queue-size", type=int, default=8, help="server --queue-size (default 8)")
    ap.add_argument("--max-batch", type=int, default=16, help="server --max-batch (default 16)")
    ap.add_argument("--tasks", default="classify,embed", help="server tasks (default classify,embed)")
    ap.add_argument("--warmup", type=float, default=8.0, help="seconds of unmeasured load first (default 8)")
    ap.add_argument("--images", type=int, default=300, help="distinct JPEGs to cycle through (default 300)")
    args = ap.parse_args()
    if args.clients < 1 or args.seconds <= 0 or args.images < 1:
        ap.error("--clients, --seconds and --images must be positive")

    images = make_jpegs(args.images, seed=1)
    server = start_server(["--tasks", args.tasks, "--queue-size", str(args.queue_size), "--max-batch",
                           str(args.max_batch), "--rate-limit", "1000000/min", "--rate-burst", "1000000",
                           "--drift-interval", "3600"])
    samples: list[tuple[float, float]] = []
    health_ms: list[float] = []
    sampling = threading.Event()

    def sample() -> None:
        """RSS every 0.5 s, and the latency of GET /healthz: the floor of any answer under this load."""
        import httpx

        t0 = time.perf_counter()
        with httpx.Client(base_url=server.url, timeout=30.0) as client:
            while not sampling.is_set():
                samples.append((time.perf_counter() - t0, tree_rss_mib(server.proc.pid)))
                h0 = time.perf_counter()
                try:
                    client.get("/healthz")
                    health_ms.append((time.perf_counter() - h0) * 1000)
                except httpx.TransportError:
                    pass
                sampling.wait(0.5)

    try:
        # warm up at full load (the largest batches allocate their buffers), then measure
        hammer(server, images, clients=args.clients, seconds=min(args.warmup, args.seconds))
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        run = hammer(server, images, clients=args.clients, seconds=args.seconds)
        sampling.set()
        sampler.join()
        alive = server.proc.poll() is None
    finally:
        server.stop()

    statuses: dict[int, int] = run["statuses"]
    total = sum(statuses.values())
    print(f"\n{args.clients} clients for {run['seconds']:.1f} s against --queue-size {args.queue_size} "
          f"--max-batch {args.max_batch} (tasks {args.tasks}; cpu count {os.cpu_count()})")
    print(f"{'status':>8}{'count':>9}{'share':>8}{'p50 ms':>10}{'p99 ms':>10}")
    for code in sorted(statuses):
        lat = np.asarray(run["latency"][code]) * 1000
        print(f"{code:>8}{statuses[code]:>9}{statuses[code] / total:>8.1%}{np.percentile(lat, 50):>10.1f}"
              f"{np.percentile(lat, 99):>10.1f}")
    accepted = statuses.get(200, 0) / run["seconds"]
    print(f"accepted throughput: {accepted:.1f} img/s")
    if health_ms:
        print(f"GET /healthz under this load (floor of any answer): p50 {np.percentile(health_ms, 50):.1f} ms, "
              f"p99 {np.percentile(health_ms, 99):.1f} ms")
    for text in run["errors"]:
        print(f"  error sample: {text}")

    rss = np.array([m for _, m in samples])
    third = max(1, len(rss) // 3)
    first, middle, last = (float(rss[:third].mean()), float(rss[third:-third].mean() if len(rss) > 2 * third
                           else rss.mean()), float(rss[-third:].mean()))
    growth = (last - middle) / middle if middle > 0 else float("nan")
    print(f"server RSS (MiB, {len(rss)} samples): min {rss.min():.0f}  max {rss.max():.0f}  first third "
          f"{first:.0f}  middle third {middle:.0f}  last third {last:.0f}  (first->last {(last - first) / first:+.1%}, "
          f"middle->last {growth:+.1%})")
    marks = np.linspace(0, len(samples) - 1, num=min(len(samples), 11)).astype(int)
    print("RSS over time (s: MiB): " + "  ".join(f"{samples[i][0]:.0f}: {samples[i][1]:.0f}" for i in marks))

    five_xx = sum(v for k, v in statuses.items() if k >= 500 or k < 0)
    shed = np.asarray(run["latency"].get(429, [])) * 1000
    accepted_ms = np.asarray(run["latency"].get(200, [])) * 1000
    nan = float("nan")
    shed_p50 = float(np.percentile(shed, 50)) if len(shed) else nan
    shed_p99 = float(np.percentile(shed, 99)) if len(shed) else nan
    ok_p50 = float(np.percentile(accepted_ms, 50)) if len(accepted_ms) else nan
    checks = [
        (f"5xx or dropped connections = {five_xx} (must be 0)", five_xx == 0 and alive),
        (f"shed (429) answers = {len(shed)} (must be > 0: the queue overflowed)", len(shed) > 0),
        (f"shed p50 = {shed_p50:.1f} ms <= accepted p50 / 5 = {ok_p50 / 5:.1f} ms", shed_p50 <= ok_p50 / 5),
        (f"shed p99 = {shed_p99:.1f} ms < accepted p50 = {ok_p50:.1f} ms", shed_p99 < ok_p50),
        (f"RSS steady state, middle->last third = {growth:+.1%} (within {RSS_TOLERANCE:.0%})",
         abs(growth) <= RSS_TOLERANCE),
        (f"accepted throughput = {accepted:.1f} img/s (> 0)", accepted > 0),
    ]
    for text, ok in checks:
        print(f"{text}: {'PASS' if ok else 'FAIL'}")
    ok = all(ok for _, ok in checks)
    print(f"OVERLOAD {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
