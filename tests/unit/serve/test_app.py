"""App wiring: health/readiness, error format, key routes, settings, runner's binding rule, CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import Depends
from fastapi.testclient import TestClient

from pixsight.cli.main import main
from pixsight.core.errors import ConfigError, PixsightError
from pixsight.serve.auth import require
from pixsight.serve.keys import KeyStore
from pixsight.serve.runner import ensure_keys
from pixsight.serve.settings import ServeSettings
from tests.unit.serve.kit import auth, make_app


def test_healthz_and_readyz(tmp_path):
    app, keys = make_app(tmp_path, load_models=True)
    client = TestClient(app)  # no `with`: the lifespan has not run, so models are not loaded
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 503 and r.headers["retry-after"] and r.json()["reason"] == "loading models"
    app.state.px.ready = True
    assert client.get("/readyz").status_code == 200
    app.state.px.draining = True
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["reason"] == "draining"


def test_ready_without_models_after_startup(tmp_path):
    app, keys = make_app(tmp_path)
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
    assert app.state.px.draining  # shut down marks draining


def test_error_bodies_have_one_shape(tmp_path):
    app, keys = make_app(tmp_path)

    @app.get("/v1/test-boom", dependencies=[Depends(require("viewer"))])
    async def boom() -> None:
        raise RuntimeError("secret internals /etc/passwd")

    @app.get("/v1/test-pixsight", dependencies=[Depends(require("viewer"))])
    async def pixsight_error() -> None:
        raise ConfigError("bad threshold", path="x.toml")

    with TestClient(app, raise_server_exceptions=False) as client:
        h = auth(keys["admin"])
        cases = [
            (client.get("/no/such/route", headers=h), 404, "NotFound"),
            (client.put("/v1/keys", headers=h), 405, "MethodNotAllowed"),
            (client.post("/v1/keys", json={"role": "god"}, headers=h), 422, "ValidationError"),
            (client.post("/v1/keys", content=b"{not json", headers={**h, "content-type": "application/json"}),
             422, "ValidationError"),
            (client.get("/v1/test-pixsight", headers=h), 400, "ConfigError"),
            (client.get("/v1/test-boom", headers=h), 500, "InternalError"),
        ]
        for response, status, error_type in cases:
            assert response.status_code == status, (response.request.url, response.text)
            body = response.json()
            assert list(body) == ["error"] and set(body["error"]) == {"type", "message"}
            assert body["error"]["type"] == error_type
            assert "Traceback" not in response.text and "/etc/passwd" not in response.text
        assert "x.toml: bad threshold" == cases[4][0].json()["error"]["message"]
        assert cases[5][0].headers["content-security-policy"].startswith("default-src 'self'")


def test_key_routes(tmp_path):
    app, keys = make_app(tmp_path)
    with TestClient(app) as client:
        h = auth(keys["admin"])
        created = client.post("/v1/keys", json={"role": "reviewer", "name": "bob"}, headers=h).json()
        assert created["role"] == "reviewer" and created["key"].startswith(f"pxs_{created['id']}_")
        listed = client.get("/v1/keys", headers=h).json()["keys"]
        assert {k["name"] for k in listed} >= {"bob", "test-admin"}
        assert all("key" not in k and "secret_sha256" not in k for k in listed)
        assert client.get("/v1/keys", headers=auth(created["key"])).status_code == 403
        assert client.delete(f"/v1/keys/{created['id']}", headers=h).json() == {"revoked": created["id"]}


def test_key_names_with_control_characters_are_400(tmp_path):
    """SECURITY.md item 25: a name that would reach a terminal (``pixsight keys list``) raw."""
    app, keys = make_app(tmp_path)
    with TestClient(app) as client:
        h = auth(keys["admin"])
        before = client.get("/v1/keys", headers=h).json()["keys"]
        for name in ("bob\x00", "bob\x1b[31m", "bob\x1b]0;pwned\x07", "bob\r\nadmin", "bob\x9b"):
            r = client.post("/v1/keys", json={"role": "viewer", "name": name}, headers=h)
            assert r.status_code == 400, (name, r.text)
            assert "control characters" in r.json()["error"]["message"], r.text
        assert client.get("/v1/keys", headers=h).json()["keys"] == before      # nothing was created
        r = client.post("/v1/keys", json={"role": "viewer", "name": "Zoë's laptop"}, headers=h)
        assert r.status_code == 201 and r.json()["name"] == "Zoë's laptop"


def test_openapi_needs_a_key(tmp_path):
    app, keys = make_app(tmp_path)
    with TestClient(app) as client:
        assert client.get("/openapi.json").status_code == 401
        schema = client.get("/openapi.json", headers=auth(keys["viewer"])).json()
        assert "/v1/keys" in schema["paths"]
        assert client.get("/docs").status_code in (401, 404)  # no CDN-backed docs page


def test_settings(tmp_path):
    s = ServeSettings(db=tmp_path / "c.sqlite", tasks="classify, embed")
    assert s.tasks == ("classify", "embed") and s.uploads_dir == tmp_path / "c.sqlite.uploads"
    assert s.analyze_config().tasks == ("classify", "embed")
    assert s.max_upload_bytes == 20 * 1024 * 1024 and s.cors_origins == () and s.fetch_allow == ()
    for host, loop in (("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
                       ("0.0.0.0", False), ("192.168.1.5", False), ("example.org", False), ("::", False)):
        assert ServeSettings(db="x", host=host).is_loopback() is loop, host
    with pytest.raises(ConfigError, match="unknown task"):
        ServeSettings(db="x", tasks=("classify", "telepathy")).analyze_config()
    with pytest.raises(ConfigError):
        ServeSettings(db="x", max_batch=0)
    toml = tmp_path / "c.toml"
    toml.write_text("batch_size = 4\n")
    assert ServeSettings(db="x", config_file=toml, tasks=("classify",)).analyze_config().batch_size == 4


def test_binding_rules(tmp_path):
    db = tmp_path / "c.sqlite"
    with pytest.raises(PixsightError, match="binding 0.0.0.0 needs API keys: pixsight keys create --role admin"):
        ensure_keys(ServeSettings(db=db, host="0.0.0.0"))
    assert KeyStore(db).count() == 0
    token = ensure_keys(ServeSettings(db=db, host="127.0.0.1"))
    info = KeyStore(db).verify(token)
    assert info.role == "admin" and info.name == "local-admin"
    assert ensure_keys(ServeSettings(db=db, host="127.0.0.1")) is None  # created once
    assert ensure_keys(ServeSettings(db=db, host="0.0.0.0")) is None  # keys exist: may bind


def test_serve_cli_refuses_public_bind_without_keys(tmp_path, capsys):
    code = main(["serve", "--host", "0.0.0.0", "--db", str(tmp_path / "c.sqlite"), "--no-models"])
    assert code == 2
    assert "binding 0.0.0.0 needs API keys: pixsight keys create --role admin" in capsys.readouterr().err
    assert main(["serve", "--db", str(tmp_path / "c.sqlite"), "--tasks", "telepathy"]) == 2
    assert "unknown task" in capsys.readouterr().err


def test_routers_of_other_parts_are_included(tmp_path):
    app, keys = make_app(tmp_path)
    assert {"/v1/analyze", "/v1/analyze/batch", "/v1/keys"} <= set(app.openapi()["paths"])
    serve_dir = Path(__import__("pixsight.serve", fromlist=["x"]).__file__).parent
    with TestClient(app) as client:
        for module, path in (("metrics", "/metrics"), ("api_monitor", "/v1/drift"), ("api_catalog", "/v1/images")):
            if (serve_dir / f"{module}.py").exists():
                assert client.get(path, headers=auth(keys["admin"])).status_code != 404, path
