"""Errors of the catalog that other packages catch by name.

>>> from pixsight.core.errors import NotFoundError
>>> issubclass(UnknownImageError, NotFoundError)
True
"""

from __future__ import annotations

from ..core.errors import NotFoundError

__all__ = ["UnknownImageError"]


class UnknownImageError(NotFoundError):
    """No catalogued image has this sha256 (or none has what was asked of it, such as an
    embedding). The review queue, the similarity index and the routes raise this one class,
    so HTTP answers 404 for it."""
