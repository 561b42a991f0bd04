"""Pascal VOC validation: every ``Annotations/*.xml`` (parsed safely), its objects and images.

Records are named like the reader names them: the XML file and ``annotation`` or
``object[k]``. Fixes rewrite only the affected XML files: a ``<bndbox>`` poking out of
``<size>`` is clipped, an object whose box is empty, not finite or entirely outside, or
whose class is not in ``labels.txt``, is removed.
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
from ..formats._common import list_images
from ..formats.voc import parse_voc_xml
from .common import Collector, FixSummary, ValidationReport, check_box, check_image_file, clip_box

__all__ = ["validate_voc", "fix_voc"]

log = logging.getLogger(__name__)

_INT_FIELDS = ("difficult", "truncated", "occluded")


def _text(el: ET.Element, tag: str) -> str | None:
    child = el.find(tag)
    return None if child is None or child.text is None or not child.text.strip() else child.text.strip()


def _number(el: ET.Element, tag: str, rec: str, out: Collector, file: Path) -> float | None:
    raw = _text(el, tag)
    if raw is None:
        out.error(rec, f"missing <{tag}>", file=file)
        return None
    try:
        return float(raw)
    except ValueError:
        out.error(rec, f"<{tag}> must be a number, got {raw!r}", file=file)
        return None


def _size(root: ET.Element, out: Collector, file: Path) -> tuple[int, int] | None:
    size = root.find("size")
    if size is None:
        out.error("annotation", "missing <size>", file=file)
        return None
    dims = []
    for tag in ("width", "height"):
        v = _number(size, tag, "annotation", out, file)
        if v is not None and (not math.isfinite(v) or not v.is_integer() or v <= 0):
            out.error("annotation", f"<{tag}> must be a positive integer, got {_text(size, tag)!r}", file=file)
            v = None
        dims.append(v)
    return None if None in dims else (int(dims[0]), int(dims[1]))


def _check_object(obj: ET.Element, k: int, rel: str, size: tuple[int, int] | None, classes: list[str] | None,
                  out: Collector, file: Path) -> None:
    rec, target = f"object[{k}]", (rel, k)
    name = _text(obj, "name")
    if name is None:
        out.error(rec, "missing <name>", file=file)
    elif classes is not None and name not in classes:
        out.error(rec, f"class {name!r} is not in labels.txt", file=file, fix="drop", target=target)
        return
    for tag in _INT_FIELDS:
        raw = _text(obj, tag)
        if raw is not None and raw not in ("0", "1"):
            out.error(rec, f"<{tag}> must be 0 or 1, got {raw!r}", file=file)
    bnd = obj.find("bndbox")
    if bnd is None:
        out.error(rec, "missing <bndbox>", file=file)
        return
    box = [_number(bnd, t, rec, out, file) for t in ("xmin", "ymin", "xmax", "ymax")]
    if None not in box:
        check_box(out, rec, box, size, target=target, file=file)


def validate_voc(path: str | Path, *, check_images: bool = True, decode: bool = False) -> ValidationReport:
    """Every problem in the Pascal VOC folder at ``path``.

    >>> import tempfile
    >>> from PIL import Image
    >>> d = Path(tempfile.mkdtemp()); (d / "Annotations").mkdir(); (d / "JPEGImages").mkdir()
    >>> Image.new("RGB", (10, 10)).save(d / "JPEGImages" / "a.png")
    >>> xml = ("<annotation><filename>a.png</filename><size><width>10</width><height>10</height></size>"
    ...        "<object><name>cat</name><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>2</xmax><ymax>5</ymax>"
    ...        "</bndbox></object></annotation>")
    >>> _ = (d / "Annotations" / "a.xml").write_text(xml)
    >>> [(p.record, p.message, p.fix) for p in validate_voc(d).problems]
    [('object[0]', 'box [2.0, 2.0, 2.0, 5.0] has zero or negative size', 'drop')]
    """
    base = Path(path)
    out = Collector(base)
    report = ValidationReport(str(base), "voc")
    ann_dir = base / "Annotations"
    if not ann_dir.is_dir():
        out.error("folder", "no Annotations/ folder")
        report.problems = out.problems
        return report
    image_dir = base / "JPEGImages" if (base / "JPEGImages").is_dir() else base
    labels_file = base / "labels.txt"
    classes = None
    if labels_file.is_file():
        try:
            classes = [ln.strip() for ln in labels_file.read_text(encoding="utf-8").splitlines() if ln.strip()]
        except (OSError, UnicodeDecodeError) as err:
            out.error("file", f"cannot read: {err}", file=labels_file)
        else:
            dupes = sorted({c for c in classes if classes.count(c) > 1})
            if dupes:
                out.error("classes", f"duplicate class names {dupes}", file=labels_file)
    names: set[str] = set()
    owner: dict[str, Path] = {}
    for xml_file in sorted(ann_dir.rglob("*.xml")):
        report.images += 1
        rel = xml_file.relative_to(base).as_posix()
        try:
            root = parse_voc_xml(xml_file.read_bytes(), path=str(xml_file))
        except DatasetFormatError as err:
            out.error("file", err.message, file=xml_file)
            continue
        except OSError as err:
            out.error("file", f"cannot read: {err.strerror or err}", file=xml_file)
            continue
        if root.tag != "annotation":
            out.error("annotation", f"root element must be <annotation>, got <{root.tag}>", file=xml_file)
            continue
        size = _size(root, out, xml_file)
        objects = root.findall("object")
        report.annotations += len(objects)
        for k, obj in enumerate(objects):
            if _text(obj, "name"):
                names.add(_text(obj, "name") or "")
            _check_object(obj, k, rel, size, classes, out, xml_file)
        filename = _text(root, "filename")
        if filename is None:
            out.error("annotation", "missing <filename>", file=xml_file)
            continue
        sub = Path(xml_file.relative_to(ann_dir)).parent.as_posix()
        file_name = filename if sub == "." else f"{sub}/{filename}"
        try:
            file_name = check_file_name(file_name)
        except DatasetFormatError as err:
            out.error("annotation", err.message, file=xml_file)
            continue
        if file_name in owner:
            out.error("annotation", f"{file_name} is already described by {owner[file_name].name}", file=xml_file)
        owner[file_name] = xml_file
        if check_images:
            check_image_file(out, image_dir / file_name, file_name, "annotation", size, decode=decode,
                             file=xml_file, size_source="<size>")
    if image_dir != base and check_images:
        for img in list_images(image_dir):
            rel_img = img.relative_to(image_dir).as_posix()
            if rel_img not in owner:  # an image without XML has no objects; it must still be readable
                check_image_file(out, img, rel_img, "image", None, decode=decode, file=img)
    report.categories = len(classes) if classes is not None else len(names)
    report.problems = out.problems
    return report


def fix_voc(path: str | Path, report: ValidationReport) -> FixSummary:
    """Apply ``report``'s safe fixes to the XML files of the VOC folder at ``path`` (in place;
    each changed XML is rewritten atomically)."""
    base = Path(path)
    summary = FixSummary(str(base))
    by_file: dict[str, dict[int, Any]] = {}
    for p in report.problems:
        if p.fixable and isinstance(p.target, tuple):
            by_file.setdefault(p.target[0], {})[p.target[1]] = p
    for rel, fixes in sorted(by_file.items()):
        xml_file = base / rel
        root = parse_voc_xml(xml_file.read_bytes(), path=str(xml_file))
        size = root.find("size")
        width, height = float(_text(size, "width") or 0), float(_text(size, "height") or 0)
        for k, obj in reversed(list(enumerate(root.findall("object")))):
            problem = fixes.get(k)
            if problem is None:
                continue
            bnd = obj.find("bndbox")
            clipped = None
            if problem.fix == "clip" and bnd is not None:
                clipped = clip_box([float(_text(bnd, t) or "nan") for t in ("xmin", "ymin", "xmax", "ymax")],
                                   width, height)
            if clipped is None:
                root.remove(obj)
                summary.note(problem, "drop", report.path)
                continue
            for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), clipped):
                bnd.find(tag).text = str(int(v)) if v.is_integer() else repr(v)
            summary.note(problem, "clip", report.path)
        atomic_write_bytes(xml_file, ET.tostring(root, encoding="utf-8"))
        summary.files.append(str(xml_file))
    summary.clipped.sort()
    summary.dropped.sort()
    log.info("fixed %s: %d clipped, %d dropped", base, len(summary.clipped), len(summary.dropped))
    return summary
