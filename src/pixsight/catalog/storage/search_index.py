"""Queries of the search index (:mod:`pixsight.catalog.search`): what changed since the last
sync, one image's document, the index writes, and the filtered, ranked page of hits.

Besides the backend's full-text index (:class:`~.backend.FullTextIndex`) the index keeps
``search_docs`` (labels as JSON, has_text, has_faces per image), ``search_labels`` (one row
per image and label, case-insensitive) and ``search_state`` (the newest time stamps already
indexed and the layout version).

>>> import tempfile, os
>>> from pixsight.catalog.storage import open_session
>>> with open_session(os.path.join(tempfile.mkdtemp(), "c.sqlite")) as s:
...     changed_since(s, {}), page(s, query="", filters=Filters(), limit=5, offset=0, with_total=True)
((set(), {}), ([], 0))
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from .backend import Session

__all__ = ["SOURCES", "Filters", "state", "reset", "changed_since", "document_rows", "put_document", "save_state",
           "page", "indexed", "hit_facts"]

# (state key, SQL giving the sha256s changed since ?, SQL giving the newest stamp). Each is a
# range search on a time index of the schema (no DISTINCT, and "+sha256" keeps SQLite's planner
# off the sha256 indexes: the caller collects the hashes in a set).
SOURCES = (
    ("results.created", "SELECT sha256 FROM results WHERE created >= ?", "SELECT MAX(created) FROM results"),
    ("files.seen", "SELECT sha256 FROM files WHERE seen >= ? AND +sha256 IS NOT NULL",
     "SELECT MAX(seen) FROM files"),
    ("analyses.updated", "SELECT sha256 FROM analyses WHERE updated >= ?", "SELECT MAX(updated) FROM analyses"),
)


@dataclass(frozen=True)
class Filters:
    """What a page of hits must match besides the text (None: no condition). ``folder`` is a
    path prefix ending in the separator; ``since``/``until`` bound ``analyses.updated``."""

    label: str | None = None
    has_text: bool | None = None
    has_faces: bool | None = None
    needs_review: bool | None = None
    folder: str | None = None
    since: float | None = None
    until: float | None = None
    shas: Sequence[str] | None = None


# -- syncing ----------------------------------------------------------------------------------
def state(s: Session) -> dict[str, float]:
    """``search_state`` as a dict (newest stamps indexed per source, ``layout``)."""
    return dict(s.all("SELECT key, value FROM search_state"))


def reset(s: Session) -> None:
    """Empty the whole index (a rebuild follows)."""
    s.backend.fts.clear(s)
    for table in ("search_docs", "search_labels", "search_state"):
        s.execute(f"DELETE FROM {table}")


def changed_since(s: Session, seen: dict[str, float]) -> tuple[set[str], dict[str, float]]:
    """The images whose results, files or analysis changed at or after the stamps in ``seen``
    (">=": rows written in the same instant as the last indexed one are redone, idempotently),
    and the newest stamp of each source now."""
    changed: set[str] = set()
    newest: dict[str, float] = {}
    for key, changed_sql, max_sql in SOURCES:
        changed.update(s.column(changed_sql, (seen.get(key, float("-inf")),)))
        top = s.scalar(max_sql)
        if top is not None:
            newest[key] = top
    return changed, newest


def document_rows(s: Session, sha256: str) -> tuple[list[tuple[str, str]], list[str]]:
    """``(task, result JSON)`` of an image's results, oldest first, and its paths analysed ok."""
    return (s.all("SELECT task, result FROM results WHERE sha256=? ORDER BY created", (sha256,)),
            s.column("SELECT path FROM files WHERE sha256=? AND status='ok'", (sha256,)))


def put_document(s: Session, sha256: str, *, text: str, labels: list[str], names: str, has_text: bool,
                 has_faces: bool) -> None:
    """(Re-)index one image."""
    s.backend.fts.put(s, sha256, text, " ".join(labels), names)
    s.execute("DELETE FROM search_labels WHERE sha256=?", (sha256,))
    s.executemany(s.backend.insert_ignore("search_labels", ["sha256", "label"], ["sha256", "label"]),
                  [(sha256, label) for label in labels])
    s.execute(s.backend.upsert("search_docs", ["sha256", "labels", "has_text", "has_faces"], ["sha256"]),
              (sha256, json.dumps(labels), int(has_text), int(has_faces)))


def save_state(s: Session, stamps: dict[str, float]) -> None:
    s.executemany(s.backend.upsert("search_state", ["key", "value"], ["key"]), list(stamps.items()))


# -- querying ---------------------------------------------------------------------------------
def _where(s: Session, f: Filters) -> tuple[str, list[Any]]:
    """SQL ``AND ...`` clauses over ``d`` (search_docs) and ``a`` (analyses), with parameters."""
    where, params = "", []
    if f.label:
        where += " AND EXISTS (SELECT 1 FROM search_labels l WHERE l.sha256 = d.sha256 AND l.label = ?)"
        params.append(f.label)
    if f.has_text is not None:
        where += " AND d.has_text = ?"
        params.append(int(f.has_text))
    if f.has_faces is not None:
        where += " AND d.has_faces = ?"
        params.append(int(f.has_faces))
    if f.needs_review is not None:
        where += " AND COALESCE(a.needs_review, 0) = ?"
        params.append(int(f.needs_review))
    if f.folder is not None:
        where += (" AND EXISTS (SELECT 1 FROM files p WHERE p.sha256 = d.sha256 AND p.status = 'ok' "
                  "AND substr(p.path, 1, ?) = ?)")
        params += [len(f.folder), f.folder]
    if f.since is not None:
        where += " AND a.updated >= ?"
        params.append(f.since)
    if f.until is not None:
        where += " AND a.updated <= ?"
        params.append(f.until)
    if f.shas is not None:  # one parameter: no limit on how many
        sql, more = s.backend.in_values("d.sha256", list(f.shas))
        where += f" AND {sql}"
        params += more
    return where, params


def page(s: Session, *, query: str, filters: Filters, limit: int, offset: int,
         with_total: bool) -> tuple[list[tuple[str, float, str]], int]:
    """``([(sha256, score, snippet)], total)`` of the images matching the full-text ``query``
    (the backend's match expression; best first) and ``filters``; with an empty query every
    analysed image matching the filters, newest analysis first (score 0, no snippet).
    ``total`` is -1 unless ``with_total``; ``limit=0`` gives only the total."""
    where, params = _where(s, filters)
    if query:
        table, match, score, snippet, order = s.backend.fts.match()
        base = (f"FROM {table} JOIN search_docs d ON d.sha256 = f.sha256 "
                f"LEFT JOIN analyses a ON a.sha256 = f.sha256 WHERE {match} {where}")
        params = [query, *params]
        select = f"SELECT f.sha256, {score} AS score, {snippet} "
        order = f"ORDER BY {order}"
    else:  # a listing: analysed images only (not hashes known from unreadable files alone)
        base = f"FROM analyses a JOIN search_docs d ON d.sha256 = a.sha256 WHERE 1 = 1 {where}"
        select = "SELECT d.sha256, 0.0, '' "
        order = "ORDER BY a.updated DESC, d.sha256"
    rows = s.all(f"{select}{base} {order} LIMIT ? OFFSET ?", (*params, limit, offset)) if limit else []
    total = int(s.scalar(f"SELECT COUNT(*) {base}", params)) if with_total else -1
    return rows, total


def indexed(s: Session) -> set[str]:
    """Every image the index holds."""
    return set(s.column("SELECT sha256 FROM search_docs"))


def hit_facts(s: Session, sha256: str) -> tuple[list[str], list[str], bool]:
    """``(paths analysed ok by path, indexed labels, needs_review)`` of one image."""
    paths = s.column("SELECT path FROM files WHERE sha256=? AND status='ok' ORDER BY path", (sha256,))
    labels = s.scalar("SELECT labels FROM search_docs WHERE sha256=?", (sha256,))
    review = s.scalar("SELECT needs_review FROM analyses WHERE sha256=?", (sha256,))
    return paths, json.loads(labels) if labels else [], bool(review)
