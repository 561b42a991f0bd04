"""Read existing predictions files and line them up with a ground-truth dataset.

Accepted (docs/evaluation.md has the details):

- detection: a COCO results JSON (``[{"image_id", "category_id", "bbox": [x, y, w, h],
  "score"}]``). ``image_id`` is the ground-truth COCO file's image id; when the ground truth
  has no ids (YOLO, VOC, folders), give ``"file_name"`` instead. ``category_id`` follows the
  ground truth's categories (``class index + 1`` when it has none).
- classification / detection / segmentation / OCR / faces: the ``pixsight analyze --jsonl``
  output; each line's ``path`` is matched to a ground-truth file name by its longest common
  trailing path (``/data/val/cat/1.jpg`` matches ``cat/1.jpg``); labels are matched by name.
- segmentation: a folder of PNG class maps (``0`` background, ``k + 1`` class ``k``), one per
  image, named like the image with ``.png`` (``a/b.jpg`` -> ``a/b.png`` or ``b.png``).

Every problem is a :class:`~pixsight.core.errors.DatasetFormatError` naming the file and the
record (``results[3]``, ``line 7``).

>>> names = {"cat/1.jpg": 0, "dog/1.jpg": 1}
>>> match_path("/data/val/dog/1.jpg", names), match_path("1.jpg", names), match_path("x.jpg", names)
(1, None, None)
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ..core.errors import DatasetFormatError
from ..data.dataset import Dataset, record_context

__all__ = ["Predictions", "match_path", "read_jsonl", "read_coco_results", "read_analyze_jsonl",
           "read_class_maps", "guess_task", "load_predictions", "MAX_FILE_BYTES"]

log = logging.getLogger(__name__)

#: Largest predictions file read (bytes); bigger files are refused with a clear error.
MAX_FILE_BYTES = 2 * 1024**3
_JSONL_TASKS = ("classify", "detect", "segment", "ocr", "faces")


@dataclass
class Predictions:
    """Predictions aligned with ``gt.images``: ``items[i]`` is image ``i``'s prediction or
    ``None`` when the file had none. ``unmatched`` lists records naming no ground-truth image.

    Item types: ``detect`` ``(boxes, scores, class_ids)``; ``classify`` ``(C,)`` probabilities;
    ``segment`` ``(H, W)`` class map; ``ocr`` text; ``faces`` ``(D,)`` embedding or ``None``.
    """

    task: str
    items: list[Any]
    source: str = ""
    unmatched: list[str] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return sum(v is None for v in self.items)


def match_path(path: str, names: Mapping[str, int]) -> int | None:
    """Index of the name in ``names`` sharing the longest trailing path with ``path``."""
    parts = PurePosixPath(str(path).replace("\\", "/")).parts
    for i in range(len(parts)):
        hit = names.get("/".join(parts[i:]))
        if hit is not None:
            return hit
    return None


def _check_size(path: Path) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DatasetFormatError("file not found", path=str(path)) from None
    except OSError as err:
        raise DatasetFormatError(f"cannot read: {err.strerror or err}", path=str(path)) from None
    if size > MAX_FILE_BYTES:
        raise DatasetFormatError(f"file is {size} bytes, over the {MAX_FILE_BYTES} byte limit", path=str(path))


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-empty line of a JSON Lines file."""
    p = Path(path)
    _check_size(p)
    with open(p, encoding="utf-8", errors="strict") as fh:
        try:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DatasetFormatError(f"line {n}: not valid JSON ({err.msg})", path=str(p)) from None
                if not isinstance(obj, dict):
                    raise DatasetFormatError(f"line {n}: expected a JSON object", path=str(p))
                yield n, obj
        except UnicodeDecodeError:
            raise DatasetFormatError("not UTF-8 text", path=str(p)) from None


def _category_ids(gt: Dataset) -> list[int]:
    ids = gt.attributes.get("category_ids")
    if isinstance(ids, list) and len(ids) == len(gt.classes) and all(isinstance(v, int) for v in ids):
        return list(ids)
    return list(range(1, len(gt.classes) + 1))


def _number(v: Any, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise DatasetFormatError(f"{name} must be a finite number, got {v!r}")
    return float(v)


def read_coco_results(path: str | os.PathLike[str], gt: Dataset) -> Predictions:
    """A COCO results JSON as per-image ``(boxes xyxy, scores, class_ids)`` for ``gt``."""
    p = Path(path)
    where = str(p)
    _check_size(p)
    try:
        doc = json.loads(p.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetFormatError(f"not valid JSON: {err}", path=where) from None
    if isinstance(doc, dict) and isinstance(doc.get("annotations"), list):
        doc = doc["annotations"]
    if not isinstance(doc, list):
        raise DatasetFormatError("expected a COCO results list [{image_id, category_id, bbox, score}, ...]",
                                 path=where)
    by_id = {r.id: i for i, r in enumerate(gt.images) if r.id is not None}
    by_name = {r.file_name: i for i, r in enumerate(gt.images)}
    class_of = {cid: k for k, cid in enumerate(_category_ids(gt))}
    rows: list[list[tuple[list[float], float, int]]] = [[] for _ in gt.images]
    unmatched: list[str] = []
    for i, rec in enumerate(doc):
        with record_context(where, f"results[{i}]"):
            if not isinstance(rec, dict):
                raise DatasetFormatError("must be an object")
            if "file_name" in rec or isinstance(rec.get("image_id"), str):
                name = str(rec.get("file_name", rec.get("image_id")))
                idx = match_path(name, by_name)
                if idx is None:
                    raise DatasetFormatError(f"file_name {name!r} is not in the ground truth")
            else:
                iid = rec["image_id"]
                if not by_id:
                    raise DatasetFormatError("the ground truth has no image ids (not COCO); give \"file_name\" "
                                             "in each result instead of image_id")
                if isinstance(iid, bool) or not isinstance(iid, int) or iid not in by_id:
                    raise DatasetFormatError(f"image_id {iid!r} is not an image id of the ground truth")
                idx = by_id[iid]
            cid = rec["category_id"]
            if isinstance(cid, bool) or cid not in class_of:
                raise DatasetFormatError(f"category_id {cid!r} is not a ground-truth category "
                                         f"(known: {sorted(class_of)})")
            bbox = rec["bbox"]
            if not isinstance(bbox, list) or len(bbox) != 4:
                raise DatasetFormatError(f"bbox must be [x, y, width, height], got {bbox!r}")
            x, y, w, h = (_number(v, "bbox") for v in bbox)
            if w < 0 or h < 0:
                raise DatasetFormatError(f"bbox has a negative size: {bbox}")
            rows[idx].append(([x, y, x + w, y + h], _number(rec["score"], "score"), class_of[cid]))
    items = [(np.array([r[0] for r in rs], dtype=np.float64).reshape(-1, 4), np.array([r[1] for r in rs]),
              np.array([r[2] for r in rs], dtype=np.int64)) for rs in rows]
    return Predictions("detect", items, where, unmatched)


def _jsonl_classify(d: dict[str, Any], gt: Dataset) -> np.ndarray:
    """analyze's top-k labels as a probability vector over ``gt.classes``; classes not in the
    top-k share the remaining mass (capped below the lowest given score, so the argmax is the
    top label)."""
    index = {n: k for k, n in enumerate(gt.classes)}
    labels = d.get("labels")
    if not isinstance(labels, list) or not labels:
        raise DatasetFormatError("classify has no labels")
    probs = np.full(len(gt.classes), np.nan)
    for j, item in enumerate(labels):
        name, score = item["label"], _number(item["score"], f"labels[{j}].score")
        if name in index:
            k = index[name]
            probs[k] = score if np.isnan(probs[k]) else max(probs[k], score)
        elif j == 0:
            raise DatasetFormatError(f"top label {name!r} is not a class of the dataset ({', '.join(gt.classes)})")
    given = ~np.isnan(probs)
    rest = int((~given).sum())
    if rest:
        share = max(0.0, 1.0 - float(probs[given].sum())) / rest
        probs[~given] = min(share, float(probs[given].min()) * 0.999)
    return probs


def _jsonl_detect(d: dict[str, Any], gt: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from ..core.types import Detections

    index = {n: k for k, n in enumerate(gt.classes)}
    det = Detections.from_dict(d)
    unknown = sorted(set(det.labels) - set(index))
    if unknown:
        raise DatasetFormatError(f"labels {unknown} are not classes of the dataset ({', '.join(gt.classes)})")
    return (det.boxes.astype(np.float64), det.scores.astype(np.float64),
            np.array([index[n] for n in det.labels], dtype=np.int64))


def _jsonl_segment(d: dict[str, Any], gt: Dataset, height: int, width: int) -> np.ndarray:
    from ..core.types import Segmentation

    index = {n: k for k, n in enumerate(gt.classes)}
    seg = Segmentation.from_dict(d)
    if (seg.height, seg.width) != (height, width):
        raise DatasetFormatError(f"segmentation is {seg.width}x{seg.height} but the image is {width}x{height}")
    unknown = sorted(set(seg.labels) - set(index))
    if unknown:
        raise DatasetFormatError(f"labels {unknown} are not classes of the dataset ({', '.join(gt.classes)})")
    lut = np.zeros(int(seg.class_ids.max()) + 2 if len(seg) else 1, dtype=np.int64)
    for cid, name in zip(seg.class_ids, seg.labels):
        lut[cid + 1] = index[name] + 1
    return lut[seg.class_map()]


def _jsonl_face(d: dict[str, Any]) -> np.ndarray | None:
    faces = d.get("faces") or []
    best = max((f for f in faces if isinstance(f, dict) and "embedding" in f),
               key=lambda f: float(f.get("score", 0)), default=None)
    return None if best is None else np.asarray(best["embedding"], dtype=np.float64).ravel()


def read_analyze_jsonl(path: str | os.PathLike[str], gt: Dataset | None, *, task: str,
                       names: list[str] | None = None) -> Predictions:
    """``pixsight analyze --jsonl`` output for ``task``, aligned with ``gt.images`` (or with
    ``names`` for ground truth that is not a dataset: OCR text, face pairs).

    Lines whose analysis failed or lack the task count as missing; lines naming no
    ground-truth image are listed in ``unmatched``.
    """
    if task not in _JSONL_TASKS:
        raise DatasetFormatError(f"task must be one of {', '.join(_JSONL_TASKS)}, got {task!r}")
    where = str(path)
    file_names = [r.file_name for r in gt.images] if gt is not None else list(names or [])
    index = {n: i for i, n in enumerate(file_names)}
    items: list[Any] = [None] * len(file_names)
    unmatched: list[str] = []
    for n, obj in read_jsonl(path):
        with record_context(where, f"line {n}"):
            rec_path = obj["path"]
            if not isinstance(rec_path, str):
                raise DatasetFormatError(f"path must be a string, got {rec_path!r}")
            i = match_path(rec_path, index)
            if i is None:
                unmatched.append(rec_path)
                continue
            d = obj.get(task)
            if obj.get("status", "ok") != "ok" or not isinstance(d, dict):
                continue
            if task == "classify":
                items[i] = _jsonl_classify(d, gt)
            elif task == "detect":
                items[i] = _jsonl_detect(d, gt)
            elif task == "segment":
                rec = gt.images[i]
                items[i] = _jsonl_segment(d, gt, rec.height, rec.width)
            elif task == "ocr":
                text = d.get("text", "")
                if not isinstance(text, str):
                    raise DatasetFormatError(f"ocr.text must be a string, got {type(text).__name__}")
                items[i] = text
            else:
                items[i] = _jsonl_face(d)
    if unmatched:
        log.warning("%s: %d records name no ground-truth image (first: %s)", where, len(unmatched), unmatched[0])
    return Predictions(task, items, where, unmatched)


def _read_class_map(path: Path, height: int, width: int) -> np.ndarray:
    from PIL import Image

    from ..core.image import ImageLimits, read_image_bytes

    data = read_image_bytes(path, limits=ImageLimits())
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as img:
            if img.size != (width, height):
                raise DatasetFormatError(f"class map is {img.width}x{img.height} but the image is {width}x{height}",
                                         path=str(path))
            if img.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
                raise DatasetFormatError(f"class map must be a single-channel PNG (L, P or 16-bit), got mode {img.mode}",
                                         path=str(path))
            return np.asarray(img).astype(np.int64)
    except (OSError, ValueError, SyntaxError) as err:
        raise DatasetFormatError(f"not a readable PNG: {err}", path=str(path)) from None


def read_class_maps(folder: str | os.PathLike[str], gt: Dataset) -> Predictions:
    """A folder of PNG class maps, one per ground-truth image (``a/b.jpg`` -> ``a/b.png``,
    else ``b.png``). Images without a PNG count as missing."""
    root = Path(folder)
    if not root.is_dir():
        raise DatasetFormatError("expected a folder of PNG class maps", path=str(root))
    items: list[Any] = []
    for rec in gt.images:
        stem = PurePosixPath(rec.file_name).with_suffix(".png")
        found = next((c for c in (root / stem, root / stem.name) if c.is_file()), None)
        items.append(None if found is None else _read_class_map(found, rec.height, rec.width))
    return Predictions("segment", items, str(root))


def guess_task(path: str | os.PathLike[str]) -> str:
    """The task a predictions file holds: a folder -> segment, a ``.json`` file -> detect
    (COCO results), a JSONL file -> the one task found on its first 1000 lines (several
    tasks -> an error asking for ``--task``)."""
    p = Path(path)
    if p.is_dir():
        return "segment"
    if p.suffix.lower() == ".json":
        return "detect"
    found: set[str] = set()
    for n, obj in read_jsonl(p):
        found.update(t for t in _JSONL_TASKS if isinstance(obj.get(t), dict))
        if n >= 1000:
            break
    if len(found) == 1:
        return found.pop()
    what = f"results for {', '.join(sorted(found))}" if found else "no task results"
    raise DatasetFormatError(f"the file holds {what}; pass --task", path=str(p))


def load_predictions(path: str | os.PathLike[str], gt: Dataset, *, task: str | None = None) -> Predictions:
    """Read any supported predictions file for a dataset ground truth (see module docs).

    >>> load_predictions("missing.json", Dataset(".", ["a"]), task="detect")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pixsight.core.errors.DatasetFormatError: missing.json: file not found
    """
    p = Path(path)
    task = task or guess_task(p)
    if task == "segment" and p.is_dir():
        return read_class_maps(p, gt)
    if task == "detect" and p.suffix.lower() == ".json":
        return read_coco_results(p, gt)
    return read_analyze_jsonl(p, gt, task=task)
