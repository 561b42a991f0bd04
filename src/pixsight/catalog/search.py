"""Full-text search over the catalog (SQLite FTS5 in the same file), kept in sync lazily.

The index lives in tables of the catalog's schema (:mod:`pixsight.catalog.storage`): the
backend's full-text index (FTS5: ``search_fts`` and ``search_rows``), ``search_docs``,
``search_labels`` and ``search_state``, which
remembers the newest ``results.created``, ``files.seen`` and ``analyses.updated`` already
indexed. Every :func:`search` first re-indexes
the images touched since then, so the analyze write path needs no change.

Indexed per image: the OCR full text, the top classify labels and the detected labels, and
the file names and paths (split on ``_``, ``-``, ``.``, ``/`` so ``cat`` finds
``my_cat_photo.jpg``). Ranking is FTS5's bm25; user text is always quoted, never parsed as
FTS5 syntax. Without text, :func:`search` lists every image matching the filters, newest
analysis first; :func:`search_page` adds the total count for paging (the HTTP images list).

>>> import tempfile, os
>>> from pixsight.catalog.store import Catalog
>>> db = os.path.join(tempfile.mkdtemp(), "c.sqlite")
>>> Catalog(db).close()
>>> search(db, "anything")
[]
>>> print(fts_query("-x NEAR*"))
"-x"* "NEAR*"*
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from ..core.errors import ConfigError
from ..core.fileio import printable_path
from .storage import SQLITE, Session, open_session

__all__ = ["SearchHit", "SearchPage", "search", "search_page", "count_matches", "hits_for", "sync_index",
           "fts_query", "parse_date"]

log = logging.getLogger(__name__)

# (state key, SQL giving the sha256s changed since ?, SQL giving the newest stamp). Each is a
# range search on a time index of the schema (storage.sqlite_schema) (no DISTINCT, and "+sha256" keeps the
# planner off the sha256 indexes: the caller collects the hashes in a set).
_SOURCES = (
    ("results.created", "SELECT sha256 FROM results WHERE created >= ?", "SELECT MAX(created) FROM results"),
    ("files.seen", "SELECT sha256 FROM files WHERE seen >= ? AND +sha256 IS NOT NULL",
     "SELECT MAX(seen) FROM files"),
    ("analyses.updated", "SELECT sha256 FROM analyses WHERE updated >= ?", "SELECT MAX(updated) FROM analyses"),
)

TOP_LABELS = 3  # classify labels indexed per image (best first)

# Version of the index tables' layout, kept in search_state; an index of another layout is
# rebuilt once. 2: search_rows maps sha256 -> search_fts rowid, so re-indexing an image
# deletes its FTS row by rowid (FTS5 cannot index its UNINDEXED sha256 column: a delete by
# sha256 scans the whole table, which made the first sync quadratic).
_LAYOUT = 2.0


@dataclass(frozen=True)
class SearchHit:
    """One matching image: its content hash, known paths, bm25 score (higher is better; 0
    when there was no text), a snippet of the matching text, labels and review flag."""

    sha256: str
    paths: list[str]
    score: float
    snippet: str
    labels: list[str] = field(default_factory=list)
    needs_review: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fts_query(text: str) -> str:
    """An FTS5 MATCH expression for free user text: every word quoted (``"`` doubled) and
    prefix-matched, words ANDed. Nothing the user types is FTS5 syntax.

    >>> fts_query("cat photo")
    '"cat"* "photo"*'
    """
    return SQLITE.fts.query(text)


def parse_date(value: str | _dt.date | float | None, *, end: bool = False) -> float | None:
    """A POSIX time from ``YYYY-MM-DD`` (start of that day, or its end with ``end=True``),
    an ISO datetime, a date/datetime or a number.

    >>> parse_date("2026-01-02") < parse_date("2026-01-02", end=True)
    True
    """
    if value is None or isinstance(value, (int, float)):
        return value
    if isinstance(value, _dt.datetime):
        return value.timestamp()
    if isinstance(value, _dt.date):
        day = value
    else:
        try:
            if len(value.strip()) > 10:
                return _dt.datetime.fromisoformat(value.strip()).timestamp()
            day = _dt.date.fromisoformat(value.strip())
        except ValueError as err:
            raise ConfigError(f"bad date {value!r}: use YYYY-MM-DD or an ISO datetime") from err
    start = _dt.datetime.combine(day, _dt.time())
    return (start + _dt.timedelta(days=1)).timestamp() - 1e-6 if end else start.timestamp()


def _connect(db_path: str | os.PathLike[str]) -> Session:
    return open_session(db_path, mode="existing", what="search failed")


def _document(db: Session, sha: str) -> tuple[str, list[str], list[str], bool, bool, str]:
    """(ocr text, classify labels, detected labels, has_text, has_faces, names) of one image."""
    text, top, detected, has_faces = "", [], [], False
    for task, payload in db.execute(
        "SELECT task, result FROM results WHERE sha256=? ORDER BY created", (sha,)
    ):  # latest result of a task wins
        try:
            data = json.loads(payload)
        except ValueError:
            continue
        if task == "ocr":
            text = str(data.get("text") or "")
        elif task == "classify":
            top = [str(i["label"]) for i in data.get("labels", [])[:TOP_LABELS] if i.get("label")]
        elif task == "detect":
            detected = sorted({str(d["label"]) for d in data.get("detections", data.get("objects", []))
                               if isinstance(d, dict) and d.get("label")})
        elif task == "faces":
            has_faces = len(data.get("faces", [])) > 0
    paths = [r[0] for r in db.execute("SELECT path FROM files WHERE sha256=? AND status='ok'", (sha,))]
    names = " ".join(p.replace("\\", "/") for p in paths)
    return text, top, detected, bool(text.strip()), has_faces, names


def sync_index(db_path: str | os.PathLike[str]) -> int:
    """Bring the search index up to date with the catalog; returns how many images were
    (re-)indexed. Called by :func:`search`; cheap when nothing changed."""
    with _connect(db_path) as db:
        return _sync(db)


def _sync(db: Session) -> int:
    fts = db.backend.fts
    with db.claim():
        state = dict(db.all("SELECT key, value FROM search_state"))
        if state.get("layout") != _LAYOUT:
            fts.clear(db)
            for table in ("search_docs", "search_labels", "search_state"):
                db.execute(f"DELETE FROM {table}")
            state = {}
        changed: set[str] = set()
        newest: dict[str, float] = {"layout": _LAYOUT}
        for key, changed_sql, max_sql in _SOURCES:
            # ">=": rows written in the same instant as the last indexed one are re-indexed (idempotent)
            changed.update(db.column(changed_sql, (state.get(key, float("-inf")),)))
            top = db.scalar(max_sql)
            if top is not None:
                newest[key] = top
        add_label = db.backend.insert_ignore("search_labels", ["sha256", "label"], ["sha256", "label"])
        put_doc = db.backend.upsert("search_docs", ["sha256", "labels", "has_text", "has_faces"], ["sha256"])
        for sha in changed:
            text, top, detected, has_text, has_faces, names = _document(db, sha)
            labels = list(dict.fromkeys([*top, *detected]))
            fts.put(db, sha, text, " ".join(labels), names)
            db.execute("DELETE FROM search_labels WHERE sha256=?", (sha,))
            db.executemany(add_label, [(sha, lab) for lab in labels])
            db.execute(put_doc, (sha, json.dumps(labels), int(has_text), int(has_faces)))
        db.executemany(db.backend.upsert("search_state", ["key", "value"], ["key"]), list(newest.items()))
    if changed:
        log.debug("search index: %d images re-indexed", len(changed))
    return len(changed)


@dataclass(frozen=True)
class SearchPage:
    """One page of :func:`search_page`: the hits, how many images match in all, and the
    ``offset``/``limit`` that were asked for."""

    items: list[SearchHit]
    total: int
    offset: int
    limit: int

    def to_dict(self) -> dict[str, Any]:
        return {"items": [h.to_dict() for h in self.items], "total": self.total, "offset": self.offset,
                "limit": self.limit}


def search(
    db_path: str | os.PathLike[str],
    text: str | None = None,
    *,
    label: str | None = None,
    has_text: bool | None = None,
    has_faces: bool | None = None,
    needs_review: bool | None = None,
    folder: str | os.PathLike[str] | None = None,
    since: str | _dt.date | float | None = None,
    until: str | _dt.date | float | None = None,
    shas: Iterable[str] | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[SearchHit]:
    """Images of the catalog at ``db_path`` matching ``text`` (OCR text, labels, file names)
    and every filter given; best bm25 first. With no ``text`` (``None``, empty or blank) it
    lists every analysed image matching the filters, newest analysis first.

    ``label`` matches a top classify label or a detected label (case-insensitive);
    ``folder`` is a path prefix (made absolute); ``since``/``until`` bound the analysis date
    (``YYYY-MM-DD``, inclusive); ``shas`` keeps only these images (e.g. those
    :func:`pixsight.faces.gallery.find_person` returns; an empty collection matches nothing).
    ``offset`` skips that many hits (paging); :func:`count_matches` gives the total.

    Example:
        >>> hits = search("pixsight.sqlite", "invoice", label="document", limit=5)  # doctest: +SKIP
        >>> hits[0].paths, hits[0].snippet                                          # doctest: +SKIP
        (['/photos/scan_01.png'], '... total of the [invoice] ...')
    """
    return search_page(db_path, text, label=label, has_text=has_text, has_faces=has_faces,
                       needs_review=needs_review, folder=folder, since=since, until=until, shas=shas,
                       limit=limit, offset=offset, with_total=False).items


def count_matches(
    db_path: str | os.PathLike[str],
    text: str | None = None,
    *,
    label: str | None = None,
    has_text: bool | None = None,
    has_faces: bool | None = None,
    needs_review: bool | None = None,
    folder: str | os.PathLike[str] | None = None,
    since: str | _dt.date | float | None = None,
    until: str | _dt.date | float | None = None,
    shas: Iterable[str] | None = None,
) -> int:
    """How many images :func:`search` with the same arguments would find without a limit.

    >>> count_matches("pixsight.sqlite", label="cat")   # doctest: +SKIP
    12
    """
    return search_page(db_path, text, label=label, has_text=has_text, has_faces=has_faces,
                       needs_review=needs_review, folder=folder, since=since, until=until, shas=shas,
                       limit=0).total


def search_page(
    db_path: str | os.PathLike[str],
    text: str | None = None,
    *,
    label: str | None = None,
    has_text: bool | None = None,
    has_faces: bool | None = None,
    needs_review: bool | None = None,
    folder: str | os.PathLike[str] | None = None,
    since: str | _dt.date | float | None = None,
    until: str | _dt.date | float | None = None,
    shas: Iterable[str] | None = None,
    limit: int = 48,
    offset: int = 0,
    with_total: bool = True,
) -> SearchPage:
    """:func:`search` plus the total number of matches, in one index sync and connection:
    what ``GET /v1/images`` answers. ``limit=0`` gives only the total; ``with_total=False``
    skips counting (``total`` is then -1).

    >>> page = search_page("pixsight.sqlite", label="cat", limit=48, offset=48)   # doctest: +SKIP
    >>> page.total, len(page.items), page.offset                                   # doctest: +SKIP
    (130, 48, 48)
    """
    if limit < 0 or offset < 0:
        raise ConfigError(f"limit and offset must not be negative, got limit={limit}, offset={offset}")
    if limit == 0 and not with_total:
        raise ConfigError("limit must be at least 1")
    lo, hi = parse_date(since), parse_date(until, end=True)
    wanted = None if shas is None else sorted(set(shas))
    with _connect(db_path) as db:
        _sync(db)
        if wanted is not None and not wanted:
            return SearchPage([], 0 if with_total else -1, offset, limit)
        where, params = _filters(db, label=label, has_text=has_text, has_faces=has_faces, needs_review=needs_review,
                                 folder=folder, since=lo, until=hi, shas=wanted)
        fts = db.backend.fts
        query = fts.query(text or "")
        if query:
            table, match, score, snippet, order = fts.match()
            base = (f"FROM {table} JOIN search_docs d ON d.sha256 = f.sha256 "
                    f"LEFT JOIN analyses a ON a.sha256 = f.sha256 WHERE {match} {where}")
            params = [query, *params]
            select = f"SELECT f.sha256, {score} AS score, {snippet} "
            order = f"ORDER BY {order}"
        else:  # a listing: analysed images only (not hashes known from unreadable files alone)
            base = f"FROM analyses a JOIN search_docs d ON d.sha256 = a.sha256 WHERE 1 = 1 {where}"
            select = "SELECT d.sha256, 0.0, '' "
            order = "ORDER BY a.updated DESC, d.sha256"
        rows = []
        if limit:
            rows = db.execute(f"{select}{base} {order} LIMIT ? OFFSET ?", (*params, limit, offset)).fetchall()
        total = -1
        if with_total:
            total = db.execute(f"SELECT COUNT(*) {base}", params).fetchone()[0]
        return SearchPage([_hit(db, sha, score, snip) for sha, score, snip in rows], total, offset, limit)


def hits_for(db_path: str | os.PathLike[str], scored: Iterable[tuple[str, float]]) -> list[SearchHit]:
    """:class:`SearchHit` rows for ``(sha256, score)`` pairs from elsewhere (e.g. similar
    images), in the given order; hashes unknown to the catalog are skipped."""
    with _connect(db_path) as db:
        _sync(db)
        known = set(db.column("SELECT sha256 FROM search_docs"))
        return [_hit(db, sha, float(score), "") for sha, score in scored if sha in known]


def _filters(db: Session, *, label: str | None, has_text: bool | None, has_faces: bool | None, needs_review: bool | None,
             folder: str | os.PathLike[str] | None, since: float | None, until: float | None,
             shas: list[str] | None = None) -> tuple[str, list[Any]]:
    """SQL ``AND ...`` clauses over ``d`` (search_docs) and ``a`` (analyses), with parameters."""
    where, params = "", []
    if label:
        where += " AND EXISTS (SELECT 1 FROM search_labels l WHERE l.sha256 = d.sha256 AND l.label = ?)"
        params.append(label.strip())
    if has_text is not None:
        where += " AND d.has_text = ?"
        params.append(int(has_text))
    if has_faces is not None:
        where += " AND d.has_faces = ?"
        params.append(int(has_faces))
    if needs_review is not None:
        where += " AND COALESCE(a.needs_review, 0) = ?"
        params.append(int(needs_review))
    if folder is not None:
        prefix = printable_path(os.path.abspath(os.fspath(folder))).rstrip(os.sep) + os.sep
        where += (" AND EXISTS (SELECT 1 FROM files p WHERE p.sha256 = d.sha256 AND p.status = 'ok' "
                  "AND substr(p.path, 1, ?) = ?)")
        params += [len(prefix), prefix]
    if since is not None:
        where += " AND a.updated >= ?"
        params.append(since)
    if until is not None:
        where += " AND a.updated <= ?"
        params.append(until)
    if shas is not None:  # one parameter: no limit on how many
        sql, more = db.backend.in_values("d.sha256", shas)
        where += f" AND {sql}"
        params += more
    return where, params


def _hit(db: Session, sha: str, score: float, snippet: str) -> SearchHit:
    paths = [r[0] for r in db.execute("SELECT path FROM files WHERE sha256=? AND status='ok' ORDER BY path", (sha,))]
    row = db.execute("SELECT labels FROM search_docs WHERE sha256=?", (sha,)).fetchone()
    review = db.execute("SELECT needs_review FROM analyses WHERE sha256=?", (sha,)).fetchone()
    return SearchHit(sha256=sha, paths=paths, score=round(float(score), 4), snippet=snippet.replace("\n", " "),
                     labels=json.loads(row[0]) if row else [], needs_review=bool(review[0]) if review else False)
