"""Typed errors. Every message says what was wrong, where, and what to do.

>>> try:
...     raise ImageDecodeError("not an image", path="a.png")
... except PixsightError as err:
...     print(err)
a.png: not an image
"""

from __future__ import annotations

__all__ = [
    "PixsightError",
    "ImageDecodeError",
    "ImageTooLargeError",
    "UnsupportedFormatError",
    "NotFoundError",
    "UnknownModelError",
    "WeightsError",
    "ModelUnavailableError",
    "ConfigError",
    "CatalogError",
    "DatasetFormatError",
]


class PixsightError(Exception):
    """Base of every error pixsight raises on purpose.

    ``path`` (optional) names the file the error is about; it is prefixed to the message.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.message = message
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)

    @property
    def type(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, str]:
        return {"type": self.type, "message": str(self)}


class ImageDecodeError(PixsightError):
    """The file is not a readable image (corrupt, truncated, empty or not an image)."""


class UnsupportedFormatError(ImageDecodeError):
    """The file is an image format pixsight refuses to decode (EPS, FITS, SVG, ...)."""


class ImageTooLargeError(ImageDecodeError):
    """The image exceeds the configured pixel or byte limit (decompression-bomb guard)."""

    def __init__(self, message: str, *, path: str | None = None, limit: int, actual: int) -> None:
        self.limit = limit
        self.actual = actual
        super().__init__(message, path=path)


class NotFoundError(PixsightError):
    """The thing asked for (an image, a person, a key, a model, a dataset, ...) does not exist.

    Every "not found" error derives from it, so the HTTP layer answers 404 for all of them
    with one ``isinstance`` check.

    >>> issubclass(UnknownModelError, NotFoundError)
    True
    """


class UnknownModelError(NotFoundError):
    """No registry entry has this name."""


class WeightsError(PixsightError):
    """Weights are missing, unreadable, or failed their checksum."""


class ModelUnavailableError(PixsightError):
    """A model exists in the registry but cannot run here (missing package or weights)."""


class ConfigError(PixsightError):
    """Configuration is invalid."""


class CatalogError(PixsightError):
    """The catalog database cannot be opened or is inconsistent."""


class DatasetFormatError(PixsightError):
    """An annotation/dataset file is malformed."""
