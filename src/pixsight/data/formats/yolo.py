"""YOLO txt (Ultralytics layout): ``data.yaml`` with ``names``, ``images/`` and ``labels/``.

Each label line is ``class cx cy w h`` (a box) or ``class x1 y1 x2 y2 ...`` (one polygon,
whose bounds are the box), normalised to [0, 1] by the image size, which is read from the
image header. A label file mirrors its image (``images/a/b.jpg`` -> ``labels/a/b.txt``); an
image without one, or with an empty one, has no objects. ``train``/``val``/``test`` in
``data.yaml`` (folders or ``.txt`` lists of images) become each image's ``split``.

YOLO keeps: classes, boxes, one polygon per instance, empty images, splits. It cannot hold
RLE masks, several polygons per instance, ``iscrowd``, image labels or other attributes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ...core.errors import DatasetFormatError
from ...core.fileio import atomic_write_text
from ..dataset import Annotation, Dataset, ImageRecord, check_box_inside, record_context
from ..parsing import load_yaml
from ._common import copy_image, image_size, list_images, refuse_loss, single_polygon, split_of

__all__ = ["read_yolo", "write_yolo", "looks_like_yolo"]

_SPLITS = ("train", "val", "test")


def _yaml_path(path: Path) -> Path:
    if path.is_dir():
        for name in ("data.yaml", "data.yml"):
            if (path / name).is_file():
                return path / name
        raise DatasetFormatError("no data.yaml in this folder", path=str(path))
    return path


def looks_like_yolo(path: Path) -> bool:
    """True for a ``data.yaml`` file or a folder holding one."""
    if path.is_dir():
        return (path / "data.yaml").is_file() or (path / "data.yml").is_file()
    return path.suffix.lower() in (".yaml", ".yml") and path.is_file()


def _names(doc: dict[str, Any]) -> list[str]:
    names = doc["names"]
    if isinstance(names, dict):
        keys = sorted(names)
        if keys != list(range(len(keys))):
            raise DatasetFormatError(f"names keys must be 0..{len(keys) - 1}, got {keys}")
        names = [names[k] for k in keys]
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise DatasetFormatError(f"names must be a list of non-empty strings, got {names!r}")
    return [str(n) for n in names]


def _label_path(image: Path, base: Path) -> Path:
    rel = image.relative_to(base).parts
    parts = list(rel)
    for k in range(len(parts) - 2, -1, -1):  # the last "images" folder becomes "labels"
        if parts[k] == "images":
            parts[k] = "labels"
            break
    return (base.joinpath(*parts)).with_suffix(".txt")


def _split_images(doc: dict[str, Any], base: Path, where: str) -> dict[Path, str]:
    """Image path -> split, from the train/val/test entries; empty when ambiguous."""
    owner: dict[Path, set[str]] = {}
    for split in _SPLITS:
        entries = doc.get(split)
        if entries is None:
            continue
        for entry in entries if isinstance(entries, list) else [entries]:
            with record_context(where, split):
                target = (base / str(entry)).resolve()
                if not str(target).startswith(str(base.resolve())):
                    raise DatasetFormatError(f"{entry!r} points outside the dataset folder")
                if target.is_file() and target.suffix == ".txt":
                    lines = [ln.strip() for ln in target.read_text(encoding="utf-8").splitlines()]
                    found = [(base / ln).resolve() for ln in lines if ln]
                else:
                    found = [p.resolve() for p in list_images(target)]
            for p in found:
                owner.setdefault(p, set()).add(split)
    if any(len(s) > 1 for s in owner.values()):
        return {}
    return {p: next(iter(s)) for p, s in owner.items()}


def _parse_line(line: str, width: int, height: int, nc: int) -> Annotation:
    tokens = line.split()
    try:
        cls = int(tokens[0])
    except ValueError:
        raise DatasetFormatError(f"class id must be an int, got {tokens[0]!r}") from None
    if not 0 <= cls < nc:
        raise DatasetFormatError(f"class id {cls} is not in names (0..{nc - 1})")
    try:
        vals = [float(t) for t in tokens[1:]]
    except ValueError:
        raise DatasetFormatError(f"coordinates must be numbers, got {' '.join(tokens[1:])!r}") from None
    if not all(math.isfinite(v) for v in vals):
        raise DatasetFormatError("coordinates have a non-finite value")
    if len(vals) == 4:
        cx, cy, w, h = vals
        box = [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height]
        ann = Annotation(cls, box)
    elif len(vals) >= 6 and len(vals) % 2 == 0:
        poly = np.asarray(vals, dtype=np.float64).reshape(-1, 2) * [width, height]
        box = [*poly.min(axis=0), *poly.max(axis=0)]
        ann = Annotation(cls, box, polygons=[poly])
    else:
        raise DatasetFormatError(f"expected 4 box values or 3+ polygon points after the class, got {len(vals)} values")
    check_box_inside(ann.box, width, height)
    return ann


def read_yolo(path: str | Path) -> Dataset:
    """Read a YOLO dataset from its ``data.yaml`` (or the folder holding it)."""
    yaml_file = _yaml_path(Path(path))
    where = str(yaml_file)
    try:
        doc = load_yaml(yaml_file, record="data.yaml")
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise DatasetFormatError(f"cannot read YAML: {err}", path=where) from None
    with record_context(where, "data.yaml"):
        if not isinstance(doc, dict):
            raise DatasetFormatError("expected a mapping with 'names'")
        classes = _names(doc)
    base = yaml_file.parent
    split_of_image = _split_images(doc, base, where)
    images_dir = base / "images"
    files = list_images(images_dir) if images_dir.is_dir() else sorted(p for p in split_of_image)
    root = images_dir if images_dir.is_dir() else base
    records: list[ImageRecord] = []
    segment = False
    for img in files:
        width, height = image_size(img)
        label_file = _label_path(img, base)
        anns: list[Annotation] = []
        if label_file.is_file():
            try:
                text = label_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                raise DatasetFormatError(f"cannot read labels: {err}", path=str(label_file)) from None
            for n, line in enumerate(text.splitlines(), start=1):
                if line.strip():
                    with record_context(label_file, f"line {n}"):
                        anns.append(_parse_line(line, width, height, len(classes)))
        segment = segment or any(a.polygons for a in anns)
        attrs = {}
        split = split_of_image.get(img.resolve())
        if split is not None:
            attrs["split"] = split
        with record_context(label_file, "image"):
            records.append(ImageRecord(img.relative_to(root).as_posix(), width, height, anns, attributes=attrs))
    return Dataset(root, classes, records, "segment" if segment else "detect")


def _fmt(v: float) -> str:
    return format(float(v), ".10g")


def write_yolo(ds: Dataset, path: str | Path, *, copy_images: bool = True, lossy: bool = False) -> Path:
    """Write ``ds`` as a YOLO dataset in folder ``path``; returns its ``data.yaml``."""
    out = Path(path)
    splits: dict[str, list[str]] = {}
    for i, rec in enumerate(ds.images):
        where = f"images[{i}] ({rec.file_name})"
        if rec.label is not None:
            refuse_loss("an image-level label", where, "YOLO", lossy=lossy)
        lines = []
        for j, ann in enumerate(rec.annotations):
            poly = single_polygon(ann, f"{where} annotations[{j}]", "YOLO", lossy=lossy)
            if poly is not None:
                norm = poly / [rec.width, rec.height]
                lines.append(" ".join([str(ann.class_id), *(_fmt(v) for v in norm.ravel())]))
            else:
                x1, y1, x2, y2 = ann.box
                vals = ((x1 + x2) / 2 / rec.width, (y1 + y2) / 2 / rec.height,
                        (x2 - x1) / rec.width, (y2 - y1) / rec.height)
                lines.append(" ".join([str(ann.class_id), *(_fmt(v) for v in vals)]))
        # the same mapping the reader (and Ultralytics) uses: the last "images" folder -> "labels"
        label_file = _label_path(out / "images" / rec.file_name, out)
        atomic_write_text(label_file, "".join(ln + "\n" for ln in lines))
        if copy_images:
            copy_image(ds, rec, out / "images" / rec.file_name)
        split = split_of(rec)
        if split is not None:
            splits.setdefault(split, []).append(f"./images/{rec.file_name}")
    doc: dict[str, Any] = {"path": ".", "names": dict(enumerate(ds.classes))}
    if splits:
        for split, files in sorted(splits.items()):
            if split not in _SPLITS:
                refuse_loss(f"split {split!r} (only {', '.join(_SPLITS)})", "dataset", "YOLO", lossy=lossy)
                continue
            atomic_write_text(out / f"{split}.txt", "".join(f + "\n" for f in files))
            doc[split] = f"{split}.txt"
    else:
        doc["train"] = doc["val"] = "images"
    (out / "images").mkdir(parents=True, exist_ok=True)
    yaml_file = out / "data.yaml"
    atomic_write_text(yaml_file, yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return yaml_file
