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
from .storage import search_index as _rows

__all__ = ["SearchHit", "SearchPage", "search", "search_page", "count_matches", "hits_for", "sync_index",
           "fts_query", "parse_date"]

log = logging.getLogger(__name__)

_SOURCES = _rows.SOURCES  # the "changed since" scans of the sync (storage.search_index)

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
    results, paths = _rows.document_rows(db, sha)
    for task, payload in results:  # latest result of a task wins
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
    names = " ".join(p.replace("\\", "/") for p in paths)
    return text, top, detected, bool(text.strip()), has_faces, names


def sync_index(db_path: str | os.PathLike[str]) -> int:
    """Bring the search index up to date with the catalog; returns how many images were
    (re-)indexed. Called by :func:`search`; cheap when nothing changed."""
    with _connect(db_path) as db:
        return _sync(db)


def _sync(db: Session) -> int:
    with db.claim():
        state = _rows.state(db)
        if state.get("layout") != _LAYOUT:
            _rows.reset(db)
            state = {}
        changed, newest = _rows.changed_since(db, state)
        for sha in changed:
            text, top, detected, has_text, has_faces, names = _document(db, sha)
            _rows.put_document(db, sha, text=text, labels=list(dict.fromkeys([*top, *detected])), names=names,
                               has_text=has_text, has_faces=has_faces)
        _rows.save_state(db, {"layout": _LAYOUT, **newest})
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
        folder_prefix = None
        if folder is not None:
            folder_prefix = printable_path(os.path.abspath(os.fspath(folder))).rstrip(os.sep) + os.sep
        filters = _rows.Filters(label=label.strip() if label else None, has_text=has_text, has_faces=has_faces,
                                needs_review=needs_review, folder=folder_prefix, since=lo, until=hi, shas=wanted)
        rows, total = _rows.page(db, query=db.backend.fts.query(text or ""), filters=filters, limit=limit,
                                 offset=offset, with_total=with_total)
        return SearchPage([_hit(db, sha, score, snip) for sha, score, snip in rows], total, offset, limit)


def hits_for(db_path: str | os.PathLike[str], scored: Iterable[tuple[str, float]]) -> list[SearchHit]:
    """:class:`SearchHit` rows for ``(sha256, score)`` pairs from elsewhere (e.g. similar
    images), in the given order; hashes unknown to the catalog are skipped."""
    with _connect(db_path) as db:
        _sync(db)
        known = _rows.indexed(db)
        return [_hit(db, sha, float(score), "") for sha, score in scored if sha in known]


def _hit(db: Session, sha: str, score: float, snippet: str) -> SearchHit:
    paths, labels, review = _rows.hit_facts(db, sha)
    return SearchHit(sha256=sha, paths=paths, score=round(float(score), 4), snippet=snippet.replace("\n", " "),
                     labels=labels, needs_review=review)
