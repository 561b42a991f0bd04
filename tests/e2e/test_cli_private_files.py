"""SECURITY.md item 24: catalogs and the vector index pixsight creates are private (files 0600,
folders 0700) under the usual ``umask 022``; what the user already has keeps its mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from PIL import Image

from pixsight.catalog.store import Catalog

from .conftest import jsonl, run_cli


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture()
def umask_022():
    old = os.umask(0o022)  # what most desktops use: new files 0644, folders 0755
    try:
        yield
    finally:
        os.umask(old)


def test_catalog_wal_shm_and_vectors_are_private(tmp_path: Path, umask_022) -> None:
    image = tmp_path / "a.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(image)
    db = tmp_path / "new" / "sub" / "c.sqlite"
    res = run_cli("analyze", str(image), "--db", str(db), "--tasks", "embed", "--jsonl", "-", "--no-progress")
    assert res.returncode == 0, res.stderr
    sha = jsonl(res.stdout)[0]["sha256"]
    assert _mode(db) == 0o600
    assert _mode(db.parent) == 0o700 and _mode(db.parent.parent) == 0o700   # folders pixsight made
    with Catalog(db):                                          # an open connection: -wal and -shm exist
        side = [p for p in (Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]
        assert side and all(_mode(p) == 0o600 for p in side), [(p.name, oct(_mode(p))) for p in side]
    res = run_cli("search", "--similar", sha, "--db", str(db), "--json")
    assert res.returncode == 0, res.stderr
    vectors = Path(f"{db}.vectors")
    assert _mode(vectors) == 0o700
    files = list(vectors.iterdir())
    assert files and all(_mode(p) == 0o600 for p in files), [(p.name, oct(_mode(p))) for p in files]


def test_existing_files_and_folders_keep_their_mode(tmp_path: Path, umask_022) -> None:
    image = tmp_path / "a.png"
    Image.new("RGB", (32, 32), (0, 90, 30)).save(image)
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    db = folder / "c.sqlite"
    db.touch(mode=0o644)                                        # the user's own (empty) file
    os.chmod(db, 0o644)
    res = run_cli("analyze", str(image), "--db", str(db), "--tasks", "classify", "--no-progress")
    assert res.returncode == 0, res.stderr
    assert _mode(db) == 0o644 and _mode(folder) == 0o755
