"""Label Studio JSON validation: every task, the first annotation that is not cancelled (the
one the reader uses) and its ``rectanglelabels`` / ``polygonlabels`` results.

Records are named like the reader names them: ``tasks[i]`` and ``tasks[i] result[j]``.
Coordinates are percentages of ``original_width`` / ``original_height``. Fixes rewrite the
JSON: a rectangle or polygon poking out of 0..100 % is clipped; a result that is empty, not
finite, entirely outside, a polygon with fewer than 3 points, or of a label not in
``classes.txt`` is removed.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from ...core.errors import DatasetFormatError
from ...core.fileio import atomic_write_text
from ..dataset import check_file_name
from ..formats.labelstudio import _ls_files, image_name
from ..parsing import ParseLimitError, load_json
from .common import (Collector, FixSummary, ValidationReport, check_box, check_image_file, clip_box, clip_points,
                     is_int, is_num)

__all__ = ["validate_labelstudio", "fix_labelstudio", "labelstudio_json"]

log = logging.getLogger(__name__)

_KINDS = ("rectanglelabels", "polygonlabels")


def labelstudio_json(path: str | Path) -> Path:
    """The Label Studio export ``path`` names: the file itself, or the one in the folder."""
    p = Path(path)
    if p.is_dir():
        files = _ls_files(p)
        if len(files) != 1:
            raise DatasetFormatError(f"expected one Label Studio JSON file in the folder, found {len(files)}",
                                     path=str(p))
        return files[0]
    return p


def _results(task: dict, rec: str, out: Collector) -> tuple[int | None, list]:
    """(index of the annotation the reader uses, its results)."""
    anns = task.get("annotations", [])
    if not isinstance(anns, list):
        out.error(rec, "'annotations' must be a list")
        return None, []
    for a, ann in enumerate(anns):
        if not isinstance(ann, dict):
            out.error(rec, f"annotations[{a}] must be an object")
            return None, []
        if not ann.get("was_cancelled"):
            result = ann.get("result", [])
            if not isinstance(result, list):
                out.error(rec, f"annotations[{a}]: 'result' must be a list")
                return None, []
            return a, result
    return None, []


def _check_result(res: Any, rec: str, target: Any, classes: list[str] | None, out: Collector,
                  sizes: set[tuple[int, int]]) -> str | None:
    """Check one result; return its label name when it is a usable shape."""
    if not isinstance(res, dict):
        out.error(rec, f"expected an object, got {type(res).__name__}")
        return None
    kind = res.get("type")
    if kind not in _KINDS:
        return None
    size = []
    for key in ("original_width", "original_height"):
        v = res.get(key)
        if not is_int(v) or v <= 0:
            out.error(rec, f"{key} must be a positive int, got {v!r}")
        else:
            size.append(v)
    if len(size) == 2:
        sizes.add((size[0], size[1]))
    value = res.get("value")
    if not isinstance(value, dict):
        out.error(rec, "'value' must be an object")
        return None
    labels = value.get(kind)
    if not isinstance(labels, list) or len(labels) != 1 or not isinstance(labels[0], str) or not labels[0]:
        out.error(rec, f"value.{kind} must hold exactly one label name, got {labels!r}")
        return None
    label = labels[0]
    if classes is not None and label not in classes:
        out.error(rec, f"class {label!r} is not in classes.txt", fix="drop", target=target)
        return None
    if kind == "rectanglelabels":
        if value.get("rotation"):
            out.error(rec, f"rotated rectangles are not supported (rotation {value['rotation']!r})")
            return label
        vals = []
        for key in ("x", "y", "width", "height"):
            v = value.get(key)
            if not is_num(v):
                out.error(rec, f"value.{key} must be a number, got {v!r}")
                return label
            vals.append(float(v))
        x, y, w, h = vals
        check_box(out, rec, [x, y, x + w, y + h], (100, 100), target=target, what="rectangle",
                  tolerance=1e-6, bounds="the image (0..100 %)")
        return label
    pts = value.get("points")
    if (not isinstance(pts, list) or not all(isinstance(p, list) and len(p) == 2 and all(is_num(v) for v in p)
                                             for p in pts)):
        out.error(rec, "value.points must be a list of [x, y] percentages")
        return label
    if len(pts) < 3:
        out.error(rec, f"value.points needs at least 3 [x, y] points, got {len(pts)}", fix="drop", target=target)
        return label
    flat = [float(v) for p in pts for v in p]
    if not all(math.isfinite(v) for v in flat):
        out.error(rec, "value.points has a non-finite value", fix="drop", target=target)
        return label
    xs, ys = flat[0::2], flat[1::2]
    check_box(out, rec, [min(xs), min(ys), max(xs), max(ys)], (100, 100), target=target,
              what="polygon", tolerance=1e-6, bounds="the image (0..100 %)")
    return label


def validate_labelstudio(path: str | Path, *, check_images: bool = True, decode: bool = False) -> ValidationReport:
    """Every problem in the Label Studio JSON export at ``path`` (or the one in the folder).

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> res = {"type": "rectanglelabels", "original_width": 10, "original_height": 10,
    ...        "value": {"x": 90, "y": 0, "width": 20, "height": 10, "rectanglelabels": ["cat"]}}
    >>> _ = (d / "ls.json").write_text(json.dumps([{"data": {"image": "a.png"}, "annotations": [{"result": [res]}]}]))
    >>> [(p.record, p.fix) for p in validate_labelstudio(d, check_images=False).problems]
    [('tasks[0] result[0]', 'clip')]
    """
    try:
        src = labelstudio_json(path)
    except DatasetFormatError as err:
        out = Collector(str(path))
        out.error("file", err.message)
        return ValidationReport(str(path), "labelstudio", out.problems)
    out = Collector(src)
    report = ValidationReport(str(src), "labelstudio")
    try:
        doc = load_json(src)
    except ParseLimitError as err:
        out.error(err.record, err.problem)
        doc = None
    except OSError as err:
        out.error("file", f"cannot read: {err.strerror or err}")
        doc = None
    except ValueError as err:
        out.error("file", f"malformed JSON: {err}")
        doc = None
    if doc is not None and not isinstance(doc, list):
        out.error("top level", "a Label Studio export must be a list of tasks")
        doc = None
    if doc is None:
        report.problems = out.problems
        return report
    classes_file = src.parent / "classes.txt"
    classes = ([ln.strip() for ln in classes_file.read_text(encoding="utf-8").splitlines() if ln.strip()]
               if classes_file.is_file() else None)
    image_dir = src.parent / "images" if (src.parent / "images").is_dir() else src.parent
    names: set[str] = set()
    owner: dict[str, int] = {}
    ids: dict[Any, int] = {}
    for i, task in enumerate(doc):
        rec = f"tasks[{i}]"
        if not isinstance(task, dict):
            out.error(rec, f"expected an object, got {type(task).__name__}")
            continue
        tid = task.get("id")
        if tid is not None:
            if tid in ids:
                out.error(rec, f"duplicate task id {tid!r} (also tasks[{ids[tid]}])")
            ids.setdefault(tid, i)
        a, results = _results(task, rec, out)
        sizes: set[tuple[int, int]] = set()
        for j, res in enumerate(results):
            if isinstance(res, dict) and res.get("type") in _KINDS:
                report.annotations += 1
            label = _check_result(res, f"{rec} result[{j}]", (i, a, j), classes, out, sizes)
            if label:
                names.add(label)
        if len(sizes) > 1:
            listed = ", ".join(f"{w}x{h}" for w, h in sorted(sizes))
            out.error(rec, f"results disagree on the original size ({listed})")
        data = task.get("data")
        if not isinstance(data, dict):
            out.error(rec, "missing key 'data'" if data is None else "'data' must be an object")
            continue
        try:
            file_name = check_file_name(image_name(data.get("image")))
        except DatasetFormatError as err:
            out.error(rec, f"data.image: {err.message}")
            continue
        if file_name in owner:
            out.error(rec, f"duplicate image {file_name} (also tasks[{owner[file_name]}])")
        owner.setdefault(file_name, i)
        if check_images:
            declared = next(iter(sizes)) if len(sizes) == 1 else None
            check_image_file(out, image_dir / file_name, file_name, rec, declared, decode=decode,
                             size_source="original_width/height")
    report.images = len(doc)
    report.categories = len(classes) if classes is not None else len(names)
    report.problems = out.problems
    return report


def fix_labelstudio(json_path: str | Path, out_path: str | Path, report: ValidationReport) -> FixSummary:
    """Apply ``report``'s safe fixes to the Label Studio export at ``json_path``; write it
    atomically to ``out_path`` (may be ``json_path``)."""
    src, dst = Path(json_path), Path(out_path)
    doc = load_json(src)
    summary = FixSummary(str(dst))
    fixes = sorted(((p.target, p) for p in report.problems if p.fixable and isinstance(p.target, tuple)),
                   key=lambda tp: tp[0], reverse=True)  # back to front: removals keep earlier indices
    for (i, a, j), problem in fixes:
        results = doc[i]["annotations"][a]["result"]
        if problem.fix == "clip" and _clip_value(results[j]):
            summary.note(problem, "clip", report.path)
        else:
            del results[j]
            summary.note(problem, "drop", report.path)
    summary.clipped.reverse()
    summary.dropped.reverse()
    atomic_write_text(dst, json.dumps(doc, indent=1))
    summary.files.append(str(dst))
    log.info("fixed %s -> %s: %d clipped, %d dropped", src, dst, len(summary.clipped), len(summary.dropped))
    return summary


def _clip_value(res: dict) -> bool:
    """Clip a result's value to 0..100 % in place; False when nothing is left."""
    value = res["value"]
    if res["type"] == "rectanglelabels":
        box = clip_box([value["x"], value["y"], value["x"] + value["width"], value["y"] + value["height"]], 100, 100)
        if box is None:
            return False
        value.update(x=box[0], y=box[1], width=box[2] - box[0], height=box[3] - box[1])
        return True
    pts = clip_points(value["points"], 100, 100)
    if pts is None:
        return False
    value["points"] = pts
    return True
