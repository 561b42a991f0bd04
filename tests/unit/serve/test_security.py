"""Security headers, upload cap (Content-Length and streamed), CORS, URL fetch allow-list, storage."""

from __future__ import annotations

import json
import os

import httpx
import pytest
from fastapi.testclient import TestClient

from pixsight.serve.auth import ApiError
from pixsight.serve.security import CSP, fetch_url, host_allowed
from pixsight.serve.storage import store_upload, upload_path
from tests.unit.serve.kit import auth, make_app

EXPECTED_CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
                "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def _check_headers(response: httpx.Response) -> None:
    assert response.headers["content-security-policy"] == EXPECTED_CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_security_headers_everywhere(tmp_path):
    assert CSP == EXPECTED_CSP
    app, keys = make_app(tmp_path)
    with TestClient(app) as client:
        for response in (client.get("/healthz"), client.get("/v1/keys"), client.get("/nope"),
                         client.get("/v1/keys", headers=auth(keys["admin"]))):
            _check_headers(response)
        r = client.get("/v1/keys", headers=auth(keys["admin"]))
        assert r.headers["cache-control"] == "no-store"


def test_content_length_over_cap_is_413_before_reading(tmp_path):
    app, keys = make_app(tmp_path, max_upload_bytes=1000)
    with TestClient(app) as client:
        body = b"x" * 1001
        r = client.post("/v1/keys", content=body, headers={**auth(keys["admin"]), "content-type": "application/json"})
        assert r.status_code == 413
        assert r.json()["error"]["type"] == "PayloadTooLarge"
        _check_headers(r)
        # without a key too: the body is never read
        assert client.post("/v1/analyze", content=body).status_code == 413


def test_streamed_body_is_cut_at_cap(tmp_path):
    app, keys = make_app(tmp_path, max_upload_bytes=1000)
    sent = []

    def chunks():
        for _ in range(50):  # 5000 bytes, no Content-Length: chunked transfer encoding
            sent.append(100)
            yield b"y" * 100

    with TestClient(app) as client:
        r = client.post("/v1/keys", content=chunks(), headers={**auth(keys["admin"]), "content-type": "application/json"})
        assert r.status_code == 413 and r.json()["error"]["type"] == "PayloadTooLarge"
        ok = client.post("/v1/keys", content=iter([b'{"role": ', b'"viewer"}']),
                         headers={**auth(keys["admin"]), "content-type": "application/json"})
        assert ok.status_code == 201


def test_no_cors_by_default(tmp_path):
    app, keys = make_app(tmp_path)
    with TestClient(app) as client:
        r = client.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
        pre = client.options("/v1/keys", headers={"Origin": "https://evil.example",
                                                  "Access-Control-Request-Method": "GET"})
        assert "access-control-allow-origin" not in pre.headers


def test_cors_allow_list(tmp_path):
    app, keys = make_app(tmp_path, cors_origins=("https://ok.example",))
    with TestClient(app) as client:
        r = client.get("/v1/keys", headers={**auth(keys["admin"]), "Origin": "https://ok.example"})
        assert r.headers["access-control-allow-origin"] == "https://ok.example"
        pre = client.options("/v1/keys", headers={"Origin": "https://ok.example", "Access-Control-Request-Method": "GET",
                                                  "Access-Control-Request-Headers": "authorization"})
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "https://ok.example"
        bad = client.options("/v1/keys", headers={"Origin": "https://evil.example",
                                                  "Access-Control-Request-Method": "GET"})
        assert bad.headers.get("access-control-allow-origin") != "https://evil.example"
        r = client.get("/v1/keys", headers={**auth(keys["admin"]), "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers


def test_host_allowed():
    allowed = ("img.example.org",)
    assert host_allowed("http://IMG.example.org:8080/a.png", allowed)
    assert not host_allowed("ftp://img.example.org/a.png", allowed)
    assert not host_allowed("http://img.example.org.evil.com/a.png", allowed)
    assert not host_allowed("http://evil.com/?u=http://img.example.org/", allowed)
    assert not host_allowed("file:///etc/passwd", allowed)
    assert not host_allowed("not a url", allowed)


def _transport(routes: dict[str, httpx.Response]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        return routes.get(str(request.url), httpx.Response(404))

    return httpx.MockTransport(handler)


def test_fetch_url_follows_only_allowed_redirects():
    routes = {
        "https://a.example/x.png": httpx.Response(302, headers={"location": "https://b.example/y.png"}),
        "https://b.example/y.png": httpx.Response(200, content=b"image-bytes"),
        "https://a.example/off.png": httpx.Response(302, headers={"location": "http://169.254.169.254/latest"}),
        "https://a.example/big.png": httpx.Response(200, content=b"z" * 5000),
        "https://a.example/gone.png": httpx.Response(404),
    }
    kw = {"allowed": ("a.example", "b.example"), "max_bytes": 1000, "transport": _transport(routes)}
    assert fetch_url("https://a.example/x.png", **kw) == b"image-bytes"
    for url, status in (("https://a.example/off.png", 403), ("https://a.example/big.png", 413),
                        ("https://a.example/gone.png", 502), ("https://c.example/x.png", 403)):
        with pytest.raises(ApiError) as err:
            fetch_url(url, **kw)
        assert err.value.status_code == status, url


def test_store_upload(tmp_path):
    data = b"\x89PNG fake"
    path = store_upload(tmp_path, data, "PNG", name="scan 1.png")
    assert path.read_bytes() == data and path.parent.parent.parent == tmp_path and path.name == "scan 1.png"
    assert store_upload(tmp_path, data, "PNG", name="scan 1.png") == path  # idempotent
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left
    # the same content under another name: a hard link, not a second copy
    other = store_upload(tmp_path, data, "PNG", name="copy.png")
    assert other.parent == path.parent and os.path.samefile(other, path)
    # client names never choose the folder or the type
    for hostile in ("../../../etc/passwd", "..\\..\\x.exe", "/abs/evil.svg", "a\x00b.png", "\u202etxt.exe"):
        p = store_upload(tmp_path, data, "PNG", name=hostile)
        assert p.parent == path.parent and p.suffix == ".png" and p.resolve().is_relative_to(tmp_path.resolve())
    with pytest.raises(ValueError):
        upload_path(tmp_path, "../../etc/passwd", "PNG")
    assert upload_path(tmp_path, "a" * 64, "JPEG").suffix == ".jpg"
    assert json.dumps(str(upload_path(tmp_path, "a" * 64, "we/ird")))  # odd formats cannot escape the folder
    assert upload_path(tmp_path, "a" * 64, "we/ird").parent == tmp_path / "aa" / ("a" * 64)
