"""Auth: bearer keys, roles, sessions + CSRF, rate limits (SECURITY items 12, 13, 18)."""

from __future__ import annotations

import time

import pytest
from fastapi import Depends
from fastapi.testclient import TestClient

from pixsight.serve.auth import (SESSION_COOKIE, Principal, RateLimiter, SessionStore, require, require_page,
                                 role_at_least)
from tests.unit.serve.kit import auth, make_app, session_login, ui_login


@pytest.fixture()
def app_keys(tmp_path):
    return make_app(tmp_path)


def test_missing_and_bad_keys_are_401(app_keys):
    app, keys = app_keys
    with TestClient(app) as client:
        for headers in ({}, auth("pxs_00000000_" + "a" * 43), auth(keys["admin"] + "x"), {"Authorization": "Basic abc"}):
            r = client.get("/v1/keys", headers=headers)
            assert r.status_code == 401, headers
            assert r.headers["www-authenticate"] == "Bearer"
            assert r.json()["error"]["type"] == "Unauthorized"
            assert "pxs_" not in r.json()["error"]["message"]


def test_roles(app_keys):
    app, keys = app_keys
    with TestClient(app) as client:
        for role in ("viewer", "reviewer"):
            r = client.get("/v1/keys", headers=auth(keys[role]))
            assert r.status_code == 403 and r.json()["error"]["type"] == "Forbidden"
        r = client.get("/v1/keys", headers=auth(keys["admin"]))
        assert r.status_code == 200 and len(r.json()["keys"]) == 3
    assert role_at_least("reviewer", "viewer") and not role_at_least("viewer", "admin")


def test_principal_reaches_the_route(app_keys):
    app, keys = app_keys

    @app.get("/v1/test-whoami")
    async def whoami(principal: Principal = Depends(require("reviewer"))) -> dict:
        return {"role": principal.role, "via": principal.via, "name": principal.name}

    with TestClient(app) as client:
        assert client.get("/v1/test-whoami", headers=auth(keys["reviewer"])).json() == {
            "role": "reviewer", "via": "bearer", "name": "test-reviewer"}
        assert client.get("/v1/test-whoami", headers=auth(keys["viewer"])).status_code == 403


def test_revoked_key_is_refused(app_keys):
    app, keys = app_keys
    with TestClient(app) as client:
        info = app.state.px.keys.verify(keys["viewer"])
        r = client.delete(f"/v1/keys/{info.id}", headers=auth(keys["admin"]))
        assert r.status_code == 200
        assert client.get("/metrics", headers=auth(keys["viewer"])).status_code == 401
        assert client.delete(f"/v1/keys/{info.id}", headers=auth(keys["admin"])).status_code == 404


def test_rate_limit_429_with_retry_after(tmp_path):
    app, keys = make_app(tmp_path, rate_limit_per_min=6, rate_limit_burst=3)
    with TestClient(app) as client:
        codes = [client.get("/v1/keys", headers=auth(keys["admin"])).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = client.get("/v1/keys", headers=auth(keys["admin"]))
        assert r.json()["error"]["type"] == "RateLimited"
        assert 1 <= int(r.headers["retry-after"]) <= 10
        # buckets are per key: another key is not limited
        assert client.get("/v1/keys", headers=auth(keys["viewer"])).status_code == 403


def test_rate_limiter_refills():
    limiter = RateLimiter(per_min=600, burst=1)  # 10 per second
    assert limiter.hit("a") == 0.0
    wait = limiter.hit("a")
    assert 0 < wait <= 0.1
    time.sleep(wait + 0.02)
    assert limiter.hit("a") == 0.0


def test_session_cookie_and_csrf(app_keys):
    app, keys = app_keys
    with TestClient(app) as client:
        csrf = session_login(client, keys["admin"])
        assert client.get("/v1/keys").status_code == 200  # the cookie authenticates reads
        r = client.post("/v1/keys", json={"role": "viewer", "name": "x"})
        assert r.status_code == 403 and r.json()["error"]["type"] == "CsrfError"
        r = client.post("/v1/keys", json={"role": "viewer", "name": "x"}, headers={"X-CSRF-Token": "wrong"})
        assert r.status_code == 403
        r = client.post("/v1/keys", json={"role": "viewer", "name": "x"}, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 201 and r.json()["key"].startswith("pxs_")
        # a bearer request needs no CSRF token (a browser cannot forge the header)
        r = client.post("/v1/keys", json={"role": "viewer"}, headers=auth(keys["admin"]))
        assert r.status_code == 201
        client.cookies.set(SESSION_COOKIE, "not-a-session")
        assert client.get("/v1/keys").status_code == 401


def test_session_of_revoked_key_ends(app_keys):
    app, keys = app_keys
    with TestClient(app) as client:
        session_login(client, keys["viewer"])
        assert client.get("/metrics").status_code != 401
        app.state.px.keys.revoke(app.state.px.keys.verify(keys["viewer"]).id)
        assert client.get("/metrics").status_code == 401


def test_page_dependency_redirects_to_login(app_keys):
    app, keys = app_keys

    @app.get("/test-page")
    async def page(principal: Principal = Depends(require_page("viewer"))) -> dict:
        return {"ok": True}

    with TestClient(app) as client:
        r = client.get("/test-page?x=1", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login?next=/test-page%3Fx%3D1"
        session_login(client, keys["viewer"])
        assert client.get("/test-page").json() == {"ok": True}


def test_ui_login_route(app_keys):
    app, keys = app_keys
    with TestClient(app) as client:
        page = client.get("/login")  # the login page is part of every server, and needs no key
        assert page.status_code == 200, page.status_code
        assert "text/html" in page.headers["content-type"] and "<form" in page.text
        bad = client.post("/login", data={"key": "pxs_nope"}, follow_redirects=False)
        assert bad.status_code == 401  # the form again, with an error
        assert SESSION_COOKIE not in bad.cookies
        csrf = ui_login(client, keys["admin"])
        cookie = next(c for c in client.cookies.jar if c.name == SESSION_COOKIE)
        assert cookie.has_nonstandard_attr("HttpOnly")
        r = client.post("/v1/keys", json={"role": "viewer"}, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 201


def test_session_store_expiry_and_bound():
    store = SessionStore(hours=1, max_sessions=2)
    a, b, c = store.create("k1"), store.create("k2"), store.create("k3")
    assert store.get(a.id) is None and store.get(c.id) is not None  # oldest evicted
    assert a.csrf != b.csrf and len(c.csrf) >= 40
    b.expires = time.time() - 1
    assert store.get(b.id) is None
    store.drop_key("k3")
    assert store.get(c.id) is None and len(store) == 0


def test_session_reads_cost_less_than_api_calls(tmp_path):
    app, keys = make_app(tmp_path, rate_limit_per_min=1, rate_limit_burst=2)
    with TestClient(app) as client:
        session_login(client, keys["admin"])
        codes = [client.get("/v1/keys").status_code for _ in range(12)]
        assert codes[:10] == [200] * 10 and codes[-1] == 429  # a page's thumbnails fit in the burst
    with TestClient(app) as client:
        codes = [client.get("/v1/keys", headers=auth(keys["reviewer"])).status_code for _ in range(3)]
        assert codes == [403, 403, 429]
