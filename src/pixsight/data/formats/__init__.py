"""Dataset formats: COCO JSON, YOLO txt, Pascal VOC XML, CVAT XML, Label Studio JSON and
class folders.

:func:`read_dataset` detects the format; :func:`write_dataset` writes one. Each writer
refuses (``DatasetFormatError``) to drop data its format cannot hold unless ``lossy=True``.

>>> import tempfile, numpy as np
>>> from PIL import Image
>>> from pixsight.data.dataset import Annotation, Dataset, ImageRecord
>>> src = Path(tempfile.mkdtemp()); Image.new("RGB", (8, 6)).save(src / "a.png")
>>> ds = Dataset(src, ["cat"], [ImageRecord("a.png", 8, 6, [Annotation(0, [1, 1, 5, 4])])])
>>> out = write_dataset(ds, Path(tempfile.mkdtemp()) / "yolo", "yolo")
>>> back = read_dataset(out)
>>> back.classes, np.round(back.images[0].annotations[0].box, 6).tolist()
(['cat'], [1.0, 1.0, 5.0, 4.0])
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ...core.errors import DatasetFormatError
from ..dataset import Dataset
from .coco import looks_like_coco, read_coco, write_coco
from .cvat import looks_like_cvat, read_cvat, write_cvat
from .folders import looks_like_folders, read_folders, write_folders
from .labelstudio import looks_like_labelstudio, read_labelstudio, write_labelstudio
from .voc import looks_like_voc, read_voc, write_voc
from .yolo import looks_like_yolo, read_yolo, write_yolo

__all__ = ["FORMATS", "detect_format", "read_dataset", "write_dataset", "rewrite_dataset",
           "read_coco", "write_coco", "read_yolo", "write_yolo", "read_voc", "write_voc",
           "read_folders", "write_folders", "read_cvat", "write_cvat", "read_labelstudio", "write_labelstudio"]

#: Format names, as ``--to`` takes them.
FORMATS: tuple[str, ...] = ("coco", "yolo", "voc", "labelstudio", "cvat", "folders")

_READERS = {"coco": read_coco, "yolo": read_yolo, "voc": read_voc, "labelstudio": read_labelstudio,
            "cvat": read_cvat, "folders": read_folders}
_WRITERS = {"coco": write_coco, "yolo": write_yolo, "voc": write_voc, "labelstudio": write_labelstudio,
            "cvat": write_cvat, "folders": write_folders}


def detect_format(path: str | Path) -> str:
    """The format of the dataset at ``path``: a COCO ``.json``, a YOLO ``data.yaml`` (or its
    folder), a VOC folder (``Annotations/``), a CVAT ``.xml`` (root ``<annotations>``), a Label
    Studio ``.json`` (a list of tasks), a folder holding one COCO JSON, or class folders."""
    p = Path(path)
    if not p.exists():
        raise DatasetFormatError("no such file or folder", path=str(p))
    if looks_like_coco(p):
        return "coco"
    if looks_like_yolo(p):
        return "yolo"
    if looks_like_voc(p):
        return "voc"
    if looks_like_cvat(p):
        return "cvat"
    if looks_like_labelstudio(p):
        return "labelstudio"
    if p.is_dir():
        jsons = [j for j in sorted(p.glob("*.json")) if looks_like_coco(j)]
        if len(jsons) == 1:
            return "coco"
        if looks_like_folders(p):
            return "folders"
    raise DatasetFormatError(f"cannot tell the dataset format; name it ({', '.join(FORMATS)})", path=str(p))


def read_dataset(path: str | Path, fmt: str | None = None) -> Dataset:
    """Read a dataset, detecting its format unless ``fmt`` names one of :data:`FORMATS`."""
    p = Path(path)
    fmt = fmt or detect_format(p)
    if fmt not in _READERS:
        raise DatasetFormatError(f"unknown dataset format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "coco" and p.is_dir():
        jsons = [j for j in sorted(p.glob("*.json")) if looks_like_coco(j)]
        if len(jsons) != 1:
            raise DatasetFormatError(f"expected one COCO JSON file in the folder, found {len(jsons)}", path=str(p))
        p = jsons[0]
    return _READERS[fmt](p)


def write_dataset(ds: Dataset, path: str | Path, fmt: str, *, copy_images: bool = True, lossy: bool = False) -> Path:
    """Write ``ds`` in format ``fmt`` at ``path`` and return what :func:`read_dataset` reads back.

    Images are copied into the new layout unless ``copy_images=False``. Data the format
    cannot hold is an error unless ``lossy=True`` (then it is dropped with a warning). When
    the write fails, a folder this call created is removed: no half-written dataset remains.
    """
    if fmt not in _WRITERS:
        raise DatasetFormatError(f"unknown dataset format {fmt!r}; use one of {', '.join(FORMATS)}")
    target = Path(path)
    folder = target.parent if target.suffix else target
    created = not folder.exists()
    try:
        return _write(ds, target, fmt, copy_images=copy_images, lossy=lossy)
    except BaseException:
        if created and folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        raise


def _write(ds: Dataset, path: Path, fmt: str, *, copy_images: bool, lossy: bool) -> Path:
    if fmt == "coco":
        return write_coco(ds, path, copy_images=copy_images, lossy=lossy)
    return _WRITERS[fmt](ds, path, copy_images=copy_images, lossy=lossy)


def rewrite_dataset(ds: Dataset, src: str | Path, fmt: str) -> Path:
    """Write ``ds`` over the dataset at ``src``: COCO's JSON atomically, folder formats to a temp
    sibling folder that is then swapped in (the old folder is removed only after the swap)."""
    src = Path(src)
    if fmt == "coco":  # labels only; images stay where they are
        json_path = src if not src.is_dir() else next(j for j in sorted(src.glob("*.json")) if looks_like_coco(j))
        return write_dataset(ds, json_path, "coco", copy_images=False)
    folder = src if src.is_dir() else src.parent
    folder = folder.resolve()
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.split-", dir=folder.parent))
    try:
        written = write_dataset(ds, tmp, fmt)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = folder.parent / f"{tmp.name}.old"
    folder.rename(old)
    try:
        tmp.rename(folder)
    except OSError:
        old.rename(folder)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return folder / written.relative_to(tmp)
