"""Read queries of the dashboard numbers (:func:`pixsight.catalog.stats.catalog_stats`).

Days are UTC calendar days of ``images.first_seen``; an image's label is the top-1 label
of its latest ``classify`` result.

>>> import tempfile, os
>>> from pixsight.catalog.storage import open_session
>>> with open_session(os.path.join(tempfile.mkdtemp(), "c.sqlite")) as s:
...     counts(s), images_per_day(s, since=0.0), top_labels(s, top=3), labels_per_day(s, ["cat"], since=0.0)
((0, 0, 0), [], [], [])
"""

from __future__ import annotations

from typing import Sequence

from .backend import Session

__all__ = ["counts", "images_per_day", "top_labels", "labels_per_day"]

# the top-1 label of each image's latest classify result, with the image's first day (SQLite:
# json_extract and date(..., 'unixepoch'); PostgreSQL: ->> and to_timestamp()::date)
_LATEST = ("SELECT r.sha256, json_extract(r.result, '$.labels[0].label') AS label, "
           "date(i.first_seen, 'unixepoch') AS day, i.first_seen AS seen FROM results r "
           "JOIN images i ON i.sha256 = r.sha256 WHERE r.task = 'classify' AND r.created = "
           "(SELECT MAX(created) FROM results x WHERE x.sha256 = r.sha256 AND x.task = 'classify')")


def counts(s: Session) -> tuple[int, int, int]:
    """``(images, analyses, analyses flagged for review)``."""
    return (int(s.scalar("SELECT COUNT(*) FROM images")), int(s.scalar("SELECT COUNT(*) FROM analyses")),
            int(s.scalar("SELECT COUNT(*) FROM analyses WHERE needs_review = 1")))


def images_per_day(s: Session, *, since: float) -> list[tuple[str, int]]:
    """``(YYYY-MM-DD, new images)`` of each day with images first seen at or after ``since``."""
    return s.all("SELECT date(first_seen, 'unixepoch') AS day, COUNT(*) FROM images WHERE first_seen >= ? "
                 "GROUP BY day ORDER BY day", (since,))


def top_labels(s: Session, *, top: int) -> list[tuple[str, int]]:
    """The ``top`` most common top-1 labels: ``(label, images)``, most common first."""
    return s.all(f"SELECT label, COUNT(DISTINCT sha256) AS n FROM ({_LATEST}) latest WHERE label IS NOT NULL "
                 "GROUP BY label ORDER BY n DESC, label LIMIT ?", (top,))


def labels_per_day(s: Session, labels: Sequence[str], *, since: float) -> list[tuple[str, str, int]]:
    """``(day, label, images)`` of ``labels`` for images first seen at or after ``since``."""
    if not labels:
        return []
    sql, params = s.backend.in_values("label", list(labels))
    return s.all(f"SELECT day, label, COUNT(DISTINCT sha256) FROM ({_LATEST}) latest WHERE seen >= ? AND {sql} "
                 "GROUP BY day, label ORDER BY day, label", (since, *params))
