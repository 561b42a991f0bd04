"""Synthetic labelled shapes datasets for demos, tests and training benchmarks.

Shapes of several classes (circle, square, triangle, ...) with varied size, colour,
rotation and aspect, partly overlapping, on textured backgrounds (smoothed noise,
gradients, stripes, checkers and crops of scikit-image's sample photos when it is
installed). Boxes and masks are exact: every annotation is computed from the pixels that
show the object after later objects were drawn over it.

Layouts written by :func:`synth_dataset`:

- ``detect`` / ``segment``: COCO JSON per split (``train.json``, ``val.json``) whose
  ``file_name`` is relative to the JSON's folder, images under ``images/train`` and
  ``images/val``; masks as COCO polygons, ``iscrowd=0``.
- ``classify``: one folder per class per split (``train/<class>/*.jpg``, ``val/<class>/*.jpg``).

A ``synth.json`` beside them records the parameters and the summary. Everything is
deterministic for a seed (same bytes), and the dataset is built in a staging folder and
moved into place at the end, so ``out_dir`` never holds a half-written dataset.

>>> import tempfile, os
>>> summary = synth_dataset(os.path.join(tempfile.mkdtemp(), "shapes"), task="detect", n=4, seed=1)
>>> summary["splits"]["train"]["images"] + summary["splits"]["val"]["images"]
4
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from pixsight.core.errors import ConfigError
from pixsight.core.fileio import atomic_write_text

__all__ = ["SHAPES", "TASKS", "SynthObject", "render_scene", "synth_dataset"]

log = logging.getLogger(__name__)

#: Shape classes :func:`render_scene` can draw.
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "rectangle", "ellipse", "pentagon", "hexagon", "star")
#: Tasks :func:`synth_dataset` writes.
TASKS: tuple[str, ...] = ("classify", "detect", "segment")

_PHOTOS = ("grass", "gravel", "brick", "camera", "coffee", "chelsea", "rocket", "astronaut", "coins", "moon")
_JPEG_QUALITY = 90
_MIN_VISIBLE = 0.6  # an object keeps at least this fraction of its own pixels visible
_MIN_PIXELS = 64  # smallest visible object, in pixels


@dataclass(frozen=True)
class SynthObject:
    """One drawn object: its class, visible mask and the tight box around that mask."""

    label: str
    mask: np.ndarray  # (H, W) bool, the visible pixels
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), tight around ``mask``


# --------------------------------------------------------------------------- backgrounds


@lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    """Sample photos from scikit-image as RGB uint8; empty when it is not installed."""
    try:
        from skimage import data as skdata
    except ImportError:  # scikit-image is a dev extra; the other textures still work
        log.debug("scikit-image not installed; synthetic backgrounds use no photo crops")
        return ()
    out = []
    for name in _PHOTOS:
        try:
            img = np.asarray(getattr(skdata, name)())
        except Exception as err:  # a sample that needs a download offline; skip it
            log.debug("skimage sample %s unavailable: %s", name, err)
            continue
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        out.append(np.ascontiguousarray(img[..., :3], dtype=np.uint8))
    return tuple(out)


def _smooth_noise(h: int, w: int, rng: np.random.Generator, cv2) -> np.ndarray:
    cells = int(rng.integers(4, 24))
    small = rng.random((cells, cells, 3), dtype=np.float32)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    lo, hi = np.sort(rng.uniform(0, 255, size=2))
    fine = rng.normal(0, rng.uniform(2, 14), size=(h, w, 1)).astype(np.float32)
    return lo + (hi - lo) * np.clip(big, 0, 1) + fine


def _background(h: int, w: int, rng: np.random.Generator, cv2) -> np.ndarray:
    """A textured RGB float32 background in [0, 255]."""
    photos = _photos()
    kinds = ["noise", "gradient", "stripes", "checker"] + (["photo", "photo"] if photos else [])
    kind = kinds[int(rng.integers(len(kinds)))]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c1, c2 = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
    if kind == "noise":
        bg = _smooth_noise(h, w, rng, cv2)
    elif kind == "gradient":
        a = rng.uniform(0, 2 * np.pi)
        t = np.cos(a) * xx / w + np.sin(a) * yy / h
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        bg = c1 + (c2 - c1) * t[..., None]
    elif kind == "stripes":
        a = rng.uniform(0, np.pi)
        period = rng.uniform(6, 40)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * (np.cos(a) * xx + np.sin(a) * yy) / period)
        bg = c1 + (c2 - c1) * t[..., None]
    elif kind == "checker":
        s = int(rng.integers(8, 48))
        t = ((xx // s + yy // s) % 2).astype(np.float32)
        bg = c1 + (c2 - c1) * t[..., None]
    else:
        photo = photos[int(rng.integers(len(photos)))]
        ph, pw = photo.shape[:2]
        scale = rng.uniform(0.4, 1.0)  # crop of the target's aspect, up to the whole photo
        ch = max(8, int(min(ph, pw * h / w) * scale))
        cw = min(pw, max(8, int(ch * w / h)))
        y0, x0 = int(rng.integers(0, ph - ch + 1)), int(rng.integers(0, pw - cw + 1))
        crop = photo[y0 : y0 + ch, x0 : x0 + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        bg = cv2.resize(np.ascontiguousarray(crop), (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        tint = rng.uniform(0.6, 1.2, size=3).astype(np.float32)
        bg = bg * tint
    if kind != "noise" and rng.random() < 0.5:
        bg = bg + rng.normal(0, rng.uniform(2, 10), size=(h, w, 1)).astype(np.float32)
    return np.clip(bg, 0, 255).astype(np.float32)


# --------------------------------------------------------------------------- shapes


def _shape_polygon(label: str, size: float, rng: np.random.Generator) -> np.ndarray:
    """Vertices (K, 2) of a shape centred on 0 with radius about ``size / 2``, rotated."""
    r = size / 2
    if label in ("circle", "ellipse"):
        t = np.linspace(0, 2 * np.pi, 72, endpoint=False)
        aspect = rng.uniform(0.85, 1.15) if label == "circle" else rng.uniform(0.4, 0.7)
        pts = np.stack([np.cos(t) * r, np.sin(t) * r * aspect], axis=1)
    elif label in ("square", "rectangle"):
        aspect = rng.uniform(0.85, 1.15) if label == "square" else rng.uniform(0.35, 0.65)
        hx, hy = r * 0.85, r * 0.85 * aspect
        pts = np.array([[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy]])
    elif label == "triangle":
        t = np.deg2rad(np.array([90.0, 210.0, 330.0]) + rng.uniform(-18, 18, size=3))
        pts = np.stack([np.cos(t), np.sin(t)], axis=1) * r * rng.uniform(0.85, 1.0, size=(3, 1))
    elif label in ("pentagon", "hexagon"):
        k = 5 if label == "pentagon" else 6
        t = np.linspace(0, 2 * np.pi, k, endpoint=False)
        pts = np.stack([np.cos(t), np.sin(t)], axis=1) * r
    elif label == "star":
        t = np.linspace(0, 2 * np.pi, 10, endpoint=False)
        radii = np.where(np.arange(10) % 2 == 0, r, r * rng.uniform(0.4, 0.55))
        pts = np.stack([np.cos(t) * radii, np.sin(t) * radii], axis=1)
    else:
        raise ConfigError(f"unknown shape class {label!r}; use some of {SHAPES}")
    a = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return pts @ rot.T


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1


def _still_visible(visible: np.ndarray, full: np.ndarray, cover: np.ndarray, limit: float, cv2) -> bool:
    """Whether ``visible`` keeps enough pixels, and no hole, once ``cover`` is drawn on top.

    Holes are refused because a COCO polygon cannot express them.
    """
    if not (visible & cover).any():
        return True
    left = visible & ~cover
    n_left = int(left.sum())
    if n_left < limit * int(full.sum()) or n_left < _MIN_PIXELS:
        return False
    _, hierarchy = cv2.findContours(left.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    return hierarchy is None or bool((hierarchy[0][:, 3] == -1).all())


def _colour_far_from(bg_mean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    best, best_d = None, -1.0
    for _ in range(4):  # a few tries for a colour that stands out from the background
        c = rng.uniform(0, 255, size=3)
        d = float(np.abs(c - bg_mean).sum())
        if d > best_d:
            best, best_d = c, d
    return np.asarray(best, np.float32)


def render_scene(
    labels: Sequence[str],
    *,
    seed: int | Sequence[int] = 0,
    image_size: tuple[int, int] = (256, 256),
    dominant: bool = False,
) -> tuple[np.ndarray, list[SynthObject]]:
    """Draw the shapes ``labels`` on a textured background.

    Objects are placed one after another, partly overlapping earlier ones but always
    leaving each at least 60 % visible; an object that finds no such place is skipped,
    so fewer objects than asked may come back. With ``dominant=True`` the first object is
    large and central (for classification).

    Args:
        labels: the class of each object to draw, in drawing order.
        seed: an int or a sequence of ints for ``numpy.random.default_rng``.
        image_size: ``(height, width)``.

    Returns:
        ``(image, objects)``: RGB uint8 (H, W, 3) and the visible mask and tight box of
        every drawn object.

    >>> image, objects = render_scene(["circle", "triangle"], seed=3, image_size=(128, 160))
    >>> image.shape, [o.label for o in objects]
    ((128, 160, 3), ['circle', 'triangle'])
    """
    import cv2

    h, w = image_size
    rng = np.random.default_rng(seed)
    img = _background(h, w, rng, cv2)
    bg_mean = img.reshape(-1, 3).mean(axis=0)
    shorter = min(h, w)
    full: list[np.ndarray] = []  # each object's full mask
    visible: list[np.ndarray] = []
    kept: list[str] = []
    for i, label in enumerate(labels):
        for _attempt in range(12):
            if dominant and i == 0:
                size = rng.uniform(0.45, 0.8) * shorter
                centre = np.array([w, h]) / 2 + rng.uniform(-0.12, 0.12, size=2) * np.array([w, h])
            else:
                size = rng.uniform(0.12, 0.32 if dominant else 0.45) * shorter
                centre = rng.uniform([size * 0.35, size * 0.35], [w - size * 0.35, h - size * 0.35])
            pts = _shape_polygon(label, size, rng) + centre
            mask = np.zeros((h, w), np.uint8)
            cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
            mask = mask.astype(bool)
            area = int(mask.sum())
            if area < _MIN_PIXELS:
                continue
            # a dominant object stays almost whole; others keep >= _MIN_VISIBLE of themselves
            limit = 0.9 if dominant else _MIN_VISIBLE
            ok = all(_still_visible(v, f, mask, limit, cv2) for v, f in zip(visible, full))
            if ok and (not dominant or i == 0 or area < 0.5 * full[0].sum()):
                break
        else:
            log.debug("render_scene: no room for object %d (%s); skipped", i, label)
            continue
        visible = [v & ~mask for v in visible]
        full.append(mask)
        visible.append(mask.copy())
        kept.append(label)
        colour = _colour_far_from(bg_mean, rng)
        # shading: a linear light ramp across the object plus fine texture
        a = rng.uniform(0, 2 * np.pi)
        ys, xs = np.nonzero(mask)
        ramp = (np.cos(a) * (xs - centre[0]) + np.sin(a) * (ys - centre[1])) / max(size, 1.0)
        shade = 1.0 + rng.uniform(0.0, 0.5) * ramp[:, None]
        grain = rng.normal(0, rng.uniform(0, 8), size=(len(ys), 1))
        img[ys, xs] = np.clip(colour * shade + grain, 0, 255)
    image = np.clip(img, 0, 255).astype(np.uint8)
    objects = [SynthObject(label, v, _box(v)) for label, v in zip(kept, visible)]
    return image, objects


# --------------------------------------------------------------------------- COCO


def _polygons(mask: np.ndarray, cv2) -> list[list[float]]:
    """COCO polygons of a mask's outer contours that rasterize back to exactly ``mask``.

    Contours traced on the mask upsampled 2x run a quarter pixel inside the pixel edges;
    pycocotools' rasterizer then gives back the same pixels (tested), where contours through
    the boundary pixel centres would lose about half a pixel all round.
    """
    up = cv2.resize(mask.astype(np.uint8), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [[(float(v) + 0.5) / 2 for v in c.reshape(-1)] for c in contours if len(c) >= 3]


def _encode(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=_JPEG_QUALITY)
    return buf.getvalue()


def _scene_labels(task: str, classes: Sequence[str], index: int, rng: np.random.Generator) -> list[str]:
    if task == "classify":
        # balanced: class cycles with the index; a few small distractors of other classes
        main = classes[index % len(classes)]
        others = [c for c in classes if c != main] or [main]
        n_extra = int(rng.integers(0, 3))
        return [main] + [others[int(rng.integers(len(others)))] for _ in range(n_extra)]
    n_objects = int(rng.choice([0, 1, 2, 3, 4, 5, 6], p=[0.04, 0.16, 0.22, 0.22, 0.16, 0.12, 0.08]))
    return [classes[int(rng.integers(len(classes)))] for _ in range(n_objects)]


def _check_args(task: str, n: int, image_size: tuple[int, int], val_fraction: float, classes: Sequence[str]) -> None:
    if task not in TASKS:
        raise ConfigError(f"synth: unknown task {task!r}; use one of {TASKS}")
    if n < 1:
        raise ConfigError(f"synth: n must be at least 1, got {n}")
    if len(image_size) != 2 or min(image_size) < 32:
        raise ConfigError(f"synth: image_size must be (height, width) with both >= 32, got {image_size}")
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"synth: val_fraction must be in [0, 1), got {val_fraction}")
    if not classes or len(set(classes)) != len(classes):
        raise ConfigError(f"synth: classes must be distinct and non-empty, got {list(classes)}")
    unknown = [c for c in classes if c not in SHAPES]
    if unknown:
        raise ConfigError(f"synth: unknown shape classes {unknown}; use some of {SHAPES}")


def synth_dataset(
    out_dir: str | os.PathLike[str],
    *,
    task: str,
    n: int = 1000,
    seed: int = 0,
    image_size: tuple[int, int] = (256, 256),
    val_fraction: float = 0.2,
    classes: Sequence[str] = ("circle", "square", "triangle"),
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write a labelled synthetic shapes dataset with train/val splits to ``out_dir``.

    Args:
        out_dir: must not exist or be empty; it is created whole at the end.
        task: ``"classify"`` (class folders, one dominant shape per image), ``"detect"`` or
            ``"segment"`` (COCO JSON with boxes and polygon masks, 0-6 objects per image).
        n: number of images over both splits; the last ``round(n * val_fraction)`` are val.
        seed: same seed, same bytes.
        image_size: ``(height, width)`` of every image.
        classes: shape classes, some of :data:`SHAPES`; ``category_id`` is 1 + the index.
        progress: called as ``progress(done, total)`` after each image.

    Returns:
        ``{"task", "out_dir", "n", "seed", "image_size", "classes", "splits": {split:
        {"images": int, "instances": {class: int}, "path": str}}}``; for classify,
        ``instances`` counts images per class.

    Raises:
        ConfigError: bad arguments, or ``out_dir`` exists and is not empty.

    >>> import tempfile, os
    >>> s = synth_dataset(os.path.join(tempfile.mkdtemp(), "c"), task="classify", n=6, classes=("circle", "star"))
    >>> s["splits"]["train"]["instances"]
    {'circle': 3, 'star': 2}
    """
    import cv2

    classes = tuple(classes)
    image_size = (int(image_size[0]), int(image_size[1]))
    _check_args(task, n, image_size, val_fraction, classes)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"synth: {out} already exists and is not an empty folder; choose a new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    n_val = int(round(n * val_fraction))
    splits = {"train": range(0, n - n_val), "val": range(n - n_val, n)}
    summary: dict = {
        "task": task,
        "out_dir": str(out),
        "n": n,
        "seed": seed,
        "image_size": list(image_size),
        "classes": list(classes),
        "splits": {},
    }
    try:
        done = 0
        for split, indices in splits.items():
            counts = {c: 0 for c in classes}
            coco: dict = {
                "info": {"description": f"pixsight synthetic shapes ({task}), seed {seed}"},
                "images": [],
                "annotations": [],
                "categories": [{"id": k + 1, "name": c, "supercategory": "shape"} for k, c in enumerate(classes)],
            }
            for index in indices:
                rng = np.random.default_rng([seed, index])
                labels = _scene_labels(task, classes, index, rng)
                image, objects = render_scene(
                    labels, seed=[seed, index, 1], image_size=image_size, dominant=task == "classify"
                )
                name = f"{index:06d}.jpg"
                if task == "classify":
                    main = labels[0]
                    (stage / split / main).mkdir(parents=True, exist_ok=True)
                    (stage / split / main / name).write_bytes(_encode(image))
                    counts[main] += 1
                else:
                    folder = stage / "images" / split
                    folder.mkdir(parents=True, exist_ok=True)
                    (folder / name).write_bytes(_encode(image))
                    image_id = index + 1
                    coco["images"].append(
                        {"id": image_id, "file_name": f"images/{split}/{name}", "height": image_size[0], "width": image_size[1]}
                    )
                    for obj in objects:
                        x0, y0, x1, y1 = obj.box
                        coco["annotations"].append(
                            {
                                "id": len(coco["annotations"]) + 1,
                                "image_id": image_id,
                                "category_id": classes.index(obj.label) + 1,
                                "bbox": [x0, y0, x1 - x0, y1 - y0],
                                "area": int(obj.mask.sum()),
                                "segmentation": _polygons(obj.mask, cv2),
                                "iscrowd": 0,
                            }
                        )
                        counts[obj.label] += 1
                done += 1
                if progress is not None:
                    progress(done, n)
            if task == "classify":
                for c in classes:  # an empty class still has its folder
                    (stage / split / c).mkdir(parents=True, exist_ok=True)
                path = out / split
            else:
                (stage / "images" / split).mkdir(parents=True, exist_ok=True)
                (stage / f"{split}.json").write_text(json.dumps(coco), encoding="utf-8")
                path = out / f"{split}.json"
            summary["splits"][split] = {"images": len(indices), "instances": counts, "path": str(path)}
        atomic_write_text(stage / "synth.json", json.dumps(summary, indent=2))
        if out.exists():
            out.rmdir()
        os.replace(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    log.info("synth: wrote %d %s images to %s", n, task, out)
    return summary
