"""Helpers shared by the format readers and writers."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ...core.errors import DatasetFormatError
from ...core.image import IMAGE_EXTENSIONS
from ..dataset import Annotation, Dataset, ImageRecord

log = logging.getLogger(__name__)

_SWAP_ORIENTATIONS = (5, 6, 7, 8)


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation tag (1 when absent or unreadable) without decoding pixels.

    Pillow's ``getexif()`` on a PNG decodes the whole image to look for an ``eXIf`` chunk
    after the pixel data; here only an ``eXIf`` chunk before the pixels (where writers put
    it) is read.
    """
    try:
        if img.format == "PNG":
            raw = img.info.get("exif")
            if not raw:
                return 1
            exif = Image.Exif()
            exif.load(raw)
            return int(exif.get(0x0112, 1))
        return int(img.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - corrupt EXIF must not hide the size
        return 1


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of the EXIF-oriented image, from its header only (no pixel decode)."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            orientation = exif_orientation(img)
    except FileNotFoundError:
        raise DatasetFormatError("image file not found", path=str(path)) from None
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise DatasetFormatError(f"cannot read the image header: {err}", path=str(path)) from None
    return (h, w) if orientation in _SWAP_ORIENTATIONS else (w, h)


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive, by extension), sorted."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def copy_image(ds: Dataset, rec: ImageRecord, dst: Path) -> None:
    """Copy ``rec``'s image to ``dst`` unless it is already there."""
    src = ds.image_path(rec)
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        return
    if not src.is_file():
        raise DatasetFormatError("image file not found; pass copy_images=False to write labels only", path=str(src))
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


def refuse_loss(what: str, where: str, fmt: str, *, lossy: bool) -> None:
    """Raise (or only warn when ``lossy``) that ``fmt`` cannot hold ``what`` of record ``where``."""
    msg = f"{where}: {fmt} cannot hold {what}"
    if not lossy:
        raise DatasetFormatError(f"{msg}; pick a format that can, or pass lossy=True to drop it")
    log.warning("%s; dropped", msg)


def single_polygon(ann: Annotation, where: str, fmt: str, *, lossy: bool) -> np.ndarray | None:
    """The one polygon a box-or-polygon format (YOLO, CVAT, Label Studio) can store for
    ``ann``, or ``None`` for a plain box; refuses (or, when ``lossy``, drops) what such a
    format cannot hold: RLE masks, ``iscrowd``, several polygons, a box off its polygon."""
    if ann.rle is not None:
        refuse_loss("an RLE mask", where, fmt, lossy=lossy)
    if ann.iscrowd:
        refuse_loss("iscrowd", where, fmt, lossy=lossy)
    if len(ann.polygons) > 1:
        refuse_loss("an instance with several polygons", where, fmt, lossy=lossy)
        return None
    if not ann.polygons:
        return None
    poly = ann.polygons[0]
    bounds = np.concatenate([poly.min(axis=0), poly.max(axis=0)])
    if np.abs(bounds - ann.box).max() > 1.0:
        refuse_loss("a box that differs from its polygon's bounds", where, fmt, lossy=lossy)
    return poly


def split_of(rec: ImageRecord) -> str | None:
    split = rec.attributes.get("split")
    return None if split is None else str(split)
