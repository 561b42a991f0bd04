"""``pixsight review`` as a user runs it: real subprocesses over a real catalog."""

from __future__ import annotations

import json

import pytest

from pixsight.data.validate import validate_dataset
from tests.e2e.conftest import jsonl, run_cli
from tests.unit.review import build_catalog


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_catalog(tmp_path_factory.mktemp("cli-review"))


@pytest.mark.slow
def test_review_round_trip(built, tmp_path):
    db = str(built.db)
    res = run_cli("review", "stats", "--db", db, "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["pending"] == 7

    res = run_cli("review", "next", "--db", db, "--json", "--reviewer", "ann")
    assert res.returncode == 0, res.stderr
    item = json.loads(res.stdout)
    assert item["sha256"] == built.sha(built.flagged[0]) and item["reasons"]
    res = run_cli("review", "next", "--db", db, "--reviewer", "bob")             # ann holds the first one
    assert res.returncode == 0 and built.sha(built.flagged[1]) in res.stdout and "pending" in res.stdout

    res = run_cli("review", "submit", item["sha256"][:12], "--decision", "relabel", "--label", "zebra",
                  "--reviewer", "ann", "--db", db, "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["labels"] == ["zebra"]
    res = run_cli("review", "submit", str(built.exif), "--decision", "fix", "--box", "1,2,30,70:stripe",
                  "--db", db)                                                     # by path; default reviewer
    assert res.returncode == 0 and "fix recorded" in res.stdout, res.stderr
    res = run_cli("review", "history", str(built.exif), "--db", db, "--json")
    (decision,) = jsonl(res.stdout)
    assert decision["reviewer"].startswith("cli:") and decision["boxes"][0]["label"] == "stripe"

    res = run_cli("review", "export", str(tmp_path / "coco"), "--format", "coco", "--db", db)
    assert res.returncode == 0, res.stderr
    assert "wrote 2 images, 1 boxes" in res.stdout
    assert validate_dataset(tmp_path / "coco").ok
    res = run_cli("review", "export", str(tmp_path / "folders"), "--format", "folders", "--db", db, "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["classes"] == ["zebra"]
    assert (tmp_path / "folders" / "zebra").is_dir()


@pytest.mark.parametrize("args, message", [
    (["stats", "--db", "{missing}"], "no catalog"),
    (["submit", "0" * 64, "--decision", "accept", "--db", "{db}"], "not in the catalog"),
    (["submit", "{sha}", "--decision", "relabel", "--db", "{db}"], "at least one label"),
    (["submit", "{sha}", "--decision", "fix", "--box", "0,0,500,5:x", "--db", "{db}"], "outside"),
    (["submit", "{sha}", "--decision", "fix", "--box", "0,0,5", "--db", "{db}"], "x1,y1,x2,y2:label"),
    (["submit", "{sha}", "--decision", "maybe", "--db", "{db}"], "invalid choice"),
    (["export", "{tmp}/x", "--format", "yolo", "--db", "{db}"], "invalid choice"),
    (["export", "{dbdir}", "--format", "coco", "--db", "{db}"], "not empty"),
])
def test_user_mistakes_exit_2(built, tmp_path, args, message):
    fill = {"missing": str(tmp_path / "missing.sqlite"), "db": str(built.db), "tmp": str(tmp_path), "dbdir": str(built.db.parent),
            "sha": built.sha(built.flagged[3])}
    res = run_cli("review", *[a.format(**fill) for a in args])
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert message in res.stderr and "Traceback" not in res.stderr
