"""Uploaded bytes kept on disk so the UI can show uploads: ``<db>.uploads/<sha[:2]>/<sha>.<ext>``.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> p = store_upload(root, b"abc", "PNG")
>>> p.relative_to(root).parts[0], p.suffix, p.read_bytes()
('ba', '.png', b'abc')
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from ..core.fileio import atomic_write_bytes

__all__ = ["store_upload", "upload_path"]

_EXT = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif"}
_SHA = re.compile(r"^[0-9a-f]{64}$")


def upload_path(root: str | os.PathLike[str], sha256: str, fmt: str) -> Path:
    """Where the upload with content ``sha256`` in format ``fmt`` (Pillow's name) lives."""
    if not _SHA.match(sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    ext = _EXT.get(fmt.upper(), re.sub(r"[^a-z0-9]", "", fmt.lower())[:8] or "bin")
    return Path(root) / sha256[:2] / f"{sha256}.{ext}"


def store_upload(root: str | os.PathLike[str], data: bytes, fmt: str, *, sha256: str | None = None) -> Path:
    """Write ``data`` atomically under ``root`` (once: same content, same file); return the path."""
    sha = sha256 or hashlib.sha256(data).hexdigest()
    path = upload_path(root, sha, fmt)
    if not (path.is_file() and path.stat().st_size == len(data)):
        atomic_write_bytes(path, data)
    return path
