"""Catalog statistics for dashboards: counts, images per day, top labels over time."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from .storage import open_session
from .storage import stats as _rows

__all__ = ["catalog_stats"]


def catalog_stats(db: str | Path, *, days: int = 90, top: int = 8) -> dict[str, Any]:
    """Dashboard numbers: counts, new images per day (UTC, the last ``days`` days with images),
    and the ``top`` most common top-1 labels overall and per day.

    Raises:
        CatalogError: the catalog cannot be read.

    >>> catalog_stats("catalog.sqlite")["images"]   # doctest: +SKIP
    59
    """
    start = (_dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(days=days)).timestamp()
    with open_session(db, mode="readonly", what="cannot read catalog stats") as con:
        images, analyses, flagged = _rows.counts(con)
        per_day = [{"day": d, "images": n} for d, n in _rows.images_per_day(con, since=start)]
        top_labels = [{"label": lab, "n": n} for lab, n in _rows.top_labels(con, top=top)]
        labels_per_day = [{"day": d, "label": lab, "n": n} for d, lab, n in
                          _rows.labels_per_day(con, [t["label"] for t in top_labels], since=start)]
    return {"images": images, "analyses": analyses, "needs_review": flagged, "per_day": per_day,
            "labels_per_day": labels_per_day, "top_labels": top_labels}
