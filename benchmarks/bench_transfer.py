"""Transfer learning pays: fine-tuning from ImageNet vs the same model from scratch.

Real images: scikit-image's ``lfw_subset()`` (100 faces + 100 non-face patches, 25x25
grayscale; written as RGB PNGs, upsampled by the model's resize to ``--size``). Per class,
``--per-class`` images train (default 20), 30 validate (they pick the best epoch) and the rest
(50) are a held-out test set scored with ``pixsight.evaluate.evaluate_model`` — the ONNX path
``pixsight analyze`` uses. Both models get the same budget (epochs, schedule, augmentation,
seed); only ``pretrained`` (and the backbone's learning-rate multiplier: 0.1 for a pretrained
trunk, 1.0 for a random one) differs. Swept over several epoch budgets, since "how much
training does it take" is the practical question. Not part of the tests.

Run:  python benchmarks/bench_transfer.py                   # budgets 3, 6, 15 epochs
      python benchmarks/bench_transfer.py --epochs 6        # one budget
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

N_VAL = 30  # per class


def write_lfw(root: Path, per_class: int, seed: int) -> None:
    from skimage.data import lfw_subset

    images = lfw_subset()  # (200, 25, 25) float in [0, 1]; first 100 faces
    labels = np.array([0] * 100 + [1] * 100)
    rng = np.random.default_rng(seed)
    for cls, name in enumerate(("face", "other")):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        for k, i in enumerate(idx):
            split = "train" if k < per_class else "val" if k < per_class + N_VAL else "test"
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            gray = (images[i] * 255).round().astype(np.uint8)
            Image.fromarray(np.repeat(gray[..., None], 3, axis=2)).save(folder / f"{i:03d}.png")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=20)
    ap.add_argument("--epochs", default="3,6,15", help="comma-separated epoch budgets")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    budgets = [int(e) for e in str(args.epochs).split(",")]

    from pixsight.evaluate import evaluate_model
    from pixsight.train import train

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_transfer_") as tmp:
        root = Path(tmp) / "lfw"
        write_lfw(root, args.per_class, args.seed)
        for epochs in budgets:
            acc = {}
            for pretrained in (True, False):
                t0 = time.perf_counter()
                out = Path(tmp) / f"run_{epochs}_{pretrained}"
                train("classify", root / "train", val=root / "val", out=out, epochs=epochs, size=args.size,
                      batch_size=16, lr=2e-3, seed=args.seed, pretrained=pretrained,
                      backbone_lr_mult=0.1 if pretrained else 1.0)
                test = evaluate_model(out, root / "test").metrics
                acc[pretrained] = (test["accuracy"], test.get("roc_auc"), time.perf_counter() - t0)
            rows.append((epochs, acc[True], acc[False]))
    n_test = 200 - 2 * (args.per_class + N_VAL)
    print(f"lfw_subset faces vs non-faces: {args.per_class} train images/class, {N_VAL}/class val, "
          f"{n_test} held-out test images, {args.size}px")
    print(f"{'epochs':>6} | {'ImageNet start: acc / AUC':>26} | {'from scratch: acc / AUC':>24} | margin (acc)")
    for epochs, (pa, pauc, pt), (sa, sauc, st) in rows:
        print(f"{epochs:>6} | {pa:>8.3f} / {pauc or float('nan'):.3f} ({pt:4.0f} s) | "
              f"{sa:>7.3f} / {sauc or float('nan'):.3f} ({st:4.0f} s) | {pa - sa:+.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
