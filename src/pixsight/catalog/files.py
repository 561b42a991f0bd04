"""Files the catalog recorded for an image: the only paths the server and exports ever open.

>>> from pixsight.catalog.files import catalog_image      # doctest: +SKIP
>>> path, data = catalog_image("catalog.sqlite", sha256)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from ..core.errors import ImageDecodeError
from ..core.image import ImageLimits, read_image_bytes
from .storage import open_session, reads

__all__ = ["catalog_image", "catalog_paths"]

log = logging.getLogger(__name__)


def catalog_paths(db: str | os.PathLike[str], sha256: str) -> list[str]:
    """Every path recorded with content ``sha256`` (analysed ok), newest sighting first."""
    with open_session(db, mode="readonly", what="cannot read the catalog's files") as con:
        return reads.paths(con, sha256, order="newest")


def catalog_image(db: str | os.PathLike[str], sha256: str, *,
                  limits: ImageLimits | None = None) -> tuple[Path, bytes] | None:
    """``(path, bytes)`` of a file the catalog recorded for ``sha256`` whose content still has
    that hash (newest sighting first), or ``None`` when every recorded file is gone or changed.

    Only paths from the catalog's ``files`` table are ever opened.
    """
    for path in catalog_paths(db, sha256):
        try:
            data = read_image_bytes(path, limits=limits)
        except ImageDecodeError:
            continue
        if hashlib.sha256(data).hexdigest() == sha256:
            return Path(path), data
        log.debug("%s changed since it was analysed; not used for %s", path, sha256[:12])
    return None
