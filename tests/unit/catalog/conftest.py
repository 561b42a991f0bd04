"""Fixtures for catalog-level tests, parametrised over storage backends.

Every catalog-level test takes ``catalog_db`` (where a fresh, empty catalog lives) or
``catalog`` (an open :class:`~pixsight.catalog.store.Catalog` on it), so adding a backend is
adding it to :data:`BACKENDS` (and a way to make an empty database of that kind below).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from pixsight.catalog.store import Catalog

#: Backends the catalog tests run on (PostgreSQL joins when it is implemented).
BACKENDS = ("sqlite",)


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture()
def catalog_db(backend_name: str, tmp_path: Path) -> Path:
    """Where a fresh catalog of ``backend_name`` lives (SQLite: a file that does not exist yet)."""
    if backend_name == "sqlite":
        return tmp_path / "catalog.sqlite"
    raise NotImplementedError(backend_name)  # pragma: no cover - one backend so far


@pytest.fixture()
def catalog(catalog_db: Path) -> Iterator[Catalog]:
    """An open, empty catalog (closed after the test)."""
    with Catalog(catalog_db) as cat:
        yield cat
