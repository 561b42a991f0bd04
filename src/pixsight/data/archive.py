"""Safe import of dataset archives (``.zip``, ``.tar``, ``.tar.gz``/``.tgz``) — SECURITY.md item 10.

Every member is checked before anything is written, and the archive is refused as a whole
(an :class:`UnsafeArchiveError` naming the member) when any member:

- has an absolute path, a drive letter, a ``..`` part, a NUL byte or an empty name,
  or would land outside the destination for any other reason;
- is a symlink, a hard link, a device, a FIFO or anything but a file or a folder;
- repeats an earlier member's name, or is a file where another member needs a folder;
- takes the archive over :class:`ArchiveLimits` (members, total size, one member's size,
  compression ratio — zip bombs).

Declared sizes are not trusted: extraction counts the bytes it writes and stops at the
declared size and at the limits. Extraction is atomic: members are written into a temp
folder beside the destination, which is renamed into place only when all of them are.
``__MACOSX/`` resource forks and ``.DS_Store`` files are skipped.

>>> import tempfile, zipfile
>>> d = Path(tempfile.mkdtemp())
>>> with zipfile.ZipFile(d / "evil.zip", "w") as z:
...     z.writestr("ok.txt", "fine")
...     z.writestr("../escape.txt", "boom")
>>> try:
...     extract_archive(d / "evil.zip", d / "out")
... except UnsafeArchiveError as err:
...     print(err.message)
member '../escape.txt': '..' in the path would land outside the destination; refused
>>> (d / "out").exists(), (d / "escape.txt").exists()
(False, False)
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from ..core.errors import DatasetFormatError
from ..core.fileio import sha256_file

__all__ = ["ARCHIVE_SUFFIXES", "ArchiveLimits", "UnsafeArchiveError", "Member", "is_archive", "archive_members",
           "extract_archive", "extract_cached"]

log = logging.getLogger(__name__)

#: Names :func:`is_archive` recognises (lower case).
ARCHIVE_SUFFIXES: tuple[str, ...] = (".zip", ".tar", ".tar.gz", ".tgz")
_SKIP_PARTS = ("__MACOSX",)
_SKIP_NAMES = (".DS_Store",)
_CHUNK = 1 << 20


class UnsafeArchiveError(DatasetFormatError):
    """The archive was refused: a member is unsafe or the archive is over a limit."""


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps applied before and during extraction (defaults suit datasets up to ~20 GB)."""

    max_members: int = 200_000
    max_total_bytes: int = 20 * 1024**3
    max_member_bytes: int = 4 * 1024**3
    max_ratio: float = 200.0  # uncompressed / compressed, per zip member and for the whole archive

    def __post_init__(self) -> None:
        if min(self.max_members, self.max_total_bytes, self.max_member_bytes) <= 0 or self.max_ratio <= 1:
            raise ValueError("ArchiveLimits: limits must be positive (max_ratio > 1)")


@dataclass(frozen=True)
class Member:
    """One archive member as it will be extracted: ``name`` is a clean relative POSIX path."""

    name: str
    is_dir: bool
    size: int
    compressed: int | None  # zip only
    raw: str = ""  # the name as stored in the archive


def is_archive(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is named like an archive (``.zip``, ``.tar``, ``.tar.gz``, ``.tgz``);
    the content is checked when it is opened.

    >>> is_archive("data.TAR.GZ"), is_archive("data.json")
    (True, False)
    """
    return Path(path).name.lower().endswith(ARCHIVE_SUFFIXES)


def _refuse(archive: Path, name: str, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"member {name!r}: {why}; refused", path=str(archive))


def _clean_name(archive: Path, raw: str) -> str:
    if not raw or "\x00" in raw:
        raise _refuse(archive, raw, "empty name or NUL byte in the name")
    name = raw.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise _refuse(archive, raw, "absolute path")
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if ".." in parts:
        raise _refuse(archive, raw, "'..' in the path would land outside the destination")
    if not parts:
        raise _refuse(archive, raw, "empty name")
    return "/".join(parts)


def _zip_members(archive: Path, zf: zipfile.ZipFile) -> Iterator[tuple[str, Member]]:
    for info in zf.infolist():
        kind_bits = stat.S_IFMT(info.external_attr >> 16)  # 0 when the creator stored no Unix mode
        if kind_bits not in (0, stat.S_IFREG, stat.S_IFDIR):
            kind = "a symlink" if kind_bits == stat.S_IFLNK else "a special file"
            raise _refuse(archive, info.filename, f"{kind}; only files and folders are allowed")
        # zipfile cuts a name at its first NUL ("a.png\0.sh" -> "a.png"); the name as stored is
        # orig_filename, which _clean_name refuses when it holds a NUL
        yield info.orig_filename, Member("", info.is_dir(), info.file_size, info.compress_size)


def _tar_members(archive: Path, tf: tarfile.TarFile) -> Iterator[tuple[str, Member]]:
    for info in tf:  # streams the headers; no member data is read
        if info.issym() or info.islnk():
            kind = "a symlink" if info.issym() else "a hard link"
            raise _refuse(archive, info.name, f"{kind} (to {info.linkname!r}); only files and folders are allowed")
        if not (info.isreg() or info.isdir()):
            raise _refuse(archive, info.name, "a device, FIFO or other special file; only files and folders are allowed")
        yield info.name, Member("", info.isdir(), info.size, None)


def _open(archive: Path) -> zipfile.ZipFile | tarfile.TarFile:
    try:
        if zipfile.is_zipfile(archive):
            return zipfile.ZipFile(archive)
        if tarfile.is_tarfile(archive):
            return tarfile.open(archive, "r:*")
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError) as err:
        raise DatasetFormatError(f"cannot read the archive: {err}", path=str(archive)) from None
    raise DatasetFormatError("not a zip or tar archive", path=str(archive))


def archive_members(archive: str | os.PathLike[str], *, limits: ArchiveLimits | None = None) -> list[Member]:
    """The members of ``archive`` after every safety check, without extracting anything.

    Raises:
        UnsafeArchiveError: a member is unsafe or a limit is exceeded (the message names it).
        DatasetFormatError: not a readable zip or tar file.
    """
    archive = Path(archive)
    limits = limits or ArchiveLimits()
    members: list[Member] = []
    seen: dict[str, bool] = {}  # name -> is_dir
    total = 0
    with _open(archive) as handle:
        entries = _zip_members(archive, handle) if isinstance(handle, zipfile.ZipFile) else _tar_members(archive, handle)
        try:
            for raw, m in entries:
                name = _clean_name(archive, raw)
                parts = name.split("/")
                if parts[0] in _SKIP_PARTS or parts[-1] in _SKIP_NAMES:
                    continue
                if len(members) >= limits.max_members:
                    raise UnsafeArchiveError(f"more than {limits.max_members} members; refused", path=str(archive))
                if name in seen and not (m.is_dir and seen[name]):
                    raise _refuse(archive, raw, f"duplicate name {name!r}")
                for k in range(1, len(parts)):
                    parent = "/".join(parts[:k])
                    if seen.get(parent) is False:
                        raise _refuse(archive, raw, f"{parent!r} is a file in this archive, not a folder")
                    seen.setdefault(parent, True)
                if not m.is_dir and seen.get(name) is True:
                    raise _refuse(archive, raw, f"{name!r} is a folder in this archive, not a file")
                seen[name] = m.is_dir
                if m.size > limits.max_member_bytes:
                    raise _refuse(archive, raw, f"{m.size} bytes is over the per-member limit of "
                                  f"{limits.max_member_bytes}")
                if m.compressed is not None and m.size > 1024 * 1024 and m.size > limits.max_ratio * max(m.compressed, 1):
                    raise _refuse(archive, raw, f"compression ratio {m.size / max(m.compressed, 1):.0f}:1 is over "
                                  f"{limits.max_ratio:.0f}:1 (zip bomb?)")
                total += m.size
                if total > limits.max_total_bytes:
                    raise UnsafeArchiveError(f"more than {limits.max_total_bytes} bytes uncompressed; refused",
                                             path=str(archive))
                members.append(Member(name, m.is_dir, m.size, m.compressed, raw))
        except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError) as err:
            raise DatasetFormatError(f"cannot read the archive: {err}", path=str(archive)) from None
    packed = max(archive.stat().st_size, 1)
    if total > 1024 * 1024 and total > limits.max_ratio * packed:
        raise UnsafeArchiveError(f"{total} bytes uncompressed from {packed} is a ratio over "
                                 f"{limits.max_ratio:.0f}:1 (zip bomb?); refused", path=str(archive))
    return members


def _copy(src: IO[bytes], dst: IO[bytes], *, archive: Path, member: Member, budget: list[int]) -> None:
    """Copy at most ``member.size`` bytes (and what is left of the total budget)."""
    written = 0
    while block := src.read(_CHUNK):
        written += len(block)
        budget[0] -= len(block)
        if written > member.size:
            raise _refuse(archive, member.name, f"holds more data than the {member.size} bytes it declares")
        if budget[0] < 0:
            raise UnsafeArchiveError("the archive's data exceeds the total size limit; refused", path=str(archive))
        dst.write(block)


def extract_archive(archive: str | os.PathLike[str], dest: str | os.PathLike[str], *,
                    limits: ArchiveLimits | None = None,
                    progress: Callable[[int, int], None] | None = None) -> Path:
    """Extract ``archive`` into the new folder ``dest`` safely and atomically; return ``dest``.

    ``progress(done, total)`` is called after each member. Nothing is written unless every
    member passes the checks; on any error the partial extraction is removed.

    Raises:
        UnsafeArchiveError: a member is unsafe or a limit is exceeded (the message names it).
        DatasetFormatError: not a readable zip or tar file, or ``dest`` exists and is not empty.
    """
    archive, dest = Path(archive), Path(dest)
    limits = limits or ArchiveLimits()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DatasetFormatError("already exists and is not empty; choose a new folder", path=str(dest))
    members = archive_members(archive, limits=limits)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.import-", dir=dest.parent)).resolve()
    budget = [limits.max_total_bytes]
    try:
        with _open(archive) as handle:
            tar_infos = {i.name: i for i in handle.getmembers()} if isinstance(handle, tarfile.TarFile) else {}
            for k, m in enumerate(members):
                target = tmp.joinpath(*m.name.split("/"))
                if tmp not in target.parents:  # belt and braces: _clean_name already refused this
                    raise _refuse(archive, m.name, "would land outside the destination")
                if m.is_dir:
                    target.mkdir(parents=True, exist_ok=True)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
                    with os.fdopen(fd, "wb") as out:
                        if isinstance(handle, zipfile.ZipFile):
                            src = handle.open(handle.getinfo(m.raw))
                        else:
                            src = handle.extractfile(tar_infos[m.raw])
                        if src is None:
                            raise _refuse(archive, m.raw, "not a regular file")
                        with src:
                            _copy(src, out, archive=archive, member=m, budget=budget)
                if progress is not None:
                    progress(k + 1, len(members))
        if dest.exists():
            dest.rmdir()  # empty (checked above)
        tmp.rename(dest)
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DatasetFormatError(f"cannot extract the archive: {err}", path=str(archive)) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("extracted %s (%d members) -> %s", archive, len(members), dest)
    return dest


def extract_cached(archive: str | os.PathLike[str], *, cache: str | os.PathLike[str] | None = None,
                   limits: ArchiveLimits | None = None) -> Path:
    """Extract ``archive`` once into a cache folder keyed by its sha256 and return that folder.

    ``cache`` defaults to ``pixsight_home()/datasets/archives``. A second call with the same
    archive bytes returns the same folder without extracting again.
    """
    from ..core.config import cache_dir

    archive = Path(archive)
    root = Path(cache) if cache is not None else cache_dir("datasets", "archives")
    digest = sha256_file(archive)
    dest = root / digest[:32]
    if dest.is_dir():
        log.debug("archive %s already extracted at %s", archive, dest)
        return dest
    try:
        return extract_archive(archive, dest, limits=limits)
    except DatasetFormatError:
        if dest.is_dir():  # another process extracted it meanwhile
            return dest
        raise
