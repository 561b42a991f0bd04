"""Queries of the face gallery (``people``, ``gallery``) and of the catalog's stored face
vectors (``face_embeddings``), for :mod:`pixsight.faces.gallery` and :mod:`pixsight.faces.naming`.

Vectors are float32 bytes; callers turn them into arrays. The read functions also work on a
read-only session of a catalog written before the gallery was part of the schema (they find
no rows instead of failing).

>>> import tempfile, os
>>> from pixsight.catalog.storage import open_session
>>> with open_session(os.path.join(tempfile.mkdtemp(), "c.sqlite")) as s:
...     add_face(s, "ann", "ab" * 32, 0, "faces@1", b"\\0" * 8, created=1.0)
...     people(s), person_models(s, "ann"), remove_person(s, "ann"), has_person(s, "ann")
([('ann', 1, 1.0)], ['faces@1'], 1, False)
"""

from __future__ import annotations

from typing import Iterable

from .backend import Session

__all__ = ["add_face", "people", "has_person", "remove_person", "person_models", "gallery_vectors",
           "all_gallery_vectors", "face_vectors", "face_vectors_of", "face_vectors_in", "paths_of"]


def add_face(s: Session, name: str, sha256: str, face_index: int, model: str, vector: bytes, *,
             created: float) -> None:
    """Enrol one face of image ``sha256`` for ``name`` (the person is added if new; the
    image's earlier face for this person and model is replaced)."""
    with s.claim():
        s.execute(s.backend.insert_ignore("people", ["name", "created"], ["name"]), (name, created))
        s.execute(s.backend.replace("gallery", ["name", "sha256", "face_index", "model", "vector"]),
                  (name, sha256, face_index, model, vector))


def people(s: Session) -> list[tuple[str, int, float]]:
    """``(name, enrolled images, created)`` of every person, by name."""
    return [(n, int(c), float(t)) for n, c, t in s.all(
        "SELECT p.name, COUNT(g.sha256), p.created FROM people p LEFT JOIN gallery g ON g.name = p.name "
        "GROUP BY p.name, p.created ORDER BY p.name")]


def has_person(s: Session, name: str) -> bool:
    return s.one("SELECT 1 FROM people WHERE name=?", (name,)) is not None


def remove_person(s: Session, name: str) -> int:
    """Forget ``name`` and its faces; returns how many gallery faces were dropped."""
    with s.claim():
        n = s.execute("DELETE FROM gallery WHERE name=?", (name,)).rowcount
        s.execute("DELETE FROM people WHERE name=?", (name,))
    return int(n)


def person_models(s: Session, name: str) -> list[str]:
    """The faces models of ``name``'s gallery entries."""
    return s.column("SELECT DISTINCT model FROM gallery WHERE name=? ORDER BY model", (name,))


def gallery_vectors(s: Session, model: str | None = None) -> list[tuple[str, bytes]]:
    """``(name, vector)`` of every enrolled face (of ``model`` only, when given)."""
    if model is None:
        return s.all("SELECT name, vector FROM gallery")
    return s.all("SELECT name, vector FROM gallery WHERE model=?", (model,))


def all_gallery_vectors(s: Session) -> list[tuple[str, str, bytes]]:
    """``(name, model, vector)`` of every enrolled face, by name; [] when the catalog has no gallery."""
    if not s.backend.has_table(s, "gallery"):
        return []
    return s.all("SELECT name, model, vector FROM gallery ORDER BY name, sha256")


def face_vectors(s: Session, model: str) -> list[tuple[str, bytes]]:
    """``(sha256, vector)`` of every catalogued face of ``model``."""
    return s.all("SELECT sha256, vector FROM face_embeddings WHERE model=?", (model,))


def face_vectors_of(s: Session, sha256: str, model: str | None = None) -> list[bytes] | None:
    """The face vectors stored for one image (of ``model``, when given), in face order; None
    when the catalog stores no face vectors at all."""
    if not s.backend.has_table(s, "face_embeddings"):
        return None
    sql, args = "SELECT vector FROM face_embeddings WHERE sha256=?", [sha256]
    if model is not None:
        sql, args = sql + " AND model=?", [*args, model]
    return s.column(sql + " ORDER BY model, face_index", args)


def face_vectors_in(s: Session, sha256s: Iterable[str]) -> list[tuple[str, str, bytes]]:
    """``(sha256, model, vector)`` of the faces of many images, by image, model and face."""
    if not s.backend.has_table(s, "face_embeddings"):
        return []
    sql, params = s.backend.in_values("f.sha256", list(sha256s))
    return s.all(f"SELECT f.sha256, f.model, f.vector FROM face_embeddings f WHERE {sql} "
                 "ORDER BY f.sha256, f.model, f.face_index", params)


def paths_of(s: Session, sha256: str) -> list[str]:
    """Every path recorded for content ``sha256``, by path."""
    return s.column("SELECT path FROM files WHERE sha256=? ORDER BY path", (sha256,))
