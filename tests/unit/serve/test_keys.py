"""API keys: format, hashing at rest, verify/revoke, and the ``pixsight keys`` CLI."""

from __future__ import annotations

import json
import sqlite3

import pytest

from pixsight.cli.main import main
from pixsight.core.errors import ConfigError
from pixsight.serve.keys import KEY_PATTERN, KeyStore


def test_create_verify_list_revoke(tmp_path):
    store = KeyStore(tmp_path / "c.sqlite")
    info, token = store.create("reviewer", "alice")
    assert KEY_PATTERN.match(token) and token.startswith(f"pxs_{info.id}_")
    assert store.verify(token).role == "reviewer"
    assert store.verify(token).name == "alice"
    # the right id with another secret, a malformed key, an unknown id: all refused
    other = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert store.verify(other) is None
    assert store.verify("pxs_nothex__x") is None
    assert store.verify(f"pxs_00000000_{token.split('_', 2)[2]}") is None
    assert [k.id for k in store.list()] == [info.id]
    assert store.count() == 1
    assert store.revoke(info.id) is True
    assert store.revoke(info.id) is False
    assert store.verify(token) is None
    assert store.count() == 0 and store.count(include_revoked=True) == 1
    assert store.list()[0].revoked is not None


def test_secret_is_stored_hashed_only(tmp_path):
    db = tmp_path / "c.sqlite"
    store = KeyStore(db)
    _, token = store.create("admin", "root")
    secret = token.split("_", 2)[2]
    with sqlite3.connect(db) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        row = con.execute("SELECT secret_sha256 FROM api_keys").fetchone()
    assert len(row[0]) == 64 and secret not in row[0]
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("c.sqlite"))
    assert secret.encode() not in raw and token.encode() not in raw


def test_last_used_is_recorded(tmp_path):
    store = KeyStore(tmp_path / "c.sqlite")
    info, token = store.create("viewer")
    assert store.get(info.id).last_used is None
    store.verify(token)
    assert store.get(info.id).last_used is not None


def test_unknown_role(tmp_path):
    with pytest.raises(ConfigError, match="unknown role"):
        KeyStore(tmp_path / "c.sqlite").create("root")


def test_keys_cli(tmp_path, capsys):
    db = str(tmp_path / "c.sqlite")
    assert main(["keys", "create", "--role", "admin", "--name", "ops", "--db", db]) == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert KEY_PATTERN.match(token) and "shown only this once" in err and token not in err
    assert KeyStore(db).verify(token).role == "admin"
    assert main(["keys", "list", "--json", "--db", db]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(k["name"], k["role"]) for k in listed] == [("ops", "admin")]
    assert "secret" not in json.dumps(listed) and token not in json.dumps(listed)
    assert main(["keys", "list", "--db", db]) == 0
    assert "ops" in capsys.readouterr().out
    assert main(["keys", "revoke", listed[0]["id"], "--db", db]) == 0
    assert KeyStore(db).verify(token) is None
    assert main(["keys", "revoke", listed[0]["id"], "--db", db]) == 1
    assert "no live key" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["keys", "create", "--role", "root", "--db", db])
    assert exc.value.code == 2


def test_verified_keys_are_cached_briefly_and_revocation_is_seen(tmp_path, monkeypatch):
    """A busy client is not one DB read per request, yet a revoked key stops working: at once
    through the same store, and within VERIFY_CACHE_S through another process's store."""
    from pixsight.serve import keys as keys_mod

    db = tmp_path / "catalog.sqlite"
    server_side, other_process = KeyStore(db), KeyStore(db)
    info, token = server_side.create("viewer", "client")
    assert server_side.verify(token).id == info.id
    reads = []
    monkeypatch.setattr(server_side, "_connect", lambda real=server_side._connect: reads.append(1) or real())
    for _ in range(20):
        assert server_side.verify(token) is not None
    assert reads == []  # served from the cache
    assert other_process.revoke(info.id)
    assert server_side.verify(token) is not None  # still cached: the revoke happened elsewhere
    monkeypatch.setattr(keys_mod, "VERIFY_CACHE_S", 0.0)
    server_side._verified.clear()
    assert server_side.verify(token) is None
    info2, token2 = server_side.create("viewer", "other")
    assert server_side.verify(token2) is not None
    monkeypatch.setattr(keys_mod, "VERIFY_CACHE_S", 60.0)
    assert server_side.verify(token2) is not None
    assert server_side.revoke(info2.id)
    assert server_side.verify(token2) is None  # revoked through this store: at once
