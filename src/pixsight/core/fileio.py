"""Atomic file writes (SECURITY.md item 20): temp file in the same folder, fsync, rename.

>>> import tempfile, os
>>> d = tempfile.mkdtemp()
>>> atomic_write_text(os.path.join(d, "a.txt"), "hello")
>>> open(os.path.join(d, "a.txt")).read()
'hello'
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

__all__ = ["atomic_writer", "atomic_write_bytes", "atomic_write_text", "sha256_file", "printable_path", "printable",
           "make_private_dirs", "create_private_file", "PRIVATE_FILE_MODE", "PRIVATE_DIR_MODE"]

#: Modes of what pixsight creates to hold user data (catalogs, uploads, vector indexes), whatever the
#: umask (SECURITY.md item 24).
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


def make_private_dirs(path: str | os.PathLike[str]) -> Path:
    """``mkdir -p path`` where every folder it creates is 0700; existing folders keep their mode.

    >>> import tempfile, os, stat
    >>> d = make_private_dirs(os.path.join(tempfile.mkdtemp(), "a", "b"))
    >>> oct(stat.S_IMODE(d.stat().st_mode)), oct(stat.S_IMODE(d.parent.stat().st_mode))
    ('0o700', '0o700')
    """
    target = Path(path)
    missing: list[Path] = []
    for p in (target, *target.parents):
        if p.is_dir():
            break
        missing.append(p)
    for p in reversed(missing):
        try:
            p.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:  # made meanwhile by another process: not ours to change
            if not p.is_dir():
                raise
            continue
        os.chmod(p, PRIVATE_DIR_MODE)  # mkdir's mode is masked by the umask
    return target


def create_private_file(path: str | os.PathLike[str]) -> bool:
    """Create ``path`` empty and 0600 unless it exists (then leave it as it is); True when created.

    >>> import tempfile, os, stat
    >>> p = os.path.join(tempfile.mkdtemp(), "c.sqlite")
    >>> create_private_file(p), oct(stat.S_IMODE(os.stat(p).st_mode)), create_private_file(p)
    (True, '0o600', False)
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE_MODE)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)  # the umask may have taken bits away (say 0o277)
    finally:
        os.close(fd)
    return True


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], mode: str = "wb", *, private: bool = False, **kwargs) -> Iterator[IO]:
    """Open a temp file beside ``path``; on success fsync and rename it over ``path``.

    On an exception the temp file is removed and ``path`` is left untouched. ``private``: the
    file is 0600 and the folders created for it 0700 (user data); else the file gets the usual
    ``0666 & ~umask``.
    """
    target = Path(path)
    if private:
        make_private_dirs(target.parent)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        # mkstemp makes 0600: kept for private files, else the normal permissions
        os.chmod(tmp, PRIVATE_FILE_MODE if private else 0o666 & ~_umask())
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    """The process umask, read without changing it where Linux shows it (setting it to 0 for a
    moment would let another thread create a world-writable file)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)  # the fallback: momentarily strict, never permissive
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, private: bool = False) -> None:
    with atomic_writer(path, "wb", private=private) as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    with atomic_writer(path, "w", encoding=encoding) as fh:
        fh.write(text)


def sha256_file(path: str | os.PathLike[str], *, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks.

    >>> import tempfile; p = tempfile.mktemp(); _ = open(p, "wb").write(b"abc")
    >>> sha256_file(p)[:12]
    'ba7816bf8f01'
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def printable_path(path: str | os.PathLike[str]) -> str:
    r"""A path as valid UTF-8 text for JSON, SQLite and HTML.

    File names are bytes on Linux; a name that is not UTF-8 (say Latin-1 ``caf\xe9``)
    decodes to lone surrogates, which no UTF-8 writer accepts. Those bytes become ``\xNN``.

    >>> printable_path(b"caf\xe9.jpg".decode("utf-8", "surrogateescape"))
    'caf\\xe9.jpg'
    >>> printable_path("ok ünïcödé.jpg")
    'ok ünïcödé.jpg'
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def printable(text: str) -> str:
    """``text`` with any lone surrogates escaped, so it encodes as UTF-8."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
