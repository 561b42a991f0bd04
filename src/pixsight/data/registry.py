"""Datasets registered by name in the catalog (``pixsight data register NAME PATH``).

An entry records where the dataset is (its absolute path, an archive included), its format,
task, classes, counts and :func:`~pixsight.data.ops.dataset_fingerprint` at registration.
:func:`~pixsight.data.resolve.open_dataset` resolves a registered name, so every command
that takes a dataset path also takes a name. :func:`dataset_status` re-reads the dataset and
says whether its labels changed since it was registered.

>>> import tempfile, os
>>> from PIL import Image
>>> from pixsight.data.dataset import Annotation, Dataset, ImageRecord
>>> from pixsight.data.formats import write_dataset
>>> d = tempfile.mkdtemp(); Image.new("RGB", (8, 6)).save(os.path.join(d, "a.png"))
>>> ds = Dataset(d, ["cat"], [ImageRecord("a.png", 8, 6, [Annotation(0, [1, 1, 5, 4])])])
>>> path = write_dataset(ds, os.path.join(d, "coco"), "coco")
>>> db = os.path.join(d, "catalog.sqlite")
>>> entry, updated = register_dataset("pets", path, db=db)
>>> entry.format, entry.images, entry.instances, updated
('coco', 1, 1, False)
>>> [e.name for e in list_datasets(db=db)], dataset_status(get_dataset("pets", db=db)).state
(['pets'], 'ok')
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import DatasetFormatError, NotFoundError, PixsightError
from .dataset import Dataset

__all__ = ["DatasetEntry", "DatasetStatus", "UnknownDatasetError", "NAME_PATTERN", "register_dataset",
           "get_dataset", "list_datasets", "remove_dataset", "dataset_status", "default_db", "valid_name"]

log = logging.getLogger(__name__)

#: What a dataset name may look like (so that it is never mistaken for a path).
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class UnknownDatasetError(NotFoundError, DatasetFormatError):
    """No dataset is registered under this name (and no file or folder has it)."""


@dataclass
class DatasetEntry:
    """One registered dataset. ``created`` / ``updated`` are UNIX times."""

    name: str
    format: str
    path: str
    task: str
    classes: list[str]
    images: int
    instances: int
    class_counts: dict[str, int]
    splits: dict[str, int]
    fingerprint: str
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "format": self.format, "path": self.path, "task": self.task,
                "classes": list(self.classes), "images": self.images, "instances": self.instances,
                "class_counts": dict(self.class_counts), "splits": dict(self.splits),
                "fingerprint": self.fingerprint, "created": _iso(self.created), "updated": _iso(self.updated)}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> DatasetEntry:
        counts = row["counts"]
        return cls(row["name"], row["format"], row["path"], row["task"], list(row["classes"]),
                   int(counts.get("images", 0)), int(counts.get("instances", 0)),
                   dict(counts.get("class_counts", {})), dict(counts.get("splits", {})), row["fingerprint"],
                   float(row["created"]), float(row["updated"]))


@dataclass(frozen=True)
class DatasetStatus:
    """How a registered dataset compares with its files now.

    ``state`` is ``"ok"`` (same fingerprint), ``"changed"`` (labels, sizes, names or classes
    changed since registration), ``"missing"`` (the path is gone) or ``"unreadable"``
    (``message`` says why). ``fingerprint`` is the current one when it could be computed.
    """

    state: str
    fingerprint: str | None = None
    message: str = ""


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def default_db() -> Path:
    """The catalog the CLI's ``--db`` defaults to: ``$PIXSIGHT_DB``, else
    ``$PIXSIGHT_HOME/catalog.sqlite`` (the same rule as ``pixsight analyze``)."""
    from ..core.config import pixsight_home

    env = os.environ.get("PIXSIGHT_DB")
    return Path(env).expanduser() if env else pixsight_home() / "catalog.sqlite"


def valid_name(name: str) -> bool:
    """True when ``name`` can name a dataset: letters, digits, ``.``, ``_``, ``-``; 64 at most.

    >>> valid_name("shapes-v2"), valid_name("../x"), valid_name("a b")
    (True, False, False)
    """
    return bool(NAME_PATTERN.match(name))


def _catalog(db: str | os.PathLike[str] | None):  # -> Catalog (import kept lazy: catalog pulls core.types)
    from ..catalog.store import Catalog

    return Catalog(db if db is not None else default_db())


def _read(path: Path, fmt: str | None) -> tuple[Dataset, str]:
    from .resolve import open_path

    found = open_path(path, fmt=fmt)
    return found.dataset, found.format


def register_dataset(name: str, path: str | os.PathLike[str], *, db: str | os.PathLike[str] | None = None,
                     fmt: str | None = None) -> tuple[DatasetEntry, bool]:
    """Read the dataset at ``path`` (any format, or an archive) and record it as ``name``.

    Returns the entry and whether an existing entry of that name was updated.

    Raises:
        DatasetFormatError: the dataset cannot be read (the message says where) or ``name``
            is not a valid name.
        CatalogError: the catalog cannot be written.
    """
    from .ops import dataset_fingerprint

    if not valid_name(name):
        raise DatasetFormatError(f"dataset name {name!r} must be 1-64 letters, digits, '.', '_' or '-' "
                                 "(starting with a letter or digit)")
    src = Path(path).expanduser().resolve()
    ds, detected = _read(src, fmt)
    splits: dict[str, int] = {}
    for rec in ds.images:
        if "split" in rec.attributes:
            splits[str(rec.attributes["split"])] = splits.get(str(rec.attributes["split"]), 0) + 1
    entry = DatasetEntry(name, detected, str(src), ds.task, list(ds.classes), len(ds.images), ds.num_instances(),
                         ds.class_counts(), dict(sorted(splits.items())), dataset_fingerprint(ds))
    row = {"name": name, "format": entry.format, "path": entry.path, "task": entry.task, "classes": entry.classes,
           "counts": {"images": entry.images, "instances": entry.instances, "class_counts": entry.class_counts,
                      "splits": entry.splits},
           "fingerprint": entry.fingerprint}
    with _catalog(db) as cat:
        updated = cat.put_dataset(row)
        stored = cat.get_dataset(name)
    log.info("%s dataset %r -> %s", "updated" if updated else "registered", name, entry.path)
    return (DatasetEntry.from_row(stored) if stored else entry), updated


def get_dataset(name: str, *, db: str | os.PathLike[str] | None = None) -> DatasetEntry:
    """The dataset registered as ``name``.

    Raises:
        UnknownDatasetError: no such name (the message lists close matches).
    """
    db_path = Path(db) if db is not None else default_db()
    if not db_path.is_file():
        raise UnknownDatasetError(f"no dataset registered as {name!r}: the catalog {db_path} does not exist "
                                  "(register one with `pixsight data register NAME PATH`)")
    with _catalog(db_path) as cat:
        row = cat.get_dataset(name)
        if row is None:
            names = [r["name"] for r in cat.list_datasets()]
    if row is None:
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else (
            f"; registered: {', '.join(names[:10])}" if names else "; none are registered")
        raise UnknownDatasetError(f"no dataset registered as {name!r} in {db_path}{hint}")
    return DatasetEntry.from_row(row)


def list_datasets(*, db: str | os.PathLike[str] | None = None) -> list[DatasetEntry]:
    """Every registered dataset, by name (empty when the catalog does not exist)."""
    db_path = Path(db) if db is not None else default_db()
    if not db_path.is_file():
        return []
    with _catalog(db_path) as cat:
        return [DatasetEntry.from_row(r) for r in cat.list_datasets()]


def remove_dataset(name: str, *, db: str | os.PathLike[str] | None = None) -> bool:
    """Forget ``name`` (its files stay); True when it was registered."""
    db_path = Path(db) if db is not None else default_db()
    if not db_path.is_file():
        return False
    with _catalog(db_path) as cat:
        return cat.delete_dataset(name)


def dataset_status(entry: DatasetEntry) -> DatasetStatus:
    """Re-read ``entry``'s dataset and compare its fingerprint with the registered one."""
    from .ops import dataset_fingerprint

    path = Path(entry.path)
    if not path.exists():
        return DatasetStatus("missing", message=f"{path} no longer exists")
    try:
        ds, _ = _read(path, entry.format)
    except PixsightError as err:
        return DatasetStatus("unreadable", message=str(err))
    fp = dataset_fingerprint(ds)
    if fp != entry.fingerprint:
        return DatasetStatus("changed", fp, "the labels, image sizes, file names or classes changed since "
                             "registration (re-register to accept the change)")
    return DatasetStatus("ok", fp)
