"""Archive import (SECURITY.md item 10): malicious archives are refused naming the member,
nothing lands outside the destination, extraction is atomic, good archives open as datasets."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from pixsight.core.errors import DatasetFormatError
from pixsight.data.archive import ArchiveLimits, UnsafeArchiveError, archive_members, extract_archive, extract_cached
from pixsight.data.formats import write_dataset
from pixsight.data.ops import dataset_fingerprint
from pixsight.data.resolve import open_dataset, resolve_dataset, unwrap_folder

from .test_validate_formats import base_dataset


def _zip(path: Path, members: list[tuple[str, bytes]], *, mode: int | None = None, link: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            z.writestr(name, data)
        if link is not None:
            info = zipfile.ZipInfo(link)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, "/etc/passwd")
        if mode is not None:
            info = zipfile.ZipInfo("special")
            info.external_attr = mode << 16
            z.writestr(info, b"")
    return path


def _tar(path: Path, add: Callable[[tarfile.TarFile], None], compression: str = "") -> Path:
    with tarfile.open(path, f"w:{compression}" if compression else "w") as t:
        add(t)
    return path


def _file(t: tarfile.TarFile, name: str, data: bytes = b"x") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    t.addfile(info, io.BytesIO(data))


def _special(kind: bytes, name: str, linkname: str = "") -> Callable[[tarfile.TarFile], None]:
    def add(t: tarfile.TarFile) -> None:
        _file(t, "ok.txt")
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = linkname
        t.addfile(info)
    return add


ZIP_CASES = [  # (members, extra, expected message)
    ([("ok.txt", b"x"), ("/etc/cron.d/x", b"x")], {}, "member '/etc/cron.d/x': absolute path; refused"),
    ([("../escape.txt", b"x")], {}, "member '../escape.txt': '..' in the path would land outside the destination"),
    ([("a/../../escape.txt", b"x")], {}, "member 'a/../../escape.txt': '..' in the path"),
    ([("..\\\\escape.txt", b"x")], {}, "'..' in the path would land outside the destination"),
    ([("C:/Windows/x", b"x")], {}, "member 'C:/Windows/x': absolute path"),
    ([("ok.txt", b"x")], {"link": "images/link.png"}, "member 'images/link.png': a symlink; only files and folders"),
    ([("ok.txt", b"x")], {"mode": stat.S_IFCHR | 0o644}, "member 'special': a special file"),
    ([("a", b"x"), ("a/b", b"y")], {}, "member 'a/b': 'a' is a file in this archive, not a folder"),
    ([("a.txt", b"x"), ("./a.txt", b"y")], {}, "member './a.txt': duplicate name 'a.txt'"),
    ([("bomb.bin", bytes(20 * 1024 * 1024))], {}, "member 'bomb.bin': compression ratio"),
]


@pytest.mark.parametrize(("members", "extra", "message"), ZIP_CASES, ids=[c[2][:40] for c in ZIP_CASES])
def test_malicious_zip_is_refused_naming_the_member(tmp_path: Path, members: list, extra: dict, message: str) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name we build on purpose
        archive = _zip(tmp_path / "evil.zip", members, **extra)
    with pytest.raises(UnsafeArchiveError) as err:
        extract_archive(archive, tmp_path / "out")
    assert message in err.value.message and err.value.path == str(archive)
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.zip"]  # no temp folder left behind


def test_zip_member_with_a_nul_in_its_name_is_refused_not_truncated(tmp_path: Path) -> None:
    """zipfile would read 'evil\\0.sh' as 'evil' (it cuts at the NUL); the member is refused instead."""
    archive = _zip(tmp_path / "evil.zip", [("evilX.sh", b"x")])
    archive.write_bytes(archive.read_bytes().replace(b"evilX.sh", b"evil\x00.sh"))  # local header and directory
    with pytest.raises(UnsafeArchiveError) as err:
        extract_archive(archive, tmp_path / "out")
    assert "NUL byte in the name" in err.value.message and "evil\\x00.sh" in err.value.message
    assert not (tmp_path / "out").exists()


TAR_CASES = [
    (_special(tarfile.SYMTYPE, "img.png", "/etc/passwd"), "member 'img.png': a symlink (to '/etc/passwd')"),
    (_special(tarfile.LNKTYPE, "img.png", "/etc/passwd"), "member 'img.png': a hard link (to '/etc/passwd')"),
    (_special(tarfile.CHRTYPE, "dev"), "member 'dev': a device, FIFO or other special file"),
    (_special(tarfile.FIFOTYPE, "pipe"), "member 'pipe': a device, FIFO or other special file"),
    (lambda t: _file(t, "/abs.txt"), "member '/abs.txt': absolute path"),
    (lambda t: _file(t, "../up.txt"), "member '../up.txt': '..' in the path"),
    (lambda t: (_file(t, "a.txt"), _file(t, "a.txt")), "member 'a.txt': duplicate name 'a.txt'"),
]


@pytest.mark.parametrize(("add", "message"), TAR_CASES, ids=[c[1][:40] for c in TAR_CASES])
@pytest.mark.parametrize("compression", ["", "gz"])
def test_malicious_tar_is_refused_naming_the_member(tmp_path: Path, add: Callable, message: str,
                                                    compression: str) -> None:
    archive = _tar(tmp_path / f"evil.tar{'.gz' if compression else ''}", add, compression)
    with pytest.raises(UnsafeArchiveError) as err:
        extract_archive(archive, tmp_path / "out")
    assert message in err.value.message
    assert sorted(p.name for p in tmp_path.iterdir()) == [archive.name]


@pytest.mark.parametrize(("limits", "message"), [
    (ArchiveLimits(max_members=3), "more than 3 members"),
    (ArchiveLimits(max_total_bytes=2500), "more than 2500 bytes uncompressed"),
    (ArchiveLimits(max_member_bytes=500), "member 'f0.txt': 1000 bytes is over the per-member limit of 500"),
])
def test_limits(tmp_path: Path, limits: ArchiveLimits, message: str) -> None:
    archive = _zip(tmp_path / "many.zip", [(f"f{i}.txt", bytes(1000)) for i in range(5)])
    assert len(archive_members(archive)) == 5
    with pytest.raises(UnsafeArchiveError, match=message):
        extract_archive(archive, tmp_path / "out", limits=limits)


def test_tar_gz_bomb_is_refused_by_the_whole_archive_ratio(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "bomb.tar.gz", lambda t: _file(t, "zeros.bin", bytes(30 * 1024 * 1024)), "gz")
    assert archive.stat().st_size < 100_000
    with pytest.raises(UnsafeArchiveError, match="ratio over 200:1"):
        extract_archive(archive, tmp_path / "out")


def test_not_an_archive_and_non_empty_dest(tmp_path: Path) -> None:
    (tmp_path / "x.zip").write_bytes(b"not a zip at all")
    with pytest.raises(DatasetFormatError, match="not a zip or tar archive"):
        extract_archive(tmp_path / "x.zip", tmp_path / "out")
    good = _zip(tmp_path / "good.zip", [("a.txt", b"x")])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(DatasetFormatError, match="not empty"):
        extract_archive(good, tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def _dataset_archive(tmp_path: Path, kind: str) -> tuple[Path, str]:
    ds = base_dataset(tmp_path / "src")
    json_path = write_dataset(ds, tmp_path / "shapes", "coco")
    fp = dataset_fingerprint(ds)
    files = sorted(p for p in (tmp_path / "shapes").rglob("*") if p.is_file())
    if kind == "zip":
        archive = tmp_path / "shapes.zip"
        with zipfile.ZipFile(archive, "w") as z:
            for p in files:  # wrapped in a top folder, as `zip -r shapes.zip shapes/` does
                z.write(p, f"shapes/{p.relative_to(tmp_path / 'shapes').as_posix()}")
    else:
        archive = tmp_path / "shapes.tar.gz"
        with tarfile.open(archive, "w:gz") as t:
            for p in files:
                t.add(p, p.relative_to(tmp_path / "shapes").as_posix())
    assert json_path.name == "annotations.json"
    return archive, fp


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_good_archive_extracts_and_opens_as_a_dataset(tmp_path: Path, kind: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXSIGHT_HOME", str(tmp_path / "home"))
    archive, fp = _dataset_archive(tmp_path, kind)
    calls: list[tuple[int, int]] = []
    out = extract_archive(archive, tmp_path / "imported", progress=lambda d, t: calls.append((d, t)))
    assert calls[-1][0] == calls[-1][1] == len(calls)
    assert dataset_fingerprint(open_dataset(unwrap_folder(out))) == fp
    resolved = resolve_dataset(archive)  # an archive wherever a dataset path is accepted
    assert resolved.format == "coco" and dataset_fingerprint(resolved.dataset) == fp
    assert (tmp_path / "home" / "datasets" / "archives") in resolved.path.parents
    cached = extract_cached(archive)
    marker = cached / "marker"
    marker.write_text("extracted once")
    assert extract_cached(archive) == cached and marker.exists()  # keyed by sha256: not extracted again
