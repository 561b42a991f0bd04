"""Whole-dataset operations: assign train/val/test splits, summarise and fingerprint a dataset.

:func:`split_dataset` returns a new :class:`~pixsight.data.dataset.Dataset` whose images
carry ``attributes["split"]``; :func:`dataset_stats` returns a JSON-ready dict of counts
and box/image size statistics; :func:`dataset_fingerprint` is a sha256 of the labels
(not the pixels) that stays the same across formats.

>>> from pixsight.data.dataset import Annotation, Dataset, ImageRecord
>>> recs = [ImageRecord(f"{i}.png", 8, 8, [Annotation(i % 2, [0, 0, 4, 2])]) for i in range(10)]
>>> ds = Dataset(".", ["cat", "dog"], recs, task="detect")
>>> out = split_dataset(ds, ratios=(0.6, 0.4), near_duplicates=False)
>>> sorted(dataset_stats(out)["splits"].items())[0]
('train', {'images': 6, 'instances': {'cat': 3, 'dog': 3}})
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from .dataset import Dataset, ImageRecord
from .split import perceptual_groups, split_items

__all__ = ["EMPTY_STRATUM", "FINGERPRINT_VERSION", "split_dataset", "dataset_stats", "image_stratum",
           "dataset_fingerprint"]

log = logging.getLogger(__name__)

#: Stratum of images with no objects (detect/segment) or no label (classify).
EMPTY_STRATUM: str = "<empty>"
_QUANTILES: tuple[tuple[str, float], ...] = (("min", 0.0), ("p05", 0.05), ("p25", 0.25), ("median", 0.5),
                                            ("p75", 0.75), ("p95", 0.95), ("max", 1.0))
_HIST_BINS = 12
#: Tag hashed first by :func:`dataset_fingerprint`; bumped if what it covers ever changes.
FINGERPRINT_VERSION: str = "pixsight-dataset-fingerprint/1"
#: Coordinates are quantised to 1/100 px on a grid shifted by this fraction of a step, so
#: that exact binary values such as ``10.125`` never sit on a rounding boundary (a YOLO
#: round trip moves them by ~1e-10 px, which must not flip the rounded value).
_GRID = 100.0
_GRID_SHIFT = 0.2929


def image_stratum(rec: ImageRecord, task: str, rarity: Sequence[int]) -> Hashable:
    """The class an image is stratified by: its label (classify) or its rarest object class.

    ``rarity`` is the instance count per class id over the dataset; ties go to the lower id.
    Images with no label/objects get :data:`EMPTY_STRATUM`.
    """
    if task == "classify":
        return EMPTY_STRATUM if rec.label is None else rec.label
    ids = {a.class_id for a in rec.annotations}
    if not ids:
        return EMPTY_STRATUM
    return min(ids, key=lambda c: (rarity[c], c))


def split_dataset(
    ds: Dataset,
    *,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    near_duplicates: bool = True,
    max_distance: int = 6,
) -> Dataset:
    """A copy of ``ds`` with every image's ``attributes["split"]`` set to train, val or test.

    Stratified by class (the image label for classify, the image's rarest object class for
    detect/segment; images without objects form their own stratum), seeded, and — with
    ``near_duplicates`` — group-aware: images whose perceptual hashes differ in at most
    ``max_distance`` bits land in one split. ``ds`` itself is not changed; existing splits
    are replaced.

    Raises:
        ConfigError: bad ``ratios`` or ``max_distance``.
        ImageDecodeError: an image cannot be read for hashing (only with ``near_duplicates``).

    >>> from pixsight.data.dataset import Dataset, ImageRecord
    >>> ds = Dataset(".", ["a"], [ImageRecord(f"{i}.png", 4, 4, label=0) for i in range(4)], task="classify")
    >>> [r.attributes["split"] for r in split_dataset(ds, ratios=(3, 1), near_duplicates=False).images]
    ['train', 'train', 'val', 'train']
    """
    counts = [0] * len(ds.classes)
    for rec in ds.images:
        for ann in rec.annotations:
            counts[ann.class_id] += 1
    labels = [image_stratum(rec, ds.task, counts) for rec in ds.images]
    group_keys = None
    if near_duplicates and ds.images:
        group_keys = perceptual_groups([ds.image_path(r) for r in ds.images], max_distance=max_distance)
    splits = split_items(ds.images, labels=labels, ratios=ratios, seed=seed, group_keys=group_keys)
    images = [dataclasses.replace(rec, attributes={**rec.attributes, "split": s})
              for rec, s in zip(ds.images, splits)]
    log.debug("split_dataset: %s", dict(Counter(splits)))
    return Dataset(ds.root, list(ds.classes), images, ds.task, dict(ds.attributes))


def _quantiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    arr = np.asarray(values, dtype=np.float64)
    out = {name: round(float(np.quantile(arr, q)), 3) for name, q in _QUANTILES}
    out["mean"] = round(float(arr.mean()), 3)
    return out


def _histogram(values: list[float]) -> dict[str, list[float]] | None:
    if not values:
        return None
    counts, edges = np.histogram(np.asarray(values, dtype=np.float64), bins=_HIST_BINS)
    return {"edges": [round(float(e), 3) for e in edges], "counts": [int(c) for c in counts]}


def dataset_stats(ds: Dataset) -> dict[str, Any]:
    """Counts and size statistics of ``ds`` as a JSON-ready dict.

    Keys: ``task``, ``images``, ``classes`` (names), ``instances`` (total),
    ``instances_per_class`` (image labels for classify), ``images_per_class`` (images with at
    least one instance or the label), ``empty_images`` (no objects and no label),
    ``box_width`` / ``box_height`` / ``box_area`` (quantiles ``min, p05, p25, median, p75,
    p95, max, mean`` in pixels, ``None`` without boxes), ``histograms`` (``edges`` and
    ``counts`` for the same three), ``image_sizes`` (``"WxH"`` -> images, most common
    first), ``imbalance_ratio`` (largest over smallest ``instances_per_class``; ``None`` when
    a class has none — those are listed in ``classes_without_instances``), ``splits``
    (``split -> {"images", "instances": {class: n}}``) and ``unsplit_images``.

    >>> from pixsight.data.dataset import Annotation, Dataset, ImageRecord
    >>> ds = Dataset(".", ["cat"], [ImageRecord("a.png", 8, 6, [Annotation(0, [0, 0, 2, 3])])])
    >>> s = dataset_stats(ds)
    >>> s["instances_per_class"], s["box_area"]["median"], s["image_sizes"]
    ({'cat': 1}, 6.0, {'8x6': 1})
    """
    names = ds.classes
    instances = dict.fromkeys(names, 0)
    images_per_class = dict.fromkeys(names, 0)
    widths: list[float] = []
    heights: list[float] = []
    areas: list[float] = []
    sizes: Counter[str] = Counter()
    splits: dict[str, dict[str, Any]] = {}
    empty = unsplit = 0
    for rec in ds.images:
        sizes[f"{rec.width}x{rec.height}"] += 1
        ids = [a.class_id for a in rec.annotations] + ([rec.label] if rec.label is not None else [])
        if not ids:
            empty += 1
        for c in ids:
            instances[names[c]] += 1
        for c in set(ids):
            images_per_class[names[c]] += 1
        for ann in rec.annotations:
            w, h = float(ann.box[2] - ann.box[0]), float(ann.box[3] - ann.box[1])
            widths.append(w)
            heights.append(h)
            areas.append(w * h)
        split = rec.attributes.get("split")
        if split is None:
            unsplit += 1
            continue
        entry = splits.setdefault(str(split), {"images": 0, "instances": dict.fromkeys(names, 0)})
        entry["images"] += 1
        for c in ids:
            entry["instances"][names[c]] += 1
    counts = list(instances.values())
    missing = [n for n, c in instances.items() if c == 0]
    ratio = None if not counts or missing else round(max(counts) / min(counts), 3)
    return {
        "task": ds.task,
        "images": len(ds.images),
        "classes": list(names),
        "instances": sum(counts),
        "instances_per_class": instances,
        "images_per_class": images_per_class,
        "empty_images": empty,
        "box_width": _quantiles(widths),
        "box_height": _quantiles(heights),
        "box_area": _quantiles(areas),
        "histograms": {"box_width": _histogram(widths), "box_height": _histogram(heights),
                       "box_area": _histogram(areas)},
        "image_sizes": dict(sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))),
        "imbalance_ratio": ratio,
        "classes_without_instances": missing,
        "splits": dict(sorted(splits.items())),
        "unsplit_images": unsplit,
    }


def _q(value: float) -> int:
    """A coordinate quantised to the fingerprint grid (1/100 px)."""
    return math.floor(float(value) * _GRID + _GRID_SHIFT)


def _annotation_key(ann: Any, classes: Sequence[str]) -> list[Any]:
    key: list[Any] = [classes[ann.class_id], [_q(v) for v in ann.box], int(ann.iscrowd)]
    if ann.polygons:
        key.append(["poly", [[_q(v) for v in p.ravel()] for p in ann.polygons]])
    if ann.rle is not None:
        key.append(["rle", list(ann.rle["size"]), ann.rle["counts"]])
    return key


def dataset_fingerprint(ds: Dataset) -> str:
    """A sha256 hex digest of what ``ds`` says about its images — not of the pixels.

    Covered: the class names in order; per image (sorted by ``file_name``) its file name,
    width, height, ``split`` attribute, image label (by class name) and annotations (class
    name, box, ``iscrowd``, polygons, RLE mask). Coordinates are quantised to 1/100 px, so
    float round-off of a format round trip (YOLO stores normalised coordinates) does not
    change the digest; the order of annotations within an image is ignored (they are
    hashed as a sorted list). Not covered: the dataset root folder, the format, image and
    annotation ids, category ids and other attributes (VOC ``difficult``, COCO ``area``,
    ``info``) — things a lossless format conversion may renumber or drop.

    So the same labelled data in COCO, YOLO or VOC (when the format holds everything) gives
    the same fingerprint, and a changed label file gives a different one; a changed image
    whose size stayed the same does not.

    >>> from pixsight.data.dataset import Annotation, Dataset, ImageRecord
    >>> a = Dataset(".", ["cat"], [ImageRecord("a.png", 8, 6, [Annotation(0, [1, 1, 5, 4])])])
    >>> b = Dataset("/elsewhere", ["cat"], [ImageRecord("a.png", 8, 6, [Annotation(0, [1, 1, 5.0000001, 4])])])
    >>> c = Dataset(".", ["dog"], [ImageRecord("a.png", 8, 6, [Annotation(0, [1, 1, 5, 4])])])
    >>> dataset_fingerprint(a) == dataset_fingerprint(b), dataset_fingerprint(a) == dataset_fingerprint(c)
    (True, False)
    >>> len(dataset_fingerprint(a))
    64
    """
    h = hashlib.sha256()

    def feed(obj: Any) -> None:
        h.update(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")

    feed([FINGERPRINT_VERSION, list(ds.classes)])
    for rec in sorted(ds.images, key=lambda r: r.file_name):
        split = rec.attributes.get("split")
        anns = sorted((_annotation_key(a, ds.classes) for a in rec.annotations),
                      key=lambda k: json.dumps(k, separators=(",", ":")))
        feed([rec.file_name, rec.width, rec.height, None if split is None else str(split),
              None if rec.label is None else ds.classes[rec.label], anns])
    return h.hexdigest()
