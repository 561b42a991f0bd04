"""Naming faces at read time: each face of an analysis gets the nearest enrolled person
(or ``"unknown"``) from the catalog's gallery, so enrolling later names older images too.

``name_faces`` is what ``pixsight analyze``, ``pixsight show``, ``POST /v1/analyze`` and
``GET /v1/images/{sha}`` call; ``people_in`` names many catalogued images in one query (the
gallery cards). The gallery is cached per catalog file and re-read when the file changes.

>>> from pixsight.faces.naming import name_faces, names_in    # doctest: +SKIP
>>> names_in(name_faces("catalog.sqlite", analysis))          # doctest: +SKIP
['eileen']
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..catalog.storage import Session, open_session
from ..catalog.storage import gallery as _rows
from ..core.errors import CatalogError
from ..core.types import Analysis, Faces
from .gallery import DEFAULT_THRESHOLD, UNKNOWN, GalleryError, _check_threshold, _nearest

__all__ = ["forget_gallery", "name_faces", "names_in", "people_in"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Loaded:
    """The gallery of one catalog file, grouped by faces model."""

    by_model: dict[str, tuple[list[str], np.ndarray]]

    def vectors(self, model: str | None) -> tuple[list[str], np.ndarray]:
        if model is not None:
            return self.by_model.get(model, ([], np.zeros((0, 0), np.float32)))
        names = [n for ns, _ in self.by_model.values() for n in ns]
        dims = {v.shape[1] for _, v in self.by_model.values()}
        if not names or len(dims) != 1:  # vectors of different sizes cannot be pooled
            return [], np.zeros((0, 0), np.float32)
        return names, np.concatenate([v for _, v in self.by_model.values()])


_CACHE: dict[str, tuple[tuple[Any, ...], _Loaded | None]] = {}
_CACHE_LOCK = threading.Lock()


def _stamp(path: str) -> tuple[Any, ...] | None:
    """What changes whenever the file's content may have: main file and WAL (mtime, size)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    try:
        wal = os.stat(path + "-wal")
        w: tuple[int, int] | None = (wal.st_mtime_ns, wal.st_size)
    except FileNotFoundError:
        w = None
    return (st.st_ino, st.st_mtime_ns, st.st_size, w)


def forget_gallery(db: str | Path) -> None:
    with _CACHE_LOCK:
        _CACHE.pop(os.path.abspath(db), None)


_READERS = threading.local()  # per thread: {(path, inode): read-only session}, most recent last
_MAX_READERS = 4


@contextlib.contextmanager
def _reader(path: str) -> Iterator[Session]:
    """A read-only session, kept open per thread (a fresh one costs ~0.2 ms of schema
    parsing); naming faces never creates tables or files."""

    try:
        key = (path, os.stat(path).st_ino)
    except OSError as err:
        raise GalleryError(f"cannot open catalog {path}: {err.strerror or err}") from err
    pool: dict[tuple[str, int], Session] = getattr(_READERS, "pool", None) or {}
    _READERS.pool = pool
    con = pool.pop(key, None)
    if con is None:
        try:
            con = open_session(path, mode="readonly")
        except CatalogError as err:
            raise GalleryError(f"cannot open catalog {path}: {err.message}") from err
    try:
        yield con
    except con.backend.DatabaseError as err:
        con.close()
        raise GalleryError(f"catalog {path} is not usable: {err}") from err
    except BaseException:
        con.close()
        raise
    pool[key] = con  # most recently used last; close the oldest beyond the cap
    while len(pool) > _MAX_READERS:
        pool.pop(next(iter(pool))).close()


def _load(path: str) -> _Loaded | None:
    with _reader(path) as con:
        rows = _rows.all_gallery_vectors(con)
    if not rows:
        return None
    grouped: dict[str, tuple[list[str], list[np.ndarray]]] = {}
    for name, model, blob in rows:
        names, vecs = grouped.setdefault(model, ([], []))
        names.append(name)
        vecs.append(np.frombuffer(blob, dtype=np.float32))
    by_model = {}
    for model, (names, vecs) in grouped.items():
        if len({v.shape[0] for v in vecs}) != 1:
            raise GalleryError(f"gallery vectors of model {model!r} in {path} differ in size; "
                               "remove and enroll the people again")
        by_model[model] = (names, np.stack(vecs))
    return _Loaded(by_model)


def _gallery_of(db: str | Path) -> _Loaded | None:
    """The gallery of ``db``, read once per change of the file (cached by path, mtime and size)."""
    path = os.path.abspath(db)
    stamp = _stamp(path)
    if stamp is None:
        return None
    with _CACHE_LOCK:
        hit = _CACHE.get(path)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    loaded = _load(path)
    with _CACHE_LOCK:
        _CACHE[path] = (stamp, loaded)
    return loaded


def _stored_vectors(path: str, sha256: str | None, model: str | None, n: int) -> np.ndarray | None:
    """The face vectors the catalog stored for one image (``n`` of them), or None."""
    if sha256 is None:
        return None
    with _reader(path) as con:
        rows = _rows.face_vectors_of(con, sha256, model)
    if rows is None:  # no face vectors in this catalog
        return None
    if len(rows) != n:  # another model's vectors, or none: these faces cannot be named
        return None
    return np.stack([np.frombuffer(r, dtype=np.float32) for r in rows])


def name_faces(db: str | Path, analysis: Analysis, *, threshold: float = DEFAULT_THRESHOLD) -> Analysis:
    """A copy of ``analysis`` whose faces carry ``person`` (an enrolled name or ``"unknown"``)
    and ``person_distance`` (the distance to the nearest enrolled face, 4 decimals).

    The face vectors come from the analysis itself, or from the catalog's
    ``face_embeddings`` when the analysis was loaded without them. Only gallery vectors of
    the analysis' faces model are compared. Without a gallery, faces or vectors the same
    object is returned unchanged. The gallery is read once and cached until the catalog
    file changes, so calling this for every image costs a few microseconds plus the
    distance computation (well under a millisecond for small galleries).

    >>> import os, tempfile
    >>> a = Analysis(path="x.png", sha256="0" * 64, results={"faces": Faces.empty()})
    >>> name_faces(os.path.join(tempfile.mkdtemp(), "c.sqlite"), a) is a   # no catalog: no-op
    True
    >>> names_in(name_faces("pixsight.sqlite", analysis))   # doctest: +SKIP
    ['eileen']
    """
    _check_threshold(threshold)
    faces = analysis.results.get("faces") if analysis.status == "ok" else None
    if not isinstance(faces, Faces) or len(faces) == 0:
        return analysis
    gallery = _gallery_of(db)
    if gallery is None:
        return analysis
    model = analysis.models.get("faces")
    names, vectors = gallery.vectors(model)
    if not names:
        log.debug("no gallery vectors for faces model %s; %s left unnamed", model, analysis.path)
        return analysis
    queries = faces.embeddings
    if queries is None:
        queries = _stored_vectors(os.path.abspath(db), analysis.sha256, model, len(faces))
        if queries is None:
            log.debug("no face vectors for %s; faces left unnamed", analysis.path)
            return analysis
    matches = _nearest(names, vectors, queries, threshold)
    data = {**faces.data, "person": [who or UNKNOWN for who, _ in matches],
            "person_distance": [round(d, 4) for _, d in matches]}
    named = dataclasses.replace(faces, data=data)
    return dataclasses.replace(analysis, results={**analysis.results, "faces": named})


def names_in(analysis: Analysis) -> list[str]:
    """The distinct people ``name_faces`` recognised in ``analysis``, in face order
    (``"unknown"`` faces left out).

    >>> names_in(Analysis(path="x.png"))
    []
    """
    faces = analysis.results.get("faces")
    if not isinstance(faces, Faces):
        return []
    return list(dict.fromkeys(p for p in faces.data.get("person", []) if p and p != UNKNOWN))


def people_in(db: str | Path, shas: Iterable[str], *, threshold: float = DEFAULT_THRESHOLD
              ) -> dict[str, list[str]]:
    """For each catalogued image, the people recognised in its stored faces (as ``names_in``
    of ``name_faces`` would give, in face order); ``[]`` without a gallery or faces. One query
    for all images, so a page of search results costs one call.

    >>> import os, tempfile
    >>> people_in(os.path.join(tempfile.mkdtemp(), "c.sqlite"), ["ab" * 32])
    {'abababababababababababababababababababababababababababababababab': []}
    """
    _check_threshold(threshold)
    wanted = list(dict.fromkeys(shas))
    out: dict[str, list[str]] = {sha: [] for sha in wanted}
    gallery = _gallery_of(db) if wanted else None
    if gallery is None:
        return out
    with _reader(os.path.abspath(db)) as con:
        rows = _rows.face_vectors_in(con, wanted)
    by_model: dict[str, list[tuple[str, bytes]]] = {}
    for sha, model, blob in rows:
        by_model.setdefault(model, []).append((sha, blob))
    for model, items in by_model.items():
        names, vectors = gallery.vectors(model)
        if not names:
            continue
        queries = np.stack([np.frombuffer(b, dtype=np.float32) for _, b in items])
        for (sha, _), (who, _d) in zip(items, _nearest(names, vectors, queries, threshold)):
            if who is not None and who not in out[sha]:
                out[sha].append(who)
    return out
