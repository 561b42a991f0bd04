"""Atomic writes (SECURITY.md item 20): all or nothing, no temp files left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pixsight.core.fileio import atomic_write_bytes, atomic_write_text, atomic_writer


class Boom(Exception):
    pass


def test_write_text_and_bytes(tmp_path: Path) -> None:
    atomic_write_text(tmp_path / "a.txt", "héllo\n")
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\xff")
    assert (tmp_path / "a.txt").read_bytes() == "héllo\n".encode()
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]


def test_overwrite_replaces_the_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    atomic_write_text(target, "x" * 1000)
    atomic_write_text(target, "short")
    assert target.read_text() == "short"


def test_creates_missing_parent_folders(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c.txt"
    atomic_write_text(target, "ok")
    assert target.read_text() == "ok"


@pytest.mark.parametrize("existing", [True, False], ids=["existing-target", "new-target"])
@pytest.mark.parametrize("exc", [Boom, KeyboardInterrupt], ids=["error", "interrupt"])
def test_failure_leaves_target_untouched_and_no_temp_file(tmp_path: Path, existing: bool, exc: type[BaseException]) -> None:
    target = tmp_path / "report.html"
    if existing:
        target.write_text("old content")
    with pytest.raises(exc):
        with atomic_writer(target, "w", encoding="utf-8") as fh:
            fh.write("new half-written content")
            fh.flush()
            raise exc()
    if existing:
        assert target.read_text() == "old content"
    else:
        assert not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == (["report.html"] if existing else [])


def test_the_temp_file_lives_beside_the_target_until_the_rename(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    with atomic_writer(target) as fh:
        fh.write(b"new")
        tmp_files = [p for p in tmp_path.iterdir() if p.name != "data.bin"]
        assert len(tmp_files) == 1 and tmp_files[0].name.startswith(".data.bin.")
        assert target.read_bytes() == b"old"  # readers see the old file while writing
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]


def test_failed_fsync_leaves_target_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_failed_rename_leaves_target_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")

    def failing_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_encoding_error_leaves_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(target, "snow ☃", encoding="ascii")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
