"""Open a dataset the way every command accepts one: a path in any supported format
(auto-detected; a COCO dataset is its JSON file or the folder holding it), an archive
(``.zip``, ``.tar``, ``.tar.gz``: extracted safely once into a cache keyed by its sha256),
or the name of a dataset registered in the catalog (``pixsight data register``).

An existing path always wins over a registered name.

>>> import tempfile, os
>>> from PIL import Image
>>> from pixsight.data.dataset import Dataset, ImageRecord
>>> from pixsight.data.formats import write_dataset
>>> d = tempfile.mkdtemp(); Image.new("RGB", (8, 6)).save(os.path.join(d, "a.png"))
>>> path = write_dataset(Dataset(d, ["cat"], [ImageRecord("a.png", 8, 6)]), os.path.join(d, "coco"), "coco")
>>> len(open_dataset(path).images)
1
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import DatasetFormatError
from .archive import extract_cached, is_archive
from .dataset import Dataset
from .formats import detect_format, read_dataset

__all__ = ["ResolvedDataset", "open_dataset", "resolve_dataset", "open_path", "unwrap_folder"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedDataset:
    """A dataset and where it came from: ``path`` (what was read: the archive's extracted
    copy for an archive), ``format``, ``source`` (the spec as given or the registered path)
    and ``name`` (the registered name, when it was one)."""

    dataset: Dataset
    path: Path
    format: str
    source: str
    name: str | None = None


def unwrap_folder(folder: str | os.PathLike[str]) -> Path:
    """The dataset inside an extracted archive: ``folder``, or the folder it wraps when it
    holds nothing but one sub-folder (as ``zip -r shapes.zip shapes/`` makes)."""
    folder = Path(folder)
    while True:
        entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
        if len(entries) == 1 and entries[0].is_dir():
            folder = entries[0]
            continue
        return folder


def open_path(path: str | os.PathLike[str], *, fmt: str | None = None,
              cache: str | os.PathLike[str] | None = None) -> ResolvedDataset:
    """Read the dataset at ``path``; an archive is extracted into ``cache`` first (default
    ``$PIXSIGHT_HOME/datasets/archives/<sha256>``) and the dataset inside it is read."""
    p = Path(path)
    if p.is_file() and is_archive(p):
        p = unwrap_folder(extract_cached(p, cache=cache))
        log.debug("archive %s -> %s", path, p)
    fmt = fmt or detect_format(p)
    return ResolvedDataset(read_dataset(p, fmt), p, fmt, str(path))


def resolve_dataset(spec: str | os.PathLike[str], *, fmt: str | None = None,
                    db: str | os.PathLike[str] | None = None) -> ResolvedDataset:
    """Like :func:`open_dataset`, and also say what was read and how."""
    from .registry import UnknownDatasetError, get_dataset, valid_name

    if Path(spec).exists():
        return open_path(spec, fmt=fmt)
    name = str(spec)
    if not valid_name(name):
        raise DatasetFormatError("no such file or folder", path=name)
    try:
        entry = get_dataset(name, db=db)
    except UnknownDatasetError as err:
        raise UnknownDatasetError(f"{name}: no such file or folder, and {err.message}") from None
    found = open_path(entry.path, fmt=fmt or entry.format)
    return ResolvedDataset(found.dataset, found.path, found.format, entry.path, entry.name)


def open_dataset(spec: str | os.PathLike[str], *, fmt: str | None = None,
                 db: str | os.PathLike[str] | None = None) -> Dataset:
    """Read the dataset ``spec`` names.

    Args:
        spec: a dataset path (folder, COCO/Label Studio JSON, CVAT XML, YOLO data.yaml, ...),
            an archive of one (``.zip``, ``.tar``, ``.tar.gz``, ``.tgz``), or a registered name.
        fmt: force a format instead of detecting it.
        db: the catalog to look names up in (default: ``$PIXSIGHT_DB``, else
            ``$PIXSIGHT_HOME/catalog.sqlite``, as the CLI's ``--db``).

    Raises:
        DatasetFormatError: the data cannot be read; the message says where.
        UnknownDatasetError: ``spec`` is neither a path nor a registered name.
        UnsafeArchiveError: the archive was refused (the message names the member).
    """
    return resolve_dataset(spec, fmt=fmt, db=db).dataset
