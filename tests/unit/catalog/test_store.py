"""The catalog: round trips, idempotent saves, lookups, export and crash durability (SECURITY.md 19)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pixsight.catalog.export import CSV_COLUMNS, export_catalog, iter_analyses
from pixsight.catalog.store import SCHEMA_VERSION, Catalog
from pixsight.core.errors import CatalogError
from pixsight.core.schema import validate_analysis_dict
from pixsight.core.types import Analysis, Classification, Embedding, Faces, TextLines

MODELS = {"classify": "efficientnet-lite0@1", "ocr": "pixsight-ocr@1", "faces": "dlib-faces@1",
          "embed": "efficientnet-lite0-embed@1"}


def sha(i: int | str) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def full_analysis(i: int = 0, *, path: str | None = None, needs_review: bool = False) -> Analysis:
    rng = np.random.default_rng(i)
    face_vecs = rng.standard_normal((2, 128)).astype(np.float32)
    vec = rng.standard_normal(32).astype(np.float32)
    results = {
        "classify": Classification(class_ids=[281, 285, 7], scores=[0.61, 0.2, 0.05],
                                   labels=["tabby", "Egyptian cat", "cock"]),
        "ocr": TextLines(texts=["INVOICE 42", "total: 9,99 €"], scores=[0.97, 0.71],
                         boxes=[[10, 12, 200, 40], [10, 50, 180, 80]], model="rapidocr"),
        "faces": Faces(boxes=[[30, 40, 90, 110], [120, 40, 170, 100]], scores=[0.93, 0.55],
                       landmarks=rng.uniform(30, 170, (2, 5, 2)).round(1), embeddings=face_vecs,
                       data={"detector": ["hog", "mmod"]}, model="dlib-faces@1"),
        "embed": Embedding(vector=vec / np.linalg.norm(vec), model=MODELS["embed"]),
    }
    return Analysis(
        path=path or f"/photos/img{i:04d}.jpg", sha256=sha(i), width=640 + i, height=480, format="JPEG",
        bytes=10_000 + i, needs_review=needs_review,
        review_reasons=["ocr: line score 0.71 below 0.80"] if needs_review else [],
        timings_ms={"decode": 1.5, "classify": 12.25}, results=results, models=dict(MODELS),
        task_errors={},
    )


def error_analysis(path: str, message: str = "file is truncated", etype: str = "ImageDecodeError") -> Analysis:
    return Analysis(path=path, status="error", error={"type": etype, "message": f"{path}: {message}"})


def rows(db_path: Path, table: str) -> int:
    with sqlite3.connect(db_path) as con:
        return con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


@pytest.fixture()
def db_path(catalog_db: Path) -> Path:
    """A catalog of each backend (SQLite: a file in a folder that does not exist yet)."""
    return catalog_db.parent / "cat" / catalog_db.name


@pytest.fixture()
def cat(db_path: Path) -> Any:
    with Catalog(db_path) as c:
        yield c


# -- round trip ------------------------------------------------------------------------------
def test_save_load_round_trip_with_all_four_result_types(cat: Catalog) -> None:
    a = full_analysis(1, needs_review=True)
    cat.save(a)
    back = cat.load_analysis(a.sha256)
    assert back is not None
    assert back.to_dict(with_vectors=True) == a.to_dict(with_vectors=True)
    assert back.models == MODELS
    assert np.array_equal(back.results["embed"].vector, a.results["embed"].vector)  # exact float32 bytes
    assert np.array_equal(back.results["faces"].embeddings, a.results["faces"].embeddings)
    assert back.results["faces"].data == {"detector": ["hog", "mmod"]}
    assert back.results["ocr"].texts == ["INVOICE 42", "total: 9,99 €"]
    assert back.needs_review and back.review_reasons == a.review_reasons
    assert (back.width, back.height, back.format, back.bytes) == (641, 480, "JPEG", 10_001)


def test_round_trip_survives_reopening(db_path: Path) -> None:
    a = full_analysis(2)
    with Catalog(db_path) as c:
        c.save(a)
    with Catalog(db_path) as c:
        back = c.load_analysis(a.sha256)
    assert back is not None and back.to_dict(with_vectors=True) == a.to_dict(with_vectors=True)


def test_load_without_vectors_leaves_face_embeddings_out(cat: Catalog) -> None:
    a = full_analysis(3)
    cat.save(a)
    back = cat.load_analysis(a.sha256, with_vectors=False)
    assert back.results["faces"].embeddings is None
    assert len(back.results["faces"]) == 2


def test_load_of_unknown_sha_is_none(cat: Catalog) -> None:
    assert cat.load_analysis(sha("missing")) is None


def test_load_with_models_picks_those_results(cat: Catalog) -> None:
    a = full_analysis(4)
    cat.save(a)
    b = replace(full_analysis(4), results={"classify": Classification(class_ids=[1], scores=[0.9], labels=["goldfish"])},
                models={"classify": "other-model@2"})
    cat.save(b)
    latest = cat.load_analysis(a.sha256)
    assert latest.results["classify"].top_label == "goldfish"  # latest per task by default
    assert latest.models["classify"] == "other-model@2"
    assert set(latest.results) == {"classify", "ocr", "faces", "embed"}
    old = cat.load_analysis(a.sha256, models={"classify": MODELS["classify"]})
    assert set(old.results) == {"classify"} and old.results["classify"].top_label == "tabby"


# -- idempotence -------------------------------------------------------------------------------
def test_resaving_is_idempotent(cat: Catalog, db_path: Path) -> None:
    a = full_analysis(5)
    for _ in range(3):
        cat.save(a, path=a.path, size=10_005, mtime_ns=123)
    assert cat.count_images() == 1
    assert cat.count_results() == 4
    assert {t: rows(db_path, t) for t in ("images", "files", "analyses", "results", "embeddings", "face_embeddings")} == {
        "images": 1, "files": 1, "analyses": 1, "results": 4, "embeddings": 1, "face_embeddings": 2}
    assert cat.load_analysis(a.sha256).to_dict(with_vectors=True) == a.to_dict(with_vectors=True)


def test_resave_with_fewer_faces_drops_old_face_vectors(cat: Catalog, db_path: Path) -> None:
    a = full_analysis(6)
    cat.save(a)
    one = Faces(boxes=[[1, 2, 3, 4]], scores=[0.8], embeddings=np.ones((1, 128)))
    a = replace(a, results={"faces": one})
    cat.save(a)
    assert rows(db_path, "face_embeddings") == 1
    back = cat.load_analysis(a.sha256)
    assert np.array_equal(back.results["faces"].embeddings, np.ones((1, 128), np.float32))


def test_resave_without_face_embeddings_does_not_keep_stale_vectors(cat: Catalog, db_path: Path) -> None:
    a = full_analysis(7)
    cat.save(a)
    a = replace(a, results={"faces": Faces(boxes=[[5, 5, 50, 50], [60, 5, 99, 50]], scores=[0.9, 0.8])})  # no embeddings
    cat.save(a)
    assert rows(db_path, "face_embeddings") == 0
    assert cat.load_analysis(a.sha256).results["faces"].embeddings is None


def test_identical_content_at_two_paths_is_one_image(cat: Catalog, db_path: Path) -> None:
    a = full_analysis(8, path="/photos/a.jpg")
    b = full_analysis(8, path="/backup/copy-of-a.jpg")
    cat.save(a)
    cat.save(b)
    assert cat.count_images() == 1 and cat.count_results() == 4
    assert rows(db_path, "files") == 2
    assert cat.find("/photos/a.jpg") == cat.find("/backup/copy-of-a.jpg") == [a.sha256]
    assert cat.load_analysis(a.sha256, path="/photos/a.jpg").path == "/photos/a.jpg"
    assert cat.load_analysis(a.sha256).path in {"/photos/a.jpg", "/backup/copy-of-a.jpg"}


def test_a_path_follows_its_new_content(cat: Catalog) -> None:
    cat.save(full_analysis(9, path="/p/x.jpg"))
    cat.save(full_analysis(10, path="/p/x.jpg"))  # the file was replaced
    assert cat.find("/p/x.jpg") == [sha(10)]
    assert [r[0] for r in cat.iter_files()] == ["/p/x.jpg"]


def test_a_failed_save_writes_nothing(cat: Catalog) -> None:
    class Exploding:
        def to_dict(self, **kwargs: Any) -> dict[str, Any]:
            raise RuntimeError("serialisation failed")

    a = full_analysis(11)
    a.results["bad"] = Exploding()
    with pytest.raises(RuntimeError):
        cat.save(a)
    assert cat.count_images() == 0 and cat.count_results() == 0
    assert list(cat.iter_files()) == []
    cat.save(full_analysis(12))  # the connection is usable afterwards
    assert cat.count_images() == 1


# -- errors and lookups --------------------------------------------------------------------------
def test_error_analyses_are_stored_per_path(cat: Catalog) -> None:
    cat.save(error_analysis("/p/bad1.jpg"))
    cat.save(error_analysis("/p/bad2.png", "file is empty (0 bytes)"))
    cat.save(error_analysis("/p/bad1.jpg", "still truncated"))  # re-run: replaced, not duplicated
    assert cat.count_images() == 0
    files = list(cat.iter_files())
    assert [(p, s, st, et) for p, s, st, et, _ in files] == [
        ("/p/bad1.jpg", None, "error", "ImageDecodeError"), ("/p/bad2.png", None, "error", "ImageDecodeError")]
    assert cat.file_error("/p/bad1.jpg") == {"type": "ImageDecodeError", "message": "/p/bad1.jpg: still truncated"}
    assert cat.file_error("/p/ok.jpg") is None
    assert cat.find("/p/bad1.jpg") == []


def test_a_later_ok_analysis_replaces_the_error(cat: Catalog) -> None:
    path = "/p/fixed.jpg"
    cat.save(error_analysis(path), path=path, size=5, mtime_ns=1)
    assert cat.known_file(path, 5, 1) is None  # errors are retried, not skipped
    a = full_analysis(13, path=path)
    cat.save(a, path=path, size=10_013, mtime_ns=2)
    assert cat.file_error(path) is None
    assert list(cat.iter_files()) == [(path, a.sha256, "ok", None, None)]
    assert cat.known_file(path, 10_013, 2) == a.sha256


def test_an_ok_file_that_breaks_later_becomes_an_error(cat: Catalog) -> None:
    a = full_analysis(14, path="/p/x.jpg")
    cat.save(a, size=1, mtime_ns=1)
    cat.save(error_analysis("/p/x.jpg"), size=2, mtime_ns=2)
    assert cat.file_error("/p/x.jpg")["type"] == "ImageDecodeError"
    assert cat.known_file("/p/x.jpg", 1, 1) is None and cat.known_file("/p/x.jpg", 2, 2) is None
    assert cat.count_images() == 1  # the content analysed before is kept


@pytest.mark.parametrize(
    ("path", "size", "mtime_ns", "known"),
    [("/p/k.jpg", 100, 7, True), ("/p/k.jpg", 101, 7, False), ("/p/k.jpg", 100, 8, False), ("/p/other.jpg", 100, 7, False)],
    ids=["same", "size-changed", "mtime-changed", "other-path"],
)
def test_known_file(cat: Catalog, path: str, size: int, mtime_ns: int, known: bool) -> None:
    a = full_analysis(15, path="/p/k.jpg")
    cat.save(a, size=100, mtime_ns=7)
    assert cat.known_file(path, size, mtime_ns) == (a.sha256 if known else None)


@pytest.mark.parametrize(
    ("models", "expected"),
    [
        (MODELS, True),
        ({"classify": MODELS["classify"]}, True),
        ({"classify": MODELS["classify"], "ocr": MODELS["ocr"]}, True),
        ({"classify": "efficientnet-lite0@2"}, False),  # a new model version must re-run
        ({"classify": MODELS["classify"], "depth": "midas@1"}, False),  # a task never run
        ({}, False),
    ],
    ids=["all", "one", "two", "new-version", "missing-task", "no-models"],
)
def test_has_results(cat: Catalog, models: dict[str, str], expected: bool) -> None:
    a = full_analysis(16)
    cat.save(a)
    assert cat.has_results(a.sha256, models) is expected
    assert cat.has_results(sha("never-saved"), {"classify": MODELS["classify"]}) is False


def test_find_by_path_abs_path_and_sha_prefix(cat: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    abs_path = str(tmp_path / "pics" / "cat.jpg")
    a = full_analysis(17, path=abs_path)
    b = full_analysis(18, path="/elsewhere/dog.jpg")
    cat.save(a)
    cat.save(b)
    assert cat.find(abs_path) == [a.sha256]
    assert cat.find("pics/cat.jpg") == [a.sha256]  # relative to the current folder
    assert cat.find(f"  {abs_path}\n") == [a.sha256]
    assert cat.find(a.sha256) == [a.sha256]
    assert cat.find(a.sha256[:8]) == [a.sha256]
    assert cat.find(a.sha256[:12].upper()) == [a.sha256]
    assert cat.find(a.sha256[:7]) == []  # too short to be a prefix
    assert cat.find("pics/dog.jpg") == []
    assert cat.find("zzzzzzzzzz") == []
    assert cat.find("%%%%%%%%") == []


def test_find_prefix_can_match_several(cat: Catalog) -> None:
    shas = [f"deadbeef{i:056x}" for i in range(12)]
    for i, s in enumerate(shas):
        cat.save(replace(full_analysis(i), sha256=s))
    assert sorted(cat.find("deadbeef00")) == shas[:11]
    assert len(cat.find("deadbeef")) == 11  # capped: enough for the caller to say "ambiguous"
    assert cat.find(shas[3]) == [shas[3]]


# -- the database itself ---------------------------------------------------------------------------
def test_wal_mode_and_integrity(cat: Catalog, db_path: Path) -> None:
    cat.save(full_analysis(19))
    with sqlite3.connect(db_path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    assert cat.integrity_ok()


@pytest.mark.parametrize(
    "content",
    [b"this is not a database, just some text\n" * 200, os.urandom(8192), b"SQLite format 3\x00" + b"\xff" * 4000],
    ids=["text", "random", "corrupt-header"],
)
def test_a_file_that_is_not_sqlite_is_a_catalog_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "photos.sqlite"
    path.write_bytes(content)
    with pytest.raises(CatalogError) as info:
        Catalog(path)
    assert str(path) in str(info.value)
    assert path.read_bytes() == content  # not overwritten


def test_a_newer_catalog_schema_is_refused(db_path: Path) -> None:
    Catalog(db_path).close()
    with sqlite3.connect(db_path) as con:
        con.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(CatalogError, match="upgrade"):
        Catalog(db_path)


def test_touch_file_records_a_duplicate_path(cat: Catalog) -> None:
    a = full_analysis(20, path="/p/a.jpg")
    cat.save(a)
    cat.touch_file("/p/copy.jpg", a.sha256, size=5, mtime_ns=6)
    assert cat.find("/p/copy.jpg") == [a.sha256]
    assert cat.known_file("/p/copy.jpg", 5, 6) == a.sha256
    assert cat.count_images() == 1


# -- export -------------------------------------------------------------------------------------
@pytest.fixture()
def filled(cat: Catalog) -> Catalog:
    cat.save(full_analysis(21, path="/p/b.jpg", needs_review=True))
    cat.save(full_analysis(21, path="/p/a-copy.jpg", needs_review=True))
    cat.save(error_analysis("/p/c.png", "file is empty (0 bytes)"))
    plain = Analysis(path="/p/d.jpg", sha256=sha(22), width=10, height=10, format="PNG", bytes=99,
                     results={"ocr": TextLines.empty("tesseract")}, models={"ocr": MODELS["ocr"]})
    cat.save(plain)
    return cat


@pytest.mark.parametrize("with_vectors", [False, True])
def test_export_jsonl(filled: Catalog, with_vectors: bool) -> None:
    buf = io.StringIO()
    n = export_catalog(filled, buf, format="jsonl", with_vectors=with_vectors)
    lines = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert n == len(lines) == 4
    assert [d["path"] for d in lines] == ["/p/a-copy.jpg", "/p/b.jpg", "/p/c.png", "/p/d.jpg"]
    for d in lines:
        validate_analysis_dict(d)
    a, b, c, d = lines
    assert a["sha256"] == b["sha256"] == sha(21)
    assert b["classify"]["labels"][0] == {"label": "tabby", "class_id": 281, "score": 0.61}
    assert b["ocr"]["text"] == "INVOICE 42\ntotal: 9,99 €"
    assert len(b["faces"]["faces"]) == 2 and b["faces"]["embedding_dim"] == 128
    assert b["needs_review"] is True and b["models"] == MODELS
    assert ("vector" in b["embed"]) is with_vectors
    assert ("embedding" in b["faces"]["faces"][0]) is with_vectors
    if with_vectors:
        expected = full_analysis(21).to_dict(with_vectors=True)
        assert b["embed"]["vector"] == expected["embed"]["vector"]
        assert b["faces"]["faces"][1]["embedding"] == expected["faces"]["faces"][1]["embedding"]
    assert c["status"] == "error" and c["error"] == {"type": "ImageDecodeError",
                                                     "message": "/p/c.png: file is empty (0 bytes)"}
    assert d["ocr"] == {"text": "", "model": "tesseract", "engine": "tesseract", "lines": []} and "classify" not in d


def test_export_csv(filled: Catalog) -> None:
    buf = io.StringIO()
    n = export_catalog(filled, buf, format="csv")
    table = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert n == len(table) == 4
    assert tuple(table[0].keys()) == CSV_COLUMNS
    by_path = {r["path"]: r for r in table}
    b = by_path["/p/b.jpg"]
    assert b["status"] == "ok" and b["sha256"] == sha(21)
    assert (b["width"], b["height"]) == ("661", "480")
    assert b["top_label"] == "tabby" and b["top_score"] == "0.6100"
    assert b["labels"] == "tabby|Egyptian cat|cock"
    assert b["ocr_text"] == "INVOICE 42\ntotal: 9,99 €"  # embedded newline survives CSV quoting
    assert b["ocr_lines"] == "2" and b["faces"] == "2" and b["embed_dim"] == "32"
    assert b["needs_review"] == "1" and b["review_reasons"] == "ocr: line score 0.71 below 0.80"
    c = by_path["/p/c.png"]
    assert c["status"] == "error" and c["error_type"] == "ImageDecodeError"
    assert c["error_message"] == "/p/c.png: file is empty (0 bytes)"
    assert c["top_label"] == c["faces"] == c["width"] == ""
    d = by_path["/p/d.jpg"]
    assert d["ocr_lines"] == "0" and d["top_label"] == "" and d["faces"] == "" and d["embed_dim"] == ""


def test_export_of_an_empty_catalog(cat: Catalog) -> None:
    buf = io.StringIO()
    assert export_catalog(cat, buf, format="jsonl") == 0 and buf.getvalue() == ""
    buf = io.StringIO()
    assert export_catalog(cat, buf, format="csv") == 0
    assert buf.getvalue().strip() == ",".join(CSV_COLUMNS)


def test_export_refuses_unknown_formats(cat: Catalog) -> None:
    with pytest.raises(ValueError, match="format"):
        export_catalog(cat, io.StringIO(), format="xml")


def test_iter_analyses_yields_every_file_once(filled: Catalog) -> None:
    got = list(iter_analyses(filled))
    assert [a.path for a in got] == ["/p/a-copy.jpg", "/p/b.jpg", "/p/c.png", "/p/d.jpg"]
    assert [a.status for a in got] == ["ok", "ok", "error", "ok"]


# -- durability: kill -9 in the middle of a batch --------------------------------------------------
CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo_root!r})
    from tests.unit.catalog.test_store import full_analysis
    from pixsight.catalog.store import Catalog
    cat = Catalog({db!r})
    for i in range({n}):
        a = full_analysis(i)
        if not cat.has_results(a.sha256, a.models):
            cat.save(a, path=a.path, size=a.bytes, mtime_ns=i)
        print(i, flush=True)
    print("done", flush=True)
""")


def _run_child(db: Path, n: int, kill_after: int | None) -> int:
    """Run the saving loop in a child; SIGKILL it after ``kill_after`` reported saves. Returns saves seen."""
    repo_root = str(Path(__file__).resolve().parents[3])
    script = CHILD.format(repo_root=repo_root, db=str(db), n=n)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = 0
    try:
        deadline = time.monotonic() + 60
        for line in proc.stdout:  # type: ignore[union-attr]
            if line.strip() == "done":
                break
            seen += 1
            if kill_after is not None and seen >= kill_after:
                proc.send_signal(signal.SIGKILL)
                break
            assert time.monotonic() < deadline, "child too slow"
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if kill_after is None:
        assert rc == 0, proc.stderr.read()  # type: ignore[union-attr]
    else:
        assert rc == -signal.SIGKILL
    return seen


def _check_consistent(db: Path) -> set[str]:
    """Every image in the catalog is complete: one file row, one analysis, all four results."""
    with Catalog(db) as cat:
        assert cat.integrity_ok()
        images = {r[0] for r in cat._db.execute("SELECT sha256 FROM images")}
        files = list(cat.iter_files())
        assert len(files) == len({p for p, *_ in files}) == len(images)
        assert {s for _, s, *_ in files} == images
        assert rows(db, "analyses") == len(images)
        assert cat.count_results() == 4 * len(images)
        assert rows(db, "embeddings") == len(images)
        assert rows(db, "face_embeddings") == 2 * len(images)
        for s in images:
            a = cat.load_analysis(s)
            assert a is not None and set(a.results) == set(MODELS)
    return images


@pytest.mark.slow
def test_kill_9_mid_batch_then_resume_gives_every_image_exactly_once(tmp_path: Path) -> None:
    db = tmp_path / "crash.sqlite"
    n = 120
    seen = _run_child(db, n, kill_after=40)
    assert 40 <= seen < n
    saved = _check_consistent(db)
    expected = {sha(i) for i in range(n)}
    # everything the child reported is there; at most the one in flight after it is extra
    assert {sha(i) for i in range(seen)} <= saved <= expected
    assert len(saved) <= seen + 1
    # a re-run completes the set without duplicates
    assert _run_child(db, n, kill_after=None) == n
    assert _check_consistent(db) == expected
    with Catalog(db) as cat:
        for i in (0, seen - 1, n - 1):
            a = full_analysis(i)
            assert cat.load_analysis(a.sha256).to_dict(with_vectors=True) == a.to_dict(with_vectors=True)
