"""Image folders for classification: ``ROOT/<class>/<image>``, or with splits
``ROOT/<split>/<class>/<image>`` (split folders named train, val, valid or test).

Folders keep: classes (an empty folder is a class without images), image labels and
splits. They cannot hold boxes, masks or attributes; images with no label cannot be placed.
"""

from __future__ import annotations

from pathlib import Path

from ...core.errors import DatasetFormatError
from ..dataset import Dataset, ImageRecord, record_context
from ._common import copy_image, image_size, list_images, refuse_loss, split_of

__all__ = ["read_folders", "write_folders", "looks_like_folders", "SPLIT_FOLDERS"]

#: Top-level folder names read as splits.
SPLIT_FOLDERS: tuple[str, ...] = ("train", "val", "valid", "test")


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def looks_like_folders(path: Path) -> bool:
    """True for a folder with sub-folders (one per class, or one per split)."""
    return path.is_dir() and bool(_subdirs(path))


def read_folders(path: str | Path) -> Dataset:
    """Read a class-per-folder classification dataset; image sizes come from the headers."""
    root = Path(path)
    if not root.is_dir():
        raise DatasetFormatError("not a folder", path=str(root))
    top = _subdirs(root)
    if not top:
        raise DatasetFormatError("no class folders found", path=str(root))
    if all(d.name in SPLIT_FOLDERS for d in top):
        groups = [(d.name, d) for d in top]
    else:
        groups = [(None, root)]
    classes = sorted({c.name for _, g in groups for c in _subdirs(g)})
    index = {c: k for k, c in enumerate(classes)}
    records: list[ImageRecord] = []
    for split, group in groups:
        for class_dir in _subdirs(group):
            for img in list_images(class_dir):
                width, height = image_size(img)
                rel = img.relative_to(root).as_posix()
                with record_context(str(img), "image"):
                    records.append(ImageRecord(rel, width, height, label=index[class_dir.name],
                                               attributes={"split": split} if split else {}))
    return Dataset(root, classes, records, "classify")


def write_folders(ds: Dataset, path: str | Path, *, copy_images: bool = True, lossy: bool = False) -> Path:
    """Write ``ds`` as class folders at ``path`` (``<split>/<class>/<name>`` when splits are set).

    Images keep their base name; two images of one class and split with the same base name
    are an error. Returns the folder.
    """
    out = Path(path)
    has_splits = any(split_of(r) is not None for r in ds.images)
    for k, name in enumerate(ds.classes):
        if "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
            raise DatasetFormatError(f"classes[{k}] {name!r} cannot be a folder name")
    placed: dict[Path, str] = {}
    for i, rec in enumerate(ds.images):
        where = f"images[{i}] ({rec.file_name})"
        if rec.annotations:
            refuse_loss("boxes or masks", where, "image folders", lossy=lossy)
        if rec.label is None:
            refuse_loss("an image without a label", where, "image folders", lossy=lossy)
            continue
        split = split_of(rec)
        if has_splits and split is None:
            raise DatasetFormatError(f"{where}: has no split while other images do")
        if split is not None and split not in SPLIT_FOLDERS:
            raise DatasetFormatError(f"{where}: split {split!r} is not one of {', '.join(SPLIT_FOLDERS)}")
        rel = Path(ds.classes[rec.label]) / Path(rec.file_name).name
        if split is not None:
            rel = Path(split) / rel
        if rel in placed:
            raise DatasetFormatError(f"{where}: would overwrite {placed[rel]} at {rel.as_posix()}; rename one")
        placed[rel] = rec.file_name
        if copy_images:
            copy_image(ds, rec, out / rel)
    for split in sorted({split_of(r) for r in ds.images if split_of(r)}) or [None]:
        for name in ds.classes:  # classes without images still exist as folders
            (out / split / name if split else out / name).mkdir(parents=True, exist_ok=True)
    return out
