"""Read-only catalog connections open the right file whatever characters its path holds."""

from __future__ import annotations

import sqlite3

import pytest

from pixsight.catalog.stats import catalog_stats
from pixsight.catalog.store import Catalog, connect_readonly


@pytest.mark.parametrize("folder", ["plain", "a?b#c", "100% real", "spaces and ünïcode"])
def test_connect_readonly_escapes_the_path_and_never_writes(tmp_path, folder):
    db = tmp_path / folder / "catalog.sqlite"
    Catalog(db).close()
    con = connect_readonly(db)
    try:
        assert con.execute("SELECT COUNT(*) FROM images").fetchone() == (0,)
        with pytest.raises(sqlite3.OperationalError):
            con.execute("CREATE TABLE x (y)")
    finally:
        con.close()
    assert catalog_stats(db)["images"] == 0


def test_connect_readonly_never_creates_a_catalog(tmp_path):
    with pytest.raises(sqlite3.OperationalError):
        connect_readonly(tmp_path / "missing.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()
