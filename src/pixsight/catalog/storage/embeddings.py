"""Queries of the image embeddings the vector index (:mod:`pixsight.catalog.vectors`) syncs from.

The index syncs incrementally by the backend's :attr:`~.backend.Backend.row_id` (SQLite:
``rowid``): rows above the last synced one are new; a replaced embedding gets a new, higher
row id (``Catalog.save`` writes them with :meth:`~.backend.Backend.replace`).

>>> import tempfile, os
>>> from pixsight.catalog.storage import open_session
>>> with open_session(os.path.join(tempfile.mkdtemp(), "c.sqlite")) as s:
...     models(s), rows_after(s, "m@1", 0)
([], [])
"""

from __future__ import annotations

from .backend import Session

__all__ = ["models", "rows_after", "count_up_to", "row_at", "by_prefix"]


def models(s: Session) -> list[tuple[str, int]]:
    """``(model, number of embeddings)``, most common first (ties by name)."""
    return [(m, int(n)) for m, n in s.all(
        "SELECT model, COUNT(*) AS n FROM embeddings GROUP BY model ORDER BY n DESC, model")]


def rows_after(s: Session, model: str, after: int) -> list[tuple[int, str, int, bytes]]:
    """``(row id, sha256, dim, float32 vector bytes)`` of ``model`` above row id ``after``, in order."""
    rid = s.backend.row_id
    return s.all(f"SELECT {rid}, sha256, dim, vector FROM embeddings WHERE model=? AND {rid}>? ORDER BY {rid}",
                 (model, after))


def count_up_to(s: Session, model: str, row_id: int) -> int:
    """How many embeddings of ``model`` have a row id at or below ``row_id``."""
    rid = s.backend.row_id
    return int(s.scalar(f"SELECT COUNT(*) FROM embeddings WHERE model=? AND {rid}<=?", (model, row_id)))


def row_at(s: Session, model: str, row_id: int) -> tuple[str, bytes] | None:
    """``(sha256, vector bytes)`` of the embedding at ``row_id``, if it is one of ``model``."""
    return s.one(f"SELECT sha256, vector FROM embeddings WHERE {s.backend.row_id}=? AND model=?", (row_id, model))


def by_prefix(s: Session, model: str, key: str, *, limit: int = 2) -> list[tuple[str, bytes]]:
    """``(sha256, vector bytes)`` of ``model`` whose sha256 is ``key`` or, for 8+ characters,
    starts with it (at most ``limit``: enough to tell "ambiguous")."""
    return s.all("SELECT sha256, vector FROM embeddings WHERE model=? AND sha256 LIKE ? LIMIT ?",
                 (model, key + "%" if len(key) >= 8 else key, limit))
