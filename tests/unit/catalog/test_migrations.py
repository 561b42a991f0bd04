"""An old catalog file opens and is migrated with its data intact.

``data/catalog_v1.sql`` is a dump of a catalog written by pixsight before the one storage
layer (schema version 1; search index, review, gallery and key tables made on first use by
their modules), built by ``data/make_catalog_v1.py`` with that code.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from pixsight.catalog.search import search
from pixsight.catalog.storage import SCHEMA_VERSION, open_session, schema_version
from pixsight.catalog.store import Catalog
from pixsight.faces.gallery import find_person, people
from pixsight.review.queue import history, stats
from pixsight.serve.keys import KeyStore

DUMP = Path(__file__).with_name("data") / "catalog_v1.sql"
TOKEN = "pxs_0a1b2c3d_" + "k" * 43  # the key make_catalog_v1.py stored (hashed)
LATER_TABLES = ("search_docs", "search_labels", "search_state", "search_rows", "reviews", "review_claims", "people",
                "gallery", "api_keys", "datasets", "face_embeddings")


def _sha(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def _restore(db: Path, *, drop: tuple[str, ...] = ()) -> Path:
    con = sqlite3.connect(db)
    con.executescript(DUMP.read_text(encoding="utf-8"))
    con.close()
    con = sqlite3.connect(db)  # a fresh connection reads the restored schema (the FTS5 table)
    with con:
        if drop:
            con.execute("DROP TABLE search_fts")
        for table in drop:
            con.execute(f"DROP TABLE {table}")
        for index in ("results_created", "analyses_updated", "files_seen") if drop else ():
            con.execute(f"DROP INDEX {index}")
    con.close()
    return db


def _tables(db: Path) -> set[str]:
    con = sqlite3.connect(db)
    try:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")}
    finally:
        con.close()


@pytest.fixture()
def old_db(catalog_db: Path) -> Path:
    return _restore(catalog_db)


def test_the_fixture_is_a_version_1_catalog(old_db: Path) -> None:
    con = sqlite3.connect(old_db)
    assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("1",)
    con.close()


def test_a_version_1_catalog_opens_migrated_with_its_data(old_db: Path) -> None:
    with Catalog(old_db) as cat:
        invoice = cat.load_analysis(_sha("/old/invoice.png"))
        assert invoice.results["ocr"].text == "ACME invoice 42" and invoice.needs_review
        assert invoice.results["classify"].labels == ["envelope"] and invoice.path == "/old/invoice.png"
        assert cat.load_analysis(_sha("/old/cat.jpg")).results["embed"].vector.tolist() == [1, 0, 0, 0]
        assert cat.file_error("/old/broken.jpg") == {"type": "ImageDecodeError", "message": "truncated"}
        assert cat.get_dataset("pets")["classes"] == ["cat"] and cat.count_images() == 3
        assert cat.integrity_ok()
    with open_session(old_db) as s:
        assert schema_version(s) == SCHEMA_VERSION
    assert [h.sha256 for h in search(old_db, "acme")] == [_sha("/old/invoice.png")]  # the old index is kept
    assert [r.labels for r in history(old_db, _sha("/old/cat.jpg"))] == [["tiger cat"]]
    assert stats(old_db)["reviewed"] == 1 and stats(old_db)["relabel"] == 1
    assert [(p.name, p.images) for p in people(old_db)] == [("eileen", 1)]
    assert [sha for sha, _, _ in find_person(old_db, "eileen")] == [_sha("/old/party.jpg")]
    assert KeyStore(old_db).verify(TOKEN).role == "admin"


def test_a_catalog_from_before_the_later_tables_gains_all_of_them(catalog_db: Path) -> None:
    db = _restore(catalog_db, drop=LATER_TABLES)
    assert not _tables(db) & set(LATER_TABLES)
    with Catalog(db) as cat:
        assert cat.count_images() == 3 and cat.list_datasets() == []
    assert set(LATER_TABLES) | {"search_fts", "results_created", "files_seen", "analyses_updated"} <= _tables(db)
    assert [h.sha256 for h in search(db, "acme")] == [_sha("/old/invoice.png")]   # indexed afresh
    assert stats(db)["pending"] == 2


def test_the_review_queue_and_search_migrate_an_old_catalog_too(old_db: Path) -> None:
    assert stats(old_db)["reviewers"] == 1      # mode "existing": migrated, never created
    with open_session(old_db, mode="readonly") as s:
        assert schema_version(s) == SCHEMA_VERSION


def test_readers_leave_an_old_catalog_as_it_is(old_db: Path) -> None:
    from pixsight.catalog.stats import catalog_stats

    assert catalog_stats(old_db)["images"] == 3
    with open_session(old_db, mode="readonly") as s:
        assert schema_version(s) == 1


def test_two_processes_opening_an_old_catalog_at_once_migrate_it_once(old_db: Path) -> None:
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            Catalog(old_db).close()
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    con = sqlite3.connect(old_db)
    assert con.execute("SELECT COUNT(*) FROM meta WHERE key='schema_version'").fetchone() == (1,)
    con.close()


def test_a_vector_index_syncs_from_a_migrated_catalog(old_db: Path) -> None:
    pytest.importorskip("faiss")
    from pixsight.catalog.vectors import similar

    Catalog(old_db).close()
    assert similar(old_db, np.array([1, 0, 0, 0], np.float32), k=1)[0][0] == _sha("/old/cat.jpg")
