"""Read queries the HTTP routes and file access need: is an image known, its recorded paths,
and the facts of a page of image cards (size, review flag, search flags, top-1 label).

>>> import tempfile, os
>>> from pixsight.catalog.storage import open_session
>>> with open_session(os.path.join(tempfile.mkdtemp(), "c.sqlite")) as s:
...     image_known(s, "ab" * 32), paths(s, "ab" * 32), card_facts(s, []), top_labels(s, ["ab" * 32])
(False, [], {}, {})
"""

from __future__ import annotations

import json
from typing import Any, Literal, Sequence

from .backend import Session

__all__ = ["image_known", "paths", "card_facts", "top_labels"]


def image_known(s: Session, sha256: str) -> bool:
    """True when the catalog holds image ``sha256``."""
    return s.one("SELECT 1 FROM images WHERE sha256 = ?", (sha256,)) is not None


def paths(s: Session, sha256: str, *, order: Literal["path", "newest"] = "path") -> list[str]:
    """Paths recorded with content ``sha256`` and analysed ok, by path or newest sighting first."""
    by = "path" if order == "path" else "seen DESC"
    return s.column(f"SELECT path FROM files WHERE sha256 = ? AND status = 'ok' ORDER BY {by}", (sha256,))


def card_facts(s: Session, sha256s: Sequence[str]) -> dict[str, tuple[Any, ...]]:
    """``sha256 -> (width, height, updated, needs_review, has_text, has_faces)`` of catalogued
    images (``updated``, the flags: None when not analysed or not indexed for search yet)."""
    if not sha256s:
        return {}
    sql, params = s.backend.in_values("i.sha256", list(sha256s))
    return {r[0]: tuple(r[1:]) for r in s.all(
        "SELECT i.sha256, i.width, i.height, a.updated, a.needs_review, d.has_text, d.has_faces FROM images i "
        "LEFT JOIN analyses a ON a.sha256 = i.sha256 LEFT JOIN search_docs d ON d.sha256 = i.sha256 "
        f"WHERE {sql}", params)}


def top_labels(s: Session, sha256s: Sequence[str]) -> dict[str, tuple[str, float]]:
    """``sha256 -> (label, score)``: the top-1 label of each image's latest ``classify`` result."""
    if not sha256s:
        return {}
    sql, params = s.backend.in_values("sha256", list(sha256s))
    top: dict[str, tuple[str, float]] = {}
    for sha, payload in s.all(f"SELECT sha256, result FROM results WHERE task = 'classify' AND {sql} "
                              "ORDER BY created", params):  # the latest classify result wins
        labels = json.loads(payload).get("labels") or []
        if labels:
            top[sha] = (str(labels[0]["label"]), float(labels[0]["score"]))
    return top
