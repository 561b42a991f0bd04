"""Segmentation training target: synthetic shapes -> mIoU >= 0.85 on held-out val in <= 15 min on CPU.

Synthesises the shapes data (seeded; ``pixsight data synth DIR --task segment --n 1250``:
1,000 train + 250 val, 3 classes, 256x256), trains ``pixsight train segment`` with its
default settings (only a time limit added) and scores the best weights on the val split at
the images' own resolution (:class:`pixsight.evaluate.metrics.SegmentationMeter`, mIoU over
background + classes). Baseline in the same run: predicting "background" everywhere.

Prints mIoU, per-class IoU, pixel accuracy, Dice, training time and images/s, and exits 1
when the target is missed (mIoU below ``--target`` or training past ``--time-limit``).
The target is for an idle 2-core machine; timings on a shared machine are pessimistic.

Run:  python benchmarks/bench_train_segment.py [--data DIR] [--out RUN_DIR] [--time-limit 15]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def _progress(p) -> None:  # noqa: ANN001 - TrainProgress
    if p.phase == "epoch":
        m = p.metrics or {}
        print(f"  epoch {p.epoch}/{p.epochs}: train_loss {m.get('train_loss') or 0:.4f}  "
              f"val mIoU {m.get('miou') or 0:.4f}  ({m.get('seconds') or 0:.0f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="synthesise into (or reuse) this folder; default: a temp folder")
    ap.add_argument("--out", type=Path, help="run folder (default: a temp folder)")
    ap.add_argument("--n", type=int, default=1250, help="images over train + val (default 1250)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-limit", type=float, default=15.0, help="minutes of training (default 15)")
    ap.add_argument("--target", type=float, default=0.85, help="val mIoU to reach (default 0.85)")
    ap.add_argument("--epochs", type=int, help="override the task default")
    ap.add_argument("--arch", type=json.loads, default=None, help='architecture overrides, e.g. \'{"detail": false}\'')
    args = ap.parse_args(argv)

    import torch

    from pixsight.data.dataset import semantic_map
    from pixsight.data.formats import read_dataset
    from pixsight.data.synth import synth_dataset
    from pixsight.evaluate.metrics import SegmentationMeter
    from pixsight.train import train
    from pixsight.train.tasks.segment import TASK

    tmp = tempfile.TemporaryDirectory(prefix="bench_segment_")
    data = args.data or Path(tmp.name) / "shapes"
    if not (data / "train.json").is_file():
        t = time.perf_counter()
        synth_dataset(data, task="segment", n=args.n, seed=args.seed)
        print(f"synthesised {args.n} images in {time.perf_counter() - t:.0f} s -> {data}")
    train_json, val_json = data / "train.json", data / "val.json"
    val = read_dataset(val_json)
    n_train = len(read_dataset(train_json).images)
    print(f"torch threads: {torch.get_num_threads()}; train {n_train} images, val {len(val.images)} images")

    overrides = {"time_limit_min": args.time_limit, "seed": args.seed}
    if args.epochs:
        overrides["epochs"] = args.epochs
    if args.arch:
        overrides["arch"] = args.arch
    out = args.out or Path(tmp.name) / "run"
    t0 = time.perf_counter()
    run = train("segment", train_json, val=val_json, out=out, progress=_progress, **overrides)
    seconds = run.meta["training"]["seconds"]
    wall = time.perf_counter() - t0
    epochs = run.meta["training"]["epochs"]

    model = run.build_model("best")
    m = TASK.validate(model, val, run.preprocess, None, batch_size=32)
    base = SegmentationMeter(len(val.classes) + 1, class_names=val.classes)
    for rec in val.images:
        gt = semantic_map(rec)
        base.update(gt, gt * 0)
    b = base.result()

    print(json.dumps({"config": json.loads((run.path / "config.json").read_text())["config"]}, default=str))
    print(f"\nepochs {epochs} (best {run.meta['training']['best_epoch']}), stopped: {run.meta['training']['stopped']}")
    print(f"training time   {seconds / 60:.1f} min (wall incl. export {wall / 60:.1f} min), "
          f"{epochs * n_train / seconds:.1f} train images/s incl. validation")
    print(f"val mIoU        {m['miou']:.4f}   (all-background baseline {b['miou']:.4f}, "
          f"x{m['miou'] / b['miou']:.1f})")
    print("per-class IoU   " + "  ".join(f"{k} {v:.4f}" for k, v in m["per_class_iou"].items()))
    print(f"pixel accuracy  {m['pixel_accuracy']:.4f}   dice {m['dice']:.4f}")
    print(f"run folder      {run.path}")
    ok_miou = m["miou"] >= args.target
    ok_time = seconds <= args.time_limit * 60 * 1.05  # the loop stops after the epoch that crosses the limit
    print(f"TARGET mIoU >= {args.target} in <= {args.time_limit:g} min: {'PASS' if ok_miou and ok_time else 'FAIL'}")
    if args.out is None:
        tmp.cleanup()
    return 0 if ok_miou and ok_time else 1


if __name__ == "__main__":
    sys.exit(main())
