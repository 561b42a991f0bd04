"""The review queue: people judge the images the analyzer flagged ``needs_review``.

Two tables of the catalog's schema (:mod:`pixsight.catalog.storage.reviews` holds their SQL):

- ``reviews``: one row per decision (``accept``, ``reject``, ``relabel``, ``fix``) with who
  made it and when. Decisions are never overwritten; the latest one per image counts.
- ``review_claims``: which reviewer is looking at which image, until when. While a claim
  holds, :func:`next_item` hands that image to nobody else; a decision releases it.

Claims are taken inside write-locked transactions (SQLite's ``BEGIN IMMEDIATE``), so two
reviewers asking at the same moment (threads, processes or server workers) never get the
same image.

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
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

from ..catalog.errors import UnknownImageError
from ..catalog.storage import Session, open_session
from ..catalog.storage import reviews as _rows
from ..core.errors import PixsightError

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
]

log = logging.getLogger(__name__)

#: The decisions a reviewer can make.
DECISIONS: tuple[str, ...] = ("accept", "reject", "relabel", "fix")
MAX_NOTE = 2000  # characters kept in a note
MAX_LABELS = 64  # labels per decision
MAX_BOXES = 1000  # boxes per decision

class ReviewError(PixsightError):
    """A review request is invalid (unknown decision, bad labels or boxes...)."""


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
def _connect(db: str | os.PathLike[str]) -> Session:
    """The catalog at ``db``, which must exist (CatalogError otherwise)."""
    return open_session(db, mode="existing", what="review queue")


def _review(row: Sequence[Any]) -> Review:
    rid, sha, decision, labels, boxes, note, reviewer, created = row
    return Review(id=int(rid), sha256=sha, decision=decision, reviewer=reviewer, created=float(created),
                  labels=json.loads(labels) if labels else [], boxes=json.loads(boxes) if boxes else [],
                  note=note)


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
    until = now + float(claim_s) if claim else 0.0
    with _connect(db) as con:
        found = _rows.claim_next(con, reviewer, now=now, until=until, skip=skipped, claim=claim)
    if found is None:
        return None
    sha, pending = found
    log.debug("review: %s claimed %s until %.0f", reviewer, sha, until)
    analysis = _analysis(db, sha)
    return ReviewItem(sha256=sha, path=analysis["path"], width=int(analysis["width"]),
                      height=int(analysis["height"]), analysis=analysis,
                      reasons=list(analysis.get("review_reasons", [])), pending=int(pending),
                      claimed_until=until)


def release(db: str | os.PathLike[str], sha256: str, reviewer: str) -> bool:
    """Give back ``reviewer``'s claim on ``sha256`` without deciding; True when one was held."""
    with _connect(db) as con:
        return _rows.release(con, sha256, reviewer)


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
        size = _rows.image_size(con, sha)
        if size is None:
            raise UnknownImageError(f"image {sha256!r} is not in the catalog; pass the sha256 of an analysed image",
                                    path=str(db))
        clean_labels = _check_labels(decision, labels)
        clean_boxes = _check_boxes(decision, boxes, width=size[0], height=size[1])
        now = time.time()
        review_id = _rows.add(con, sha, decision, reviewer, now,
                              labels=json.dumps(clean_labels) if clean_labels else None,
                              boxes=json.dumps(clean_boxes) if clean_boxes else None, note=note)
    log.info("review: %s -> %s by %s", sha[:12], decision, reviewer)
    return Review(id=review_id, sha256=sha, decision=decision, reviewer=reviewer, created=now,
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
        if not _rows.image_known(con, sha):
            raise UnknownImageError(f"image {sha256!r} is not in the catalog", path=str(db))
        rows = _rows.history(con, sha)
    return [_review(r) for r in rows]


def reviewed_items(db: str | os.PathLike[str]) -> list[Review]:
    """The latest decision of every reviewed image, oldest decision first."""
    with _connect(db) as con:
        rows = _rows.latest(con)
    return [_review(r) for r in rows]


def latest_decisions(db: str | os.PathLike[str], sha256s: Iterable[str]) -> dict[str, str]:
    """``sha256 -> latest decision`` for those of ``sha256s`` that were reviewed."""
    with _connect(db) as con:
        return _rows.latest_of(con, dict.fromkeys(sha256s))


def stats(db: str | os.PathLike[str]) -> dict[str, int]:
    """Queue counts: ``pending`` (flagged, undecided), ``claimed`` (pending with a live claim),
    ``reviewed`` (images with a decision), the latest decisions per kind, and ``reviewers``
    (distinct people who decided)."""
    with _connect(db) as con:
        found = _rows.counts(con, now=time.time())
    pending, claimed, per, reviewers = found["pending"], found["claimed"], found["per_decision"], found["reviewers"]
    out = {"pending": int(pending), "claimed": int(claimed), "reviewed": int(sum(per.values()))}
    out.update({d: int(per.get(d, 0)) for d in DECISIONS})
    out["reviewers"] = int(reviewers)
    return out
