"""Queries of the API keys table (``api_keys``; :class:`pixsight.serve.keys.KeyStore`).

Only the SHA-256 of a key's secret is stored. Rows are ``(id, name, role, created,
last_used, revoked)`` (:data:`COLUMNS`); :func:`secret_of` adds the digest for verification.

>>> import tempfile, os
>>> from pixsight.catalog.storage import open_session
>>> with open_session(os.path.join(tempfile.mkdtemp(), "c.sqlite")) as s:
...     insert(s, "0a1b2c3d", "laptop", "viewer", "d" * 64, 1.0), insert(s, "0a1b2c3d", "x", "admin", "e" * 64, 2.0)
...     revoke(s, "0a1b2c3d", 3.0), get(s, "0a1b2c3d")[5], count(s, include_revoked=True)
(True, False)
(True, 3.0, 1)
"""

from __future__ import annotations

from typing import Any

from .backend import Session

__all__ = ["COLUMNS", "insert", "revoke", "get", "secret_of", "touch", "all_keys", "count"]

COLUMNS = ("id", "name", "role", "created", "last_used", "revoked")
_COLUMNS = ", ".join(COLUMNS)


def insert(s: Session, key_id: str, name: str, role: str, secret_sha256: str, created: float) -> bool:
    """Store a new key; False (nothing stored) when the id is taken."""
    sql = s.backend.insert_ignore("api_keys", ["id", "name", "role", "secret_sha256", "created"], ["id"])
    return s.execute(sql, (key_id, name, role, secret_sha256, created)).rowcount > 0


def revoke(s: Session, key_id: str, when: float) -> bool:
    """Mark a live key revoked; False when no live key has this id."""
    return s.execute("UPDATE api_keys SET revoked=? WHERE id=? AND revoked IS NULL", (when, key_id)).rowcount > 0


def get(s: Session, key_id: str) -> tuple[Any, ...] | None:
    """The key's row (:data:`COLUMNS`), or None."""
    return s.one(f"SELECT {_COLUMNS} FROM api_keys WHERE id=?", (key_id,))


def secret_of(s: Session, key_id: str) -> tuple[tuple[Any, ...], str] | None:
    """``(row, secret digest)`` of a key, or None."""
    row = s.one(f"SELECT {_COLUMNS}, secret_sha256 FROM api_keys WHERE id=?", (key_id,))
    return None if row is None else (tuple(row[:6]), row[6])


def touch(s: Session, key_id: str, when: float) -> bool:
    """Record a use of the key; best effort: False when the database is busy with a writer."""
    try:
        s.execute("UPDATE api_keys SET last_used=? WHERE id=?", (when, key_id))
    except s.backend.OperationalError:
        return False
    return True


def all_keys(s: Session, *, include_revoked: bool = True) -> list[tuple[Any, ...]]:
    """Every key's row, oldest first."""
    where = "" if include_revoked else " WHERE revoked IS NULL"
    return s.all(f"SELECT {_COLUMNS} FROM api_keys{where} ORDER BY created, id")


def count(s: Session, *, include_revoked: bool = False) -> int:
    """How many keys (live ones only unless ``include_revoked``)."""
    return int(s.scalar("SELECT COUNT(*) FROM api_keys" + ("" if include_revoked else " WHERE revoked IS NULL")))
