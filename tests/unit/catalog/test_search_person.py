"""Search by person, the empty-query listing (filters, paging, total) and the sync's indexes."""

from __future__ import annotations

import hashlib
import sqlite3

import numpy as np
import pytest

from pixsight.catalog import search as search_mod
from pixsight.catalog.search import SearchPage, count_matches, search, search_page
from pixsight.catalog.store import Catalog
from pixsight.core.errors import ConfigError
from pixsight.core.types import Analysis, Classification, Faces
from pixsight.faces import gallery, naming

MODEL = "faces@1"


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)


def _image(name: str, label: str, faces: list[np.ndarray] = (), review: bool = False) -> Analysis:
    results = {"classify": Classification(class_ids=[0], scores=[0.9], labels=[label])}
    models = {"classify": "cls@1"}
    if faces:
        n = len(faces)
        results["faces"] = Faces(boxes=np.tile([0.0, 0, 5, 5], (n, 1)), scores=np.ones(n), embeddings=np.stack(faces))
        models["faces"] = MODEL
    return Analysis(path=f"/photos/{name}", sha256=hashlib.sha256(name.encode()).hexdigest(), width=10, height=10,
                    format="JPEG", bytes=100, results=results, models=models, needs_review=review)


def make_catalog(path):
    """Ten images analysed one minute apart (img0 oldest); odd ones are "cat", even "dog";
    1 and 8 need review; ann is in 2, 5, 8, bob in 5, a stranger in 3."""
    ann, bob = _unit(1), _unit(2)
    with Catalog(path) as cat:
        for i in range(10):
            faces = [ann + 0.01] if i in (2, 8) else [ann - 0.01, bob] if i == 5 else [_unit(100 + i)] if i == 3 else []
            cat.save(_image(f"img{i}.jpg", "cat" if i % 2 else "dog", faces, review=i in (1, 8)))
    con = sqlite3.connect(path)
    with con:
        for i in range(10):
            con.execute("UPDATE analyses SET updated=? WHERE sha256=?",
                        (1.7e9 + 60 * i, hashlib.sha256(f"img{i}.jpg".encode()).hexdigest()))
        for name, vec in (("ann", ann), ("bob", bob)):
            con.execute("INSERT INTO people VALUES (?, 0)", (name,))
            con.execute("INSERT INTO gallery VALUES (?, ?, 0, ?, ?)", (name, "0" * 64, MODEL, vec.tobytes()))
    con.close()
    return path


@pytest.fixture()
def db(catalog_db):
    return make_catalog(catalog_db)


def _names(hits) -> list[str]:
    return [h.paths[0].rsplit("/", 1)[-1].removesuffix(".jpg") for h in hits]


def test_listing_is_newest_first_with_filters_paging_and_total(db):
    assert _names(search(db)) == [f"img{i}" for i in range(9, -1, -1)]
    assert _names(search(db, "")) == _names(search(db, "   ")) == _names(search(db))
    page = search_page(db, label="cat", limit=2)
    assert isinstance(page, SearchPage) and (page.total, page.offset, page.limit) == (5, 0, 2)
    assert _names(page.items) == ["img9", "img7"]
    assert _names(search_page(db, label="cat", limit=2, offset=2).items) == ["img5", "img3"]
    assert _names(search_page(db, label="cat", limit=2, offset=4).items) == ["img1"]
    assert search_page(db, label="cat", limit=2, offset=10).items == []
    assert count_matches(db) == 10 and count_matches(db, label="cat") == 5
    assert count_matches(db, has_faces=True) == 4 and count_matches(db, needs_review=True) == 2
    assert count_matches(db, "img") == 10 and count_matches(db, "img7") == 1   # text search counts too
    assert search_page(db, "img", limit=3, offset=8).total == 10
    assert len(search_page(db, "img", limit=3, offset=8).items) == 2
    assert search_page(db, label="cat", limit=1, with_total=False).total == -1
    assert _names(search(db, since=1.7e9 + 60 * 7)) == ["img9", "img8", "img7"]
    d = search_page(db, limit=1).to_dict()
    assert set(d) == {"items", "total", "offset", "limit"} and d["items"][0]["paths"] == ["/photos/img9.jpg"]
    for bad in ({"limit": -1}, {"offset": -1}):
        with pytest.raises(ConfigError):
            search_page(db, **bad)
    with pytest.raises(ConfigError):
        search(db, limit=0)


def test_restricted_to_given_images(db):
    shas = [hashlib.sha256(f"img{i}.jpg".encode()).hexdigest() for i in (1, 4, 7)]
    assert _names(search(db, shas=shas)) == ["img7", "img4", "img1"]
    assert _names(search(db, shas=iter(shas), label="cat")) == ["img7", "img1"]
    assert count_matches(db, "img4", shas=shas) == 1
    assert search(db, shas=[]) == [] and count_matches(db, shas=[]) == 0
    assert search(db, shas=["f" * 64]) == []


def test_search_by_person(db):
    ann = [sha for sha, _p, _d in gallery.find_person(db, "ann")]
    assert _names(search(db, shas=ann)) == ["img8", "img5", "img2"]
    bob = [sha for sha, _p, _d in gallery.find_person(db, "bob")]
    assert _names(search(db, shas=bob, needs_review=False)) == ["img5"]
    assert count_matches(db, shas=ann, needs_review=True) == 1
    with pytest.raises(gallery.UnknownPersonError, match="no person 'carl'"):
        gallery.find_person(db, "carl")
    people = naming.people_in(db, [h.sha256 for h in search(db)])
    assert sorted(people[hashlib.sha256(b"img5.jpg").hexdigest()]) == ["ann", "bob"]
    assert people[hashlib.sha256(b"img3.jpg").hexdigest()] == []          # a face, but nobody enrolled


def test_sync_and_listing_use_the_time_indexes(db):
    search(db)                                                            # creates the index tables
    con = sqlite3.connect(db)
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"results_created", "analyses_updated", "files_seen"} <= names
    expected = {"results.created": "results_created", "files.seen": "files_seen",
                "analyses.updated": "analyses_updated"}
    for key, changed_sql, max_sql in search_mod._SOURCES:
        for sql, args in ((changed_sql, (0.0,)), (max_sql, ())):
            plan = " ".join(r[3] for r in con.execute("EXPLAIN QUERY PLAN " + sql, args))
            assert f"INDEX {expected[key]}" in plan and "SCAN" not in plan, (sql, plan)
    listing = ("SELECT d.sha256 FROM analyses a JOIN search_docs d ON d.sha256 = a.sha256 WHERE 1 "
               "ORDER BY a.updated DESC, d.sha256 LIMIT 10")
    plan = " ".join(r[3] for r in con.execute("EXPLAIN QUERY PLAN " + listing))
    assert "INDEX analyses_updated" in plan, plan
    con.close()


def test_old_catalog_gets_the_indexes_from_search(catalog_db):
    path = catalog_db
    with Catalog(path) as cat:
        cat.save(_image("a.jpg", "cat"))
    con = sqlite3.connect(path)
    with con:
        for name in ("results_created", "analyses_updated", "files_seen"):
            con.execute(f"DROP INDEX {name}")
        con.execute("UPDATE meta SET value='1' WHERE key='schema_version'")  # what such catalogs say
    con.close()
    assert _names(search(path)) == ["a"]
    con = sqlite3.connect(path)
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    con.close()
    assert {"results_created", "analyses_updated", "files_seen"} <= names



def test_index_of_an_older_layout_is_rebuilt_once(db):
    assert len(search(db)) == 10
    con = sqlite3.connect(db)
    with con:                                   # an index written before search_rows existed
        con.execute("DELETE FROM search_state WHERE key='layout'")
        con.execute("DELETE FROM search_rows")
        con.execute("INSERT INTO search_fts (sha256, text, labels, names) VALUES ('stale', 'ghost', '', '')")
    con.close()
    assert search_mod.sync_index(db) == 10 and search_mod.sync_index(db) <= 1
    assert search(db, "ghost") == [] and len(search(db, "img")) == 10
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*) FROM search_fts").fetchone()[0] == 10
    assert con.execute("SELECT COUNT(*) FROM search_rows").fetchone()[0] == 10
    con.close()
