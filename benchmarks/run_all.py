"""Run every benchmark in this folder, one after another (``make bench``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = [
    ["bench_classify.py", "--short-side", "224", "--skip-int8"],
    ["bench_classify.py"],
    ["bench_pipeline.py", "--n-copies", "2"],
    ["bench_memory.py"],
    ["bench_ocr_cer.py"],
    ["bench_faces_recall.py"],
    ["bench_vector_search.py", "--queries", "200"],
    ["bench_eval.py"],
    ["bench_transfer.py"],
    ["bench_train_classify.py"],
    ["bench_train_detect.py"],
    ["bench_train_segment.py"],
    ["bench_serve_batching.py"],
    ["bench_serve_overload.py"],
]


def main() -> int:
    failed = 0
    for args in RUNS:
        print(f"\n=== {' '.join(args)} ===", flush=True)
        failed += subprocess.call([sys.executable, str(HERE / args[0]), *args[1:]]) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
