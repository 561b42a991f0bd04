"""Label Studio JSON exports: a list of tasks with ``rectanglelabels`` / ``polygonlabels``.

Layout: one JSON file (a list of ``{"data": {"image": ...}, "annotations": [{"result":
[...]}]}`` tasks) with images in ``images/`` next to it (or next to the JSON when there is
no ``images/``), and optionally ``classes.txt`` (written by pixsight; without it the classes
are the sorted label names). ``data.image`` loses Label Studio's ``/data/local-files/?d=``
and ``/data/upload/N/`` prefixes (a URL loses its scheme and host) and becomes the relative file
name. Coordinates are percentages of ``original_width`` / ``original_height``; an image
without results takes its size from the image header. Only the first annotation of a task
that was not cancelled is read (``predictions`` are ignored). Rotated rectangles are refused.

Label Studio keeps: classes (``classes.txt``), boxes, one polygon per instance (its box is
its bounds), empty images and splits (``data.split``). It cannot hold RLE masks, several
polygons per instance, ``iscrowd``, image labels or other attributes.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import numpy as np

from ...core.errors import DatasetFormatError
from ...core.fileio import atomic_write_text
from ..dataset import Annotation, Dataset, ImageRecord, check_box_inside, check_file_name, record_context
from ..parsing import ParseLimitError, load_json
from ._common import copy_image, image_size, refuse_loss, single_polygon, split_of

__all__ = ["read_labelstudio", "write_labelstudio", "looks_like_labelstudio", "image_name"]

_MAX_SNIFF_BYTES = 64 * 1024 * 1024
_UPLOAD = re.compile(r"^/?data/upload/\d+/")
_LOCAL = re.compile(r"^/?data/local-files/?\?d=")


def _is_ls_json(path: Path) -> bool:
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    try:
        if path.stat().st_size > _MAX_SNIFF_BYTES:
            with open(path, "rb") as fh:
                head = fh.read(1 << 16).lstrip()
            return head.startswith(b"[") and b'"data"' in head
        doc = load_json(path)
    except ParseLimitError:  # hostile or broken, but maybe an export: let the reader say what is wrong
        with open(path, "rb") as fh:
            head = fh.read(1 << 16).lstrip()
        return head.startswith(b"[") and b'"data"' in head
    except (OSError, ValueError):
        return False
    return isinstance(doc, list) and (not doc or (isinstance(doc[0], dict) and "data" in doc[0]))


def _ls_files(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.glob("*.json")) if _is_ls_json(p)]


def looks_like_labelstudio(path: Path) -> bool:
    """True for a ``.json`` file whose top level is a list of tasks with ``data`` (or is
    empty), or a folder holding exactly one."""
    if path.is_dir():
        return len(_ls_files(path)) == 1
    return _is_ls_json(path)


def image_name(ref: Any) -> str:
    """The relative file name behind a Label Studio ``data.image`` reference.

    >>> image_name("/data/local-files/?d=images/a%20b.png"), image_name("/data/upload/3/1f2e-a.jpg")
    ('images/a b.png', '1f2e-a.jpg')
    """
    if not isinstance(ref, str) or not ref.strip():
        raise DatasetFormatError(f"data.image must be a non-empty string, got {ref!r}")
    s = ref.strip()
    if "://" in s:
        url = urlsplit(s)
        s = url.path + ("?" + url.query if url.query else "")
    if _LOCAL.match(s):
        s = _LOCAL.sub("", s, count=1)
    elif _UPLOAD.match(s):
        s = _UPLOAD.sub("", s, count=1)
    return unquote(s)


def _pct(value: dict, key: str) -> float:
    v = value[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise DatasetFormatError(f"value.{key} must be a number, got {v!r}")
    if not math.isfinite(v):
        raise DatasetFormatError(f"value.{key} is not finite: {v!r}")
    return float(v)


def _size(result: dict, key: str) -> int:
    v = result[key]
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise DatasetFormatError(f"{key} must be a positive int, got {v!r}")
    return v


def _label(value: dict, key: str) -> str:
    labels = value[key]
    if not isinstance(labels, list) or len(labels) != 1 or not isinstance(labels[0], str) or not labels[0]:
        raise DatasetFormatError(f"value.{key} must hold exactly one label name, got {labels!r}")
    return labels[0]


def _results(task: dict) -> list:
    anns = task.get("annotations", [])
    if not isinstance(anns, list):
        raise DatasetFormatError("'annotations' must be a list")
    for ann in anns:
        if not isinstance(ann, dict):
            raise DatasetFormatError("each annotation must be an object")
        if not ann.get("was_cancelled"):
            result = ann.get("result", [])
            if not isinstance(result, list):
                raise DatasetFormatError("'result' must be a list")
            return result
    return []


def read_labelstudio(path: str | Path) -> Dataset:
    """Read a Label Studio JSON export (or the folder holding exactly one)."""
    p = Path(path)
    if p.is_dir():
        files = _ls_files(p)
        if len(files) != 1:
            raise DatasetFormatError(f"expected one Label Studio JSON file in the folder, found {len(files)}",
                                     path=str(p))
        p = files[0]
    where = str(p)
    try:
        doc = load_json(p)
    except OSError as err:
        raise DatasetFormatError(f"cannot read: {err.strerror}", path=where) from None
    except ValueError as err:
        raise DatasetFormatError(f"malformed JSON: {err}", path=where) from None
    if not isinstance(doc, list):
        raise DatasetFormatError("top level: a Label Studio export must be a list of tasks", path=where)
    image_dir = p.parent / "images" if (p.parent / "images").is_dir() else p.parent
    classes_file = p.parent / "classes.txt"
    fixed = classes_file.is_file()
    classes = ([ln.strip() for ln in classes_file.read_text(encoding="utf-8").splitlines() if ln.strip()]
               if fixed else [])
    names: set[str] = set()
    parsed = []
    for i, task in enumerate(doc):
        with record_context(where, f"tasks[{i}]"):
            if not isinstance(task, dict):
                raise DatasetFormatError(f"expected an object, got {type(task).__name__}")
            data = task["data"]
            if not isinstance(data, dict):
                raise DatasetFormatError("'data' must be an object")
            file_name = check_file_name(image_name(data["image"]))
            results = _results(task)
        shapes = []
        size: tuple[int, int] | None = None
        for j, res in enumerate(results):
            with record_context(where, f"tasks[{i}] result[{j}]"):
                if not isinstance(res, dict):
                    raise DatasetFormatError(f"expected an object, got {type(res).__name__}")
                kind = res.get("type")
                if kind not in ("rectanglelabels", "polygonlabels"):
                    continue  # choices, keypoints, text areas: not held by the dataset type
                w, h = _size(res, "original_width"), _size(res, "original_height")
                if size is not None and size != (w, h):
                    raise DatasetFormatError(f"original size {w}x{h} differs from an earlier {size[0]}x{size[1]}")
                size = (w, h)
                value = res["value"]
                if not isinstance(value, dict):
                    raise DatasetFormatError("'value' must be an object")
                label = _label(value, kind)
                if kind == "rectanglelabels":
                    if value.get("rotation"):
                        raise DatasetFormatError(f"rotated rectangles are not supported (rotation {value['rotation']!r})")
                    x, y = _pct(value, "x") / 100 * w, _pct(value, "y") / 100 * h
                    bw, bh = _pct(value, "width") / 100 * w, _pct(value, "height") / 100 * h
                    shapes.append((j, label, [x, y, x + bw, y + bh], None))
                else:
                    pts = value["points"]
                    try:
                        arr = np.asarray(pts, dtype=np.float64)
                    except (TypeError, ValueError):
                        raise DatasetFormatError("value.points must be a list of [x, y] percentages") from None
                    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 3:
                        raise DatasetFormatError(f"value.points needs at least 3 [x, y] points, got shape {arr.shape}")
                    if not np.all(np.isfinite(arr)):
                        raise DatasetFormatError("value.points has a non-finite value")
                    poly = arr / 100 * np.array([w, h], dtype=np.float64)
                    shapes.append((j, label, np.concatenate([poly.min(axis=0), poly.max(axis=0)]), poly))
                if fixed and label not in classes:
                    raise DatasetFormatError(f"class {label!r} is not in classes.txt")
                names.add(label)
        with record_context(where, f"tasks[{i}]"):
            if size is None:
                size = image_size(image_dir / file_name)
            parsed.append((file_name, size, shapes, data.get("split")))
    if not fixed:
        classes = sorted(names)
    index = {c: k for k, c in enumerate(classes)}
    records = []
    segment = False
    for i, (file_name, (w, h), shapes, split) in enumerate(parsed):
        anns = []
        for j, label, box, poly in shapes:
            with record_context(where, f"tasks[{i}] result[{j}]"):
                ann = Annotation(index[label], box, polygons=[] if poly is None else [poly])
                check_box_inside(ann.box, w, h)
                anns.append(ann)
                segment = segment or poly is not None
        with record_context(where, f"tasks[{i}]"):
            records.append(ImageRecord(file_name, w, h, anns, attributes={"split": str(split)} if split else {}))
    with record_context(where, "tasks"):
        return Dataset(image_dir, classes, records, "segment" if segment else "detect")


def write_labelstudio(ds: Dataset, path: str | Path, *, copy_images: bool = True, lossy: bool = False) -> Path:
    """Write ``ds`` as ``path/labelstudio.json`` (+ ``images/``, ``classes.txt``); returns the JSON file."""
    out = Path(path)
    tasks = []
    for i, rec in enumerate(ds.images):
        where = f"images[{i}] ({rec.file_name})"
        if rec.label is not None:
            refuse_loss("an image-level label", where, "Label Studio", lossy=lossy)
        results = []
        for j, ann in enumerate(rec.annotations):
            poly = single_polygon(ann, f"{where} annotations[{j}]", "Label Studio", lossy=lossy)
            label = ds.classes[ann.class_id]
            common = {"id": f"r{i}-{j}", "from_name": "label", "to_name": "image",
                      "original_width": rec.width, "original_height": rec.height, "image_rotation": 0}
            if poly is not None:
                pts = (poly / np.array([rec.width, rec.height]) * 100).tolist()
                results.append({**common, "type": "polygonlabels",
                                "value": {"points": pts, "closed": True, "polygonlabels": [label]}})
            else:
                x1, y1, x2, y2 = (float(v) for v in ann.box)
                value = {"x": x1 / rec.width * 100, "y": y1 / rec.height * 100,
                         "width": (x2 - x1) / rec.width * 100, "height": (y2 - y1) / rec.height * 100,
                         "rotation": 0, "rectanglelabels": [label]}
                results.append({**common, "type": "rectanglelabels", "value": value})
        data: dict[str, Any] = {"image": "/data/local-files/?d=" + quote(rec.file_name)}
        split = split_of(rec)
        if split is not None:
            data["split"] = split
        tasks.append({"id": i + 1, "data": data, "annotations": [{"id": i + 1, "result": results}]})
        if copy_images:
            copy_image(ds, rec, out / "images" / rec.file_name)
    (out / "images").mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "classes.txt", "".join(c + "\n" for c in ds.classes))
    target = out / "labelstudio.json"
    atomic_write_text(target, json.dumps(tasks, indent=1))
    return target
