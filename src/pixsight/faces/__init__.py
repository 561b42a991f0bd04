"""Known people: a face gallery in the catalog and recognition against it (see ``gallery``)."""

from .gallery import (
    DEFAULT_THRESHOLD,
    EnrolledImage,
    GalleryError,
    Person,
    UnknownPersonError,
    enroll,
    find_person,
    people,
    recognise,
    remove,
)

__all__ = [
    "DEFAULT_THRESHOLD",
    "EnrolledImage",
    "GalleryError",
    "Person",
    "UnknownPersonError",
    "enroll",
    "find_person",
    "people",
    "recognise",
    "remove",
]
