"""Uploaded bytes kept on disk so the UI can show uploads, under the upload's own file name:
``<db>.uploads/<sha[:2]>/<sha>/<safe name>.<ext>``.

The name the client sent is only a label: it is reduced to its last path component, stripped
of control and shell-special characters and capped, and the extension always follows the
sniffed format, so nothing a client sends can choose where the file lands or what it is
served as. The same content uploaded under another name is hard-linked, not copied. The
folders pixsight makes here are 0700 and the files 0600, whatever the umask.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> p = store_upload(root, b"abc", "PNG", name="../../holiday photo.jpeg")
>>> p.relative_to(root).parts[0], p.name, p.read_bytes()
('ba', 'holiday photo.png', b'abc')
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from pathlib import Path

from ..core.fileio import atomic_write_bytes, make_private_dirs

_CLEAN_MIMES = {"image/png": "png", "image/jpeg": "jpg"}

__all__ = ["clean_copy_path", "read_clean_copy", "safe_upload_name", "store_upload", "upload_path",
           "write_clean_copy"]

_EXT = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif",
        "PPM": "ppm"}
_SHA = re.compile(r"^[0-9a-f]{64}$")
_UNSAFE = re.compile(r"[^\w .,()+=@-]", re.UNICODE)
_MAX_STEM = 100


def _ext(fmt: str) -> str:
    return _EXT.get(fmt.upper(), re.sub(r"[^a-z0-9]", "", fmt.lower())[:8] or "bin")


def safe_upload_name(name: str | None, fmt: str) -> str:
    """A harmless file name for an upload called ``name`` whose content is ``fmt``.

    >>> safe_upload_name("C:\\\\Users\\\\me\\\\IMG_0001.JPG", "JPEG")
    'IMG_0001.jpg'
    >>> safe_upload_name("<img src=x onerror=alert(1)>.png", "PNG")
    '_img src=x onerror=alert(1)_.png'
    >>> safe_upload_name("..", "GIF"), safe_upload_name(None, "PNG")
    ('upload.gif', 'upload.png')
    """
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(ch for ch in unicodedata.normalize("NFC", base) if unicodedata.category(ch)[0] != "C")
    stem = os.path.splitext(base)[0] if "." in base.lstrip(".") else base
    stem = _UNSAFE.sub("_", stem).strip(" .")[:_MAX_STEM].strip(" .")
    return f"{stem or 'upload'}.{_ext(fmt)}"


def upload_path(root: str | os.PathLike[str], sha256: str, fmt: str, name: str | None = None) -> Path:
    """Where the upload with content ``sha256`` in format ``fmt`` (Pillow's name), sent as
    ``name``, lives."""
    if not _SHA.match(sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return Path(root) / sha256[:2] / sha256 / safe_upload_name(name, fmt)


def store_upload(root: str | os.PathLike[str], data: bytes, fmt: str, *, sha256: str | None = None,
                 name: str | None = None) -> Path:
    """Write ``data`` atomically under ``root`` (once per content and name); return the path."""
    sha = sha256 or hashlib.sha256(data).hexdigest()
    path = upload_path(root, sha, fmt, name)
    if path.is_file() and path.stat().st_size == len(data):
        return path
    folder = path.parent
    for other in sorted(folder.iterdir()) if folder.is_dir() else []:
        if other.is_file() and not other.name.startswith(".") and other.stat().st_size == len(data):
            try:
                os.link(other, path)  # same content under another name: no second copy
                return path
            except OSError:
                break
    make_private_dirs(path.parent)  # uploads are user data: folders 0700, files 0600 (SECURITY.md item 24)
    atomic_write_bytes(path, data, private=True)
    return path


def clean_copy_path(root: str | os.PathLike[str], sha256: str, mime: str) -> Path:
    """Where the metadata-free copy of image ``sha256`` (served by ``/v1/images/{sha}/file``)
    is cached: ``<root>/<sha[:2]>/<sha>/.clean.<ext>`` (a dot name: never taken for an upload)."""
    if not _SHA.match(sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return Path(root) / sha256[:2] / sha256 / f".clean.{_CLEAN_MIMES[mime]}"


def read_clean_copy(root: str | os.PathLike[str], sha256: str) -> tuple[bytes, str] | None:
    """``(bytes, mime)`` of the cached clean copy of ``sha256``, or ``None`` when there is none."""
    for mime in _CLEAN_MIMES:
        path = clean_copy_path(root, sha256, mime)
        try:
            if path.is_file() and not path.is_symlink():
                return path.read_bytes(), mime
        except OSError:
            continue
    return None


def write_clean_copy(root: str | os.PathLike[str], sha256: str, data: bytes, mime: str) -> Path:
    """Cache the clean copy of ``sha256`` atomically (folders 0700, the file 0600)."""
    path = clean_copy_path(root, sha256, mime)
    make_private_dirs(path.parent)
    atomic_write_bytes(path, data, private=True)
    return path
