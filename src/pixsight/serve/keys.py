"""API keys, stored hashed in the catalog DB (SECURITY.md item 12); the table and its SQL
are :mod:`pixsight.catalog.storage.keys`.

A key reads ``pxs_<8 hex id>_<43 chars base64url secret>``. The table ``api_keys`` keeps
only the SHA-256 of the secret (a 256-bit random secret needs no slow hash); verification
compares digests with :func:`hmac.compare_digest`.

>>> import tempfile, os
>>> store = KeyStore(os.path.join(tempfile.mkdtemp(), "c.sqlite"))
>>> info, token = store.create("viewer", "laptop")
>>> store.verify(token).role, store.verify(token + "x")
('viewer', None)
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
import unicodedata
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..catalog.storage import Session, open_session
from ..catalog.storage import keys as _rows
from ..core.errors import CatalogError, ConfigError, PixsightError

__all__ = ["ROLES", "KeyInfo", "KeyStore", "KEY_PATTERN"]

ROLES: tuple[str, ...] = ("viewer", "reviewer", "admin")  # lowest to highest
KEY_PATTERN = re.compile(r"^pxs_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")

_LAST_USED_EVERY_S = 60.0  # write last_used at most this often per key


@dataclass(frozen=True)
class KeyInfo:
    """One key, without its secret."""

    id: str
    name: str
    role: str
    created: float
    last_used: float | None = None
    revoked: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: How long a verified key is trusted without reading the DB again (seconds). A key revoked
#: through this store stops at once; one revoked by another process within this time.
VERIFY_CACHE_S = 5.0
_VERIFY_CACHE_SIZE = 1024


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


class KeyStore:
    """Create, verify, list and revoke API keys in the catalog DB at ``db``.

    Each call opens its own short-lived connection, so one store may be used from any
    thread (the server's event loop and its threadpool).
    """

    def __init__(self, db: str | os.PathLike[str]) -> None:
        self.db = Path(db)
        self._touched: dict[str, float] = {}
        # digest of a whole token -> (expires, info): a busy client is not one DB read per
        # request; a revoke here clears it at once, one by another process within the TTL
        self._verified: dict[str, tuple[float, KeyInfo]] = {}
        try:
            self._connect().close()  # makes (or migrates) the catalog, the key table included
        except OSError as err:
            raise CatalogError(f"cannot open the key table: {err}", path=str(self.db)) from err

    def _connect(self) -> Session:
        return open_session(self.db, mode="create", what="API keys")

    @staticmethod
    def _info(row: tuple) -> KeyInfo:
        return KeyInfo(id=row[0], name=row[1], role=row[2], created=row[3], last_used=row[4], revoked=row[5])

    # -- writes ----------------------------------------------------------------------------
    def create(self, role: str, name: str = "") -> tuple[KeyInfo, str]:
        """A new key; returns its info and the plaintext key (shown once, never stored).

        Raises:
            ConfigError: unknown role; a name with control characters (NUL, ESC, CR/LF, DEL, C1:
                they would reach a terminal through ``pixsight keys list``).
        """
        if role not in ROLES:
            raise ConfigError(f"unknown role {role!r}; choose from {', '.join(ROLES)}")
        if any(unicodedata.category(ch) == "Cc" for ch in name or ""):
            raise ConfigError(f"key name {name!r} holds control characters; use printable text")
        name = (name or role).strip()[:200]
        with self._connect() as con:
            for _ in range(10):
                key_id = secrets.token_hex(4)
                secret = secrets.token_urlsafe(32)  # 32 bytes -> 43 base64url chars
                info = KeyInfo(id=key_id, name=name, role=role, created=time.time())
                if _rows.insert(con, key_id, name, role, _digest(secret), info.created):
                    return info, f"pxs_{key_id}_{secret}"
                # else an id collision (1 in 4 billion): draw again
        raise PixsightError("could not draw a unique key id")  # pragma: no cover

    def revoke(self, key_id: str) -> bool:
        """Revoke a key; False when no live key has this id."""
        with self._connect() as con:
            revoked = _rows.revoke(con, key_id, time.time())
        self._verified.clear()
        return revoked

    # -- reads -----------------------------------------------------------------------------
    def verify(self, token: str) -> KeyInfo | None:
        """The live key ``token`` names, else None (malformed, unknown, wrong secret, revoked)."""
        match = KEY_PATTERN.match(token or "")
        if not match:
            return None
        key_id, secret = match.groups()
        token_digest = _digest(token)
        cached = self._verified.get(token_digest)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        with self._connect() as con:
            found = _rows.secret_of(con, key_id)
            if found is None or not hmac.compare_digest(found[1], _digest(secret)) or found[0][5] is not None:
                return None
            now = time.time()
            if now - self._touched.get(key_id, 0.0) > _LAST_USED_EVERY_S:
                self._touched[key_id] = now
                _rows.touch(con, key_id, now)  # best effort: a busy writer skips it
        info = self._info(found[0])
        if len(self._verified) >= _VERIFY_CACHE_SIZE:
            self._verified.clear()
        self._verified[token_digest] = (time.monotonic() + VERIFY_CACHE_S, info)
        return info

    def get(self, key_id: str) -> KeyInfo | None:
        with self._connect() as con:
            row = _rows.get(con, key_id)
        return self._info(row) if row else None

    def list(self, *, include_revoked: bool = True) -> list[KeyInfo]:
        """Every key, oldest first (no secrets)."""
        with self._connect() as con:
            return [self._info(r) for r in _rows.all_keys(con, include_revoked=include_revoked)]

    def count(self, *, include_revoked: bool = False) -> int:
        """How many keys (live ones only unless ``include_revoked``)."""
        with self._connect() as con:
            return _rows.count(con, include_revoked=include_revoked)
