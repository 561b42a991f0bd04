"""Pascal VOC XML, parsed with ``defusedxml`` (SECURITY.md item 9: DTDs, entities and
external references are refused).

Layout: ``Annotations/<name>.xml`` (one per image, ``<size>`` and ``<object>``s with
``<bndbox>``), images in ``JPEGImages/``, the class list in ``labels.txt`` (written by
pixsight; without it the classes are the sorted object names), splits in
``ImageSets/Main/<split>.txt``. Coordinates are kept as written (no 1-based shift).

VOC keeps: classes, boxes, empty images, splits, and the object fields ``difficult``,
``truncated``, ``occluded`` and ``pose``. It cannot hold polygons, RLE masks, ``iscrowd``,
image labels or other attributes.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import defusedxml
import defusedxml.ElementTree as SafeET

from ...core.errors import DatasetFormatError
from ...core.fileio import atomic_write_bytes, atomic_write_text
from ..dataset import Annotation, Dataset, ImageRecord, check_box_inside, record_context
from ._common import copy_image, image_size, list_images, refuse_loss, split_of

__all__ = ["read_voc", "write_voc", "looks_like_voc", "parse_voc_xml"]

_OBJECT_FIELDS = ("difficult", "truncated", "occluded")
_MAX_XML_BYTES = 16 * 1024 * 1024


def looks_like_voc(path: Path) -> bool:
    """True for a folder with an ``Annotations/`` sub-folder."""
    return path.is_dir() and (path / "Annotations").is_dir()


def parse_voc_xml(data: bytes, *, path: str | None = None) -> ET.Element:
    """Parse untrusted XML bytes; DTDs, entities and external references are refused.

    >>> parse_voc_xml(b"<annotation/>").tag
    'annotation'
    """
    if len(data) > _MAX_XML_BYTES:
        raise DatasetFormatError(f"XML file is over {_MAX_XML_BYTES} bytes", path=path)
    try:
        return SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as err:
        raise DatasetFormatError(f"unsafe XML refused ({type(err).__name__}): DTDs, entities and "
                                 "external references are not allowed", path=path) from None
    except ET.ParseError as err:
        raise DatasetFormatError(f"malformed XML: {err}", path=path) from None


def _text(el: ET.Element, tag: str) -> str:
    child = el.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise DatasetFormatError(f"missing <{tag}>")
    return child.text.strip()


def _number(el: ET.Element, tag: str) -> float:
    raw = _text(el, tag)
    try:
        v = float(raw)
    except ValueError:
        raise DatasetFormatError(f"<{tag}> must be a number, got {raw!r}") from None
    if not math.isfinite(v):
        raise DatasetFormatError(f"<{tag}> is not finite: {raw!r}")
    return v


def _int_text(el: ET.Element, tag: str) -> int:
    v = _number(el, tag)
    if not v.is_integer():
        raise DatasetFormatError(f"<{tag}> must be an integer, got {v}")
    return int(v)


def read_voc(path: str | Path) -> Dataset:
    """Read a Pascal VOC folder (``Annotations/``, ``JPEGImages/``, optional ``labels.txt``)."""
    base = Path(path)
    ann_dir = base / "Annotations"
    if not ann_dir.is_dir():
        raise DatasetFormatError("no Annotations/ folder", path=str(base))
    image_dir = base / "JPEGImages" if (base / "JPEGImages").is_dir() else base
    labels_file = base / "labels.txt"
    fixed = labels_file.is_file()
    classes = [ln.strip() for ln in labels_file.read_text(encoding="utf-8").splitlines() if ln.strip()] if fixed else []
    index = {c: k for k, c in enumerate(classes)}
    parsed: list[tuple[str, int, int, list[tuple[str, list[float], dict[str, Any]]], str]] = []
    for xml_file in sorted(ann_dir.rglob("*.xml")):
        where = str(xml_file)
        root = parse_voc_xml(xml_file.read_bytes(), path=where)
        stem = xml_file.relative_to(ann_dir).with_suffix("").as_posix()
        with record_context(where, "annotation"):
            if root.tag != "annotation":
                raise DatasetFormatError(f"root element must be <annotation>, got <{root.tag}>")
            sub = str(Path(stem).parent)
            file_name = _text(root, "filename") if sub == "." else f"{sub}/{_text(root, 'filename')}"
            size = root.find("size")
            if size is None:
                raise DatasetFormatError("missing <size>")
            width, height = _int_text(size, "width"), _int_text(size, "height")
        objects = []
        for k, obj in enumerate(root.findall("object")):
            with record_context(where, f"object[{k}]"):
                name = _text(obj, "name")
                if name not in index:
                    if fixed:
                        raise DatasetFormatError(f"class {name!r} is not in labels.txt")
                    index[name] = -1
                bnd = obj.find("bndbox")
                if bnd is None:
                    raise DatasetFormatError("missing <bndbox>")
                box = [_number(bnd, t) for t in ("xmin", "ymin", "xmax", "ymax")]
                attrs: dict[str, Any] = {}
                for t in _OBJECT_FIELDS:
                    if obj.find(t) is not None and (obj.find(t).text or "").strip():
                        attrs[t] = _int_text(obj, t)
                if obj.find("pose") is not None and (obj.find("pose").text or "").strip():
                    attrs["pose"] = _text(obj, "pose")
                objects.append((name, box, attrs))
        parsed.append((file_name, width, height, objects, where))
    if not fixed:
        classes = sorted(index)
        index = {c: k for k, c in enumerate(classes)}
    split_of_stem: dict[str, str] = {}
    sets = base / "ImageSets" / "Main"
    for split_file in sorted(sets.glob("*.txt")) if sets.is_dir() else []:
        if "_" in split_file.stem:  # per-class lists such as cat_train.txt
            continue
        for ln in split_file.read_text(encoding="utf-8").splitlines():
            if ln.strip():
                split_of_stem[ln.strip()] = split_file.stem
    records: list[ImageRecord] = []
    for file_name, width, height, objects, where in parsed:
        with record_context(where, "annotation"):
            anns = []
            for k, (name, box, attrs) in enumerate(objects):
                with record_context(where, f"object[{k}]"):
                    ann = Annotation(index[name], box, attributes=attrs)
                    check_box_inside(ann.box, width, height)
                    anns.append(ann)
            stem = str(Path(file_name).with_suffix("").as_posix())
            attributes = {"split": split_of_stem[stem]} if stem in split_of_stem else {}
            records.append(ImageRecord(file_name, width, height, anns, attributes=attributes))
    known = {r.file_name for r in records}
    for img in list_images(image_dir) if image_dir != base else []:
        rel = img.relative_to(image_dir).as_posix()
        if rel not in known:  # an image without XML has no objects
            width, height = image_size(img)
            stem = str(Path(rel).with_suffix("").as_posix())
            attributes = {"split": split_of_stem[stem]} if stem in split_of_stem else {}
            records.append(ImageRecord(rel, width, height, [], attributes=attributes))
    records.sort(key=lambda r: r.file_name)
    return Dataset(image_dir, classes, records, "detect")


def _num(v: float) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() else repr(v)


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    el = ET.SubElement(parent, tag)
    if text is not None:
        el.text = text
    return el


def write_voc(ds: Dataset, path: str | Path, *, copy_images: bool = True, lossy: bool = False) -> Path:
    """Write ``ds`` as a Pascal VOC folder at ``path``; returns the folder."""
    out = Path(path)
    splits: dict[str, list[str]] = {}
    for i, rec in enumerate(ds.images):
        where = f"images[{i}] ({rec.file_name})"
        if rec.label is not None:
            refuse_loss("an image-level label", where, "VOC", lossy=lossy)
        root = ET.Element("annotation")
        _sub(root, "folder", "JPEGImages")
        _sub(root, "filename", Path(rec.file_name).name)
        size = _sub(root, "size")
        _sub(size, "width", str(rec.width))
        _sub(size, "height", str(rec.height))
        _sub(size, "depth", "3")
        for j, ann in enumerate(rec.annotations):
            at = f"{where} annotations[{j}]"
            if ann.polygons or ann.rle is not None:
                refuse_loss("masks (polygons or RLE)", at, "VOC", lossy=lossy)
            if ann.iscrowd:
                refuse_loss("iscrowd", at, "VOC", lossy=lossy)
            obj = _sub(root, "object")
            _sub(obj, "name", ds.classes[ann.class_id])
            if "pose" in ann.attributes:
                _sub(obj, "pose", str(ann.attributes["pose"]))
            for t in _OBJECT_FIELDS:
                if t in ann.attributes:
                    _sub(obj, t, str(int(ann.attributes[t])))
            bnd = _sub(obj, "bndbox")
            for t, v in zip(("xmin", "ymin", "xmax", "ymax"), ann.box):
                _sub(bnd, t, _num(v))
        ET.indent(root)
        stem = Path(rec.file_name).with_suffix("").as_posix()
        atomic_write_bytes(out / "Annotations" / f"{stem}.xml", ET.tostring(root, encoding="utf-8"))
        if copy_images:
            copy_image(ds, rec, out / "JPEGImages" / rec.file_name)
        split = split_of(rec)
        if split is not None:
            splits.setdefault(split, []).append(stem)
    (out / "Annotations").mkdir(parents=True, exist_ok=True)
    (out / "JPEGImages").mkdir(parents=True, exist_ok=True)
    for split, stems in sorted(splits.items()):
        atomic_write_text(out / "ImageSets" / "Main" / f"{split}.txt", "".join(s + "\n" for s in stems))
    atomic_write_text(out / "labels.txt", "".join(c + "\n" for c in ds.classes))
    return out
