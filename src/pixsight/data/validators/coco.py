"""COCO JSON validation: every problem in the file, with its record, and the safe fixes.

Unlike :func:`~pixsight.data.formats.read_coco` (which stops at the first problem), the
file is parsed leniently and every problem is collected. :func:`fix_coco` applies only the
fixes marked safe: clip boxes to their image, drop annotations whose box is empty after
clipping or not finite, drop annotations that point to an unknown image or category.
Images are never touched.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from ...core.errors import DatasetFormatError
from ...core.fileio import atomic_write_text
from ..parsing import ParseLimitError, parse_json
from ..dataset import BOX_TOLERANCE, _as_rle, check_file_name
from .common import Collector, FixSummary, ValidationReport, check_image_file, is_int as _is_int, is_num as _is_num

__all__ = ["validate_coco", "fix_coco"]

log = logging.getLogger(__name__)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _load(path: Path) -> tuple[Any, str | ParseLimitError | None]:
    try:
        return parse_json(path.read_bytes().decode("utf-8"), str(path)), None
    except ParseLimitError as err:
        return None, err
    except FileNotFoundError:
        return None, "file not found"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return None, f"not valid JSON: {err}"


def _record(kind: str, i: int, item: Any) -> str:
    rid = item.get("id") if isinstance(item, dict) else None
    return f"{kind}[{i}] (id {rid})" if _is_int(rid) else f"{kind}[{i}]"


def _new_id(rec: str, item: dict, seen: Any, what: str, out: Collector, *, missing: str = "error") -> int | None:
    """``item["id"]`` when it is a new int id; otherwise report why (missing/not an int/duplicate)
    and return ``None``. ``seen`` is any container of the ids met so far (the caller adds)."""
    iid = item.get("id")
    if "id" not in item:
        if missing == "warning":
            out.warning(rec, "missing key 'id' (pycocotools needs annotation ids)")
        else:
            out.error(rec, "missing key 'id'")
    elif not _is_int(iid):
        out.error(rec, f"id must be an int, got {iid!r}")
    elif iid in seen:
        out.error(rec, f"duplicate {what} id {iid}")
    else:
        return iid
    return None


def _check_categories(cats: list, out: Collector) -> set[int]:
    ids: set[int] = set()
    for i, cat in enumerate(cats):
        rec = _record("categories", i, cat)
        if not isinstance(cat, dict):
            out.error(rec, f"must be an object, got {type(cat).__name__}")
            continue
        cid = _new_id(rec, cat, ids, "category", out)
        if cid is not None:
            ids.add(cid)
        name = cat.get("name")
        if "name" not in cat:
            out.error(rec, "missing key 'name'")
        elif not isinstance(name, str) or not name:
            out.error(rec, f"name must be a non-empty string, got {name!r}")
    return ids


def _check_images(images: list, root: Path, out: Collector, *, check_images: bool,
                  decode: bool) -> dict[int, tuple[int, int] | None]:
    """Image id -> (width, height) from the JSON (None when those are invalid)."""
    sizes: dict[int, tuple[int, int] | None] = {}
    for i, im in enumerate(images):
        rec = _record("images", i, im)
        if not isinstance(im, dict):
            out.error(rec, f"must be an object, got {type(im).__name__}")
            continue
        iid = _new_id(rec, im, sizes, "image", out)
        size_ok = True
        for key in ("width", "height"):
            v = im.get(key)
            if key not in im:
                out.error(rec, f"missing key {key!r}")
                size_ok = False
            elif not _is_int(v) or v <= 0:
                out.error(rec, f"{key} must be a positive int, got {v!r}")
                size_ok = False
        size = (im["width"], im["height"]) if size_ok else None
        if iid is not None:
            sizes[iid] = size
        if "file_name" not in im:
            out.error(rec, "missing key 'file_name'")
            continue
        try:
            file_name = check_file_name(im["file_name"])
        except DatasetFormatError as err:
            out.error(rec, err.message)
            continue
        if check_images:
            check_image_file(out, root / file_name, file_name, rec, size, decode=decode, size_source="JSON")
    return sizes


def _check_annotation(i: int, a: Any, sizes: dict[int, tuple[int, int] | None], cat_ids: set[int],
                      ann_ids: set[int], out: Collector) -> None:
    rec = _record("annotations", i, a)
    if not isinstance(a, dict):
        out.error(rec, f"must be an object, got {type(a).__name__}")
        return
    aid = _new_id(rec, a, ann_ids, "annotation", out, missing="warning")
    if aid is not None:
        ann_ids.add(aid)
    size = None
    known = True
    for key, pool, what in (("image_id", sizes, "images"), ("category_id", cat_ids, "categories")):
        v = a.get(key)
        if key not in a:
            out.error(rec, f"missing key {key!r}")
            known = False
        elif not _is_int(v):
            out.error(rec, f"{key} must be an int, got {v!r}")
            known = False
        elif v not in pool:
            out.error(rec, f"{key} {v} is not in {what}", fix="drop", target=i)
            return  # dropped by --fix: the box checks below would only add noise
        elif key == "image_id":
            size = sizes[v]
    _check_segmentation(a.get("segmentation"), size, rec, out)
    if "bbox" not in a:
        out.error(rec, "missing key 'bbox'")
        return
    bbox = a["bbox"]
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_num(v) for v in bbox):
        out.error(rec, f"bbox must be [x, y, width, height] numbers, got {bbox!r}")
        return
    if not all(math.isfinite(v) for v in bbox):
        out.error(rec, f"bbox has a non-finite value: {bbox}", fix="drop", target=i)
        return
    x, y, w, h = bbox
    if w <= 0 or h <= 0:
        out.error(rec, f"bbox {bbox} has zero or negative size", fix="drop", target=i)
        return
    if size is None or not known:
        return
    iw, ih = size
    t = BOX_TOLERANCE
    if x < -t or y < -t or x + w > iw + t or y + h > ih + t:
        empty = _clip(bbox, iw, ih) is None
        out.error(rec, f"bbox {bbox} is outside the {iw}x{ih} image" + (" (nothing left inside)" if empty else ""),
                  fix="drop" if empty else "clip", target=i)


def _check_segmentation(seg: Any, size: tuple[int, int] | None, rec: str, out: Collector) -> None:
    if seg is None:
        return
    if isinstance(seg, list):
        for k, poly in enumerate(seg):
            if not isinstance(poly, list) or not all(_is_num(v) for v in poly):
                out.error(rec, f"segmentation[{k}] must be a list of numbers")
            elif len(poly) < 6 or len(poly) % 2:
                out.error(rec, f"segmentation[{k}] needs at least 3 (x, y) points, got {len(poly)} numbers")
            elif not all(math.isfinite(v) for v in poly):
                out.error(rec, f"segmentation[{k}] has a non-finite value")
        return
    if not isinstance(seg, dict):
        out.error(rec, f"segmentation must be a list of polygons or an RLE dict, got {type(seg).__name__}")
        return
    try:
        rle = _as_rle(seg)
    except DatasetFormatError as err:
        out.error(rec, f"segmentation: {err.message}")
        return
    if size is not None and list(rle["size"]) != [size[1], size[0]]:
        out.error(rec, f"RLE size {rle['size']} differs from the image's [{size[1]}, {size[0]}]")


def _clip(bbox: list[float], width: int, height: int) -> list[float] | None:
    """``bbox`` (xywh) clipped to the image, or None when nothing of it is inside."""
    x1, y1 = max(0.0, float(bbox[0])), max(0.0, float(bbox[1]))
    x2, y2 = min(float(width), float(bbox[0] + bbox[2])), min(float(height), float(bbox[1] + bbox[3]))
    if x2 <= x1 or y2 <= y1:
        return None
    return [x1, y1, x2 - x1, y2 - y1]


def validate_coco(json_path: str | Path, *, check_images: bool = True, decode: bool = False) -> ValidationReport:
    """Every problem in the COCO JSON file at ``json_path`` (never raises on a bad file).

    ``check_images`` also probes each image (relative to the JSON's folder): missing or
    unreadable files and sizes that differ from the JSON are reported; ``decode`` decodes
    every image instead of the cheapest check its format allows (see ``probe_image``).

    >>> import json, tempfile
    >>> from PIL import Image
    >>> d = Path(tempfile.mkdtemp()); Image.new("RGB", (8, 6)).save(d / "a.png")
    >>> doc = {"images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 6}],
    ...        "categories": [{"id": 1, "name": "cat"}],
    ...        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 2, 10, 2]}]}
    >>> _ = (d / "a.json").write_text(json.dumps(doc))
    >>> report = validate_coco(d / "a.json")
    >>> [(p.record, p.fixable) for p in report.problems]
    [('annotations[0] (id 1)', True)]
    >>> fix_coco(d / "a.json", d / "a.json", report).clipped
    ['annotations[0] (id 1)']
    >>> validate_coco(d / "a.json").ok
    True
    """
    path = Path(json_path)
    out = Collector(str(path))
    report = ValidationReport(str(path), "coco")
    doc, err = _load(path)
    if isinstance(err, ParseLimitError):
        out.error(err.record, err.problem)
    elif err:
        out.error("file", err)
    elif not isinstance(doc, dict):
        out.error("top level", f"expected a JSON object with images, annotations and categories, "
                  f"got {type(doc).__name__}")
    else:
        lists: dict[str, list] = {}
        for key in ("images", "annotations", "categories"):
            if key not in doc:
                if key == "annotations":
                    out.warning("top level", "no 'annotations' list (read as a dataset without labels)")
                else:
                    out.error("top level", f"missing key {key!r}")
                lists[key] = []
            elif not isinstance(doc[key], list):
                out.error("top level", f"{key!r} must be a list, got {type(doc[key]).__name__}")
                lists[key] = []
            else:
                lists[key] = doc[key]
        cat_ids = _check_categories(lists["categories"], out)
        sizes = _check_images(lists["images"], path.parent, out, check_images=check_images, decode=decode)
        ann_ids: set[int] = set()
        for i, a in enumerate(lists["annotations"]):
            _check_annotation(i, a, sizes, cat_ids, ann_ids, out)
        report.images, report.annotations, report.categories = (
            len(lists["images"]), len(lists["annotations"]), len(lists["categories"]))
    report.problems = out.problems
    log.debug("validated %s: %d problems", path, len(report.problems))
    return report


def fix_coco(json_path: str | Path, out_path: str | Path, report: ValidationReport) -> FixSummary:
    """Apply the safe fixes ``report`` (from :func:`validate_coco` on ``json_path``) marked
    fixable and write the JSON atomically to ``out_path`` (may be ``json_path``).

    Boxes are clipped to their image (``area`` of box-only annotations follows); annotations
    with an empty or non-finite box, or an unknown image or category, are dropped. Everything
    else, images included, is left as it was.
    """
    path, out_path = Path(json_path), Path(out_path)
    doc, err = _load(path)
    if isinstance(err, ParseLimitError):
        raise err
    if err or not isinstance(doc, dict):
        raise DatasetFormatError(err or "not a COCO JSON object", path=str(path))
    anns = doc.get("annotations")
    summary = FixSummary(str(out_path))
    actions = {p.target: (p.fix, p.record) for p in report.problems if p.fixable and isinstance(p.target, int)}
    if actions and not isinstance(anns, list):
        raise DatasetFormatError("the file changed since it was validated; validate it again", path=str(path))
    sizes = {im["id"]: (im["width"], im["height"]) for im in doc.get("images", [])
             if isinstance(im, dict) and _is_int(im.get("id")) and _is_int(im.get("width")) and _is_int(im.get("height"))}
    kept = []
    for i, a in enumerate(anns or []):
        fix, record = actions.get(i, (None, ""))
        if fix == "clip":
            clipped = _clip(a["bbox"], *sizes[a["image_id"]]) if a.get("image_id") in sizes else None
            if clipped is not None:
                a["bbox"] = clipped
                if "area" in a and not a.get("segmentation"):
                    a["area"] = clipped[2] * clipped[3]
                summary.clipped.append(record)
                kept.append(a)
                continue
            fix = "drop"
        if fix == "drop":
            summary.dropped.append(record)
            continue
        kept.append(a)
    if anns is not None:
        doc["annotations"] = kept
    # allow_nan: a NaN elsewhere that we do not own (e.g. in ``info``) is written back as it was
    atomic_write_text(out_path, json.dumps(doc))
    log.info("fixed %s -> %s: %d clipped, %d dropped", path, out_path, len(summary.clipped), len(summary.dropped))
    return summary
