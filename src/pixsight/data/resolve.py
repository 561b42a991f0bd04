"""Open a dataset the way every command accepts one: a path in any supported format
(auto-detected; a COCO dataset is its JSON file), later also a catalog name or an archive.
"""

from __future__ import annotations

import os
from pathlib import Path

from .dataset import Dataset
from .formats import read_dataset

__all__ = ["open_dataset"]


def open_dataset(spec: str | os.PathLike[str], *, fmt: str | None = None, db: str | os.PathLike[str] | None = None) -> Dataset:
    """Read the dataset ``spec`` names.

    Args:
        spec: a dataset path (folder, COCO/Label Studio JSON, CVAT XML, YOLO data.yaml, ...).
        fmt: force a format instead of detecting it.
        db: the catalog to look names up in (registered datasets).

    Raises:
        DatasetFormatError: the data cannot be read; the message says where.
    """
    return read_dataset(Path(spec), fmt)
