"""Train a classifier on synthetic shapes: accuracy and time (not part of the tests).

Writes ``--n`` synthetic classify images (3+ classes, ``pixsight.data.synth``), trains with
``pixsight.train.train`` from the ImageNet weights and prints validation accuracy (target
>= 0.97 with the defaults), wall time, training images/s, and the image-cache ratio: the
first epoch (decodes every JPEG) against the mean of the later ones (decoded images from RAM).

Run:  python benchmarks/bench_train_classify.py            # 1,250 images, 6 epochs, 128 px
      python benchmarks/bench_train_classify.py --n 300 --epochs 2   # a quick look
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1250, help="images over train + val (20%% val)")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--classes", default="circle,square,triangle,star")
    ap.add_argument("--target", type=float, default=0.97)
    args = ap.parse_args(argv)

    from pixsight.data.synth import synth_dataset
    from pixsight.train import train

    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        t0 = time.perf_counter()
        synth_dataset(Path(tmp) / "data", task="classify", n=args.n, image_size=(160, 160), seed=0,
                      classes=tuple(args.classes.split(",")))
        t_synth = time.perf_counter() - t0
        t0 = time.perf_counter()
        run = train("classify", Path(tmp) / "data", out=Path(tmp) / "run", epochs=args.epochs, size=args.size,
                    batch_size=args.batch_size, workers=args.workers, lr=2e-3)
        wall = time.perf_counter() - t0
        rows = json.loads((run.path / "metrics.json").read_text())["epochs"]
    n_train = run.meta["data"]["train"]["images"]
    acc = run.metrics["accuracy"]
    later = [r["seconds"] for r in rows[1:]]
    print(f"data: {args.n} images ({n_train} train), {len(args.classes.split(','))} classes, synth {t_synth:.1f} s")
    print(f"accuracy {acc:.4f} (target {args.target}) best epoch {run.meta['training']['best_epoch']}/{len(rows)}")
    print(f"train wall time {wall:.1f} s (incl. ONNX export); {n_train * len(rows) / sum(r['seconds'] for r in rows):.1f} "
          "training images/s incl. validation")
    if later:
        print(f"epoch 1 {rows[0]['seconds']:.1f} s vs later epochs {sum(later) / len(later):.1f} s "
              f"(cache ratio {rows[0]['seconds'] / (sum(later) / len(later)):.2f}x)")
    return 0 if acc >= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
