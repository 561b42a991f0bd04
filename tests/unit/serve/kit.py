"""Helpers for serve tests.

How to use::

    from fastapi.testclient import TestClient
    from tests.unit.serve.kit import auth, make_app, ui_login

    def test_something(tmp_path):
        app, keys = make_app(tmp_path)                 # no models: /v1/analyze answers 503
        with TestClient(app) as client:                # `with` runs the lifespan (ready, batcher)
            r = client.get("/v1/keys", headers=auth(keys["admin"]))
            csrf = ui_login(client, keys["viewer"])     # browser-style session cookie
            client.post("/v1/...", headers={"X-CSRF-Token": csrf})

- ``make_app(tmp_path, load_models=False, tasks=("classify", "embed"), analyzer=None, **overrides)``
  builds ``create_app`` over ``tmp_path/catalog.sqlite`` with one key per role;
  ``overrides`` are :class:`ServeSettings` fields (e.g. ``rate_limit_burst=2``). Pass a ready
  ``analyzer`` (build one per module: it takes a second or two) to serve analyses; with
  ``load_models=True`` and no analyzer the app loads its own in the background.
- ``auth(token)`` -> ``{"Authorization": "Bearer <token>"}``.
- ``ui_login(client, token)`` posts the key to ``/login`` (form field ``key``; the UI module
  provides that route) and returns the session's CSRF token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pixsight.serve.app import create_app
from pixsight.serve.auth import SESSION_COOKIE
from pixsight.serve.settings import ServeSettings

__all__ = ["make_app", "auth", "copy_catalog", "ui_login", "session_login"]


def make_app(tmp_path: Path, *, load_models: bool = False, tasks: tuple[str, ...] | None = ("classify", "embed"),
             analyzer: Any = None, **overrides: Any) -> tuple[Any, dict[str, str]]:
    """``(app, {"viewer": key, "reviewer": key, "admin": key})`` over a fresh catalog in ``tmp_path``."""
    settings = ServeSettings(db=overrides.pop("db", Path(tmp_path) / "catalog.sqlite"), tasks=tasks,
                             load_models=load_models or analyzer is not None, **overrides)
    app = create_app(settings, analyzer=analyzer)
    keys = {role: app.state.px.keys.create(role, f"test-{role}")[1] for role in ("viewer", "reviewer", "admin")}
    return app, keys


def copy_catalog(src: Path, dst: Path) -> Path:
    """A consistent copy of the catalog at ``src`` (SQLite online backup, WAL included), so a
    test can change its own copy of a catalog built once per module."""
    import sqlite3

    source, target = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    return Path(dst)


def auth(token: str) -> dict[str, str]:
    """Bearer headers for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def ui_login(client: Any, token: str) -> str:
    """Log ``client`` (a TestClient) in through ``POST /login``; returns the CSRF token."""
    response = client.post("/login", data={"key": token}, follow_redirects=False)
    assert response.status_code in (200, 302, 303), f"login failed: {response.status_code} {response.text[:200]}"
    session_id = client.cookies.get(SESSION_COOKIE)
    assert session_id, "login set no session cookie"
    session = client.app.state.px.sessions.get(session_id)
    assert session is not None, "the session cookie names no live session"
    return session.csrf


def session_login(client: Any, token: str) -> str:
    """Like :func:`ui_login` without the UI route: starts a session directly; returns the CSRF token."""
    px = client.app.state.px
    info = px.keys.verify(token)
    assert info is not None, "not a valid key"
    session = px.sessions.create(info.id)
    client.cookies.set(SESSION_COOKIE, session.id)
    return session.csrf
