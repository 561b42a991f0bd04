"""``pixsight faces`` as a user runs it: real subprocesses, the real dlib stage, skimage's astronaut."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("dlib")
from skimage import data  # noqa: E402

from tests.e2e.conftest import jsonl, run_cli, save_jpeg  # noqa: E402



def test_enroll_who_find_list_remove(tmp_path):
    db = str(tmp_path / "c.sqlite")
    astro = save_jpeg(tmp_path / "enroll" / "astronaut.jpg", data.astronaut())
    coffee = save_jpeg(tmp_path / "photos" / "coffee.jpg", data.coffee())
    flip = save_jpeg(tmp_path / "photos" / "flip.jpg", np.ascontiguousarray(data.astronaut()[:, ::-1]))

    res = run_cli("faces", "enroll", "eileen", str(astro), str(coffee), "--db", db)
    assert res.returncode == 1, res.stderr  # one image had no face: partial success
    assert "enrolled as eileen" in res.stdout and "no face found" in res.stderr

    res = run_cli("faces", "list", "--db", db, "--json")
    assert jsonl(res.stdout) == [{"name": "eileen", "images": 1}]

    res = run_cli("faces", "who", str(flip), str(coffee), "--db", db, "--json")
    assert res.returncode == 0, res.stderr
    faces = jsonl(res.stdout)  # the JPEG'd astronaut also yields a spurious second "face" (the suit patch)
    [face] = [f for f in faces if f["name"] == "eileen"]
    assert face["distance"] < 0.6 and face["path"] == str(flip)
    assert all(f["name"] is None and f["distance"] >= 0.6 for f in faces if f is not face)

    res = run_cli("analyze", str(tmp_path / "photos"), "--tasks", "faces", "--db", db, "--jsonl", "-")
    assert res.returncode == 0, res.stderr
    lines = {line["path"].rsplit("/", 1)[-1]: line for line in jsonl(res.stdout)}
    named = [f for f in lines["flip.jpg"]["faces"]["faces"] if f["person"] == "eileen"]
    assert len(named) == 1 and named[0]["person_distance"] < 0.6     # faces are named as they are analysed
    assert lines["coffee.jpg"]["faces"]["faces"] == []
    assert "people: eileen (1 image)" in res.stderr                  # --jsonl -: the summary goes to stderr
    res = run_cli("show", str(flip), "--db", db)
    assert res.returncode == 0, res.stderr
    shown = json.loads(res.stdout)["faces"]["faces"]
    assert [f["person"] for f in shown if f["person"] != "unknown"] == ["eileen"]
    res = run_cli("search", "--person", "eileen", "--db", db, "--json")
    assert res.returncode == 0 and [h["paths"][0] for h in jsonl(res.stdout)] == [str(flip)], res.stderr
    res = run_cli("faces", "find", "eileen", "--db", db, "--json")
    assert res.returncode == 0, res.stderr
    hits = jsonl(res.stdout)
    assert len(hits) == 1 and hits[0]["paths"][0].endswith("flip.jpg")

    res = run_cli("faces", "remove", "eileen", "--db", db)
    assert res.returncode == 0 and "removed eileen" in res.stdout


def test_user_mistakes_exit_2(tmp_path):
    db = str(tmp_path / "c.sqlite")
    coffee = save_jpeg(tmp_path / "coffee.jpg", data.coffee())
    for args in (("enroll", "x", str(tmp_path / "missing.jpg")), ("enroll", "x", str(coffee)),
                 ("remove", "nobody"), ("find", "nobody"), ("who", str(coffee)),
                 ("who", str(coffee), "--threshold", "-1")):
        res = run_cli("faces", *args, "--db", db)
        assert res.returncode == 2, (args, res.stderr)
        assert "Traceback" not in res.stderr and "error" in res.stderr, (args, res.stderr)
