"""Known people: a face gallery in the catalog (``gallery``) and naming faces against it at
read time (``naming``)."""

from . import gallery, naming
from .gallery import *  # noqa: F403 - the package re-exports the gallery's public API
from .naming import *  # noqa: F403 - and the naming API

__all__ = [*gallery.__all__, *naming.__all__]
