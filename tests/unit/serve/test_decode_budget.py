"""Issue 9 items 1 and 2: /v1/images/{sha}/file serves clean stored bytes as they are and
re-encodes the others once (cached); every decode holds one process-wide pixel budget
(files, thumbnails, analyze, batches), with 503 + Retry-After when it stays spent."""

from __future__ import annotations

import hashlib
import io
import stat
import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import pixsight.core.image as core_image
from pixsight.catalog.store import Catalog
from pixsight.core.config import AnalyzeConfig
from pixsight.core.errors import ImageTooLargeError
from pixsight.core.image import DecodeBusyError, PixelBudget, clean_as_stored, header_pixels
from pixsight.core.types import Analysis
from pixsight.serve import api_catalog
from pixsight.serve.storage import clean_copy_path
from tests.unit.serve.kit import auth, make_app


def _noise(w: int, h: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (max(1, h // 16), max(1, w // 16), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h)))


def _png(w: int, h: int, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_noise(w, h, seed)).save(buf, "PNG")
    return buf.getvalue()


def _exif_jpeg(w: int, h: int, seed: int = 0) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when shown
    exif[0x010F] = "SecretCam"
    buf = io.BytesIO()
    Image.fromarray(_noise(w, h, seed)).save(buf, "JPEG", quality=85, exif=exif.tobytes(), comment=b"secret note")
    return buf.getvalue()


def _catalogue(db, folder, name: str, raw: bytes) -> str:
    path = folder / name
    path.write_bytes(raw)
    sha = hashlib.sha256(raw).hexdigest()
    with Image.open(io.BytesIO(raw)) as img:
        w, h = img.size
        fmt = img.format
    with Catalog(db) as cat:
        cat.save(Analysis(path=str(path), sha256=sha, width=w, height=h, format=fmt, bytes=len(raw)),
                 path=str(path), size=len(raw))
    return sha


@pytest.fixture()
def served(tmp_path):
    def build(**overrides):
        app, keys = make_app(tmp_path, **overrides)
        client = TestClient(app)
        client.__enter__()
        opened.append(client)
        return app, client, keys

    opened: list[TestClient] = []
    yield build
    for client in opened:
        client.__exit__(None, None, None)


class _Spy:
    def __init__(self, monkeypatch, module, name: str) -> None:
        self.calls = 0
        real = getattr(module, name)

        def spy(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)


# -- the pure helpers ---------------------------------------------------------------------------
def test_pixel_budget_waits_then_refuses_and_never_exceeds():
    budget = PixelBudget(100)
    with pytest.raises(ImageTooLargeError):
        with budget.acquire(101, timeout=0):
            pass
    with budget.acquire(80):
        t0 = time.monotonic()
        with pytest.raises(DecodeBusyError):
            with budget.acquire(30, timeout=0.1):
                pass
        assert time.monotonic() - t0 >= 0.09
    assert budget.in_use == 0

    seen: list[int] = []

    def work() -> None:
        with budget.acquire(40, timeout=10):
            seen.append(budget.in_use)
            time.sleep(0.01)

    threads = [threading.Thread(target=work) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 12 and max(seen) <= 100 and budget.high_water <= 100 and budget.in_use == 0


def test_clean_as_stored_and_header_pixels():
    assert clean_as_stored(_png(30, 20)) == "image/png"
    assert clean_as_stored(_exif_jpeg(30, 20)) is None
    buf = io.BytesIO()
    Image.new("RGB", (30, 20)).save(buf, "JPEG")
    assert clean_as_stored(buf.getvalue()) == "image/jpeg"
    assert clean_as_stored(buf.getvalue() + b"trailing secret") is None
    assert header_pixels(_png(30, 20)) == 600


# -- /file ------------------------------------------------------------------------------------
def test_clean_upload_is_served_byte_for_byte_without_decoding(served, tmp_path, monkeypatch):
    app, client, keys = served()
    raw = _png(1200, 900, seed=1)
    sha = _catalogue(app.state.px.settings.db, tmp_path, "clean.png", raw)
    decodes = _Spy(monkeypatch, core_image, "load_image")
    encodes = _Spy(monkeypatch, api_catalog, "encode_clean")
    r = client.get(f"/v1/images/{sha}/file", headers=auth(keys["viewer"]))
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content == raw
    assert decodes.calls == 0 and encodes.calls == 0
    assert app.state.px.budget.high_water == 0  # nothing decoded, nothing held


def test_exif_file_is_stripped_once_then_served_from_a_private_cache(served, tmp_path, monkeypatch):
    app, client, keys = served()
    raw = _exif_jpeg(1000, 600, seed=2)
    sha = _catalogue(app.state.px.settings.db, tmp_path, "rotated.jpg", raw)
    decodes = _Spy(monkeypatch, core_image, "load_image")
    encodes = _Spy(monkeypatch, api_catalog, "encode_clean")
    first = client.get(f"/v1/images/{sha}/file", headers=auth(keys["viewer"]))
    assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
    assert b"SecretCam" not in first.content and b"secret note" not in first.content
    with Image.open(io.BytesIO(first.content)) as img:
        assert img.size == (600, 1000) and not img.getexif()  # orientation applied, metadata gone
    assert clean_as_stored(first.content) == "image/jpeg"
    cache = clean_copy_path(app.state.px.settings.uploads_dir, sha, "image/jpeg")
    assert cache.read_bytes() == first.content
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert 0 < app.state.px.budget.high_water <= app.state.px.budget.total
    second = client.get(f"/v1/images/{sha}/file", headers=auth(keys["viewer"]))
    assert second.status_code == 200 and second.content == first.content
    assert decodes.calls == 1 and encodes.calls == 1  # the second request was the cache's
    assert app.state.px.budget.in_use == 0


def test_file_gets_503_with_retry_after_when_the_budget_stays_spent(served, tmp_path):
    app, client, keys = served(decode_budget_mp=1.0, decode_wait_s=0.2)
    px = app.state.px
    sha = _catalogue(px.settings.db, tmp_path, "a.jpg", _exif_jpeg(800, 600, seed=3))  # 0.48 MP
    big = _catalogue(px.settings.db, tmp_path, "big.jpg", _exif_jpeg(1500, 1000, seed=4))  # 1.5 MP
    with px.budget.acquire(700_000):  # another decode holds most of the budget
        r = client.get(f"/v1/images/{sha}/file", headers=auth(keys["viewer"]))
        assert r.status_code == 503 and r.headers.get("retry-after")
        assert "retry" in r.json()["error"]["message"]
        r = client.get(f"/v1/images/{sha}/thumb?size=64", headers=auth(keys["viewer"]))
        assert r.status_code == 503 and r.headers.get("retry-after")
    assert px.budget.in_use == 0
    assert client.get(f"/v1/images/{sha}/file", headers=auth(keys["viewer"])).status_code == 200
    r = client.get(f"/v1/images/{big}/file", headers=auth(keys["viewer"]))
    assert r.status_code == 413 and "decode budget" in r.json()["error"]["message"]


def test_concurrent_decodes_never_exceed_the_budget(served, tmp_path):
    app, client, keys = served(decode_budget_mp=2.5, decode_wait_s=30)
    px = app.state.px
    shas = [_catalogue(px.settings.db, tmp_path, f"{i}.jpg", _exif_jpeg(1200, 1000, seed=10 + i)) for i in range(8)]
    seen: list[int] = []
    real_load = core_image.load_image

    def watched(*args, **kwargs):
        seen.append(px.budget.in_use)
        time.sleep(0.05)  # keep the decodes overlapping
        return real_load(*args, **kwargs)

    core_image.load_image = watched
    try:
        statuses: list[int] = []

        def fetch(sha: str, kind: str) -> None:
            url = f"/v1/images/{sha}/file" if kind == "file" else f"/v1/images/{sha}/thumb?size=64"
            statuses.append(client.get(url, headers=auth(keys["viewer"])).status_code)

        threads = [threading.Thread(target=fetch, args=(sha, kind)) for sha in shas for kind in ("file", "thumb")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        core_image.load_image = real_load
    assert statuses == [200] * 16
    assert len(seen) == 16 and max(seen) <= px.budget.total
    assert 1_200_000 <= px.budget.high_water <= px.budget.total == 2_500_000
    assert px.budget.in_use == 0


# -- analyze ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def analyzer():
    from pixsight.pipeline.analyzer import Analyzer

    with Analyzer(AnalyzeConfig(tasks=("classify",))) as a:
        yield a


def test_batch_over_the_budget_decodes_within_it(served, analyzer):
    app, client, keys = served(analyzer=analyzer, tasks=("classify",), decode_budget_mp=1.5, decode_wait_s=30)
    px = app.state.px
    files = [("file", (f"{i}.png", _png(1100, 1000, seed=20 + i))) for i in range(5)]  # 5 x 1.1 MP
    files.append(("file", ("huge.png", _png(1300, 1300, seed=30))))  # 1.69 MP: over the whole budget
    r = client.post("/v1/analyze/batch", files=files, headers=auth(keys["viewer"]))
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["ok"] * 5 + ["error"]
    assert results[-1]["error"]["type"] == "ImageTooLargeError"
    assert 1_100_000 <= px.budget.high_water <= px.budget.total and px.budget.in_use == 0


def test_analyze_gets_503_when_the_budget_stays_spent(served, analyzer):
    app, client, keys = served(analyzer=analyzer, tasks=("classify",), decode_budget_mp=1.0, decode_wait_s=0.2)
    px = app.state.px
    payload = _png(800, 600, seed=40)
    with px.budget.acquire(900_000):
        r = client.post("/v1/analyze", files={"file": ("a.png", payload)}, headers=auth(keys["viewer"]))
        assert r.status_code == 503 and r.headers.get("retry-after"), r.text
        r = client.post("/v1/analyze/batch", files=[("file", ("a.png", payload))], headers=auth(keys["viewer"]))
        assert r.status_code == 200 and r.json()["results"][0]["error"]["type"] == "Unavailable"
    r = client.post("/v1/analyze", files={"file": ("a.png", payload)}, headers=auth(keys["viewer"]))
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert px.budget.high_water <= px.budget.total and px.budget.in_use == 0
