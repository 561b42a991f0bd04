"""``pixsight search`` as a user runs it: a real subprocess over a real catalog."""

from __future__ import annotations

import numpy as np
import pytest

from pixsight.catalog.store import Catalog
from tests.e2e.conftest import jsonl, run_cli, save_jpeg
from tests.unit.catalog.test_search import _analysis
from tests.unit.catalog.test_search_person import make_catalog


@pytest.fixture()
def db(tmp_path):
    path = tmp_path / "c.sqlite"
    with Catalog(path) as cat:
        cat.save(_analysis(str(tmp_path / "scans" / "invoice_march.png"), text="ACME invoice 42", labels=("document",),
                           review=True))
        cat.save(_analysis(str(tmp_path / "photos" / "my_cat_photo.jpg"), labels=("tabby",), detected=("cat",)))
        cat.save(_analysis(str(tmp_path / "photos" / "[bold]odd.jpg"), labels=("tabby",), text="<script>x</script>"))
    return path


def test_json_lines(db, tmp_path):
    res = run_cli("search", "acme", "invoice", "--db", str(db), "--json")
    assert res.returncode == 0, res.stderr
    hits = jsonl(res.stdout)
    assert len(hits) == 1 and hits[0]["paths"][0].endswith("invoice_march.png")
    assert set(hits[0]) == {"sha256", "paths", "score", "snippet", "labels", "needs_review"}
    res = run_cli("search", "--label", "tabby", "--folder", str(tmp_path / "photos"), "--has-text", "--db", str(db),
                  "--json")
    assert [h["paths"][0].rsplit("/", 1)[-1] for h in jsonl(res.stdout)] == ["[bold]odd.jpg"]
    res = run_cli("search", "--db", str(db), "--json", "--limit", "2")
    assert len(jsonl(res.stdout)) == 2


def test_table_and_hostile_text(db):
    res = run_cli("search", "cat", "--db", str(db))
    assert res.returncode == 0, res.stderr
    assert "my_cat_photo.jpg" in res.stdout and "tabby" in res.stdout
    res = run_cli("search", "--label", "tabby", "--db", str(db))
    assert "[bold]odd.jpg" in res.stdout                              # file names are not rich markup
    for query in ('"', "NEAR(", "-*", "a AND OR"):
        res = run_cli("search", "--db", str(db), "--", query)        # `--`: text starting with "-" is not an option
        assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr


def test_user_mistakes_exit_2(db, tmp_path):
    for args in (["x", "--db", str(tmp_path / "missing.sqlite")], ["--since", "yesterday", "--db", str(db)],
                 ["--limit", "0", "--db", str(db)]):
        res = run_cli("search", *args)
        assert res.returncode == 2 and "Traceback" not in res.stderr and "error" in res.stderr, (args, res.stderr)


def test_person_and_paging(tmp_path):
    db = str(make_catalog(tmp_path / "people.sqlite"))
    res = run_cli("search", "--person", "ann", "--db", db, "--json")
    assert res.returncode == 0, res.stderr
    assert [h["paths"][0] for h in jsonl(res.stdout)] == ["/photos/img8.jpg", "/photos/img5.jpg", "/photos/img2.jpg"]
    res = run_cli("search", "--person", "ann", "--needs-review", "--db", db, "--json")
    assert [h["paths"][0] for h in jsonl(res.stdout)] == ["/photos/img8.jpg"]
    res = run_cli("search", "--label", "cat", "--limit", "2", "--offset", "2", "--db", db)
    assert res.returncode == 0, res.stderr
    assert "img5.jpg" in res.stdout and "img3.jpg" in res.stdout and "img9.jpg" not in res.stdout
    assert "hits 3-4 of 5" in res.stderr
    for args in (["--person", "carl"], ["--offset", "-1"], ["--person", "ann", "--similar", "img1.jpg"]):
        res = run_cli("search", *args, "--db", db)
        assert res.returncode == 2 and "Traceback" not in res.stderr and "error" in res.stderr, (args, res.stderr)
    assert "no person 'carl'" in run_cli("search", "--person", "carl", "--db", db).stderr


def test_similar_without_embeddings_is_a_clear_error(db, tmp_path):
    res = run_cli("search", "--similar", str(tmp_path / "photos" / "my_cat_photo.jpg"), "--db", str(db))
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "no image embeddings" in res.stderr and "'embed' task" in res.stderr


def test_similar_catalogued_and_new_image(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        save_jpeg(tmp_path / "imgs" / f"img{i}.jpg", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    db = tmp_path / "c.sqlite"
    res = run_cli("analyze", str(tmp_path / "imgs"), "--tasks", "embed", "--db", str(db))
    assert res.returncode == 0, res.stderr
    res = run_cli("search", "--similar", str(tmp_path / "imgs" / "img1.jpg"), "--k", "2", "--db", str(db), "--json")
    assert res.returncode == 0, res.stderr
    hits = jsonl(res.stdout)                                          # the query image itself is left out
    assert sorted(h["paths"][0].rsplit("/", 1)[-1] for h in hits) == ["img0.jpg", "img2.jpg"]
    assert all(-1.0 <= h["score"] <= 1.0001 for h in hits)
    res = run_cli("search", "--similar", hits[0]["sha256"][:12], "--k", "1", "--db", str(db), "--json")
    assert res.returncode == 0 and len(jsonl(res.stdout)) == 1, res.stderr
    new = save_jpeg(tmp_path / "outside" / "new.jpg", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    res = run_cli("search", "--similar", str(new), "--k", "2", "--db", str(db), "--json")
    assert res.returncode == 0 and len(jsonl(res.stdout)) == 2, res.stderr
    # without faiss (shadowed here by a package that cannot be imported) it says what to install
    shadow = tmp_path / "no_faiss" / "faiss"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('faiss is not installed')\n")
    res = run_cli("search", "--similar", str(new), "--k", "2", "--db", str(db), "--json",
                  env={"PYTHONPATH": str(tmp_path / "no_faiss")})
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "needs faiss" in res.stderr and "pixsight[search]" in res.stderr
