"""Keep the C heap from creeping up over long runs (glibc only; a no-op elsewhere).

Many threads (decoders, ONNX Runtime, stages) make glibc keep one malloc arena per thread
and hold on to freed pages; over thousands of images of varied sizes the resident size
creeps up. Limiting arenas and returning free pages after batches keeps peak memory flat.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

__all__ = ["limit_arenas", "trim"]

log = logging.getLogger(__name__)
_M_ARENA_MAX = -8


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)
        lib.malloc_trim  # noqa: B018 - glibc only
        return lib
    except (OSError, AttributeError):
        return None


def limit_arenas(n: int = 2) -> None:
    """Cap glibc malloc arenas for threads created from now on."""
    lib = _libc()
    if lib is not None:
        lib.mallopt(ctypes.c_int(_M_ARENA_MAX), ctypes.c_int(n))


def trim() -> None:
    """Return freed heap pages to the OS."""
    lib = _libc()
    if lib is not None:
        lib.malloc_trim(ctypes.c_size_t(0))
