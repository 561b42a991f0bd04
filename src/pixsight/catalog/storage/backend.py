"""What a storage backend must provide: the narrow interfaces every query module uses.

SQLite (:mod:`.sqlite`) is the only implementation today; PostgreSQL is the next one. Query
modules never import a database driver: they get a :class:`Session` (one connection plus
its backend) and use the backend for the few things SQL dialects disagree on:

- **connections** (:meth:`Backend.connect`): ``create`` (make and migrate the catalog),
  ``existing`` (the catalog must exist and be one; migrated) or ``readonly`` (never writes,
  never creates);
- **upserts** (:meth:`Backend.upsert`, :meth:`Backend.replace`, :meth:`Backend.insert_ignore`);
- **claims** (:meth:`Backend.claim`): a write transaction that takes the write lock at its
  start, so a read-then-write (the review queue's next item) is never raced;
- **lists as one parameter** (:meth:`Backend.in_values`);
- **full-text search** (:class:`FullTextIndex`) and the **row order of embeddings** that the
  vector index syncs by (:attr:`Backend.row_id`).

Statements are written with ``?`` placeholders and the SQL both dialects accept
(``INSERT ... ON CONFLICT (...) DO UPDATE`` is valid in SQLite and PostgreSQL alike).

>>> from pixsight.catalog.storage import SQLITE
>>> isinstance(SQLITE, Backend)
True
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Iterator, Literal, Protocol, Sequence, runtime_checkable

from ...core.errors import CatalogError

__all__ = ["Backend", "Connection", "FullTextIndex", "Mode", "Session"]

log = logging.getLogger(__name__)

#: How a catalog is opened: made and migrated (``create``), migrated but never made
#: (``existing``), or read without ever writing (``readonly``).
Mode = Literal["create", "existing", "readonly"]


class Connection(Protocol):
    """The part of a DB-API 2 connection the query modules use."""

    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...

    def executemany(self, sql: str, rows: Any) -> Any: ...

    def close(self) -> None: ...

    @property
    def in_transaction(self) -> bool: ...


@runtime_checkable
class FullTextIndex(Protocol):
    """The search index over OCR text, labels and file names (FTS5 today, tsvector next).

    A document is ``(sha256, text, labels, names)``; the three text columns are weighted
    1, 2 and 1.5 when ranking. :meth:`match` gives the pieces :func:`pixsight.catalog.search`
    splices into its query.
    """

    def query(self, text: str) -> str:
        """The engine's match expression for free user text (nothing the user types is syntax);
        ``""`` when the text has no words."""

    def match(self) -> tuple[str, str, str, str, str]:
        """``(from, where, score, snippet, order)`` SQL pieces: the index table aliased ``f``
        with its ``f.sha256``, the match condition taking the query as one parameter, the
        score (higher is better), a snippet with ``[``/``]`` around hits, and the order."""

    def put(self, session: Session, sha256: str, text: str, labels: str, names: str) -> None:
        """Index (or re-index in place) one image's document."""

    def clear(self, session: Session) -> None:
        """Drop every document (a full rebuild follows)."""


@runtime_checkable
class Backend(Protocol):
    """One database engine: connections, dialect helpers, schema migrations."""

    name: str
    #: Driver exceptions: any database error, a constraint violation, a busy/locked database.
    DatabaseError: type[BaseException]
    IntegrityError: type[BaseException]
    OperationalError: type[BaseException]
    #: A column giving embedding rows in insertion order; a replaced row gets a new, higher value.
    row_id: str
    fts: FullTextIndex

    def connect(self, db: Any, *, mode: Mode, timeout: float = 30.0) -> Connection:
        """An open connection, migrated to the current schema unless ``readonly``."""

    def claim(self, session: Session) -> Any:
        """Context manager: a write transaction holding the write lock from its first statement."""

    def upsert(self, table: str, columns: Sequence[str], key: Sequence[str],
               update: Sequence[str] | None = None) -> str:
        """``INSERT`` of ``columns`` that updates ``update`` (default: all non-key columns)
        when a row with the same ``key`` exists; the row keeps its identity."""

    def replace(self, table: str, columns: Sequence[str]) -> str:
        """``INSERT`` that first removes any row with the same primary key (a new row id)."""

    def insert_ignore(self, table: str, columns: Sequence[str], key: Sequence[str]) -> str:
        """``INSERT`` that does nothing when a row with the same ``key`` exists."""

    def in_values(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``(sql, params)`` of ``column IN (values)`` with any number of values."""

    def has_table(self, session: Session, name: str) -> bool:
        """True when the catalog has a table (or view) ``name``."""

    def integrity_ok(self, session: Session) -> bool:
        """The engine's own consistency check passed."""


class Session:
    """One open connection to a catalog and the backend it speaks, with short helpers.

    Database errors raised inside ``with session:`` become :class:`CatalogError` (the
    message starts with ``what``); the connection is closed at the end of the block.

    >>> from pixsight.catalog.storage import open_session
    >>> import tempfile, os
    >>> with open_session(os.path.join(tempfile.mkdtemp(), "c.sqlite")) as s:
    ...     s.scalar("SELECT COUNT(*) FROM images")
    0
    """

    def __init__(self, con: Connection, backend: Backend, path: str, *, what: str = "catalog") -> None:
        self.con = con
        self.backend = backend
        self.path = path
        self.what = what

    # -- statements ------------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.con.execute(sql, params)

    def executemany(self, sql: str, rows: Any) -> Any:
        return self.con.executemany(sql, rows)

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row, or None."""
        return self.con.execute(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self.con.execute(sql, params).fetchall()

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row (None without rows)."""
        row = self.con.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def column(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """The first column of every row."""
        return [r[0] for r in self.con.execute(sql, params)]

    # -- transactions ----------------------------------------------------------------------
    @contextmanager
    def claim(self) -> Iterator[Session]:
        """A write transaction holding the write lock from its start (``BEGIN IMMEDIATE``)."""
        with self.backend.claim(self):
            yield self

    @property
    def in_transaction(self) -> bool:
        return bool(self.con.in_transaction)

    def rollback(self) -> None:
        """Roll back an open transaction (a broken connection is left to :meth:`close`)."""
        try:
            if self.con.in_transaction:
                self.con.execute("ROLLBACK")
        except self.backend.DatabaseError:
            log.debug("rollback failed on %s", self.path, exc_info=True)

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc is not None:
                self.rollback()
        finally:
            self.close()
        if exc is not None and isinstance(exc, self.backend.DatabaseError):
            raise CatalogError(f"{self.what}: {exc}", path=self.path) from exc
