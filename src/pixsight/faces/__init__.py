"""Known people: a face gallery in the catalog and recognition against it (see ``gallery``)."""

from . import gallery
from .gallery import *  # noqa: F403 - the package re-exports the gallery's public API

__all__ = list(gallery.__all__)
