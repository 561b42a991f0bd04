"""Validation helpers shared by the result types (:mod:`pixsight.core.types`).

>>> _as_array([[1, 2, 3, 4]], np.float32, (4,), "boxes").shape
(1, 4)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import PixsightError

__all__ = ["ResultValidationError"]


class ResultValidationError(PixsightError, ValueError):
    """A result object was built with inconsistent arrays."""


def _as_array(value: Any, dtype: Any, shape_tail: tuple[int, ...], name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=dtype)
    if arr.size == 0:
        arr = arr.reshape((0, *shape_tail))
    if arr.ndim != 1 + len(shape_tail) or (shape_tail and arr.shape[1:] != shape_tail):
        raise ResultValidationError(f"{name}: expected shape (N, {shape_tail}), got {arr.shape}")
    return arr


def _check_scores(scores: np.ndarray, name: str) -> None:
    if scores.size and (not np.all(np.isfinite(scores)) or scores.min() < -1e-6 or scores.max() > 1 + 1e-6):
        raise ResultValidationError(f"{name}: scores must be finite and in [0, 1]")


def _check_len(n: int, name: str, other: np.ndarray | list, other_name: str) -> None:
    if len(other) != n:
        raise ResultValidationError(f"{name}: {other_name} has {len(other)} rows, expected {n}")


def _r(x: float, nd: int = 4) -> float:
    return round(float(x), nd)
