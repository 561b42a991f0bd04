"""A gallery of known people, and recognition against it (issue 4, "Faces").

The gallery lives in the catalog's SQLite file, in two tables this module creates itself::

    people(name, created)
    gallery(name, sha256, face_index, model, vector BLOB)

``enroll`` runs the ``faces`` task on each image and keeps the embedding of its largest
face. ``recognise`` names faces by Euclidean distance between dlib's 128-D descriptors:
the nearest enrolled person if the distance is below ``threshold`` (0.6, dlib's usual
value), else ``None`` (unknown). ``find_person`` applies the same rule to every face the
catalog already holds (``face_embeddings``), so an image of NAME is one where
``recognise`` would say NAME.

>>> import os, tempfile
>>> db = os.path.join(tempfile.mkdtemp(), "c.sqlite")
>>> people(db)
[]
>>> enroll(db, "eileen", ["astronaut.png"])   # doctest: +SKIP
[EnrolledImage(path='astronaut.png', sha256='2418...', face_index=0, faces=1, box=(176.5, 77.0, 266.5, 167.0), note='')]
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..catalog.store import connect_readonly
from ..core.errors import ConfigError, PixsightError
from ..core.types import Analysis, Faces

__all__ = [
    "DEFAULT_THRESHOLD",
    "EnrolledImage",
    "GalleryError",
    "Person",
    "UnknownPersonError",
    "enroll",
    "UNKNOWN",
    "find_person",
    "name_faces",
    "names_in",
    "people",
    "people_in",
    "recognise",
    "remove",
]

log = logging.getLogger(__name__)

#: dlib's usual same-person threshold on the Euclidean distance of its 128-D descriptors.
DEFAULT_THRESHOLD = 0.6

#: What ``name_faces`` calls a face that matches nobody in the gallery.
UNKNOWN = "unknown"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS people (name TEXT PRIMARY KEY, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS gallery (
    name TEXT NOT NULL REFERENCES people (name),
    sha256 TEXT NOT NULL,
    face_index INTEGER NOT NULL,
    model TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (name, sha256, model)
);
"""


class GalleryError(PixsightError):
    """An image could not be enrolled, or the gallery cannot answer the question asked."""


class UnknownPersonError(GalleryError):
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
def _connect(db: str | Path) -> Iterator[sqlite3.Connection]:
    path = Path(db)
    if not path.parent.exists():
        raise GalleryError(f"folder {path.parent} does not exist; create it or pass another --db")
    try:
        con = sqlite3.connect(path, timeout=30)
    except sqlite3.Error as err:
        raise GalleryError(f"cannot open catalog {path}: {err}") from err
    try:
        con.executescript(_SCHEMA)
        with con:
            yield con
    except sqlite3.DatabaseError as err:
        raise GalleryError(f"catalog {path} is not usable: {err}") from err
    finally:
        con.close()


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
        con.execute("INSERT OR IGNORE INTO people VALUES (?, ?)", (name, time.time()))
        con.execute("INSERT OR REPLACE INTO gallery VALUES (?, ?, ?, ?, ?)",
                    (name, analysis.sha256, i, model, faces.embeddings[i].astype(np.float32).tobytes()))
    _forget_gallery(db)
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
        rows = con.execute(
            "SELECT p.name, COUNT(g.sha256), p.created FROM people p LEFT JOIN gallery g ON g.name = p.name "
            "GROUP BY p.name ORDER BY p.name"
        ).fetchall()
    return [Person(n, int(c), float(t)) for n, c, t in rows]


def remove(db: str | Path, name: str) -> int:
    """Forget ``name``; returns how many gallery images were dropped.

    >>> import os, tempfile
    >>> remove(os.path.join(tempfile.mkdtemp(), "c.sqlite"), "nobody")
    Traceback (most recent call last):
    ...
    pixsight.faces.gallery.UnknownPersonError: no person 'nobody' in the gallery; see `pixsight faces list`
    """
    with _connect(db) as con:
        if con.execute("SELECT 1 FROM people WHERE name=?", (name,)).fetchone() is None:
            raise UnknownPersonError(f"no person {name!r} in the gallery; see `pixsight faces list`")
        n = con.execute("DELETE FROM gallery WHERE name=?", (name,)).rowcount
        con.execute("DELETE FROM people WHERE name=?", (name,))
    _forget_gallery(db)
    return int(n)


def _gallery(con: sqlite3.Connection, model: str | None) -> tuple[list[str], np.ndarray]:
    sql, args = "SELECT name, vector FROM gallery", ()
    if model is not None:
        sql, args = sql + " WHERE model=?", (model,)
    rows = con.execute(sql, args).fetchall()
    if not rows:
        return [], np.zeros((0, 0), np.float32)
    return [r[0] for r in rows], np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])


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
        if con.execute("SELECT 1 FROM people WHERE name=?", (name,)).fetchone() is None:
            raise UnknownPersonError(f"no person {name!r} in the gallery; see `pixsight faces list`")
        has_catalog = con.execute(
            "SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name IN ('face_embeddings', 'files')"
        ).fetchone()[0] == 2
        if not has_catalog:
            return []
        models = [r[0] for r in con.execute("SELECT DISTINCT model FROM gallery WHERE name=?", (name,))]
        best: dict[str, float] = {}
        for model in models:
            names, vectors = _gallery(con, model)
            rows = con.execute("SELECT sha256, vector FROM face_embeddings WHERE model=?", (model,)).fetchall()
            if not rows:
                continue
            queries = np.stack([np.frombuffer(v, dtype=np.float32) for _, v in rows])
            for (sha, _), (who, d) in zip(rows, _nearest(names, vectors, queries, threshold)):
                if who == name and d < best.get(sha, math.inf):
                    best[sha] = d
        out = []
        for sha, d in sorted(best.items(), key=lambda kv: (kv[1], kv[0])):
            paths = [r[0] for r in con.execute("SELECT path FROM files WHERE sha256=? ORDER BY path", (sha,))]
            out.append((sha, paths, d))
    return out


# -- naming at read time ---------------------------------------------------------------------

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


def _forget_gallery(db: str | Path) -> None:
    with _CACHE_LOCK:
        _CACHE.pop(os.path.abspath(db), None)


_READERS = threading.local()  # per thread: {(path, inode): read-only connection}, most recent last
_MAX_READERS = 4


@contextlib.contextmanager
def _reader(path: str) -> Iterator[sqlite3.Connection]:
    """A read-only connection, kept open per thread (a fresh one costs ~0.2 ms of schema
    parsing); naming faces never creates tables or files."""

    try:
        key = (path, os.stat(path).st_ino)
    except OSError as err:
        raise GalleryError(f"cannot open catalog {path}: {err.strerror or err}") from err
    pool: dict[tuple[str, int], sqlite3.Connection] = getattr(_READERS, "pool", None) or {}
    _READERS.pool = pool
    con = pool.pop(key, None)
    if con is None:
        try:
            con = connect_readonly(path)
        except sqlite3.Error as err:
            raise GalleryError(f"cannot open catalog {path}: {err}") from err
    try:
        yield con
    except sqlite3.DatabaseError as err:
        con.close()
        raise GalleryError(f"catalog {path} is not usable: {err}") from err
    except BaseException:
        con.close()
        raise
    pool[key] = con  # most recently used last; close the oldest beyond the cap
    while len(pool) > _MAX_READERS:
        pool.pop(next(iter(pool))).close()


def _has_table(con: sqlite3.Connection, name: str) -> bool:
    return con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None


def _load(path: str) -> _Loaded | None:
    with _reader(path) as con:
        if not _has_table(con, "gallery"):
            return None
        rows = con.execute("SELECT name, model, vector FROM gallery ORDER BY name, sha256").fetchall()
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
    sql, args = "SELECT vector FROM face_embeddings WHERE sha256=?", [sha256]
    if model is not None:
        sql, args = sql + " AND model=?", [*args, model]
    with _reader(path) as con:
        try:
            rows = con.execute(sql + " ORDER BY model, face_index", args).fetchall()
        except sqlite3.OperationalError:  # no face_embeddings table: not a catalog of analyses
            return None
    if len(rows) != n:  # another model's vectors, or none: these faces cannot be named
        return None
    return np.stack([np.frombuffer(r[0], dtype=np.float32) for r in rows])


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
    named = Faces(boxes=faces.boxes, scores=faces.scores, landmarks=faces.landmarks,
                  embeddings=faces.embeddings, data=data)
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
    import json

    with _reader(os.path.abspath(db)) as con:
        if not _has_table(con, "face_embeddings"):
            return out
        rows = con.execute(
            "SELECT f.sha256, f.model, f.vector FROM face_embeddings f "
            "WHERE f.sha256 IN (SELECT value FROM json_each(?)) ORDER BY f.sha256, f.model, f.face_index",
            (json.dumps(wanted),)).fetchall()
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
