"""A gallery of known people, and recognition against it (issue 4, "Faces").

The gallery lives in the catalog, in two tables of its schema (their SQL is
:mod:`pixsight.catalog.storage.gallery`)::

    people(name, created)
    gallery(name, sha256, face_index, model, vector BLOB)

``enroll`` runs the ``faces`` task on each image and keeps the embedding of its largest
face. ``recognise`` names faces by Euclidean distance between dlib's 128-D descriptors:
the nearest enrolled person if the distance is below ``threshold`` (0.6, dlib's usual
value), else ``None`` (unknown). ``find_person`` applies the same rule to every face the
catalog already holds (``face_embeddings``), so an image of NAME is one where
``recognise`` would say NAME. Naming the faces of stored analyses at read time is
:mod:`pixsight.faces.naming`.

>>> import os, tempfile
>>> db = os.path.join(tempfile.mkdtemp(), "c.sqlite")
>>> people(db)
[]
>>> enroll(db, "eileen", ["astronaut.png"])   # doctest: +SKIP
[EnrolledImage(path='astronaut.png', sha256='2418...', face_index=0, faces=1, box=(176.5, 77.0, 266.5, 167.0), note='')]
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..catalog.storage import Session, open_session
from ..catalog.storage import gallery as _rows
from ..core.errors import CatalogError, ConfigError, NotFoundError, PixsightError
from ..core.types import Faces

__all__ = [
    "DEFAULT_THRESHOLD",
    "EnrolledImage",
    "GalleryError",
    "Person",
    "UnknownPersonError",
    "enroll",
    "UNKNOWN",
    "find_person",
    "people",
    "recognise",
    "remove",
]

log = logging.getLogger(__name__)

#: dlib's usual same-person threshold on the Euclidean distance of its 128-D descriptors.
DEFAULT_THRESHOLD = 0.6

#: What ``name_faces`` calls a face that matches nobody in the gallery.
UNKNOWN = "unknown"

class GalleryError(PixsightError):
    """An image could not be enrolled, or the gallery cannot answer the question asked."""


class UnknownPersonError(NotFoundError, GalleryError):
    """A name that is not in the gallery."""


@dataclass(frozen=True)
class EnrolledImage:
    """What ``enroll`` did with one image. ``face_index`` is None when nothing was stored."""

    path: str
    sha256: str | None
    face_index: int | None
    faces: int
    box: tuple[float, float, float, float] | None
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.face_index is not None


@dataclass(frozen=True)
class Person:
    """One enrolled person and how many images back them."""

    name: str
    images: int
    created: float


@contextlib.contextmanager
def _connect(db: str | Path) -> Iterator[Session]:
    """The catalog at ``db`` (made when missing, in a folder that must exist)."""
    path = Path(db)
    if not path.parent.exists():
        raise GalleryError(f"folder {path.parent} does not exist; create it or pass another --db")
    try:
        with open_session(path, mode="create", what=f"catalog {path} is not usable") as s:
            yield s
    except CatalogError as err:
        raise GalleryError(err.message) from err


def _vectors(rows: Sequence[tuple[str, bytes]]) -> np.ndarray:
    return np.stack([np.frombuffer(v, dtype=np.float32) for _, v in rows])


def _check_name(name: str) -> str:
    clean = name.strip()
    if not clean or not clean.isprintable():
        raise ConfigError(f"person name {name!r} must be non-empty printable text")
    if clean.lower() == UNKNOWN:
        raise ConfigError(f"person name {name!r} is reserved for faces that match nobody; choose another")
    return clean


def _largest(faces: Faces) -> int:
    b = faces.boxes
    return int(np.argmax((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))


def enroll(
    db: str | Path,
    name: str,
    images: Iterable[str | Path],
    *,
    analyzer: Any = None,
    on_image: Callable[[EnrolledImage], None] | None = None,
) -> list[EnrolledImage]:
    """Add the largest face of each image to ``name``'s gallery entry.

    Images with no face (or no embedding) are reported, not stored; with several faces the
    largest is kept and the note says so. ``analyzer`` is an open ``pixsight.Analyzer``
    running ``faces`` (one is opened and closed here when None).

    >>> enroll(db, "eileen", ["astronaut.png"])[0].faces   # doctest: +SKIP
    1
    """
    name = _check_name(name)
    paths = [str(p) for p in images]
    if not paths:
        raise ConfigError("enroll needs at least one image")
    own = analyzer is None
    if own:
        from ..core.config import AnalyzeConfig
        from ..pipeline.analyzer import Analyzer

        analyzer = Analyzer(AnalyzeConfig(tasks=("faces",)))
    out: list[EnrolledImage] = []
    try:
        for path in paths:
            out.append(_enroll_one(db, name, path, analyzer))
            if on_image is not None:
                on_image(out[-1])
    finally:
        if own:
            analyzer.close()
    return out


def _enroll_one(db: str | Path, name: str, path: str, analyzer: Any) -> EnrolledImage:
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        return EnrolledImage(path, None, None, 0, None, f"cannot read: {err.strerror or err}")
    analysis = analyzer.analyze_bytes(data, name=path)
    if analysis.status != "ok":
        return EnrolledImage(path, analysis.sha256, None, 0, None, f"not an image: {(analysis.error or {}).get('message')}")
    faces = analysis.results.get("faces")
    if faces is None:
        err = analysis.task_errors.get("faces", {})
        return EnrolledImage(path, analysis.sha256, None, 0, None, f"faces task failed: {err.get('message', '?')}")
    if len(faces) == 0:
        return EnrolledImage(path, analysis.sha256, None, 0, None, "no face found")
    if faces.embeddings is None:
        return EnrolledImage(path, analysis.sha256, None, len(faces), None, "the faces model gave no embeddings")
    i = _largest(faces)
    model = analysis.models.get("faces", "faces")
    with _connect(db) as con:
        _rows.add_face(con, name, analysis.sha256, i, model, faces.embeddings[i].astype(np.float32).tobytes(),
                       created=time.time())
    _forget_named(db)
    note = f"{len(faces)} faces found; kept the largest" if len(faces) > 1 else ""
    box = tuple(float(v) for v in faces.boxes[i])
    log.info("enrolled %s from %s (face %d of %d)", name, path, i, len(faces))
    return EnrolledImage(path, analysis.sha256, i, len(faces), box, note)  # type: ignore[arg-type]


def people(db: str | Path) -> list[Person]:
    """Enrolled people with their image counts, by name.

    >>> import os, tempfile
    >>> people(os.path.join(tempfile.mkdtemp(), "c.sqlite"))
    []
    """
    with _connect(db) as con:
        return [Person(n, c, t) for n, c, t in _rows.people(con)]


def remove(db: str | Path, name: str) -> int:
    """Forget ``name``; returns how many gallery images were dropped.

    >>> import os, tempfile
    >>> remove(os.path.join(tempfile.mkdtemp(), "c.sqlite"), "nobody")
    Traceback (most recent call last):
    ...
    pixsight.faces.gallery.UnknownPersonError: no person 'nobody' in the gallery; see `pixsight faces list`
    """
    with _connect(db) as con:
        if not _rows.has_person(con, name):
            raise UnknownPersonError(f"no person {name!r} in the gallery; see `pixsight faces list`")
        n = _rows.remove_person(con, name)
    _forget_named(db)
    return n


def _gallery(con: Session, model: str | None) -> tuple[list[str], np.ndarray]:
    rows = _rows.gallery_vectors(con, model)
    if not rows:
        return [], np.zeros((0, 0), np.float32)
    return [r[0] for r in rows], _vectors(rows)


def _nearest(names: Sequence[str], vectors: np.ndarray, queries: np.ndarray,
             threshold: float) -> list[tuple[str | None, float]]:
    if not names or len(queries) == 0:
        return [(None, math.inf)] * len(queries)
    if queries.shape[1] != vectors.shape[1]:
        raise GalleryError(f"face embeddings have {queries.shape[1]} dims but the gallery holds "
                           f"{vectors.shape[1]}; enroll again with the same faces model")
    dist = np.linalg.norm(queries[:, None, :] - vectors[None, :, :], axis=2)
    best = dist.argmin(axis=1)
    out: list[tuple[str | None, float]] = []
    for q, j in enumerate(best):
        d = float(dist[q, j])
        out.append((names[j] if d < threshold else None, d))
    return out


def _check_threshold(threshold: float) -> None:
    if not (threshold > 0 and math.isfinite(threshold)):
        raise ConfigError(f"threshold must be a positive number, got {threshold}")


def recognise(db: str | Path, faces: Faces, threshold: float = DEFAULT_THRESHOLD, *,
              model: str | None = None) -> list[tuple[str | None, float]]:
    """Name each face: ``(person, distance)`` if the nearest enrolled face is closer than
    ``threshold``, else ``(None, distance)``; distance is ``inf`` when the gallery is empty.

    ``model`` restricts the gallery to vectors of that faces model (pass
    ``analysis.models["faces"]``); embeddings of different models are not comparable.

    >>> import os, tempfile
    >>> faces = Faces(boxes=[[0, 0, 10, 10]], scores=[0.9], embeddings=np.zeros((1, 128)))
    >>> recognise(os.path.join(tempfile.mkdtemp(), "c.sqlite"), faces)
    [(None, inf)]
    """
    _check_threshold(threshold)
    if len(faces) and faces.embeddings is None:
        raise GalleryError("these faces carry no embeddings; run the faces task with embeddings on")
    with _connect(db) as con:
        names, vectors = _gallery(con, model)
    queries = faces.embeddings if faces.embeddings is not None else np.zeros((0, 128), np.float32)
    return _nearest(names, vectors, queries, threshold)


def find_person(db: str | Path, name: str, threshold: float = DEFAULT_THRESHOLD
                ) -> list[tuple[str, list[str], float]]:
    """Catalogued images where some face is recognised as ``name``: ``(sha256, paths, distance)``,
    closest first. Only faces stored by the same model as the person's gallery entries count.

    >>> find_person(db, "eileen")   # doctest: +SKIP
    [('2418...', ['/photos/astronaut.png'], 0.0)]
    """
    _check_threshold(threshold)
    with _connect(db) as con:
        if not _rows.has_person(con, name):
            raise UnknownPersonError(f"no person {name!r} in the gallery; see `pixsight faces list`")
        best: dict[str, float] = {}
        for model in _rows.person_models(con, name):
            names, vectors = _gallery(con, model)
            rows = _rows.face_vectors(con, model)
            if not rows:
                continue
            for (sha, _), (who, d) in zip(rows, _nearest(names, vectors, _vectors(rows), threshold)):
                if who == name and d < best.get(sha, math.inf):
                    best[sha] = d
        return [(sha, _rows.paths_of(con, sha), d) for sha, d in sorted(best.items(), key=lambda kv: (kv[1], kv[0]))]


def _forget_named(db: str | Path) -> None:
    """Drop the read-time naming cache of ``db`` (the gallery just changed)."""
    from .naming import forget_gallery

    forget_gallery(db)
