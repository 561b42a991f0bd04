"""Queries of the review queue (``reviews``, ``review_claims``; :mod:`pixsight.review.queue`).

``reviews`` holds one row per decision, never overwritten (the latest per image counts);
``review_claims`` says who looks at which image until when. :func:`claim_next` picks and
claims inside one write-locked transaction, so two reviewers never get the same image.

>>> import tempfile, os
>>> from pixsight.catalog.storage import open_session
>>> with open_session(os.path.join(tempfile.mkdtemp(), "c.sqlite")) as s:
...     claim_next(s, "ann", now=0.0, until=300.0, skip=[], claim=True), counts(s, now=0.0)["pending"]
(None, 0)
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from .backend import Session
from .reads import image_known

__all__ = ["COLUMNS", "claim_next", "release", "image_size", "add", "image_known", "history", "latest",
           "latest_of", "counts"]

#: The columns of a decision row, in the order the functions below return them.
COLUMNS = ("id", "sha256", "decision", "labels", "boxes", "note", "reviewer", "created")
_COLUMNS = ", ".join(COLUMNS)

# images flagged for review that have no decision yet
_PENDING = ("FROM analyses a JOIN images i ON i.sha256 = a.sha256 WHERE a.needs_review = 1 "
            "AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.sha256 = a.sha256)")
# the latest review row of every reviewed image
_LATEST = "SELECT MAX(id) FROM reviews GROUP BY sha256"


def claim_next(s: Session, reviewer: str, *, now: float, until: float, skip: Sequence[str],
               claim: bool) -> tuple[str, int] | None:
    """``(sha256, pending)`` of the oldest flagged, undecided image nobody else holds a live
    claim on (the reviewer's own live claim first), claimed for ``reviewer`` until ``until``
    unless ``claim`` is false; ``skip`` images are released (when claiming) and passed over.
    Expired claims are dropped. None when nothing waits."""
    with s.claim():
        s.execute("DELETE FROM review_claims WHERE until < ?", (now,))
        if skip and claim:
            s.executemany("DELETE FROM review_claims WHERE sha256 = ? AND reviewer = ?",
                          [(sha, reviewer) for sha in skip])
        not_skipped, params = "", []
        if skip:
            sql, params = s.backend.in_values("a.sha256", list(skip))
            not_skipped = f"AND NOT {sql}"
        sha = s.scalar(
            f"SELECT a.sha256 {_PENDING} {not_skipped} AND NOT EXISTS (SELECT 1 FROM review_claims c "
            "WHERE c.sha256 = a.sha256 AND c.reviewer != ?) "
            "ORDER BY EXISTS (SELECT 1 FROM review_claims c WHERE c.sha256 = a.sha256) DESC, "
            "i.first_seen, a.sha256 LIMIT 1",
            (*params, reviewer),
        )
        if sha is None:
            return None
        if claim:
            s.execute(s.backend.replace("review_claims", ["sha256", "reviewer", "until"]), (sha, reviewer, until))
        pending = s.scalar(f"SELECT COUNT(*) {_PENDING}")
    return sha, int(pending)


def release(s: Session, sha256: str, reviewer: str) -> bool:
    """Drop ``reviewer``'s claim on ``sha256``; True when one was held."""
    return s.execute("DELETE FROM review_claims WHERE sha256 = ? AND reviewer = ?",
                     (sha256, reviewer)).rowcount > 0


def image_size(s: Session, sha256: str) -> tuple[int, int] | None:
    """``(width, height)`` of a catalogued image, or None."""
    row = s.one("SELECT width, height FROM images WHERE sha256 = ?", (sha256,))
    return None if row is None else (int(row[0]), int(row[1]))


def add(s: Session, sha256: str, decision: str, reviewer: str, created: float, *, labels: str | None,
        boxes: str | None, note: str | None) -> int:
    """Record a decision (``labels``/``boxes`` as JSON text) and drop every claim on the image;
    returns the decision's id."""
    with s.claim():
        cur = s.execute(
            "INSERT INTO reviews (sha256, decision, labels, boxes, note, reviewer, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (sha256, decision, labels, boxes, note, reviewer, created))
        s.execute("DELETE FROM review_claims WHERE sha256 = ?", (sha256,))
    return int(cur.lastrowid)


def history(s: Session, sha256: str) -> list[tuple[Any, ...]]:
    """Every decision row (:data:`COLUMNS`) on ``sha256``, oldest first."""
    return s.all(f"SELECT {_COLUMNS} FROM reviews WHERE sha256 = ? ORDER BY id", (sha256,))


def latest(s: Session) -> list[tuple[Any, ...]]:
    """The latest decision row of every reviewed image, oldest decision first."""
    return s.all(f"SELECT {_COLUMNS} FROM reviews WHERE id IN ({_LATEST}) ORDER BY id")


def latest_of(s: Session, sha256s: Iterable[str]) -> dict[str, str]:
    """``sha256 -> latest decision`` for those of ``sha256s`` that were reviewed."""
    sql, params = s.backend.in_values("sha256", list(sha256s))
    return dict(s.all(f"SELECT sha256, decision FROM reviews WHERE id IN "
                      f"(SELECT MAX(id) FROM reviews WHERE {sql} GROUP BY sha256)", params))


def counts(s: Session, *, now: float) -> dict[str, Any]:
    """``pending``, ``claimed`` (live claims), ``per_decision`` (latest decisions by kind) and
    ``reviewers`` (distinct people who decided)."""
    return {
        "pending": int(s.scalar(f"SELECT COUNT(*) {_PENDING}")),
        "claimed": int(s.scalar("SELECT COUNT(*) FROM review_claims WHERE until >= ?", (now,))),
        "per_decision": dict(s.all(f"SELECT decision, COUNT(*) FROM reviews WHERE id IN ({_LATEST}) "
                                   "GROUP BY decision")),
        "reviewers": int(s.scalar("SELECT COUNT(DISTINCT reviewer) FROM reviews")),
    }
