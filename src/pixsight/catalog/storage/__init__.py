"""The storage layer: every table, migration and SQL statement of pixsight lives here.

The backend interface is :mod:`.backend` (SQLite: :mod:`.sqlite`), the schema
:mod:`.schema` + :mod:`.sqlite_schema`; one query module per caller: :mod:`.images` and
:mod:`.datasets` (:class:`pixsight.catalog.store.Catalog`), :mod:`.search_index`
(:mod:`pixsight.catalog.search`), :mod:`.embeddings` (:mod:`pixsight.catalog.vectors`),
:mod:`.stats`, :mod:`.reads` (routes, files), :mod:`.reviews` (review queue),
:mod:`.gallery` (faces), :mod:`.keys` (API keys), :mod:`.drift` (live drift). No other
package opens a database connection or writes SQL. See ``docs/storage.md``.

>>> import tempfile, os
>>> with open_session(os.path.join(tempfile.mkdtemp(), "c.sqlite")) as s:
...     s.backend.name, s.scalar("SELECT value FROM meta WHERE key = 'schema_version'") == str(SCHEMA_VERSION)
('sqlite', True)
"""

from __future__ import annotations

import os
from typing import Any

from ...core.errors import CatalogError
from .backend import Backend, Connection, FullTextIndex, Mode, Session
from .schema import SCHEMA_VERSION, Migration, migrate, schema_version
from .sqlite import SQLITE, SQLiteBackend, connect_readonly

__all__ = ["Backend", "Connection", "FullTextIndex", "Migration", "Mode", "SCHEMA_VERSION", "SQLITE",
           "SQLiteBackend", "Session", "backend_for", "connect_readonly", "migrate", "open_session",
           "schema_version"]


def backend_for(db: str | os.PathLike[str]) -> Backend:
    """The backend that serves catalog ``db`` (a file path: SQLite; the only one so far)."""
    return SQLITE


def open_session(db: str | os.PathLike[str], *, mode: Mode = "create", what: str = "catalog",
                 timeout: float = 30.0) -> Session:
    """A :class:`Session` on catalog ``db``; use it as a context manager (closes it, and turns
    database errors into :class:`CatalogError` whose message starts with ``what``).

    Raises:
        CatalogError: the catalog cannot be opened (missing with ``existing``/``readonly``,
            not a database, not a catalog, or newer than this pixsight).
    """
    backend = backend_for(db)
    try:
        con: Any = backend.connect(db, mode=mode, timeout=timeout)
    except backend.DatabaseError as err:
        if mode == "readonly" and not os.path.isfile(db):
            raise CatalogError(f"no catalog at {db}; run `pixsight analyze` first or pass --db", path=str(db)) from err
        raise CatalogError(f"cannot open catalog: {err}", path=str(db)) from err
    return Session(con, backend, str(db), what=what)
