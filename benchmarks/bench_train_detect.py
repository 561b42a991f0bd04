"""Detector training target: COCO mAP@0.5 >= 0.90 on synthetic shapes within 15 minutes on CPU.

Synthesises (seeded) the shapes detection data — ``pixsight data synth DIR --task detect
--n 1250``: 1,000 train + 250 val 256x256 images, 3 classes (circle, square, triangle), 0-6
objects each — unless ``--data DIR`` already holds it, trains ``pixsight train detect`` with
its defaults and a time limit (the clock covers training *and* the per-epoch validation),
then scores the best weights on the val split with
:func:`pixsight.evaluate.metrics.detection_metrics` (through the detect task's validation,
i.e. the analyze decode path). Prints mAP@0.5, mAP@[.5:.95], wall time, training images per
second (forward + backward, validation excluded) and validation images per second, and
exits 1 when the target is missed: the best mAP@0.5 is below ``--target``, or no epoch reached
it before the time limit (the time to target counts from the start of training, validation
included).

The target is for 2 idle CPU cores (``OMP_NUM_THREADS=2``); on a shared machine the numbers
are pessimistic. Not part of the test suite.

Run:  OMP_NUM_THREADS=2 python benchmarks/bench_train_detect.py [--data DIR] [--out RUN_DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def ensure_data(folder: Path, *, n: int, seed: int) -> tuple[Path, Path]:
    """The train/val COCO files in ``folder``, synthesised first when missing."""
    from pixsight.data.synth import synth_dataset

    train, val = folder / "train.json", folder / "val.json"
    if not (train.is_file() and val.is_file()):
        t0 = time.perf_counter()
        synth_dataset(folder, task="detect", n=n, seed=seed)
        print(f"synthesised {n} images into {folder} in {time.perf_counter() - t0:.1f} s", flush=True)
    return train, val


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="folder with (or for) the synthetic data (default: a temp dir)")
    parser.add_argument("--out", type=Path, help="run folder (default: inside a temp dir; must be new)")
    parser.add_argument("--n", type=int, default=1250, help="images to synthesise (80%% train)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=15.0, help="training time limit, minutes")
    parser.add_argument("--target", type=float, default=0.90, help="mAP@0.5 to reach")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                        help="extra TrainConfig override, e.g. --set epochs=8 (repeatable)")
    args = parser.parse_args(argv)

    import torch

    from pixsight.data.formats import read_dataset
    from pixsight.train.api import train
    from pixsight.train.tasks import get_task

    overrides: dict[str, Any] = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value)
    with tempfile.TemporaryDirectory(prefix="bench_detect_") as tmp:
        data_dir = args.data or Path(tmp) / "shapes"
        train_json, val_json = ensure_data(data_dir, n=args.n, seed=args.seed)
        out = args.out or Path(tmp) / "run"
        print(f"torch threads: {torch.get_num_threads()}; training into {out}", flush=True)
        t0 = time.perf_counter()
        marks: dict[str, float] = {"val": 0.0}  # + "reached": seconds to the first epoch at the target
        started: dict[str, float] = {}

        def progress(p: Any) -> None:
            now = time.perf_counter()
            if p.phase == "val":
                started["val"] = now
            elif p.phase == "epoch":
                marks["val"] += now - started.pop("val", now)
                m = p.metrics or {}
                if (m.get("map_50") or 0) >= args.target:
                    marks.setdefault("reached", now - t0)
                print(f"epoch {p.epoch}/{p.epochs}  {now - t0:6.0f} s  loss {p.loss or 0:.3f}  "
                      f"map_50 {m.get('map_50', 0):.3f}  map {m.get('map', 0):.3f}", flush=True)

        run = train("detect", train_json, val=val_json, out=out, progress=progress,
                    time_limit_min=args.time_limit, seed=args.seed, **overrides)
        total = time.perf_counter() - t0
        training = run.meta["training"]
        seconds = float(training["seconds"])
        epochs_run = len(json.loads((Path(run.path) / "metrics.json").read_text())["epochs"])
        n_train = run.meta["data"]["train"]["images"]

        task = get_task("detect")
        val = read_dataset(val_json)
        model = run.build_model("best")
        t1 = time.perf_counter()
        metrics = task.validate(model, val, run.preprocess, run.postprocess, batch_size=16)
        val_s = time.perf_counter() - t1

    train_ips = epochs_run * n_train / max(1e-9, seconds - marks["val"])
    reached = marks.get("reached", math.inf)
    ok = metrics["map_50"] >= args.target and reached <= args.time_limit * 60
    print(f"mAP@0.5 {metrics['map_50']:.4f}  mAP {metrics['map']:.4f}  (best epoch {training.get('best_epoch')} "
          f"of {epochs_run})")
    print(f"mAP@0.5 >= {args.target} first reached after {reached:.0f} s (validation included)")
    print(f"training {seconds:.0f} s (limit {args.time_limit * 60:.0f} s; validation {marks['val']:.0f} s of it), "
          f"{total:.0f} s with export; train {train_ips:.1f} img/s, val {len(val.images) / val_s:.1f} img/s")
    print(f"target mAP@0.5 >= {args.target}: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
