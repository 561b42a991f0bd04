"""SECURITY.md item 25: control characters in names never reach the terminal raw.

A file named with a colour (``ESC[31m``) and a window-title sequence (``ESC]0;pwned BEL``) is
shown with visible escapes by ``pixsight analyze`` and ``pixsight search``; API key names with
control characters are refused (CLI and HTTP) and a stored one is listed escaped."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from .conftest import run_cli

HOSTILE = "red\x1b[31mX\x1b]0;pwned\x07\x9b2J"


def _assert_clean(*texts: str) -> None:
    for text in texts:
        assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text, text


@pytest.fixture()
def hostile_folder(tmp_path: Path) -> Path:
    folder = tmp_path / f"in{HOSTILE}"
    folder.mkdir()
    Image.new("RGB", (64, 48), (20, 130, 30)).save(folder / f"{HOSTILE}.png")
    (folder / f"bad{HOSTILE}.png").write_bytes(b"not an image")
    return folder


def test_analyze_and_search_escape_file_names(hostile_folder: Path, tmp_path: Path) -> None:
    db = tmp_path / f"c{HOSTILE}.sqlite"
    res = run_cli("-v", "analyze", str(hostile_folder), "--db", str(db), "--tasks", "classify",
                  "--annotate", str(tmp_path / f"ov{HOSTILE}"), "--no-progress")
    assert res.returncode == 1, res.stderr                   # the garbage file failed, the other is stored
    _assert_clean(res.stdout, res.stderr)
    assert "\\x1b[31m" in res.stdout                         # the catalog path, visibly escaped
    res = run_cli("analyze", str(hostile_folder / f"missing{HOSTILE}.png"), "--db", str(db))
    assert res.returncode == 2
    _assert_clean(res.stdout, res.stderr)
    assert "missing" in res.stderr and "\\x1b]0;pwned\\x07" in res.stderr

    for args in (["--db", str(db)], ["red", "--db", str(db)]):
        res = run_cli("search", *args)
        assert res.returncode == 0, res.stderr
        _assert_clean(res.stdout, res.stderr)
        assert "\\x1b[31mX\\x1b]0;pwned\\x07" in res.stdout
    res = run_cli("search", "--similar", f"nothing{HOSTILE}", "--db", str(db))
    assert res.returncode == 2
    _assert_clean(res.stdout, res.stderr)
    res = run_cli("search", "--db", str(db), "--json")       # JSON escapes by itself: unchanged
    assert res.returncode == 0 and "\\u001b[31mX" in res.stdout


def test_key_names_with_control_characters_are_refused(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    for name in ("ops\x1b[31m", "ops\r\nFAKE admin key", "ops\x9b", "ops\x7f"):
        res = run_cli("keys", "create", "--role", "viewer", "--name", name, "--db", str(db))
        assert res.returncode == 2 and "control characters" in res.stderr, res.stderr
        assert res.stdout == ""                              # no key was made
        _assert_clean(res.stderr)
        assert "\r" not in res.stderr
    res = run_cli("keys", "create", "--role", "viewer", "--name", "ops ünïcödé", "--db", str(db))
    assert res.returncode == 0, res.stderr

    from pixsight.catalog.storage import keys as rows, open_session

    with open_session(db, mode="create", what="API keys") as con:   # a name stored by an older pixsight
        rows.insert(con, "0badc0de", f"old{HOSTILE}", "viewer", "x" * 64, 0.0)
    res = run_cli("keys", "list", "--db", str(db))
    assert res.returncode == 0, res.stderr
    _assert_clean(res.stdout, res.stderr)
    assert "ops ünïcödé" in res.stdout and "old" in res.stdout and "\\x1b[31m" in res.stdout
