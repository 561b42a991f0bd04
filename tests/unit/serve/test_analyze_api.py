"""POST /v1/analyze and /v1/analyze/batch with a real Analyzer (classify, embed)."""

from __future__ import annotations

import hashlib
import io
import sqlite3

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from skimage import data

from pixsight.core.config import AnalyzeConfig
from pixsight.core.errors import PixsightError
from pixsight.core.image import ImageLimits
from pixsight.pipeline.analyzer import Analyzer
from tests.unit.serve.kit import auth, make_app


def _encode(pixels: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


@pytest.fixture(scope="module")
def analyzer():
    with Analyzer(AnalyzeConfig(tasks=("classify", "embed"))) as a:
        yield a


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, bytes]:
    return {
        "cat.jpg": _encode(data.chelsea(), "JPEG"),
        "coffee.png": _encode(data.coffee(), "PNG"),
        "astronaut.jpg": _encode(data.astronaut()[::2, ::2].copy(), "JPEG"),
        "camera.png": _encode(data.camera(), "PNG"),
    }


@pytest.fixture()
def served(tmp_path, analyzer):
    app, keys = make_app(tmp_path, analyzer=analyzer)
    with TestClient(app) as client:
        yield app, client, keys


def test_analyze_matches_the_cli_line(served, images, tmp_path, analyzer):
    app, client, keys = served
    r = client.post("/v1/analyze", files={"file": ("cat.jpg", images["cat.jpg"], "image/jpeg")},
                    headers=auth(keys["viewer"]))
    assert r.status_code == 200, r.text
    got = r.json()
    path = tmp_path / "cat.jpg"
    path.write_bytes(images["cat.jpg"])
    lines: list[dict] = []
    analyzer.run([str(path)], on_result=lambda a, _img: lines.append(a.to_dict()))
    want = lines[0]
    assert got["path"] == "cat.jpg" and got["status"] == "ok"
    assert got["sha256"] == want["sha256"]
    assert set(got) == set(want)
    assert got["classify"]["labels"] == want["classify"]["labels"]
    assert got["embed"]["dim"] == want["embed"]["dim"]
    for key in ("width", "height", "format", "bytes", "needs_review", "review_reasons", "models"):
        assert got[key] == want[key], key
    assert r.headers["cache-control"] == "no-store"


def test_upload_is_stored_in_the_catalog(served, images):
    app, client, keys = served
    r = client.post("/v1/analyze", files={"file": ("coffee.png", images["coffee.png"])}, headers=auth(keys["admin"]))
    sha = r.json()["sha256"]
    settings = app.state.px.settings
    kept = settings.uploads_dir / sha[:2] / sha / "coffee.png"  # under the name it was sent as
    assert kept.read_bytes() == images["coffee.png"]
    with sqlite3.connect(settings.db) as con:
        files = con.execute("SELECT path, size, status FROM files WHERE sha256=?", (sha,)).fetchall()
        tasks = {t for (t,) in con.execute("SELECT task FROM results WHERE sha256=?", (sha,))}
        embedded = con.execute("SELECT COUNT(*) FROM embeddings WHERE sha256=?", (sha,)).fetchone()[0]
    assert files == [(str(kept.resolve()), len(images["coffee.png"]), "ok")]
    assert tasks == {"classify", "embed"} and embedded == 1


def test_uploads_and_catalog_are_private_whatever_the_umask(tmp_path, analyzer, images):
    """SECURITY.md item 24: originals (with their EXIF) are 0600 in folders 0700 under umask 022."""
    import os
    import stat

    def mode(p):
        return stat.S_IMODE(p.stat().st_mode)

    old = os.umask(0o022)
    try:
        app, keys = make_app(tmp_path / "srv", analyzer=analyzer)
        with TestClient(app) as client:
            for name in ("coffee.png", "again.png"):  # the second name is a hard link to the first file
                r = client.post("/v1/analyze", files={"file": (name, images["coffee.png"])},
                                headers=auth(keys["viewer"]))
                assert r.status_code == 200, r.text
            sha = r.json()["sha256"]
            settings = app.state.px.settings
            root = settings.uploads_dir
            kept = [root / sha[:2] / sha / n for n in ("coffee.png", "again.png")]
            assert all(p.read_bytes() == images["coffee.png"] for p in kept)
            assert [mode(p) for p in kept] == [0o600, 0o600]
            assert [mode(p) for p in (root, root / sha[:2], root / sha[:2] / sha, tmp_path / "srv")] == [0o700] * 4
            assert mode(settings.db) == 0o600
            side = [p for p in (settings.db.with_name(settings.db.name + "-wal"),
                                settings.db.with_name(settings.db.name + "-shm")) if p.exists()]
            assert all(mode(p) == 0o600 for p in side), side
            assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]
    finally:
        os.umask(old)


def test_batch_keeps_input_order(served, images):
    app, client, keys = served
    names = ["camera.png", "cat.jpg", "astronaut.jpg", "coffee.png"]
    files = [("file", (n, images[n])) for n in names]
    r = client.post("/v1/analyze/batch", files=files, headers=auth(keys["viewer"]))
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["path"] for x in results] == names
    assert [x["sha256"] for x in results] == [hashlib.sha256(images[n]).hexdigest() for n in names]


def test_batch_limits(tmp_path, analyzer, images):
    app, keys = make_app(tmp_path, analyzer=analyzer, max_batch_files=2)
    with TestClient(app) as client:
        files = [("file", (f"{i}.png", images["camera.png"])) for i in range(3)]
        r = client.post("/v1/analyze/batch", files=files, headers=auth(keys["viewer"]))
        assert r.status_code == 400 and "files" in r.json()["error"]["message"].lower()
        r = client.post("/v1/analyze/batch", data={"tasks": "classify"}, headers=auth(keys["viewer"]))
        assert r.status_code in (415, 422)


def test_bad_images_are_error_results(served, analyzer):
    app, client, keys = served
    truncated = _encode(data.chelsea(), "JPEG")[:300]
    for name, payload in (("broken.jpg", truncated), ("empty.png", b""), ("noise.bin", b"\x00\x01not an image")):
        r = client.post("/v1/analyze", files={"file": (name, payload)}, headers=auth(keys["viewer"]))
        assert r.status_code == 200, (name, r.text)
        got = r.json()
        want = analyzer.analyze_bytes(payload, name=name).to_dict()
        assert got["status"] == "error" and got == want, name


def test_svg_and_unsupported_are_415(served):
    app, client, keys = served
    svg = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    r = client.post("/v1/analyze", files={"file": ("x.svg", svg, "image/svg+xml")}, headers=auth(keys["viewer"]))
    assert r.status_code == 415 and r.json()["error"]["type"] == "UnsupportedFormatError"
    assert "SVG" in r.json()["error"]["message"]
    r = client.post("/v1/analyze", content=b"raw", headers={**auth(keys["viewer"]), "content-type": "image/png"})
    assert r.status_code == 415


def test_too_many_pixels_is_413(tmp_path, images):
    with Analyzer(AnalyzeConfig(tasks=("classify",), limits=ImageLimits(max_pixels=10_000))) as small:
        app, keys = make_app(tmp_path, analyzer=small)
        with TestClient(app) as client:
            r = client.post("/v1/analyze", files={"file": ("cat.jpg", images["cat.jpg"])}, headers=auth(keys["viewer"]))
            assert r.status_code == 413 and r.json()["error"]["type"] == "ImageTooLargeError"


def test_tasks_subset(served, images):
    app, client, keys = served
    r = client.post("/v1/analyze", files={"file": ("cat.jpg", images["cat.jpg"])}, data={"tasks": "classify"},
                    headers=auth(keys["viewer"]))
    got = r.json()
    assert "classify" in got and "embed" not in got and set(got["models"]) == {"classify"}
    r = client.post("/v1/analyze?tasks=ocr", files={"file": ("cat.jpg", images["cat.jpg"])},
                    headers=auth(keys["viewer"]))
    assert r.status_code == 400 and "ocr" in r.json()["error"]["message"]


def test_input_validation(served, images):
    app, client, keys = served
    h = auth(keys["viewer"])
    assert client.post("/v1/analyze", data={"x": "1"}, headers=h).status_code == 422
    both = client.post("/v1/analyze", files={"file": ("a.png", images["camera.png"])},
                       data={"url": "https://example.org/a.png"}, headers=h)
    assert both.status_code == 422
    r = client.post("/v1/analyze", data={"url": "http://169.254.169.254/latest/meta-data"}, headers=h)
    assert r.status_code == 403 and r.json()["error"]["type"] == "FetchNotAllowed"
    assert client.post("/v1/analyze", files={"file": ("a.png", images["camera.png"])}).status_code == 401


def test_no_models_is_503(tmp_path, images):
    app, keys = make_app(tmp_path)
    with TestClient(app) as client:
        r = client.post("/v1/analyze", files={"file": ("a.png", images["camera.png"])}, headers=auth(keys["viewer"]))
        assert r.status_code == 503 and r.headers["retry-after"] and r.json()["error"]["type"] == "Unavailable"


class _StubBatcher:
    """Stands in for the batcher to force its refusals."""

    def __init__(self, error: PixsightError, *, early: bool = False) -> None:
        self.error = error
        self.early = early  # refuse in reject_if_full (before the body is read), not in submit
        self.depth = 0
        self.submitted = 0

    def reject_if_full(self) -> None:
        if self.early:
            raise self.error

    async def submit(self, *args, **kwargs):
        self.submitted += 1
        raise self.error


def test_queue_full_is_429_overloaded_and_draining_is_503(served, images):
    from pixsight.serve.batcher import DrainingError, QueueFullError

    app, client, keys = served
    px = app.state.px
    real = px.batcher
    try:
        px.batcher = _StubBatcher(QueueFullError("queue full"))
        r = client.post("/v1/analyze", files={"file": ("a.png", images["camera.png"])}, headers=auth(keys["viewer"]))
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert r.json()["error"]["type"] == "Overloaded"
        px.batcher = stub = _StubBatcher(QueueFullError("queue full"), early=True)  # shed before decoding
        for route in ("/v1/analyze", "/v1/analyze/batch"):
            r = client.post(route, files={"file": ("a.png", images["camera.png"])}, headers=auth(keys["viewer"]))
            assert r.status_code == 429 and r.headers["retry-after"] == "1", route
            assert r.json()["error"]["type"] == "Overloaded"
        assert stub.submitted == 0
        px.batcher = _StubBatcher(DrainingError("draining"))
        r = client.post("/v1/analyze", files={"file": ("a.png", images["camera.png"])}, headers=auth(keys["viewer"]))
        assert r.status_code == 503 and r.headers["retry-after"]
        px.batcher = real
        px.draining = True
        r = client.post("/v1/analyze", files={"file": ("a.png", images["camera.png"])}, headers=auth(keys["viewer"]))
        assert r.status_code == 503 and "shutting down" in r.json()["error"]["message"]
    finally:
        px.batcher, px.draining = real, False


def test_similar_to_an_upload_finds_its_near_copy_and_keeps_the_query_out(served, images):
    """POST /v1/similar embeds the upload with the server's model, answers the nearest
    catalogued images (a near copy first) and never stores the query image."""
    app, client, keys = served
    for name in ("cat.jpg", "coffee.png", "camera.png"):
        assert client.post("/v1/analyze", files={"file": (name, images[name])},
                           headers=auth(keys["viewer"])).status_code == 200
    near_cat = _encode(np.ascontiguousarray(data.chelsea()[10:-10, 15:-5, :]), "JPEG")  # a crop of the cat
    r = client.post("/v1/similar?k=2", files={"file": ("query.jpg", near_cat)}, headers=auth(keys["viewer"]))
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert len(items) == 2 and items[0]["path"].endswith("cat.jpg")
    assert items[0]["score"] >= items[1]["score"]
    with sqlite3.connect(app.state.px.settings.db) as con:
        assert con.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 3  # the query was not kept
    refused = client.post("/v1/similar", files={"file": ("x.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>")},
                          headers=auth(keys["viewer"]))
    assert refused.status_code == 415 and refused.json()["error"]["type"] == "UnsupportedFormatError"
    assert "x.svg" in refused.json()["error"]["message"]
    assert client.post("/v1/similar?k=0", files={"file": ("q.jpg", near_cat)},
                       headers=auth(keys["viewer"])).status_code == 422
    assert client.post("/v1/similar", files={"file": ("q.jpg", near_cat)}).status_code == 401
