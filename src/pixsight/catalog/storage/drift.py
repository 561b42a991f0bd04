"""Read queries of live drift (:mod:`pixsight.monitor.live`): embedding models, the embedded
images in the order the catalog first saw them, top-1 labels, and a change fingerprint.

>>> import tempfile, os
>>> from pixsight.catalog.storage import open_session
>>> with open_session(os.path.join(tempfile.mkdtemp(), "c.sqlite")) as s:
...     embedding_models(s), embedded_images(s, "m@1"), latest_top1(s, ["ab" * 32]), fingerprint(s)
([], [], {}, (0, None, 0, None))
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from .backend import Session

__all__ = ["embedding_models", "embedded_images", "latest_top1", "fingerprint"]


def embedding_models(s: Session) -> list[tuple[str, int]]:
    """``(model, embeddings)``, most common first; [] when the catalog has no embeddings table."""
    if not s.backend.has_table(s, "embeddings"):
        return []
    return [(m, int(n)) for m, n in s.all(
        "SELECT model, COUNT(*) AS n FROM embeddings GROUP BY model ORDER BY n DESC, model")]


def embedded_images(s: Session, model: str) -> list[tuple[str, float, bytes]]:
    """``(sha256, first_seen, vector bytes)`` of every image with a ``model`` embedding, oldest
    first (ties in insertion order)."""
    return s.all("SELECT i.sha256, i.first_seen, e.vector FROM images i JOIN embeddings e ON e.sha256 = i.sha256 "
                 f"WHERE e.model = ? ORDER BY i.first_seen, i.{s.backend.row_id}", (model,))


def latest_top1(s: Session, sha256s: Sequence[str]) -> dict[str, tuple[str, float]]:
    """``sha256 -> (label, score)`` of the latest ``classify`` result of each image that has one
    with labels (unreadable results are skipped)."""
    out: dict[str, tuple[str, float]] = {}
    for sha in sha256s:
        payload = s.scalar("SELECT result FROM results WHERE sha256=? AND task='classify' ORDER BY created DESC "
                           "LIMIT 1", (sha,))
        if payload is None:
            continue
        try:
            items = json.loads(payload).get("labels") or []
        except (ValueError, AttributeError):
            continue
        if items:
            out[sha] = (str(items[0]["label"]), float(items[0]["score"]))
    return out


def fingerprint(s: Session) -> tuple[Any, ...]:
    """What the drift windows depend on: image count and newest ``first_seen``, result count
    and newest ``created`` (equal fingerprints: nothing to recompute)."""
    images = s.one("SELECT COUNT(*), MAX(first_seen) FROM images")
    results = s.one("SELECT COUNT(*), MAX(created) FROM results")
    return (*images, *results)
