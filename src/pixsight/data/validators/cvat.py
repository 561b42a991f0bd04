"""CVAT for images 1.1 validation: the meta labels, every ``<image>`` and its shapes.

Records are named like the reader names them: ``image[i]``, ``image[i] box[k]``,
``image[i] polygon[k]``. Fixes rewrite the XML: a box or polygon poking out of its image is
clipped; a shape that is empty, not finite, entirely outside its image, a polygon with
fewer than 3 points, or of a label not in the meta labels is removed.
"""

from __future__ import annotations

import logging
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from ...core.errors import DatasetFormatError
from ...core.fileio import atomic_write_bytes
from ..dataset import check_file_name
from ..formats.voc import parse_voc_xml
from .common import Collector, FixSummary, ValidationReport, check_box, check_image_file, clip_box, clip_points

__all__ = ["validate_cvat", "fix_cvat", "cvat_xml"]

log = logging.getLogger(__name__)

_SHAPES = ("box", "polygon")


def cvat_xml(path: str | Path) -> Path:
    """The CVAT XML ``path`` names: the file itself, or the one ``.xml`` in the folder."""
    from ..formats.cvat import _cvat_files

    p = Path(path)
    if p.is_dir():
        files = _cvat_files(p)
        if len(files) != 1:
            raise DatasetFormatError(f"expected one CVAT XML file in the folder, found {len(files)}", path=str(p))
        return files[0]
    return p


def _number(el: ET.Element, name: str, rec: str, out: Collector) -> float | None:
    raw = el.get(name)
    if raw is None or not raw.strip():
        out.error(rec, f"missing attribute {name!r}")
        return None
    try:
        return float(raw)
    except ValueError:
        out.error(rec, f"{name} must be a number, got {raw!r}")
        return None


def _points(raw: str) -> list[list[float]] | None:
    pts = []
    for pair in raw.strip().split(";"):
        xy = pair.split(",")
        if len(xy) != 2:
            return None
        try:
            pts.append([float(xy[0]), float(xy[1])])
        except ValueError:
            return None
    return pts


def _check_shape(shape: ET.Element, rec: str, target: Any, size: tuple[int, int] | None, index: set[str],
                 out: Collector) -> None:
    label = shape.get("label")
    if not label:
        out.error(rec, "missing attribute 'label'")
    elif label not in index:
        out.error(rec, f"label {label!r} is not in the meta labels", fix="drop", target=target)
        return
    if shape.tag == "box":
        box = [_number(shape, t, rec, out) for t in ("xtl", "ytl", "xbr", "ybr")]
        if None not in box:
            check_box(out, rec, box, size, target=target)
        return
    raw = shape.get("points")
    pts = _points(raw) if raw else None
    if pts is None:
        out.error(rec, f"points must be 'x,y;x,y;...', got {raw!r}")
        return
    if len(pts) < 3:
        out.error(rec, f"a polygon needs at least 3 points, got {len(pts)}", fix="drop", target=target)
        return
    flat = [v for p in pts for v in p]
    if not all(math.isfinite(v) for v in flat):
        out.error(rec, f"polygon has a non-finite value: {raw!r}", fix="drop", target=target)
        return
    xs, ys = flat[0::2], flat[1::2]
    check_box(out, rec, [min(xs), min(ys), max(xs), max(ys)], size, target=target, what="polygon")


def validate_cvat(path: str | Path, *, check_images: bool = True, decode: bool = False) -> ValidationReport:
    """Every problem in the CVAT XML at ``path`` (or the one in the folder); images are looked
    up in ``images/`` beside it (or beside the XML).

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "annotations.xml").write_text(
    ...     '<annotations><meta><task><labels><label><name>cat</name></label></labels></task></meta>'
    ...     '<image id="0" name="a.png" width="10" height="10"><box label="dog" xtl="1" ytl="1" xbr="4" ybr="4"/>'
    ...     '</image></annotations>')
    >>> [(p.record, p.message, p.fix) for p in validate_cvat(d, check_images=False).problems]
    [('image[0] box[0]', "label 'dog' is not in the meta labels", 'drop')]
    """
    try:
        xml = cvat_xml(path)
    except DatasetFormatError as err:
        out = Collector(str(path))
        out.error("file", err.message)
        return ValidationReport(str(path), "cvat", out.problems)
    out = Collector(xml)
    report = ValidationReport(str(xml), "cvat")
    try:
        root = parse_voc_xml(xml.read_bytes(), path=str(xml))
    except DatasetFormatError as err:
        out.error("file", err.message)
        root = None
    except OSError as err:
        out.error("file", f"cannot read: {err.strerror or err}")
        root = None
    if root is not None and root.tag != "annotations":
        out.error("annotations", f"root element must be <annotations>, got <{root.tag}>")
        root = None
    if root is None:
        report.problems = out.problems
        return report
    names: list[str] = []
    for k, lab in enumerate(root.findall("./meta/*/labels/label")):
        name_el = lab.find("name")
        name = (name_el.text or "").strip() if name_el is not None else ""
        if not name:
            out.error("meta", f"label[{k}] has no <name>")
        elif name in names:
            out.warning("meta", f"label[{k}] {name!r} repeats an earlier label (read as one class)")
        else:
            names.append(name)
    index = set(names)
    image_dir = xml.parent / "images" if (xml.parent / "images").is_dir() else xml.parent
    ids: dict[str, int] = {}
    files: dict[str, int] = {}
    images = root.findall("image")
    for i, img in enumerate(images):
        rec = f"image[{i}]"
        iid, name = img.get("id"), img.get("name")
        if iid is not None:
            if iid in ids:
                out.error(rec, f"duplicate image id {iid} (also image[{ids[iid]}])")
            ids.setdefault(iid, i)
        size_vals = []
        for key in ("width", "height"):
            raw = img.get(key)
            try:
                v = int(raw) if raw is not None else None
            except ValueError:
                v = None
            if raw is None:
                out.error(rec, f"missing attribute {key!r}")
            elif v is None or v <= 0:
                out.error(rec, f"{key} must be a positive integer, got {raw!r}")
                v = None
            size_vals.append(v)
        size = None if None in size_vals else (size_vals[0], size_vals[1])
        counts = {"box": 0, "polygon": 0}
        for j, shape in enumerate(img):
            if shape.tag not in counts:
                continue
            k = counts[shape.tag]
            counts[shape.tag] += 1
            report.annotations += 1
            _check_shape(shape, f"{rec} {shape.tag}[{k}]", (i, j), size, index, out)
        if not name:
            out.error(rec, "missing attribute 'name'")
            continue
        try:
            file_name = check_file_name(name)
        except DatasetFormatError as err:
            out.error(rec, err.message)
            continue
        if file_name in files:
            out.error(rec, f"duplicate image name {file_name} (also image[{files[file_name]}])")
        files.setdefault(file_name, i)
        if check_images:
            check_image_file(out, image_dir / file_name, file_name, rec, size, decode=decode,
                             size_source="the XML")
    report.images, report.categories = len(images), len(names)
    report.problems = out.problems
    return report


def fix_cvat(xml_path: str | Path, out_path: str | Path, report: ValidationReport) -> FixSummary:
    """Apply ``report``'s safe fixes to the CVAT XML at ``xml_path``; write it atomically to
    ``out_path`` (may be ``xml_path``)."""
    src, dst = Path(xml_path), Path(out_path)
    root = parse_voc_xml(src.read_bytes(), path=str(src))
    summary = FixSummary(str(dst))
    fixes = {p.target: p for p in report.problems if p.fixable and isinstance(p.target, tuple)}
    for i, img in enumerate(root.findall("image")):
        w, h = float(img.get("width", "0")), float(img.get("height", "0"))
        for j, shape in reversed(list(enumerate(list(img)))):
            problem = fixes.get((i, j))
            if problem is None:
                continue
            if problem.fix == "clip" and _clip_shape(shape, w, h):
                summary.note(problem, "clip", report.path)
            else:
                img.remove(shape)
                summary.note(problem, "drop", report.path)
    summary.clipped.reverse()
    summary.dropped.reverse()
    atomic_write_bytes(dst, b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8"))
    summary.files.append(str(dst))
    log.info("fixed %s -> %s: %d clipped, %d dropped", src, dst, len(summary.clipped), len(summary.dropped))
    return summary


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _clip_shape(shape: ET.Element, w: float, h: float) -> bool:
    """Clip ``shape`` in place to a ``w`` x ``h`` image; False when nothing is left."""
    if shape.tag == "box":
        box = clip_box([float(shape.get(t, "nan")) for t in ("xtl", "ytl", "xbr", "ybr")], w, h)
        if box is None:
            return False
        for t, v in zip(("xtl", "ytl", "xbr", "ybr"), box):
            shape.set(t, _num(v))
        return True
    pts = clip_points(_points(shape.get("points", "")) or [], w, h)
    if pts is None:
        return False
    shape.set("points", ";".join(f"{_num(x)},{_num(y)}" for x, y in pts))
    return True
