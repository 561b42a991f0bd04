"""Queries of the dataset registry (``datasets`` table; :mod:`pixsight.data.registry`).

``classes`` and ``counts`` are stored as JSON text; ``created`` is kept when an entry is
registered again.

>>> import tempfile, os
>>> from pixsight.catalog.storage import open_session
>>> with open_session(os.path.join(tempfile.mkdtemp(), "c.sqlite")) as s:
...     put(s, {"name": "pets", "format": "coco", "path": "/d", "task": "detect", "classes": ["cat"],
...             "counts": {"images": 1}, "fingerprint": "f"}), get(s, "pets")["classes"], delete(s, "pets")
(False, ['cat'], True)
"""

from __future__ import annotations

import json
import time
from typing import Any

from .backend import Session

__all__ = ["COLUMNS", "put", "get", "all_rows", "delete"]

COLUMNS = ("name", "format", "path", "task", "classes", "counts", "fingerprint", "created", "updated")


def put(s: Session, entry: dict[str, Any]) -> bool:
    """Insert or update ``entry["name"]``; True when an entry of that name existed."""
    now = time.time()
    row = (entry["name"], entry["format"], entry["path"], entry["task"], json.dumps(entry["classes"]),
           json.dumps(entry["counts"]), entry["fingerprint"], now, now)
    update = [c for c in COLUMNS if c not in ("name", "created")]
    with s.claim():
        existed = s.one("SELECT 1 FROM datasets WHERE name=?", (entry["name"],)) is not None
        s.execute(s.backend.upsert("datasets", COLUMNS, ["name"], update), row)
    return existed


def _row(row: Any) -> dict[str, Any]:
    out = dict(zip(COLUMNS, row))
    out["classes"], out["counts"] = json.loads(out["classes"]), json.loads(out["counts"])
    return out


def get(s: Session, name: str) -> dict[str, Any] | None:
    """The entry ``name`` as a dict (JSON columns decoded), or None."""
    row = s.one(f"SELECT {', '.join(COLUMNS)} FROM datasets WHERE name=?", (name,))
    return None if row is None else _row(row)


def all_rows(s: Session) -> list[dict[str, Any]]:
    """Every entry, by name."""
    return [_row(r) for r in s.all(f"SELECT {', '.join(COLUMNS)} FROM datasets ORDER BY name")]


def delete(s: Session, name: str) -> bool:
    """Forget ``name``; True when it existed."""
    return s.execute("DELETE FROM datasets WHERE name=?", (name,)).rowcount > 0
