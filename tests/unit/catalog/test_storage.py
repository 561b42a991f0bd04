"""The storage layer's backend interface and query modules, on every backend."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import pytest

from pixsight.catalog.storage import Backend, FullTextIndex, SQLITE, open_session
from pixsight.catalog.storage import gallery, keys, reads, reviews
from pixsight.catalog.store import Catalog
from pixsight.core.errors import CatalogError
from pixsight.core.types import Analysis, Classification


def _save(cat: Catalog, name: str, *, label: str = "cat", review: bool = True) -> str:
    sha = hashlib.sha256(name.encode()).hexdigest()
    cat.save(Analysis(path=f"/p/{name}", sha256=sha, width=8, height=6, format="PNG", needs_review=review,
                      results={"classify": Classification(class_ids=[0], scores=[0.7], labels=[label])},
                      models={"classify": "cls@1"}))
    return sha


def test_sqlite_implements_the_interfaces() -> None:
    assert isinstance(SQLITE, Backend) and isinstance(SQLITE.fts, FullTextIndex)


def test_modes_create_existing_readonly(catalog_db: Path) -> None:
    with pytest.raises(CatalogError, match="no catalog"):
        open_session(catalog_db, mode="existing")
    with pytest.raises(CatalogError, match="no catalog"):
        open_session(catalog_db, mode="readonly")
    assert not catalog_db.exists()                                     # neither made the file
    open_session(catalog_db).close()
    with open_session(catalog_db, mode="readonly") as s:
        with pytest.raises(CatalogError, match="readonly"):
            with s:
                s.execute("DELETE FROM images")


def test_database_errors_become_catalog_errors_and_roll_back(catalog: Catalog, catalog_db: Path) -> None:
    sha = _save(catalog, "a.png")
    with pytest.raises(CatalogError, match="^.*review queue: no such table: nope"):
        with open_session(catalog_db, what="review queue") as s:
            with s.claim():
                s.execute("DELETE FROM files")
                s.execute("SELECT * FROM nope")
    with open_session(catalog_db) as s:
        assert reads.paths(s, sha) == ["/p/a.png"]                     # the delete was rolled back


def test_upsert_keeps_the_row_and_replace_gives_a_new_row_id(catalog_db: Path) -> None:
    with open_session(catalog_db) as s:
        up = s.backend.upsert("people", ["name", "created"], ["name"])
        s.execute(up, ("ann", 1.0))
        first = s.scalar("SELECT rowid FROM people WHERE name='ann'")
        s.execute(up, ("ann", 2.0))
        assert s.all("SELECT rowid, created FROM people") == [(first, 2.0)]
        s.execute(s.backend.replace("people", ["name", "created"]), ("ann", 3.0))
        assert s.scalar("SELECT rowid FROM people") != first
        s.execute(s.backend.insert_ignore("people", ["name", "created"], ["name"]), ("ann", 4.0))
        assert s.column("SELECT created FROM people") == [3.0]


def test_in_values_takes_any_number_of_values(catalog: Catalog, catalog_db: Path) -> None:
    shas = [_save(catalog, f"{i}.png") for i in range(3)]
    many = [f"{i:064x}" for i in range(5000)] + shas[:2]                # far above SQLite's 999 parameters
    with open_session(catalog_db) as s:
        sql, params = s.backend.in_values("sha256", many)
        assert sorted(s.column(f"SELECT sha256 FROM images WHERE {sql}", params)) == sorted(shas[:2])


def test_claim_next_hands_each_image_to_one_reviewer(catalog: Catalog, catalog_db: Path) -> None:
    shas = sorted(_save(catalog, f"{i}.png") for i in range(8))
    got: list[str] = []
    lock = threading.Lock()

    def take(who: str) -> None:
        with open_session(catalog_db, mode="existing") as s:
            found = reviews.claim_next(s, who, now=100.0, until=400.0, skip=[], claim=True)
        with lock:
            got.append(found[0])

    threads = [threading.Thread(target=take, args=(f"r{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == shas                                         # eight reviewers, eight images
    with open_session(catalog_db) as s:
        assert reviews.claim_next(s, "late", now=100.0, until=400.0, skip=[], claim=True) is None
        assert reviews.counts(s, now=100.0)["claimed"] == 8
        assert reviews.claim_next(s, "late", now=500.0, until=800.0, skip=shas[:1], claim=True)[0] == shas[1]
        assert reviews.release(s, shas[1], "late") and not reviews.release(s, shas[1], "late")


def test_decisions_history_latest_and_counts(catalog: Catalog, catalog_db: Path) -> None:
    a, b = _save(catalog, "a.png"), _save(catalog, "b.png")
    with open_session(catalog_db) as s:
        first = reviews.add(s, a, "accept", "ann", 1.0, labels=None, boxes=None, note=None)
        second = reviews.add(s, a, "relabel", "bob", 2.0, labels='["dog"]', boxes=None, note="n")
        assert second > first
        assert [r[2] for r in reviews.history(s, a)] == ["accept", "relabel"]
        assert [r[0] for r in reviews.latest(s)] == [second]
        assert reviews.latest_of(s, [a, b]) == {a: "relabel"}
        assert reviews.counts(s, now=0.0) == {"pending": 1, "claimed": 0, "per_decision": {"relabel": 1},
                                              "reviewers": 2}
        assert reviews.image_size(s, b) == (8, 6) and reviews.image_size(s, "0" * 64) is None


def test_gallery_queries(catalog: Catalog, catalog_db: Path) -> None:
    vec = np.full(4, 0.5, np.float32).tobytes()
    with open_session(catalog_db) as s:
        gallery.add_face(s, "ann", "1" * 64, 0, "faces@1", vec, created=5.0)
        gallery.add_face(s, "ann", "1" * 64, 1, "faces@1", vec, created=9.0)   # same image: replaced
        gallery.add_face(s, "bob", "2" * 64, 0, "faces@2", vec, created=6.0)
        assert gallery.people(s) == [("ann", 1, 5.0), ("bob", 1, 6.0)]
        assert gallery.gallery_vectors(s, "faces@2") == [("bob", vec)]
        assert [r[:2] for r in gallery.all_gallery_vectors(s)] == [("ann", "faces@1"), ("bob", "faces@2")]
        assert gallery.face_vectors_of(s, "3" * 64) == [] and gallery.face_vectors_in(s, ["3" * 64]) == []
        assert gallery.remove_person(s, "ann") == 1 and not gallery.has_person(s, "ann")


def test_key_queries(catalog_db: Path) -> None:
    with open_session(catalog_db) as s:
        assert keys.insert(s, "00000001", "laptop", "viewer", "d" * 64, 1.0)
        assert not keys.insert(s, "00000001", "other", "admin", "e" * 64, 2.0)  # id taken: nothing stored
        assert keys.secret_of(s, "00000001") == (("00000001", "laptop", "viewer", 1.0, None, None), "d" * 64)
        assert keys.touch(s, "00000001", 7.0) and keys.get(s, "00000001")[4] == 7.0
        assert keys.revoke(s, "00000001", 8.0) and not keys.revoke(s, "00000001", 9.0)
        assert keys.count(s) == 0 and keys.count(s, include_revoked=True) == 1
        assert [r[0] for r in keys.all_keys(s, include_revoked=False)] == []


def test_card_facts_paths_and_top_labels(catalog: Catalog, catalog_db: Path) -> None:
    sha = _save(catalog, "a.png", label="tabby")
    catalog.touch_file("/p/copy.png", sha, size=1, mtime_ns=1)
    with open_session(catalog_db) as s:
        facts = reads.card_facts(s, [sha, "0" * 64])
        assert list(facts) == [sha] and facts[sha][:2] == (8, 6) and facts[sha][3] == 1
        assert reads.top_labels(s, [sha]) == {sha: ("tabby", 0.7)}
        assert reads.paths(s, sha) == ["/p/a.png", "/p/copy.png"]
        assert reads.paths(s, sha, order="newest") == ["/p/copy.png", "/p/a.png"]


def test_unknown_image_is_one_class_and_a_not_found_error() -> None:
    from pixsight.catalog import errors, vectors
    from pixsight.core.errors import NotFoundError
    from pixsight.review import queue

    assert queue.UnknownImageError is vectors.UnknownImageError is errors.UnknownImageError
    assert issubclass(errors.UnknownImageError, NotFoundError)                 # HTTP answers 404
