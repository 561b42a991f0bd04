"""Torch datasets over :class:`pixsight.data.dataset.Dataset`: decode, cache, augment, seed.

:class:`ImageDataset` turns records into ``(image (3, H, W) float32, target)`` through
:func:`pixsight.train.transforms.build_transforms`. Tasks wrap or use it in their
``torch_dataset``. Two things make training reproducible and fast:

- **seeded items**: the loop's :class:`EpochSampler` yields ``(index, item_seed)``; the
  random augmentation of that item is drawn from ``item_seed`` alone, so the result does not
  depend on the number of data workers, and a resumed run sees the same augmentations;
- **image cache**: decoded images (at a reduced size when augmenting: about twice the model
  size) are kept in RAM up to a byte budget, so epochs after the first do not decode again.

The target dict holds ``"label"`` (image class id, -1 when none), ``"index"`` (record index),
and, when asked, ``"boxes"``, ``"labels"`` and ``"masks"`` (instances ``(K, H, W)`` or a
semantic map ``(H, W)``, 0 = background, class_id + 1) in model-input pixels.

>>> sampler = EpochSampler(4, seed=0, epoch=1, shuffle=True)
>>> sorted(i for i, _ in sampler), len(sampler)
([0, 1, 2, 3], 4)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors

from ..core.image import load_image
from ..core.preprocess import parse_preprocess
from ..data.dataset import Dataset, ImageRecord, semantic_map
from .transforms import build_transforms

__all__ = ["ImageDataset", "EpochSampler", "item_seed", "load_record_image"]

log = logging.getLogger(__name__)


def item_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of one item in one epoch (stable across processes).

    >>> item_seed(0, 1, 2) == item_seed(0, 1, 2) != item_seed(0, 2, 2)
    True
    """
    # indices -16..-1 name loop-level streams (data order, dropout)
    return int(np.random.SeedSequence([seed, epoch, index + 16]).generate_state(1, dtype=np.uint64)[0] >> 1)


class EpochSampler(torch.utils.data.Sampler):
    """Yields ``(index, item_seed)`` in a seeded per-epoch order (``start`` skips the first
    items, used when a run resumes in the middle of an epoch)."""

    def __init__(self, n: int, *, seed: int, epoch: int, shuffle: bool, start: int = 0) -> None:
        self.n, self.seed, self.epoch, self.shuffle, self.start = n, seed, epoch, shuffle, start

    def order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.n))
        g = torch.Generator().manual_seed(item_seed(self.seed, self.epoch, -1))
        return torch.randperm(self.n, generator=g).tolist()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for i in self.order()[self.start:]:
            yield i, item_seed(self.seed, self.epoch, i)

    def __len__(self) -> int:
        return max(0, self.n - self.start)


def load_record_image(ds: Dataset, rec: ImageRecord, *, max_side: int | None = None) -> tuple[np.ndarray, float, float]:
    """Decode ``rec``'s image safely: ``(RGB uint8, sx, sy)`` with ``sx, sy`` = pixels per
    record pixel (1.0 unless ``max_side`` reduced the decode)."""
    img = load_image(ds.image_path(rec), max_side=max_side)
    h, w = img.pixels.shape[:2]
    return img.pixels, w / rec.width, h / rec.height


class ImageDataset(torch.utils.data.Dataset):
    """Items ``(image (3, H, W) float32, target dict)`` of one :class:`Dataset`.

    Args:
        ds: the data.
        preprocess: the run's ``preprocess`` block.
        augment: resolved/named augmentation (``None`` = none).
        task: preset family (``classify``/``detect``/``segment``).
        train: augment (and decode at a reduced size); ``False`` = exact inference input.
        targets: ``"label"`` (image labels only), ``"boxes"`` (+ boxes and labels),
            ``"instances"`` (+ instance masks) or ``"semantic"`` (+ one class map).
        cache_mb: RAM budget of the decoded-image cache (0 = off).
    """

    seeded_items = True  # __getitem__ accepts (index, item_seed); see EpochSampler

    def __init__(self, ds: Dataset, preprocess: Mapping[str, Any], augment: Any, *, task: str, train: bool,
                 targets: str = "label", cache_mb: int = 0) -> None:
        if targets not in ("label", "boxes", "instances", "semantic"):
            raise ValueError(f"targets must be label, boxes, instances or semantic, got {targets!r}")
        self.ds, self.targets, self.train = ds, targets, train
        self.spec = parse_preprocess(preprocess)
        self.transform = build_transforms(task, self.spec, augment, train=train)
        # augmenting: decode at ~2x the model size (crops stay sharp); exact input: full size
        self.max_side = 2 * max(self.spec.size) if train else None
        self.cache_budget = int(cache_mb) * 1024 * 1024
        self._cache: dict[int, tuple[np.ndarray, np.ndarray | None, float, float]] = {}
        self._cached_bytes = 0

    def __len__(self) -> int:
        return len(self.ds.images)

    def _decoded(self, index: int) -> tuple[np.ndarray, np.ndarray | None, float, float]:
        hit = self._cache.get(index)
        if hit is not None:
            return hit
        rec = self.ds.images[index]
        pixels, sx, sy = load_record_image(self.ds, rec, max_side=self.max_side)
        sem = None
        if self.targets == "semantic":
            sem = semantic_map(rec)
            if sem.shape != pixels.shape[:2]:
                sem = np.asarray(Image.fromarray(sem).resize((pixels.shape[1], pixels.shape[0]), Image.Resampling.NEAREST))
        item = (pixels, sem, sx, sy)
        size = pixels.nbytes + (sem.nbytes if sem is not None else 0)
        if self._cached_bytes + size <= self.cache_budget:
            self._cache[index] = item
            self._cached_bytes += size
        return item

    def raw(self, index: int) -> tuple[tv_tensors.Image, dict[str, Any]]:
        """The decoded, untransformed ``(image, target)`` of one record."""
        rec = self.ds.images[index]
        pixels, sem, sx, sy = self._decoded(index)
        h, w = pixels.shape[:2]
        image = tv_tensors.Image(torch.from_numpy(pixels.copy()).permute(2, 0, 1))
        target: dict[str, Any] = {"label": -1 if rec.label is None else rec.label, "index": index}
        if self.targets != "label":
            anns = [a for a in rec.annotations if not a.iscrowd]
            boxes = np.array([a.box for a in anns], dtype=np.float32).reshape(-1, 4) * np.float32([sx, sy, sx, sy])
            target["boxes"] = tv_tensors.BoundingBoxes(torch.from_numpy(boxes), format="XYXY", canvas_size=(h, w))
            target["labels"] = torch.tensor([a.class_id for a in anns], dtype=torch.int64)
            if self.targets == "instances":
                masks = [a.mask(rec.height, rec.width) for a in anns]
                if (h, w) != (rec.height, rec.width):
                    masks = [np.asarray(Image.fromarray(m).resize((w, h), Image.Resampling.NEAREST)) for m in masks]
                arr = np.stack(masks).astype(np.uint8) if masks else np.zeros((0, h, w), np.uint8)
                target["masks"] = tv_tensors.Mask(torch.from_numpy(arr))
            elif self.targets == "semantic":
                target["masks"] = tv_tensors.Mask(torch.from_numpy(sem.astype(np.int64)))
        return image, target

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, dict[str, Any]]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        image, target = self.raw(index)
        if seed is None:
            return self.transform(image, target)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.transform(image, target)
