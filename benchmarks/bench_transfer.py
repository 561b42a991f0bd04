"""Transfer learning pays: fine-tuning from ImageNet vs the same model from scratch.

Real images: scikit-image's ``lfw_subset()`` (100 faces + 100 non-face patches, 25x25
grayscale; written as RGB PNGs, upsampled by the model's resize to ``--size``).
``--per-class`` images per class train (default 20), the rest validate. Both models get the
same budget (epochs, schedule, augmentation, seed); only ``pretrained`` differs. Prints both
accuracies and the margin (not part of the tests).

Run:  python benchmarks/bench_transfer.py                # 20 per class, 15 epochs
      python benchmarks/bench_transfer.py --epochs 6     # a quick look
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def write_lfw(root: Path, per_class: int, seed: int) -> None:
    from skimage.data import lfw_subset

    images = lfw_subset()  # (200, 25, 25) float in [0, 1]; first 100 faces
    labels = np.array([0] * 100 + [1] * 100)
    rng = np.random.default_rng(seed)
    for cls, name in enumerate(("face", "other")):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        for k, i in enumerate(idx):
            split = "train" if k < per_class else "val"
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            gray = (images[i] * 255).round().astype(np.uint8)
            Image.fromarray(np.repeat(gray[..., None], 3, axis=2)).save(folder / f"{i:03d}.png")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from pixsight.train import train

    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_transfer_") as tmp:
        write_lfw(Path(tmp) / "lfw", args.per_class, args.seed)
        for pretrained in (True, False):
            t0 = time.perf_counter()
            run = train("classify", Path(tmp) / "lfw", out=Path(tmp) / f"run_{pretrained}", epochs=args.epochs,
                        size=args.size, batch_size=16, lr=2e-3, seed=args.seed, pretrained=pretrained,
                        backbone_lr_mult=0.1 if pretrained else 1.0)
            results[pretrained] = (run.metrics["accuracy"], time.perf_counter() - t0)
    (pre, t_pre), (scratch, t_scratch) = results[True], results[False]
    print(f"lfw_subset, {args.per_class} train images/class, {200 - 2 * args.per_class} val, {args.epochs} epochs, "
          f"{args.size}px")
    print(f"from ImageNet: accuracy {pre:.4f} ({t_pre:.0f} s)")
    print(f"from scratch:  accuracy {scratch:.4f} ({t_scratch:.0f} s)")
    print(f"margin: {pre - scratch:+.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
