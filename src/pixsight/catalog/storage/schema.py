"""Schema versions and migrations, shared by every backend.

The catalog's version lives in ``meta(key='schema_version')``. Each backend ships the same
numbered :class:`Migration` steps in its own dialect (SQLite: :mod:`.sqlite_schema`).
Opening a catalog for writing runs the steps above its version inside one write-locked
transaction, so two processes opening an old file at once migrate it once. A catalog newer
than this pixsight is refused (never downgraded).

>>> from pixsight.catalog.storage import open_session, SCHEMA_VERSION
>>> import tempfile, os
>>> with open_session(os.path.join(tempfile.mkdtemp(), "c.sqlite")) as s:
...     schema_version(s) == SCHEMA_VERSION
True
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from ...core.errors import CatalogError

if TYPE_CHECKING:
    from .backend import Session

__all__ = ["Migration", "SCHEMA_VERSION", "migrate", "schema_version"]

log = logging.getLogger(__name__)

#: The schema version this pixsight writes. Bump it with a new :class:`Migration` in every backend.
SCHEMA_VERSION = 2


@dataclass(frozen=True)
class Migration:
    """Step ``version``: the statements that take a catalog from ``version - 1`` to ``version``."""

    version: int
    summary: str
    statements: Sequence[str]


def schema_version(session: Session) -> int:
    """The catalog's schema version; 0 for a new file or one written before versioning
    (no ``meta`` table, or no ``schema_version`` row in it)."""
    if not session.backend.has_table(session, "meta"):
        return 0
    value = session.scalar("SELECT value FROM meta WHERE key = 'schema_version'")
    return 0 if value is None else int(value)


def _check_not_newer(version: int, session: Session) -> None:
    if version > SCHEMA_VERSION:
        raise CatalogError(f"catalog schema {version} is newer than this pixsight ({SCHEMA_VERSION}); "
                           "upgrade pixsight", path=session.path)


def migrate(session: Session, migrations: Sequence[Migration]) -> int:
    """Bring the catalog to :data:`SCHEMA_VERSION`; returns the version it had.

    Cheap when it is current (one read). Raises :class:`CatalogError` for a newer catalog.
    """
    before = schema_version(session)
    _check_not_newer(before, session)
    if before == SCHEMA_VERSION:
        return before
    with session.claim():
        before = schema_version(session)  # another process may have migrated meanwhile
        _check_not_newer(before, session)
        for step in migrations:
            if step.version > before:
                for statement in step.statements:
                    session.execute(statement)
        session.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) "
                        "DO UPDATE SET value = excluded.value", (str(SCHEMA_VERSION),))
    if before:
        log.info("%s: catalog schema migrated from version %d to %d", session.path, before, SCHEMA_VERSION)
    return before
