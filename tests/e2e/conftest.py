"""Helpers for running the ``pixsight`` CLI as a user would: a real subprocess."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "pixsight", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=full_env)


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def save_jpeg(path: Path, pixels: np.ndarray, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, "JPEG", quality=90, **kw)
    return path


def bomb_png() -> bytes:
    """A tiny PNG whose header claims 30000 x 30000 pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


@pytest.fixture()
def mixed_folder(tmp_path: Path) -> Path:
    """Good photos next to every kind of bad file a real folder has."""
    from skimage import data

    d = tmp_path / "mixed"
    save_jpeg(d / "cat.jpg", data.chelsea())
    save_jpeg(d / "sub" / "coffee.jpg", data.coffee())
    good = io.BytesIO()
    Image.fromarray(data.rocket()).save(good, "JPEG")
    (d / "truncated.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 3])
    (d / "empty.png").write_bytes(b"")
    (d / "notes.jpg").write_text("this is a text file with an image extension\n")
    (d / "drawing.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    (d / "bomb.png").write_bytes(bomb_png())
    (d / "readme.txt").write_text("not picked up by the folder walk")
    return d


def free_port() -> int:
    """A free TCP port on 127.0.0.1 for a real ``pixsight serve`` process."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(base: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Wait until the server at ``base`` answers /readyz 200; fail if it exits or times out."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early with {proc.returncode}: {proc.stderr.read()}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("server not ready in time")
