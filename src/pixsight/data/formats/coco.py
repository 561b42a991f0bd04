"""COCO JSON: boxes, polygons and RLE masks; ``file_name`` relative to the JSON's folder.

Category ids may be any ints; they become contiguous class ids (in ascending id order) and
are written back as they were (kept in ``Dataset.attributes["category_ids"]``). Image and
annotation ids, and any extra keys on images/annotations (``split``, ``group``, ``area``,
...), round-trip through ``id`` and ``attributes``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ...core.errors import DatasetFormatError
from ...core.fileio import atomic_writer
from ..dataset import Annotation, Dataset, ImageRecord, check_box_inside, record_context
from ..parsing import ParseLimitError, load_json, parse_json
from ._common import copy_image, refuse_loss

__all__ = ["read_coco", "write_coco", "looks_like_coco"]

_IMAGE_KEYS = {"id", "file_name", "width", "height"}
_ANN_KEYS = {"id", "image_id", "category_id", "bbox", "segmentation", "iscrowd"}


def looks_like_coco(path: Path) -> bool:
    """True for a ``.json`` file whose top level is an object with an ``images`` list
    (and ``annotations`` or ``categories``) — not merely a file mentioning those words,
    like the ``synth.json`` summary beside a synthetic dataset."""
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    try:
        if path.stat().st_size > _MAX_SNIFF_BYTES:  # too big to parse just to sniff: trust the keys
            with open(path, "rb") as fh:
                head = fh.read(1 << 16)
            return b'"images"' in head and (b'"annotations"' in head or b'"categories"' in head)
        doc = load_json(path)
    except ParseLimitError:  # hostile or broken, but maybe COCO: let the reader say what is wrong
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
        return b'"images"' in head and (b'"annotations"' in head or b'"categories"' in head)
    except (OSError, ValueError):
        return False
    return (isinstance(doc, dict) and isinstance(doc.get("images"), list)
            and ("annotations" in doc or "categories" in doc))


_MAX_SNIFF_BYTES = 64 * 1024 * 1024


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DatasetFormatError(f"{name} must be an int, got {value!r}")
    return value


def read_coco(path: str | Path) -> Dataset:
    """Read a COCO JSON file; images are looked up relative to its folder."""
    path = Path(path)
    where = str(path)
    try:
        with open(path, "rb") as fh:
            doc = parse_json(fh.read().decode("utf-8"), where)
    except FileNotFoundError:
        raise DatasetFormatError("file not found", path=where) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetFormatError(f"not valid JSON: {err}", path=where) from None
    with record_context(where, "top level"):
        if not isinstance(doc, dict):
            raise DatasetFormatError("expected a JSON object with images, annotations and categories")
        for key in ("images", "categories"):
            if key not in doc:
                raise KeyError(key)
        for key in ("images", "annotations", "categories"):
            if not isinstance(doc.get(key, []), list):
                raise DatasetFormatError(f"{key!r} must be a list")

    cat_ids: list[int] = []
    names: dict[int, str] = {}
    for i, cat in enumerate(doc["categories"]):
        with record_context(where, f"categories[{i}]"):
            cid = _int(cat["id"], "id")
            name = cat["name"]
            if not isinstance(name, str) or not name:
                raise DatasetFormatError(f"name must be a non-empty string, got {name!r}")
            if cid in names:
                raise DatasetFormatError(f"duplicate category id {cid}")
            names[cid] = name
            cat_ids.append(cid)
    cat_ids.sort()
    class_of = {cid: k for k, cid in enumerate(cat_ids)}

    images: list[ImageRecord] = []
    by_id: dict[int, ImageRecord] = {}
    for i, im in enumerate(doc["images"]):
        with record_context(where, f"images[{i}]"):
            if not isinstance(im, dict):
                raise DatasetFormatError("must be an object")
            iid = _int(im["id"], "id")
            if iid in by_id:
                raise DatasetFormatError(f"duplicate image id {iid}")
            rec = ImageRecord(im["file_name"], width=im["width"], height=im["height"], id=iid,
                              attributes={k: v for k, v in im.items() if k not in _IMAGE_KEYS})
            by_id[iid] = rec
            images.append(rec)

    ann_ids: set[int] = set()
    segment = False
    for i, a in enumerate(doc.get("annotations", [])):
        with record_context(where, f"annotations[{i}]"):
            if not isinstance(a, dict):
                raise DatasetFormatError("must be an object")
            aid = a.get("id")
            if aid is not None:
                aid = _int(aid, "id")
                if aid in ann_ids:
                    raise DatasetFormatError(f"duplicate annotation id {aid}")
                ann_ids.add(aid)
            iid = _int(a["image_id"], "image_id")
            if iid not in by_id:
                raise DatasetFormatError(f"image_id {iid} is not in images")
            cid = _int(a["category_id"], "category_id")
            if cid not in class_of:
                raise DatasetFormatError(f"category_id {cid} is not in categories")
            rec = by_id[iid]
            bbox = a["bbox"]
            if not isinstance(bbox, list) or len(bbox) != 4 or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox):
                raise DatasetFormatError(f"bbox must be [x, y, width, height] numbers, got {bbox!r}")
            if not all(math.isfinite(v) for v in bbox):
                raise DatasetFormatError(f"bbox has a non-finite value: {bbox}")
            x, y, w, h = (float(v) for v in bbox)
            polygons, rle = [], None
            seg = a.get("segmentation")
            if isinstance(seg, list):
                polygons = seg
            elif isinstance(seg, dict):
                rle = seg
            elif seg is not None:
                raise DatasetFormatError(f"segmentation must be a list of polygons or an RLE dict, got {seg!r}")
            ann = Annotation(class_of[cid], [x, y, x + w, y + h], polygons=polygons, rle=rle,
                             iscrowd=bool(a.get("iscrowd", 0)), id=aid,
                             attributes={k: v for k, v in a.items() if k not in _ANN_KEYS})
            check_box_inside(ann.box, rec.width, rec.height)
            if ann.rle is not None and tuple(ann.rle["size"]) != (rec.height, rec.width):
                raise DatasetFormatError(f"RLE size {ann.rle['size']} differs from image {iid}'s "
                                         f"[{rec.height}, {rec.width}]")
            segment = segment or ann.has_mask
            rec.annotations.append(ann)

    attributes: dict[str, Any] = {"category_ids": cat_ids}
    for key in ("info", "licenses"):
        if key in doc:
            attributes[key] = doc[key]
    with record_context(where, "dataset"):
        return Dataset(path.parent, [names[c] for c in cat_ids], images,
                       "segment" if segment else "detect", attributes)


def _category_ids(ds: Dataset) -> list[int]:
    ids = ds.attributes.get("category_ids")
    if (isinstance(ids, list) and len(ids) == len(ds.classes) and len(set(ids)) == len(ids)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in ids)):
        return list(ids)
    return list(range(1, len(ds.classes) + 1))


def _unique_ids(items: list[Any]) -> list[int]:
    ids = [it.id for it in items]
    if all(v is not None for v in ids) and len(set(ids)) == len(ids):
        return ids
    return list(range(1, len(items) + 1))


def _area(ann: Annotation, rec: ImageRecord) -> float:
    if ann.has_mask:
        return float(ann.mask(rec.height, rec.width).sum())
    x1, y1, x2, y2 = ann.box
    return float((x2 - x1) * (y2 - y1))


def write_coco(ds: Dataset, path: str | Path, *, copy_images: bool = True, lossy: bool = False) -> Path:
    """Write ``ds`` as COCO JSON at ``path`` (a ``.json`` file, or a folder that gets
    ``annotations.json``); images are copied beside it under their ``file_name``."""
    path = Path(path)
    if path.suffix.lower() != ".json":
        path = path / "annotations.json"
    cat_ids = _category_ids(ds)
    image_ids = _unique_ids(ds.images)
    all_anns = [a for r in ds.images for a in r.annotations]
    ann_ids = iter(_unique_ids(all_anns))
    images, annotations = [], []
    for i, (rec, iid) in enumerate(zip(ds.images, image_ids)):
        if rec.label is not None:
            refuse_loss("an image-level label", f"images[{i}] ({rec.file_name})", "COCO", lossy=lossy)
        images.append({**rec.attributes, "id": iid, "file_name": rec.file_name,
                       "width": rec.width, "height": rec.height})
        for ann in rec.annotations:
            x1, y1, x2, y2 = (float(v) for v in ann.box)
            out: dict[str, Any] = {"area": _area(ann, rec), **ann.attributes, "id": next(ann_ids),
                                   "image_id": iid, "category_id": cat_ids[ann.class_id],
                                   "bbox": [x1, y1, x2 - x1, y2 - y1], "iscrowd": int(ann.iscrowd)}
            if ann.rle is not None:
                out["segmentation"] = dict(ann.rle)
            elif ann.polygons:
                out["segmentation"] = [np.asarray(p, dtype=float).ravel().tolist() for p in ann.polygons]
            annotations.append(out)
        if copy_images:
            copy_image(ds, rec, path.parent / rec.file_name)
    doc: dict[str, Any] = {k: ds.attributes[k] for k in ("info", "licenses") if k in ds.attributes}
    doc["images"] = images
    doc["annotations"] = annotations
    doc["categories"] = [{"id": c, "name": n} for c, n in zip(cat_ids, ds.classes)]
    with atomic_writer(path, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, allow_nan=False)
    return path
