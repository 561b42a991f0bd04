"""The SQLite backend: one catalog file in WAL mode, FTS5 for search, rowids for vector sync.

Connections (all with a 30 s busy timeout and autocommit, so transactions are explicit):

- ``create``: makes the folder (0700 when new) and the file (0600 when new; SQLite gives its
  -wal/-shm the same mode), WAL journal, ``synchronous=NORMAL``, foreign keys on, then
  migrates (the analyzer's writer, the gallery, API keys);
- ``existing``: the file must exist and hold a catalog (``results``/``analyses``); migrated
  (search, the review queue);
- ``readonly``: a ``file:`` URI with ``mode=ro`` and every special character of the path
  escaped (``a?b#c``, ``100%``); never creates or writes (routes, naming, stats, drift).

>>> import tempfile, os
>>> db = os.path.join(tempfile.mkdtemp(), "c.sqlite")
>>> SQLITE.connect(db, mode="create").close()
>>> con = connect_readonly(db)
>>> con.execute("SELECT COUNT(*) FROM images").fetchone()[0]
0
>>> SQLITE.upsert("people", ["name", "created"], ["name"])
'INSERT INTO people (name, created) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET created = excluded.created'
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from ...core.errors import CatalogError
from ...core.fileio import create_private_file, make_private_dirs
from .backend import Mode, Session
from .schema import migrate
from .sqlite_schema import MIGRATIONS

__all__ = ["SQLITE", "SQLiteBackend", "SQLiteFTS", "connect_readonly"]


def connect_readonly(db: str | os.PathLike[str], *, timeout: float = 30.0) -> sqlite3.Connection:
    """A read-only connection to the catalog at ``db`` (readers beside the one writer; WAL).

    The path becomes a ``file:`` URI with every special character escaped, so a folder named
    ``a?b#c`` or ``100%`` opens the right file. Raises ``sqlite3.OperationalError`` when the
    file does not exist (read-only never creates it).
    """
    return sqlite3.connect(f"{Path(db).resolve().as_uri()}?mode=ro", uri=True, timeout=timeout)


class SQLiteFTS:
    """Full-text search with an FTS5 table ``search_fts(sha256 UNINDEXED, text, labels, names)``
    and ``search_rows`` (sha256 -> FTS rowid, so re-indexing deletes by rowid, not by a scan).

    >>> print(SQLITE.fts.query('cat "photo'))
    "cat"* "\""photo"*
    """

    WEIGHTS = "1.0, 2.0, 1.5"  # text, labels, names

    def query(self, text: str) -> str:
        """Every word quoted (``"`` doubled) and prefix-matched, words ANDed: nothing the user
        types is FTS5 syntax. Control characters (NUL ends a C string inside FTS5) are spaces."""
        text = "".join(" " if ord(c) < 32 or c == "\x7f" else c for c in text)
        return " ".join('"' + w.replace('"', '""') + '"*' for w in text.split() if w)

    def match(self) -> tuple[str, str, str, str, str]:
        return ("search_fts f", "search_fts MATCH ?", f"-bm25(search_fts, {self.WEIGHTS})",
                "snippet(search_fts, -1, '[', ']', '…', 10)", f"bm25(search_fts, {self.WEIGHTS})")

    def put(self, session: Session, sha256: str, text: str, labels: str, names: str) -> None:
        row = session.one("SELECT fts_rowid FROM search_rows WHERE sha256=?", (sha256,))
        if row is not None:
            session.execute("DELETE FROM search_fts WHERE rowid=?", (row[0],))
        cur = session.execute("INSERT INTO search_fts (rowid, sha256, text, labels, names) VALUES (?, ?, ?, ?, ?)",
                              (None if row is None else row[0], sha256, text, labels, names))
        if row is None:
            session.execute("INSERT INTO search_rows VALUES (?, ?)", (sha256, cur.lastrowid))

    def clear(self, session: Session) -> None:
        for table in ("search_fts", "search_rows"):
            session.execute(f"DELETE FROM {table}")


class SQLiteBackend:
    """:class:`~.backend.Backend` over :mod:`sqlite3`."""

    name = "sqlite"
    DatabaseError = sqlite3.DatabaseError
    IntegrityError = sqlite3.IntegrityError
    OperationalError = sqlite3.OperationalError
    row_id = "rowid"
    migrations = MIGRATIONS

    def __init__(self) -> None:
        self.fts = SQLiteFTS()

    # -- connections -----------------------------------------------------------------------
    def connect(self, db: str | os.PathLike[str], *, mode: Mode = "create",
                timeout: float = 30.0) -> sqlite3.Connection:
        """An open connection (see the module doc for the three modes).

        Raises:
            CatalogError: ``existing`` and the file is missing or not a catalog; a catalog
                newer than this pixsight; the file is not a database.
            sqlite3.OperationalError: ``readonly`` and the file does not exist.
        """
        path = Path(db)
        if mode == "readonly":
            return connect_readonly(path, timeout=timeout)
        if mode == "existing" and not path.is_file():
            raise CatalogError(f"no catalog at {path}; run `pixsight analyze` first or pass --db", path=str(path))
        if mode == "create":
            # user data (SECURITY.md item 24): a new catalog is 0600 in folders made 0700; SQLite
            # gives its -wal and -shm the mode of the database file
            make_private_dirs(path.parent)
            create_private_file(path)
        con = sqlite3.connect(str(path), timeout=timeout, isolation_level=None)
        try:
            session = Session(con, self, str(path))
            if mode == "existing" and not self.has_table(session, "results"):
                raise CatalogError(f"{path} is not a pixsight catalog", path=str(path))
            con.execute("PRAGMA journal_mode=WAL")
            if mode == "create":
                con.execute("PRAGMA synchronous=NORMAL")
                con.execute("PRAGMA foreign_keys=ON")
            migrate(session, self.migrations)
        except BaseException:
            con.close()
            raise
        return con

    @contextmanager
    def claim(self, session: Session) -> Iterator[Session]:
        session.execute("BEGIN IMMEDIATE")
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        session.execute("COMMIT")

    # -- dialect ---------------------------------------------------------------------------
    def upsert(self, table: str, columns: Sequence[str], key: Sequence[str],
               update: Sequence[str] | None = None) -> str:
        update = [c for c in columns if c not in key] if update is None else update
        sets = ", ".join(f"{c} = excluded.{c}" for c in update)
        return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
                f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}")

    def replace(self, table: str, columns: Sequence[str]) -> str:
        return f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"

    def insert_ignore(self, table: str, columns: Sequence[str], key: Sequence[str]) -> str:
        return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
                f"ON CONFLICT ({', '.join(key)}) DO NOTHING")

    def in_values(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """One JSON parameter, so there is no limit on how many values."""
        return f"{column} IN (SELECT value FROM json_each(?))", [json.dumps(list(values))]

    def has_table(self, session: Session, name: str) -> bool:
        return session.one("SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND name=?",
                           (name,)) is not None

    def integrity_ok(self, session: Session) -> bool:
        return session.scalar("PRAGMA integrity_check") == "ok"


#: The one SQLite backend instance.
SQLITE = SQLiteBackend()
