"""Peak memory of `pixsight analyze` must stay flat as the number of images grows.

Runs the CLI in a child process over 200 and over 2,000 distinct JPEGs (crops of real
photos with noise) and reads each child's peak RSS from the kernel (``wait4``). Prints both
peaks and the ratio; the target is a ratio within 1.10.

Two processes given the same images can peak tens of MB apart (allocator and ONNX Runtime
arena timing), which blurs a ratio of two runs. So the 2,000-image run is also watched from
inside: its peak so far (``VmHWM``) when its 200th result is written, against its peak at
the end. That is the same process over 200 and over 2,000 images, and it is printed as well.
Both must be within 1.10 to PASS.

    python benchmarks/bench_memory.py [--small 200] [--large 2000] [--tasks classify,embed,faces,ocr]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def make_images(folder: Path, n: int, *, seed: int = 0) -> None:
    from skimage import data

    sources = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.stereo_motorcycle()[0]]
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        src = sources[i % len(sources)]
        h, w = src.shape[:2]
        ch, cw = min(h, 240), min(w, 320)
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crop = src[y:y + ch, x:x + cw].astype(np.int16) + rng.integers(-4, 5, (ch, cw, 3))
        Image.fromarray(np.clip(crop, 0, 255).astype(np.uint8)).save(folder / f"img_{i:05d}.jpg", quality=90)


def _hwm_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def peak_rss_mb(cmd: list[str], *, jsonl: Path | None = None, mark_at: int | None = None
                ) -> tuple[float, float, int, float | None]:
    """(peak RSS MB, seconds, exit code, peak RSS MB when ``mark_at`` results were written)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    marked = None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if mark_at and jsonl is not None and marked is None and _lines(jsonl) >= mark_at:
            marked = _hwm_mb(proc.pid)
        time.sleep(0.1)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        sys.stderr.write(proc.stderr.read().decode() if proc.stderr else "")
        raise SystemExit(f"analyze failed with exit code {proc.returncode}")
    return usage.ru_maxrss / 1024, elapsed, proc.returncode, marked


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=200)
    ap.add_argument("--large", type=int, default=2000)
    ap.add_argument("--tasks", default="classify,embed,faces,ocr")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for n in (args.small, args.large):
            folder = Path(tmp) / f"n{n}"
            make_images(folder, n)
            jsonl = Path(tmp) / f"n{n}.jsonl"
            cmd = [sys.executable, "-m", "pixsight", "analyze", str(folder), "--tasks", args.tasks,
                   "--db", str(Path(tmp) / f"n{n}.sqlite"), "--jsonl", str(jsonl), "--no-progress"]
            rss, secs, code, marked = peak_rss_mb(cmd, jsonl=jsonl, mark_at=args.small if n == args.large else None)
            results[n] = (rss, marked)
            print(f"{n:6d} images: peak RSS {rss:7.1f} MB, {secs:6.1f} s ({n / secs:.1f} img/s), exit {code}")
    ratio = results[args.large][0] / results[args.small][0]
    print(f"peak RSS ratio {args.large} vs {args.small} images, two runs: {ratio:.3f} (target <= 1.10)")
    at_small = results[args.large][1]
    ok = ratio <= 1.10
    if at_small:
        within = results[args.large][0] / at_small
        print(f"one run: peak {at_small:.1f} MB after {args.small} images, {results[args.large][0]:.1f} MB after "
              f"{args.large}: ratio {within:.3f} (target <= 1.10)")
        ok = ok and within <= 1.10
    print(f"MEMORY {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
