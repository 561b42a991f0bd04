"""Review queue routes: claims per key, roles, decisions, 204, history, metrics and the zip export."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from fastapi.testclient import TestClient

from pixsight.review import queue
from tests.unit.review import build_catalog
from tests.unit.serve.kit import auth, copy_catalog, make_app, session_login


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_catalog(tmp_path_factory.mktemp("api-review"))


@pytest.fixture()
def client(built, tmp_path):
    db = copy_catalog(built.db, tmp_path / "c.sqlite")
    app, keys = make_app(tmp_path, db=db)
    info, keys["reviewer2"] = app.state.px.keys.create("reviewer", "second")
    with TestClient(app) as c:
        c.keys = keys
        c.db = db
        yield c


def call(c, method, url, role, **kw):
    return c.request(method, url, headers=auth(c.keys[role]), **kw)


def test_viewer_looks_reviewers_claim(client, built):
    first = built.sha(built.flagged[0])
    r = call(client, "GET", "/v1/review/next", "viewer")
    assert r.status_code == 200 and r.json()["sha256"] == first and r.json()["claimed_until"] == 0
    assert queue.stats(client.db)["claimed"] == 0
    a = call(client, "GET", "/v1/review/next", "reviewer").json()
    b = call(client, "GET", "/v1/review/next", "reviewer2").json()
    assert a["sha256"] == first and b["sha256"] == built.sha(built.flagged[1])
    assert a["pending"] == 7 and a["reasons"] and a["analysis"]["classify"]["labels"]
    assert call(client, "GET", "/v1/review/next", "reviewer").json()["sha256"] == first   # own claim again
    skipped = call(client, "GET", "/v1/review/next", "reviewer", params={"skip": [first]}).json()
    assert skipped["sha256"] == built.sha(built.flagged[2])
    assert call(client, "GET", "/v1/review/stats", "viewer").json()["claimed"] == 2


def test_roles_and_auth(client, built):
    sha = built.sha(built.flagged[0])
    assert client.get("/v1/review/next").status_code == 401
    assert client.post(f"/v1/review/{sha}", json={"decision": "accept"}).status_code == 401
    r = call(client, "POST", f"/v1/review/{sha}", "viewer", json={"decision": "accept"})
    assert r.status_code == 403 and r.json()["error"]["type"]
    assert call(client, "POST", "/v1/review/export", "viewer", json={"format": "coco"}).status_code == 403
    assert queue.history(client.db, sha) == []


def test_submit_records_key_and_counts_metric(client, built):
    sha = built.sha(built.flagged[0])
    call(client, "GET", "/v1/review/next", "reviewer")
    r = call(client, "POST", f"/v1/review/{sha}", "reviewer", json={"decision": "relabel", "labels": ["zebra"],
                                                                     "note": "stripes"})
    assert r.status_code == 200, r.text
    review = r.json()
    key_id = client.keys["reviewer"].split("_")[1]
    assert review["reviewer"] == f"test-reviewer [{key_id}]"
    assert (review["decision"], review["labels"], review["note"]) == ("relabel", ["zebra"], "stripes")
    assert queue.stats(client.db)["claimed"] == 0                        # the decision released the claim
    hist = call(client, "GET", f"/v1/review/history/{sha}", "viewer").json()
    assert hist["sha256"] == sha and [h["decision"] for h in hist["reviews"]] == ["relabel"]
    metrics = call(client, "GET", "/metrics", "viewer")
    assert metrics.status_code == 200
    line = next(ln for ln in metrics.text.splitlines()
                if ln.startswith("pixsight_review_decisions_total") and 'decision="relabel"' in ln)
    assert line.endswith(" 1.0")


@pytest.mark.parametrize("body, status, kind", [
    ({"decision": "relabel"}, 400, "ReviewError"),
    ({"decision": "fix", "boxes": [{"box": [0, 0, 500, 10], "label": "x"}]}, 400, "ReviewError"),
    ({"decision": "fix", "boxes": [{"box": [5, 0, 1, 10], "label": "x"}]}, 400, "ReviewError"),
    ({"decision": "accept", "labels": ["x"]}, 400, "ReviewError"),
    ({"decision": "fix", "boxes": [{"box": [0, 0, 1], "label": "x"}]}, 422, "ValidationError"),
    ({"decision": "maybe"}, 422, "ValidationError"),
    ({}, 422, "ValidationError"),
])
def test_invalid_decisions(client, built, body, status, kind):
    sha = built.sha(built.flagged[0])
    r = call(client, "POST", f"/v1/review/{sha}", "reviewer", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["type"] == kind and "Traceback" not in r.text


@pytest.mark.parametrize("sha", ["0" * 64, "ABC", "..%2F..%2Fetc%2Fpasswd", "0" * 63 + "g"])
def test_unknown_or_bad_sha_is_404(client, sha):
    assert call(client, "POST", f"/v1/review/{sha}", "reviewer", json={"decision": "accept"}).status_code == 404
    assert call(client, "GET", f"/v1/review/history/{sha}", "viewer").status_code == 404


def test_empty_queue_is_204(client, built):
    for _ in built.flagged:
        item = call(client, "GET", "/v1/review/next", "reviewer").json()
        assert call(client, "POST", f"/v1/review/{item['sha256']}", "reviewer",
                    json={"decision": "reject"}).status_code == 200
    r = call(client, "GET", "/v1/review/next", "reviewer")
    assert r.status_code == 204 and r.content == b""
    assert call(client, "GET", "/v1/review/stats", "viewer").json()["reject"] == 7


def test_session_submit_needs_csrf(client, built):
    sha = built.sha(built.flagged[0])
    csrf = session_login(client, client.keys["reviewer"])
    assert client.post(f"/v1/review/{sha}", json={"decision": "accept"}).status_code in (401, 403)
    r = client.post(f"/v1/review/{sha}", json={"decision": "accept"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json()["decision"] == "accept"


def test_export_zip(client, built):
    r = call(client, "POST", "/v1/review/export", "reviewer", json={"format": "coco"})
    assert r.status_code == 400 and "nothing to export" in r.json()["error"]["message"]
    call(client, "POST", f"/v1/review/{built.sha(built.exif)}", "reviewer",
         json={"decision": "fix", "boxes": [{"box": [1, 2, 30, 70], "label": "stripe"}]})
    call(client, "POST", f"/v1/review/{built.sha(built.flagged[0])}", "reviewer",
         json={"decision": "relabel", "labels": ["zebra"]})
    r = call(client, "POST", "/v1/review/export", "reviewer", json={"format": "coco"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert r.headers["x-pixsight-images"] == "2"
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    doc = json.loads(zf.read("annotations.json"))
    assert {c["name"] for c in doc["categories"]} == {"stripe", "zebra"}
    assert len(doc["images"]) == 2 and len(doc["annotations"]) == 1
    jpg = next(n for n in zf.namelist() if n.endswith(".jpg"))
    assert b"SecretCam" not in zf.read(jpg)                              # metadata stripped
    r = call(client, "POST", "/v1/review/export", "admin", json={"format": "folders"})
    names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    assert r.status_code == 200 and len(names) == 1 and names[0].startswith("zebra/")
    assert call(client, "POST", "/v1/review/export", "reviewer", json={"format": "yolo"}).status_code == 422
