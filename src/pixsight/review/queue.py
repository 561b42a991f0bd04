"""The review queue: people judge the images the analyzer flagged ``needs_review``.

Two tables live in the catalog file (created here on first use):

- ``reviews``: one row per decision (``accept``, ``reject``, ``relabel``, ``fix``) with who
  made it and when. Decisions are never overwritten; the latest one per image counts.
- ``review_claims``: which reviewer is looking at which image, until when. While a claim
  holds, :func:`next_item` hands that image to nobody else; a decision releases it.

Claims are taken inside ``BEGIN IMMEDIATE`` transactions, so two reviewers asking at the same
moment (threads, processes or server workers) never get the same image.

>>> import tempfile, os
>>> from pixsight.catalog.store import Catalog
>>> from pixsight.core.types import Analysis
>>> db = os.path.join(tempfile.mkdtemp(), "c.sqlite")
>>> with Catalog(db) as cat:
...     cat.save(Analysis(path="a.png", sha256="a" * 64, width=8, height=6, format="PNG",
...                       needs_review=True, review_reasons=["classify: low score"]))
>>> item = next_item(db, "ann")
>>> item.sha256 == "a" * 64, item.pending
(True, 1)
>>> next_item(db, "bob") is None          # ann holds the claim
True
>>> submit(db, item.sha256, "fix", "ann", boxes=[{"box": [1, 1, 5, 4], "label": "cat"}]).decision
'fix'
>>> stats(db)["pending"], stats(db)["fix"]
(0, 1)
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from ..core.errors import CatalogError, PixsightError

__all__ = [
    "DECISIONS",
    "ReviewError",
    "UnknownImageError",
    "ReviewItem",
    "Review",
    "next_item",
    "release",
    "submit",
    "history",
    "stats",
    "reviewed_items",
    "latest_decisions",
    "ensure_tables",
]

log = logging.getLogger(__name__)

#: The decisions a reviewer can make.
DECISIONS: tuple[str, ...] = ("accept", "reject", "relabel", "fix")
MAX_NOTE = 2000  # characters kept in a note
MAX_LABELS = 64  # labels per decision
MAX_BOXES = 1000  # boxes per decision

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('accept','reject','relabel','fix')),
    labels TEXT,
    boxes TEXT,
    note TEXT,
    reviewer TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS reviews_sha256 ON reviews (sha256, id);
CREATE TABLE IF NOT EXISTS review_claims (
    sha256 TEXT PRIMARY KEY,
    reviewer TEXT NOT NULL,
    until REAL NOT NULL
);
"""

# images flagged for review that have no decision yet
_PENDING = ("FROM analyses a JOIN images i ON i.sha256 = a.sha256 WHERE a.needs_review = 1 "
            "AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.sha256 = a.sha256)")
# the latest review row of every reviewed image
_LATEST = "SELECT MAX(id) FROM reviews GROUP BY sha256"


class ReviewError(PixsightError):
    """A review request is invalid (unknown decision, bad labels or boxes...)."""


class UnknownImageError(ReviewError):
    """The sha256 names no image of the catalog."""


@dataclass(frozen=True)
class ReviewItem:
    """One image waiting for a decision: where it is, its size, what the models said
    (``analysis`` is ``Analysis.to_dict()``), why it was flagged, and how many images are
    still pending (this one included)."""

    sha256: str
    path: str
    width: int
    height: int
    analysis: dict[str, Any]
    reasons: list[str]
    pending: int
    claimed_until: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Review:
    """One decision: ``labels`` for ``relabel``, ``boxes`` (``[{"box": [x1, y1, x2, y2],
    "label": str}]``, pixels of the oriented image) for ``fix``; ``created`` is a POSIX time."""

    id: int
    sha256: str
    decision: str
    reviewer: str
    created: float
    labels: list[str] = field(default_factory=list)
    boxes: list[dict[str, Any]] = field(default_factory=list)
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- connections ------------------------------------------------------------------------------
def ensure_tables(db: str | os.PathLike[str]) -> None:
    """Create the review tables in the catalog at ``db`` if they are missing."""
    with _connect(db):
        pass


@contextmanager
def _connect(db: str | os.PathLike[str]) -> Iterator[sqlite3.Connection]:
    path = Path(db)
    if not path.is_file():
        raise CatalogError(f"no catalog at {path}; run `pixsight analyze` first or pass --db", path=str(path))
    try:
        con = sqlite3.connect(str(path), timeout=30.0, isolation_level=None)
    except sqlite3.DatabaseError as err:
        raise CatalogError(f"cannot open catalog: {err}", path=str(path)) from err
    try:
        try:
            if con.execute("SELECT 1 FROM sqlite_master WHERE name='analyses'").fetchone() is None:
                raise CatalogError(f"{path} is not a pixsight catalog", path=str(path))
            if con.execute("SELECT 1 FROM sqlite_master WHERE name='review_claims'").fetchone() is None:
                con.execute("PRAGMA journal_mode=WAL")
                con.executescript(_SCHEMA)
            yield con
        except sqlite3.DatabaseError as err:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise CatalogError(f"review queue: {err}", path=str(path)) from err
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
    finally:
        con.close()


def _review(row: Sequence[Any]) -> Review:
    rid, sha, decision, labels, boxes, note, reviewer, created = row
    return Review(id=int(rid), sha256=sha, decision=decision, reviewer=reviewer, created=float(created),
                  labels=json.loads(labels) if labels else [], boxes=json.loads(boxes) if boxes else [],
                  note=note)


_REVIEW_COLUMNS = "id, sha256, decision, labels, boxes, note, reviewer, created"


# -- the queue --------------------------------------------------------------------------------
def next_item(db: str | os.PathLike[str], reviewer: str, *, claim_s: float = 300.0,
              skip: Iterable[str] = (), claim: bool = True) -> ReviewItem | None:
    """Claim and return the oldest unreviewed image flagged ``needs_review`` that nobody else
    holds a live claim on, or ``None`` when there is none.

    A reviewer who already holds a live claim gets that image again (the claim is renewed),
    unless it is in ``skip``: skipped images are released and passed over for this call.
    ``claim=False`` only looks (for people who may not decide): nothing is claimed or released.

    Example:
        >>> item = next_item("pixsight.sqlite", "ann", skip=["ab" * 32])   # doctest: +SKIP
        >>> item.path, item.reasons                                         # doctest: +SKIP
        ('/photos/cat.jpg', ['classify: top-1 score 0.21 < 0.30'])
    """
    reviewer = _check_reviewer(reviewer)
    if not (isinstance(claim_s, (int, float)) and math.isfinite(claim_s) and claim_s > 0):
        raise ReviewError(f"claim_s must be a positive number of seconds, got {claim_s!r}")
    skipped = sorted({str(s) for s in skip})
    now = time.time()
    with _connect(db) as con:
        con.execute("BEGIN IMMEDIATE")
        con.execute("DELETE FROM review_claims WHERE until < ?", (now,))
        if skipped and claim:
            con.executemany("DELETE FROM review_claims WHERE sha256 = ? AND reviewer = ?",
                            [(s, reviewer) for s in skipped])
        marks = ",".join("?" * len(skipped))
        not_skipped = f"AND a.sha256 NOT IN ({marks})" if skipped else ""
        row = con.execute(
            f"SELECT a.sha256 {_PENDING} {not_skipped} AND NOT EXISTS (SELECT 1 FROM review_claims c "
            "WHERE c.sha256 = a.sha256 AND c.reviewer != ?) "
            "ORDER BY EXISTS (SELECT 1 FROM review_claims c WHERE c.sha256 = a.sha256) DESC, "
            "i.first_seen, a.sha256 LIMIT 1",
            (*skipped, reviewer),
        ).fetchone()
        if row is None:
            con.execute("COMMIT")
            return None
        sha = row[0]
        until = now + float(claim_s) if claim else 0.0
        if claim:
            con.execute("INSERT OR REPLACE INTO review_claims VALUES (?, ?, ?)", (sha, reviewer, until))
        pending = con.execute(f"SELECT COUNT(*) {_PENDING}").fetchone()[0]
        con.execute("COMMIT")
    log.debug("review: %s claimed %s until %.0f", reviewer, sha, until)
    analysis = _analysis(db, sha)
    return ReviewItem(sha256=sha, path=analysis["path"], width=int(analysis["width"]),
                      height=int(analysis["height"]), analysis=analysis,
                      reasons=list(analysis.get("review_reasons", [])), pending=int(pending),
                      claimed_until=until)


def release(db: str | os.PathLike[str], sha256: str, reviewer: str) -> bool:
    """Give back ``reviewer``'s claim on ``sha256`` without deciding; True when one was held."""
    with _connect(db) as con:
        return con.execute("DELETE FROM review_claims WHERE sha256 = ? AND reviewer = ?",
                           (sha256, reviewer)).rowcount > 0


def _analysis(db: str | os.PathLike[str], sha: str) -> dict[str, Any]:
    from ..catalog.store import Catalog

    with Catalog(db) as cat:
        analysis = cat.load_analysis(sha, with_vectors=False)
    if analysis is None:  # pragma: no cover - the row was there a moment ago
        raise UnknownImageError(f"image {sha} is not in the catalog", path=str(db))
    return analysis.to_dict()


def submit(db: str | os.PathLike[str], sha256: str, decision: str, reviewer: str, *,
           labels: Sequence[str] | None = None, boxes: Sequence[dict[str, Any]] | None = None,
           note: str | None = None) -> Review:
    """Record ``reviewer``'s decision on image ``sha256`` and release its claim.

    ``accept``: the model's results are right. ``reject``: the image should not be used.
    ``relabel``: the right labels are ``labels`` (one or more, best first). ``fix``: the
    right objects are ``boxes``, each ``{"box": [x1, y1, x2, y2], "label": str}`` in pixels,
    inside the image.

    Raises:
        UnknownImageError: no catalogued image has this sha256.
        ReviewError: unknown decision, missing or malformed labels or boxes.

    Example:
        >>> submit("pixsight.sqlite", sha, "relabel", "ann", labels=["tabby"])   # doctest: +SKIP
        Review(id=3, sha256='…', decision='relabel', reviewer='ann', created=1764…, labels=['tabby'], …)
    """
    reviewer = _check_reviewer(reviewer)
    if decision not in DECISIONS:
        raise ReviewError(f"unknown decision {decision!r}; use one of {', '.join(DECISIONS)}")
    sha = str(sha256).strip().lower()
    if note is not None:
        if not isinstance(note, str):
            raise ReviewError(f"note must be text, got {type(note).__name__}")
        note = note.strip()[:MAX_NOTE] or None
    with _connect(db) as con:
        size = con.execute("SELECT width, height FROM images WHERE sha256 = ?", (sha,)).fetchone()
        if size is None:
            raise UnknownImageError(f"image {sha256!r} is not in the catalog; pass the sha256 of an analysed image",
                                    path=str(db))
        clean_labels = _check_labels(decision, labels)
        clean_boxes = _check_boxes(decision, boxes, width=int(size[0]), height=int(size[1]))
        now = time.time()
        con.execute("BEGIN IMMEDIATE")
        cur = con.execute(
            "INSERT INTO reviews (sha256, decision, labels, boxes, note, reviewer, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (sha, decision, json.dumps(clean_labels) if clean_labels else None,
             json.dumps(clean_boxes) if clean_boxes else None, note, reviewer, now),
        )
        con.execute("DELETE FROM review_claims WHERE sha256 = ?", (sha,))
        con.execute("COMMIT")
    log.info("review: %s -> %s by %s", sha[:12], decision, reviewer)
    return Review(id=int(cur.lastrowid), sha256=sha, decision=decision, reviewer=reviewer, created=now,
                  labels=clean_labels, boxes=clean_boxes, note=note)


def _check_reviewer(reviewer: str) -> str:
    if not isinstance(reviewer, str) or not reviewer.strip():
        raise ReviewError("reviewer must be a non-empty name")
    return reviewer.strip()[:200]


def _check_labels(decision: str, labels: Sequence[str] | None) -> list[str]:
    labels = list(labels or [])
    if decision != "relabel":
        if labels:
            raise ReviewError(f"labels are given with decision {decision!r}; only 'relabel' takes labels")
        return []
    if not labels:
        raise ReviewError("decision 'relabel' needs at least one label")
    if len(labels) > MAX_LABELS:
        raise ReviewError(f"at most {MAX_LABELS} labels, got {len(labels)}")
    out: list[str] = []
    for i, label in enumerate(labels):
        if not isinstance(label, str) or not label.strip():
            raise ReviewError(f"labels[{i}] must be a non-empty string, got {label!r}")
        if label.strip() not in out:
            out.append(label.strip())
    return out


def _check_boxes(decision: str, boxes: Sequence[dict[str, Any]] | None, *, width: int,
                 height: int) -> list[dict[str, Any]]:
    boxes = list(boxes or [])
    if decision != "fix":
        if boxes:
            raise ReviewError(f"boxes are given with decision {decision!r}; only 'fix' takes boxes")
        return []
    if not boxes:
        raise ReviewError('decision \'fix\' needs boxes: [{"box": [x1, y1, x2, y2], "label": "..."}]')
    if len(boxes) > MAX_BOXES:
        raise ReviewError(f"at most {MAX_BOXES} boxes, got {len(boxes)}")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(boxes):
        where = f"boxes[{i}]"
        if not isinstance(item, dict):
            raise ReviewError(f'{where} must be {{"box": [x1, y1, x2, y2], "label": str}}, got {item!r}')
        box, label = item.get("box"), item.get("label")
        if (not isinstance(box, (list, tuple)) or len(box) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)):
            raise ReviewError(f"{where}.box must be 4 numbers [x1, y1, x2, y2], got {box!r}")
        x1, y1, x2, y2 = (float(v) for v in box)
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            raise ReviewError(f"{where}.box has a non-finite value: {list(box)}")
        if not (x1 < x2 and y1 < y2):
            raise ReviewError(f"{where}.box {list(box)} needs x1 < x2 and y1 < y2")
        if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
            raise ReviewError(f"{where}.box {list(box)} is outside the {width}x{height} image")
        if not isinstance(label, str) or not label.strip():
            raise ReviewError(f"{where}.label must be a non-empty string, got {label!r}")
        out.append({"box": [x1, y1, x2, y2], "label": label.strip()})
    return out


# -- reading decisions --------------------------------------------------------------------------
def history(db: str | os.PathLike[str], sha256: str) -> list[Review]:
    """Every decision on image ``sha256``, oldest first (the last one counts); raises
    :class:`UnknownImageError` for an image the catalog does not hold."""
    sha = str(sha256).strip().lower()
    with _connect(db) as con:
        if con.execute("SELECT 1 FROM images WHERE sha256 = ?", (sha,)).fetchone() is None:
            raise UnknownImageError(f"image {sha256!r} is not in the catalog", path=str(db))
        rows = con.execute(f"SELECT {_REVIEW_COLUMNS} FROM reviews WHERE sha256 = ? ORDER BY id", (sha,)).fetchall()
    return [_review(r) for r in rows]


def reviewed_items(db: str | os.PathLike[str]) -> list[Review]:
    """The latest decision of every reviewed image, oldest decision first."""
    with _connect(db) as con:
        rows = con.execute(f"SELECT {_REVIEW_COLUMNS} FROM reviews WHERE id IN ({_LATEST}) ORDER BY id").fetchall()
    return [_review(r) for r in rows]


def latest_decisions(db: str | os.PathLike[str], sha256s: Iterable[str]) -> dict[str, str]:
    """``sha256 -> latest decision`` for those of ``sha256s`` that were reviewed."""
    shas = list(dict.fromkeys(sha256s))
    out: dict[str, str] = {}
    with _connect(db) as con:
        for start in range(0, len(shas), 500):
            chunk = shas[start:start + 500]
            rows = con.execute(
                f"SELECT sha256, decision FROM reviews WHERE id IN (SELECT MAX(id) FROM reviews WHERE sha256 IN "
                f"({','.join('?' * len(chunk))}) GROUP BY sha256)", chunk).fetchall()
            out.update(dict(rows))
    return out


def stats(db: str | os.PathLike[str]) -> dict[str, int]:
    """Queue counts: ``pending`` (flagged, undecided), ``claimed`` (pending with a live claim),
    ``reviewed`` (images with a decision), the latest decisions per kind, and ``reviewers``
    (distinct people who decided)."""
    with _connect(db) as con:
        pending = con.execute(f"SELECT COUNT(*) {_PENDING}").fetchone()[0]
        claimed = con.execute("SELECT COUNT(*) FROM review_claims WHERE until >= ?", (time.time(),)).fetchone()[0]
        per = dict(con.execute(
            f"SELECT decision, COUNT(*) FROM reviews WHERE id IN ({_LATEST}) GROUP BY decision").fetchall())
        reviewers = con.execute("SELECT COUNT(DISTINCT reviewer) FROM reviews").fetchone()[0]
    out = {"pending": int(pending), "claimed": int(claimed), "reviewed": int(sum(per.values()))}
    out.update({d: int(per.get(d, 0)) for d in DECISIONS})
    out["reviewers"] = int(reviewers)
    return out
