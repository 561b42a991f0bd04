"""Full-text search over a real catalog (written through Catalog.save / pixsight.analyze)."""

from __future__ import annotations

import hashlib
import sqlite3
import time

import numpy as np
import pytest
from PIL import Image

from pixsight.catalog.search import SearchHit, search, sync_index
from pixsight.catalog.store import Catalog
from pixsight.core.errors import CatalogError, ConfigError
from pixsight.core.spatial import Detections
from pixsight.core.types import Analysis, Classification, Faces, TextLines


def _analysis(path: str, *, text: str = "", labels=(), detected=(), faces: int = 0, review: bool = False) -> Analysis:
    results: dict = {}
    models: dict = {}
    if labels:
        results["classify"] = Classification(class_ids=np.arange(len(labels)), scores=np.linspace(0.9, 0.1, len(labels)),
                                             labels=list(labels))
        models["classify"] = "cls@1"
    if text:
        lines = text.split("\n")
        results["ocr"] = TextLines(texts=lines, scores=np.ones(len(lines)), boxes=np.tile([0.0, 0, 10, 10], (len(lines), 1)))
        models["ocr"] = "ocr@1"
    if detected:
        results["detect"] = Detections(boxes=np.tile([0.0, 0, 5, 5], (len(detected), 1)), scores=np.ones(len(detected)),
                                       class_ids=np.arange(len(detected)), labels=list(detected), model="det@1")
        models["detect"] = "det@1"
    if faces or "faces" in results:
        results["faces"] = Faces(boxes=np.tile([0.0, 0, 5, 5], (faces, 1)), scores=np.ones(faces))
        models["faces"] = "faces@1"
    sha = hashlib.sha256(path.encode()).hexdigest()
    return Analysis(path=path, sha256=sha, width=10, height=10, format="JPEG", bytes=100, results=results,
                    models=models, needs_review=review)


@pytest.fixture()
def db(catalog_db, tmp_path):
    path = catalog_db
    with Catalog(path) as cat:
        cat.save(_analysis(str(tmp_path / "scans" / "invoice_march.png"), text="Total amount due\nACME invoice 42",
                           labels=("document", "envelope"), review=True))
        cat.save(_analysis(str(tmp_path / "photos" / "my_cat_photo.jpg"), labels=("tabby", "tiger cat"),
                           detected=("cat", "sofa")))
        cat.save(_analysis(str(tmp_path / "photos" / "party.jpg"), labels=("restaurant",), faces=2,
                           text="HAPPY BIRTHDAY"))
    return path


def _names(hits: list[SearchHit]) -> list[str]:
    return [h.paths[0].rsplit("/", 1)[-1] for h in hits]


def test_finds_by_ocr_word_with_snippet(db):
    hits = search(db, "acme")
    assert _names(hits) == ["invoice_march.png"]
    assert "[ACME]" in hits[0].snippet and hits[0].score > 0
    assert hits[0].labels == ["document", "envelope"] and hits[0].needs_review


def test_finds_by_label_and_file_name_part(db):
    assert _names(search(db, "tabby")) == ["my_cat_photo.jpg"]
    assert _names(search(db, "march")) == ["invoice_march.png"]      # file name part
    assert set(_names(search(db, "cat"))) == {"my_cat_photo.jpg"}     # name part + detect label
    assert _names(search(db, "BIRTH")) == ["party.jpg"]               # prefix, case-insensitive
    assert search(db, "acme nothinglikethis") == []                   # all words must match


def test_filters_alone_and_combined(db, tmp_path):
    assert _names(search(db, label="SOFA")) == ["my_cat_photo.jpg"]   # detected label
    assert _names(search(db, label="tabby")) == ["my_cat_photo.jpg"]  # classify label
    assert sorted(_names(search(db, has_text=True))) == ["invoice_march.png", "party.jpg"]
    assert _names(search(db, has_faces=True)) == ["party.jpg"]
    assert _names(search(db, needs_review=True)) == ["invoice_march.png"]
    assert sorted(_names(search(db, folder=tmp_path / "photos"))) == ["my_cat_photo.jpg", "party.jpg"]
    assert _names(search(db, folder=tmp_path / "photos", has_text=True)) == ["party.jpg"]
    assert search(db, "acme", folder=tmp_path / "photos") == []
    assert search(db, folder=tmp_path / "phot") == []                 # a folder, not a string prefix
    assert len(search(db)) == 3 and len(search(db, limit=1)) == 1
    today = time.strftime("%Y-%m-%d")
    assert len(search(db, since=today, until=today)) == 3
    assert search(db, until="2000-01-01") == []
    with pytest.raises(ConfigError):
        search(db, since="last tuesday")


# each text is found by the literal words of one hostile query below and by nothing else
HOSTILE_DOCS = {"acme.png": "ACME total", "near.png": "near acme total", "orders.png": "acme orders",
                "andes.png": "Andes trip", "textacme.png": "plain text acme", "sql.png": "a'b drop table files"}
WITH_ACME = ["acme.png", "near.png", "orders.png", "textacme.png"]


@pytest.fixture()
def hostile_db(catalog_db):
    with Catalog(catalog_db) as cat:
        for name, text in HOSTILE_DOCS.items():   # paths outside tmp: no user or folder name is indexed
            cat.save(_analysis(f"/hostile/{name}", text=text))
    return catalog_db


@pytest.mark.parametrize(("query", "expected"), [
    ('"', []),                                   # no word: nothing matches (not an FTS5 syntax error)
    ('""', []),
    ("*", []),
    ("(", []),
    ("😀", []),                                   # not a word character for the tokenizer
    ("acme\"", WITH_ACME),                       # punctuation is ignored, the word still matches
    ("-acme", WITH_ACME),                        # not FTS5's NOT
    ("^acme", WITH_ACME),                        # not FTS5's start-of-column anchor
    ("NEAR(acme total)", ["near.png"]),          # words "near acme" + "total", not FTS5's NEAR group
    ("acme OR", ["orders.png"]),                 # "or" is a word (prefix of "orders"), not an operator
    ("AND", ["andes.png"]),                      # likewise "and"
    ("text:acme", ["textacme.png"]),             # words "text acme", not a column filter
    ("a'b; DROP TABLE files;--", ["sql.png"]),   # words, never SQL
    ("\x00", sorted(HOSTILE_DOCS)),              # a NUL is a space: blank text lists every image
])
def test_hostile_queries_are_plain_words(hostile_db, query, expected):
    assert sorted(_names(search(hostile_db, query))) == expected
    assert len(search(hostile_db)) == len(HOSTILE_DOCS)            # the catalog is untouched


def test_incremental_sync_picks_up_new_and_changed(db, tmp_path):
    assert sync_index(db) == 3                                        # first run indexes everything
    assert sync_index(db) <= 3 and search(db, "acme")                 # later runs only redo same-instant rows
    new = _analysis(str(tmp_path / "new" / "receipt.jpg"), text="coffee 3.50")
    with Catalog(db) as cat:
        cat.save(new)
    assert _names(search(db, "coffee")) == ["receipt.jpg"]
    assert sync_index(db) <= 1                                        # only the same-instant row may be redone
    changed = _analysis(str(tmp_path / "new" / "receipt.jpg"), text="tea 2.00")
    with Catalog(db) as cat:
        cat.save(changed)
    assert search(db, "coffee") == [] and _names(search(db, "tea")) == ["receipt.jpg"]
    count = sqlite3.connect(db).execute("SELECT COUNT(*) FROM search_fts").fetchone()[0]
    assert count == 4                                                 # re-indexed in place, no duplicates


def test_missing_or_foreign_db(tmp_path):
    with pytest.raises(CatalogError, match="no catalog"):
        search(tmp_path / "nope.sqlite", "x")
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (a)").connection.commit()
    with pytest.raises(CatalogError, match="not a pixsight catalog"):
        search(other, "x")


def test_real_pipeline_classify(catalog_db, tmp_path):
    import pixsight

    rng = np.random.default_rng(0)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("sunny_beach_day.jpg", "dark_forest.jpg"):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / name)
    db = catalog_db
    pixsight.analyze([folder], config=pixsight.AnalyzeConfig(tasks=("classify",)), db=db)
    hits = search(db, "beach")
    assert _names(hits) == ["sunny_beach_day.jpg"] and hits[0].labels   # top labels indexed
    assert _names(search(db, label=hits[0].labels[0]))[0] in {"sunny_beach_day.jpg", "dark_forest.jpg"}
