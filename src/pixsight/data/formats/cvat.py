"""CVAT for images 1.1 XML, parsed with ``defusedxml`` (SECURITY.md item 9).

Layout: one ``annotations.xml`` (root ``<annotations>``; classes are
``<meta><task><labels><label><name>`` in order, or ``<meta><project>...`` for project
exports) with images in ``images/`` next to it (or next to the XML when there is no
``images/``). Each ``<image id name width height [subset]>`` holds ``<box label xtl ytl xbr
ybr>`` and ``<polygon label points="x,y;x,y;...">`` shapes; a polygon's box is its bounds.

CVAT keeps: classes (in order), boxes, one polygon per instance, empty images and splits
(``subset``). It cannot hold RLE masks, several polygons per instance, ``iscrowd``, image
labels or other attributes.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from ...core.errors import DatasetFormatError
from ...core.fileio import atomic_write_bytes
from ..dataset import Annotation, Dataset, ImageRecord, check_box_inside, record_context
from ._common import copy_image, refuse_loss, single_polygon, split_of
from .voc import _MAX_XML_BYTES, parse_voc_xml

__all__ = ["read_cvat", "write_cvat", "looks_like_cvat"]

_ROOT_PEEK = 4096


def _is_cvat_xml(path: Path) -> bool:
    if not (path.is_file() and path.suffix.lower() == ".xml"):
        return False
    try:
        if path.stat().st_size > _MAX_XML_BYTES:
            return False
        with path.open("rb") as fh:
            head = fh.read(_ROOT_PEEK)
    except OSError:
        return False
    # The root element's name, without parsing (parsing is left to read_cvat, which is safe).
    text = head.decode("utf-8", "replace")
    i = 0
    while True:
        i = text.find("<", i)
        if i < 0 or i + 1 >= len(text):
            return False
        if text[i + 1] in "?!":
            i += 1
            continue
        return text[i + 1:].startswith("annotations") and text[i + 12:i + 13] in (">", " ", "\n", "\t", "\r", "/")


def _cvat_files(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.glob("*.xml")) if _is_cvat_xml(p)]


def looks_like_cvat(path: Path) -> bool:
    """True for a ``.xml`` file whose root is ``<annotations>``, or a folder holding exactly one."""
    if path.is_dir():
        return len(_cvat_files(path)) == 1
    return _is_cvat_xml(path)


def _attr(el: ET.Element, name: str) -> str:
    v = el.get(name)
    if v is None or not v.strip():
        raise DatasetFormatError(f"missing attribute {name!r}")
    return v.strip()


def _float(el: ET.Element, name: str) -> float:
    raw = _attr(el, name)
    try:
        v = float(raw)
    except ValueError:
        raise DatasetFormatError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(v):
        raise DatasetFormatError(f"{name} is not finite: {raw!r}")
    return v


def _int(el: ET.Element, name: str) -> int:
    raw = _attr(el, name)
    try:
        return int(raw)
    except ValueError:
        raise DatasetFormatError(f"{name} must be an integer, got {raw!r}") from None


def _points(raw: str) -> np.ndarray:
    pts = []
    for pair in raw.strip().split(";"):
        xy = pair.split(",")
        if len(xy) != 2:
            raise DatasetFormatError(f"points must be 'x,y;x,y;...', got {raw!r}")
        try:
            x, y = float(xy[0]), float(xy[1])
        except ValueError:
            raise DatasetFormatError(f"points must be 'x,y;x,y;...', got {raw!r}") from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise DatasetFormatError(f"points have a non-finite value: {raw!r}")
        pts.append((x, y))
    if len(pts) < 3:
        raise DatasetFormatError(f"a polygon needs at least 3 points, got {len(pts)}")
    return np.asarray(pts, dtype=np.float64)


def read_cvat(path: str | Path) -> Dataset:
    """Read a CVAT for images 1.1 ``annotations.xml`` (or the folder holding it)."""
    p = Path(path)
    if p.is_dir():
        files = _cvat_files(p)
        if len(files) != 1:
            raise DatasetFormatError(f"expected one CVAT XML file in the folder, found {len(files)}", path=str(p))
        p = files[0]
    where = str(p)
    try:
        data = p.read_bytes()
    except OSError as err:
        raise DatasetFormatError(f"cannot read: {err.strerror}", path=where) from None
    root = parse_voc_xml(data, path=where)
    with record_context(where, "annotations"):
        if root.tag != "annotations":
            raise DatasetFormatError(f"root element must be <annotations>, got <{root.tag}>")
        classes: list[str] = []
        for k, lab in enumerate(root.findall("./meta/*/labels/label")):
            name_el = lab.find("name")
            name = (name_el.text or "").strip() if name_el is not None else ""
            if not name:
                raise DatasetFormatError(f"label[{k}] has no <name>")
            if name not in classes:
                classes.append(name)
    index = {c: k for k, c in enumerate(classes)}
    records: list[ImageRecord] = []
    segment = False
    for i, img in enumerate(root.findall("image")):
        rec_where = f"image[{i}]"
        with record_context(where, rec_where):
            name = _attr(img, "name")
            width, height = _int(img, "width"), _int(img, "height")
            subset = img.get("subset")
        anns: list[Annotation] = []
        counts = {"box": 0, "polygon": 0}
        for shape in img:
            if shape.tag not in counts:
                continue
            k = counts[shape.tag]
            counts[shape.tag] += 1
            with record_context(where, f"{rec_where} {shape.tag}[{k}]"):
                label = _attr(shape, "label")
                if label not in index:
                    raise DatasetFormatError(f"label {label!r} is not in the meta labels")
                if shape.tag == "box":
                    box = [_float(shape, t) for t in ("xtl", "ytl", "xbr", "ybr")]
                    anns.append(Annotation(index[label], box))
                else:
                    poly = _points(_attr(shape, "points"))
                    box = np.concatenate([poly.min(axis=0), poly.max(axis=0)])
                    anns.append(Annotation(index[label], box, polygons=[poly]))
                    segment = True
                check_box_inside(anns[-1].box, width, height)
        with record_context(where, rec_where):
            attrs = {"split": subset} if subset else {}
            records.append(ImageRecord(name, width, height, anns, attributes=attrs))
    image_dir = p.parent / "images" if (p.parent / "images").is_dir() else p.parent
    with record_context(where, "annotations"):
        return Dataset(image_dir, classes, records, "segment" if segment else "detect")


def _num(v: float) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() else repr(v)


def write_cvat(ds: Dataset, path: str | Path, *, copy_images: bool = True, lossy: bool = False) -> Path:
    """Write ``ds`` as ``path/annotations.xml`` (+ ``path/images/``); returns the XML file."""
    out = Path(path)
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    labels = ET.SubElement(ET.SubElement(ET.SubElement(root, "meta"), "task"), "labels")
    for name in ds.classes:
        lab = ET.SubElement(labels, "label")
        ET.SubElement(lab, "name").text = name
        ET.SubElement(lab, "attributes")
    for i, rec in enumerate(ds.images):
        where = f"images[{i}] ({rec.file_name})"
        if rec.label is not None:
            refuse_loss("an image-level label", where, "CVAT", lossy=lossy)
        attrs = {"id": str(i), "name": rec.file_name, "width": str(rec.width), "height": str(rec.height)}
        split = split_of(rec)
        if split is not None:
            attrs["subset"] = split
        img = ET.SubElement(root, "image", attrs)
        for j, ann in enumerate(rec.annotations):
            label = ds.classes[ann.class_id]
            poly = single_polygon(ann, f"{where} annotations[{j}]", "CVAT", lossy=lossy)
            if poly is not None:
                pts = ";".join(f"{_num(x)},{_num(y)}" for x, y in poly)
                ET.SubElement(img, "polygon", {"label": label, "occluded": "0", "points": pts})
            else:
                x1, y1, x2, y2 = ann.box
                ET.SubElement(img, "box", {"label": label, "occluded": "0", "xtl": _num(x1), "ytl": _num(y1),
                                           "xbr": _num(x2), "ybr": _num(y2)})
        if copy_images:
            copy_image(ds, rec, out / "images" / rec.file_name)
    ET.indent(root)
    (out / "images").mkdir(parents=True, exist_ok=True)
    xml = out / "annotations.xml"
    atomic_write_bytes(xml, b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8"))
    return xml
