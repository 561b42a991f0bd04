"""Catalog statistics for dashboards: counts, images per day, top labels over time."""

from __future__ import annotations

import datetime as _dt
import sqlite3
from pathlib import Path
from typing import Any

from ..core.errors import PixsightError
from .store import connect_readonly

__all__ = ["catalog_stats"]


def catalog_stats(db: str | Path, *, days: int = 90, top: int = 8) -> dict[str, Any]:
    """Dashboard numbers: counts, new images per day (UTC, the last ``days`` days with images),
    and the ``top`` most common top-1 labels overall and per day.

    >>> catalog_stats("catalog.sqlite")["images"]   # doctest: +SKIP
    59
    """
    con = connect_readonly(db)
    try:
        images = con.execute("SELECT COUNT(*) FROM images").fetchone()[0]
        analyses = con.execute("SELECT COUNT(*) FROM analyses").fetchone()[0]
        flagged = con.execute("SELECT COUNT(*) FROM analyses WHERE needs_review = 1").fetchone()[0]
        start = (_dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(days=days)).timestamp()
        per_day = [{"day": d, "images": n} for d, n in con.execute(
            "SELECT date(first_seen, 'unixepoch') AS day, COUNT(*) FROM images WHERE first_seen >= ? "
            "GROUP BY day ORDER BY day", (start,))]
        # the top-1 label of each image's latest classify result, with the image's first day
        latest = ("SELECT r.sha256, json_extract(r.result, '$.labels[0].label') AS label, "
                  "date(i.first_seen, 'unixepoch') AS day, i.first_seen AS seen FROM results r "
                  "JOIN images i ON i.sha256 = r.sha256 WHERE r.task = 'classify' AND r.created = "
                  "(SELECT MAX(created) FROM results x WHERE x.sha256 = r.sha256 AND x.task = 'classify')")
        top_labels = [{"label": lab, "n": n} for lab, n in con.execute(
            f"SELECT label, COUNT(DISTINCT sha256) AS n FROM ({latest}) WHERE label IS NOT NULL "
            "GROUP BY label ORDER BY n DESC, label LIMIT ?", (top,))]
        names = [t["label"] for t in top_labels]
        labels_per_day: list[dict[str, Any]] = []
        if names:
            labels_per_day = [{"day": d, "label": lab, "n": n} for d, lab, n in con.execute(
                f"SELECT day, label, COUNT(DISTINCT sha256) FROM ({latest}) WHERE seen >= ? AND label IN "
                f"({','.join('?' * len(names))}) GROUP BY day, label ORDER BY day, label", (start, *names))]
    except sqlite3.DatabaseError as err:
        raise PixsightError(f"cannot read catalog stats: {err}", path=str(db)) from err
    finally:
        con.close()
    return {"images": images, "analyses": analyses, "needs_review": flagged, "per_day": per_day,
            "labels_per_day": labels_per_day, "top_labels": top_labels}
