"""Peak memory of `pixsight analyze` must stay flat as the number of images grows.

Runs the CLI in a child process over 200 and over 2,000 distinct JPEGs (crops of real
photos with noise) and reads each child's peak RSS from the kernel (``wait4``). Prints both
peaks and the ratio; the target is a ratio within 1.10.

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


def peak_rss_mb(cmd: list[str]) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        sys.stderr.write(proc.stderr.read().decode() if proc.stderr else "")
        raise SystemExit(f"analyze failed with exit code {proc.returncode}")
    return usage.ru_maxrss / 1024, elapsed, proc.returncode


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
            cmd = [sys.executable, "-m", "pixsight", "analyze", str(folder), "--tasks", args.tasks,
                   "--db", str(Path(tmp) / f"n{n}.sqlite"), "--jsonl", str(Path(tmp) / f"n{n}.jsonl"), "--no-progress"]
            rss, secs, code = peak_rss_mb(cmd)
            results[n] = rss
            print(f"{n:6d} images: peak RSS {rss:7.1f} MB, {secs:6.1f} s ({n / secs:.1f} img/s), exit {code}")
    ratio = results[args.large] / results[args.small]
    print(f"peak RSS ratio {args.large} vs {args.small} images: {ratio:.3f} (target <= 1.10)")
    return 0 if ratio <= 1.10 else 1


if __name__ == "__main__":
    raise SystemExit(main())
