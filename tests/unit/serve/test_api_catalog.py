"""Catalog read API over a real catalog: auth, listing + filters + paging, detail, file/thumb,
similar, models, people, stats, and hostile sha256 parameters."""

from __future__ import annotations

import hashlib
import io
import sqlite3

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from pixsight.catalog.store import Catalog
from pixsight.core.types import Analysis, Faces
from pixsight.review import queue
from tests.unit.review import build_catalog, png_bytes
from tests.unit.serve.kit import auth, copy_catalog, make_app


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    b = build_catalog(tmp_path_factory.mktemp("api-catalog"))
    # one image with a face whose embedding is enrolled as "eileen" (no faces model needed)
    face = b.db.parent / "img" / "face.png"
    face.write_bytes(png_bytes((40, 40), seed=5))
    raw = face.read_bytes()
    vec = np.linspace(0, 1, 128, dtype=np.float32)
    faces = Faces(boxes=[[2, 2, 30, 30]], scores=[0.95], embeddings=vec[None, :])
    with Catalog(b.db) as cat:
        cat.save(Analysis(path=str(face), sha256=hashlib.sha256(raw).hexdigest(), width=40, height=40, format="PNG",
                          bytes=len(raw), results={"faces": faces}, models={"faces": "dlibface@1"}),
                 path=str(face), size=len(raw))
    from pixsight.faces import gallery

    gallery.people(b.db)  # creates the gallery tables
    con = sqlite3.connect(b.db)
    con.execute("INSERT INTO people VALUES ('eileen', 0)")
    con.execute("INSERT INTO gallery VALUES ('eileen', ?, 0, 'dlibface@1', ?)",
                (hashlib.sha256(raw).hexdigest(), vec.tobytes()))
    con.commit()
    con.close()
    b.face = face
    return b


@pytest.fixture()
def client(built, tmp_path):
    db = copy_catalog(built.db, tmp_path / "c.sqlite")
    app, keys = make_app(tmp_path, db=db)
    with TestClient(app) as c:
        c.keys = keys
        c.db = db
        yield c


def get(c, url, role="viewer", headers=None, **kw):
    return c.get(url, headers={**auth(c.keys[role]), **(headers or {})}, **kw)


def test_auth_is_required(client, built):
    sha = built.sha(built.flagged[0])
    for url in ("/v1/images", f"/v1/images/{sha}", f"/v1/images/{sha}/file", f"/v1/images/{sha}/thumb",
                f"/v1/images/{sha}/similar", "/v1/search?q=x", "/v1/models", "/v1/people", "/v1/stats"):
        r = client.get(url)
        assert r.status_code == 401, url
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["error"]["type"]
    r = client.get("/v1/images", headers=auth("pxs_deadbeef_" + "x" * 43))
    assert r.status_code == 401


def test_list_everything_newest_first_with_paging(client, built):
    r = get(client, "/v1/images")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    page = r.json()
    assert page["total"] == 10 and page["offset"] == 0 and page["limit"] == 48
    updated = [c["updated"] for c in page["items"]]
    assert updated == sorted(updated, reverse=True)
    card = next(c for c in page["items"] if c["sha256"] == built.sha(built.clean[0]))
    assert card["path"] == str(built.clean[0]) and (card["width"], card["height"]) == (451, 300)
    assert card["top_label"] and 0 < card["top_score"] <= 1 and card["needs_review"] is False
    assert set(card) == {"sha256", "path", "width", "height", "top_label", "top_score", "needs_review", "has_text",
                         "has_faces", "people", "reviewed", "updated"}
    seen = []
    for offset in (0, 4, 8):
        part = get(client, f"/v1/images?limit=4&offset={offset}").json()
        assert part["total"] == 10 and part["offset"] == offset
        seen += [c["sha256"] for c in part["items"]]
    assert seen == [c["sha256"] for c in page["items"]]
    assert get(client, "/v1/images?limit=0").status_code == 422
    assert get(client, "/v1/images?limit=0").json()["error"]["type"] == "ValidationError"


def test_filters(client, built):
    flagged = get(client, "/v1/images?needs_review=true").json()
    assert flagged["total"] == 7 and all(c["needs_review"] for c in flagged["items"])
    assert get(client, "/v1/images?needs_review=false").json()["total"] == 3
    folder = built.exif.parent
    sub = get(client, "/v1/images", params={"folder": str(folder)}).json()
    assert [c["sha256"] for c in sub["items"]] == [built.sha(built.exif)]
    label = sub["items"][0]["top_label"]
    by_label = get(client, "/v1/images", params={"label": label}).json()
    assert built.sha(built.exif) in [c["sha256"] for c in by_label["items"]]
    for card in by_label["items"]:  # the label is one of each image's top-3 classify labels
        top3 = get(client, f"/v1/images/{card['sha256']}").json()["analysis"]["classify"]["labels"][:3]
        assert label in [x["label"] for x in top3]
    assert by_label["total"] == len(by_label["items"]) < 10
    by_name = get(client, "/v1/search", params={"q": "rotated"}).json()
    assert [c["sha256"] for c in by_name["items"]] == [built.sha(built.exif)]
    assert get(client, "/v1/images", params={"since": "2000-01-01"}).json()["total"] == 10
    assert get(client, "/v1/images", params={"until": "2000-01-01"}).json()["total"] == 0
    bad = get(client, "/v1/images", params={"since": "yesterday"})
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.json()["error"]["message"]
    faces = get(client, "/v1/images?has_faces=true").json()
    assert [c["sha256"] for c in faces["items"]] == [built.sha(built.face)]


def test_person_filter_and_people(client, built):
    page = get(client, "/v1/images?person=eileen").json()
    assert page["total"] == 1
    assert page["items"][0]["sha256"] == built.sha(built.face) and page["items"][0]["people"] == ["eileen"]
    assert get(client, "/v1/images?person=nobody").json() == {"items": [], "total": 0, "offset": 0, "limit": 48}
    assert get(client, "/v1/people").json() == {"people": [{"name": "eileen", "images": 1, "faces": 1}]}
    detail = get(client, f"/v1/images/{built.sha(built.face)}").json()
    assert detail["people"] == ["eileen"] and detail["analysis"]["faces"]["faces"][0]["person"] == "eileen"


def test_delete_person_needs_admin(client):
    assert client.delete("/v1/people/eileen", headers=auth(client.keys["reviewer"])).status_code == 403
    r = client.delete("/v1/people/eileen", headers=auth(client.keys["admin"]))
    assert r.status_code == 200 and r.json() == {"removed": "eileen", "images": 1}
    assert client.delete("/v1/people/eileen", headers=auth(client.keys["admin"])).status_code == 404
    assert get(client, "/v1/people").json() == {"people": []}


def test_enroll_without_faces_task_is_409(client):
    files = [("files", ("a.png", png_bytes(), "image/png"))]
    assert client.post("/v1/people/bob/enroll", files=files, headers=auth(client.keys["viewer"])).status_code == 403
    r = client.post("/v1/people/bob/enroll", files=files, headers=auth(client.keys["admin"]))
    assert r.status_code == 409 and "faces task" in r.json()["error"]["message"]


def test_detail(client, built):
    sha = built.sha(built.flagged[0])
    queue.submit(client.db, sha, "relabel", "ann", labels=["zebra"])
    r = get(client, f"/v1/images/{sha}")
    assert r.status_code == 200
    d = r.json()
    assert d["analysis"]["sha256"] == sha and d["analysis"]["classify"]["labels"]
    assert d["paths"] == [str(built.flagged[0])]
    assert [(x["decision"], x["reviewer"], x["labels"]) for x in d["reviews"]] == [("relabel", "ann", ["zebra"])]
    assert d["similar_url"] == f"/v1/images/{sha}/similar"
    assert get(client, "/v1/images").json()["items"][-1]["reviewed"] in (None, "relabel")
    cards = {c["sha256"]: c for c in get(client, "/v1/images").json()["items"]}
    assert cards[sha]["reviewed"] == "relabel"


@pytest.mark.parametrize("bad", ["0" * 64, "A" * 64, "abc", "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd",
                                 "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "0" * 63 + "/", "0" * 65, "..", "%00"])
def test_bad_or_unknown_sha_is_404(client, bad):
    for suffix in ("", "/file", "/thumb", "/similar"):
        r = get(client, f"/v1/images/{bad}{suffix}")
        assert "root:" not in r.text
        if bad == ".." and suffix == "/similar":
            # the client normalises /v1/images/../similar to /v1/similar, a POST-only route:
            # the request never reaches an image route at all
            assert r.status_code == 405, r.status_code
            continue
        assert r.status_code == 404, (bad, suffix, r.status_code)
        if r.headers.get("content-type", "").startswith("application/json"):
            assert r.json()["error"]["type"] == "NotFound"


def _decoded(r):
    assert r.status_code == 200, r.text
    img = Image.open(io.BytesIO(r.content))
    img.load()
    return img


def test_file_is_oriented_and_metadata_free(client, built):
    sha = built.sha(built.exif)
    assert b"SecretCam" in built.exif.read_bytes()
    r = get(client, f"/v1/images/{sha}/file")
    img = _decoded(r)
    assert r.headers["content-type"] == "image/jpeg" and img.format == "JPEG"
    assert img.size == (40, 80)                                   # EXIF orientation 6 applied
    assert not img.getexif() and b"SecretCam" not in r.content and "exif" not in img.info
    assert r.headers["cache-control"].startswith("private, max-age=")
    again = get(client, f"/v1/images/{sha}/file", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    png = _decoded(get(client, f"/v1/images/{built.sha(built.alpha)}/file"))
    assert png.format == "PNG" and png.size == (50, 50)


def test_thumb(client, built):
    sha = built.sha(built.clean[1])  # 600x400 coffee
    r = get(client, f"/v1/images/{sha}/thumb?size=64")
    img = _decoded(r)
    assert img.format == "JPEG" and max(img.size) == 64 and img.size[0] > img.size[1] and not img.getexif()
    assert max(_decoded(get(client, f"/v1/images/{sha}/thumb")).size) == 256
    assert get(client, f"/v1/images/{sha}/thumb?size=5000").status_code == 422
    assert get(client, f"/v1/images/{sha}/thumb?size=64").content == r.content   # cached, same bytes


def test_file_gone_or_changed_is_404(client, built, tmp_path):
    other = tmp_path / "moved.png"
    other.write_bytes(png_bytes(seed=3))  # different content at the recorded path
    con = sqlite3.connect(client.db)
    con.execute("UPDATE files SET path = ? WHERE sha256 = ?", (str(other), built.sha(built.flagged[1])))
    con.execute("UPDATE files SET path = ? WHERE sha256 = ?", (str(tmp_path / "gone.png"), built.sha(built.flagged[2])))
    con.commit()
    con.close()
    for sha in (built.sha(built.flagged[1]), built.sha(built.flagged[2])):
        r = get(client, f"/v1/images/{sha}/file")
        assert r.status_code == 404 and "gone or has changed" in r.json()["error"]["message"]


def test_similar(client, built):
    sha = built.sha(built.flagged[0])
    r = get(client, f"/v1/images/{sha}/similar?k=3")
    items = r.json()["items"]
    assert r.status_code == 200 and len(items) == 3 and sha not in [i["sha256"] for i in items]
    scores = [i["score"] for i in items]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
    # an image without an embedding: no items, with the reason
    no_vec = get(client, f"/v1/images/{built.sha(built.detected)}/similar").json()
    assert no_vec["items"] == [] and no_vec["note"]
    assert get(client, f"/v1/images/{sha}/similar?k=0").status_code == 422


def test_models_match_cli_rows(client):
    from pixsight.models.registry import describe, get_registry

    rows = get(client, "/v1/models").json()["models"]
    assert [r["key"] for r in rows] == [describe(s)["key"] for s in get_registry().list()]
    assert {"name", "task", "license", "available"} <= set(rows[0])


def test_stats(client, built):
    queue.submit(client.db, built.sha(built.flagged[0]), "accept", "ann")
    s = get(client, "/v1/stats").json()
    assert (s["images"], s["analyses"], s["needs_review"], s["reviewed"]) == (10, 10, 7, 1)
    assert sum(d["images"] for d in s["per_day"]) == 10
    assert sum(t["n"] for t in s["top_labels"]) == 8 and len(s["top_labels"]) <= 8     # 8 images were classified
    assert {t["label"] for t in s["top_labels"]} == {x["label"] for x in s["labels_per_day"]}
    assert s["review"]["accept"] == 1 and s["review"]["pending"] == 6
