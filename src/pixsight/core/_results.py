"""Validation helpers and the row protocol shared by the result types (:mod:`pixsight.core.types`).

>>> _as_array([[1, 2, 3, 4]], np.float32, (4,), "boxes").shape
(1, 4)
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Sequence, TypeVar

import numpy as np

from .errors import PixsightError

__all__ = ["ResultValidationError", "RowResult"]

_R = TypeVar("_R", bound="RowResult")


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


class RowResult:
    """Mixin for a frozen result dataclass of parallel per-row fields (one row per label,
    line, face, ...): ``len(result)`` and numpy-style indexing that returns the same type.

    ``_rows`` names the per-row fields: numpy arrays, lists, ``None`` (absent) or a dict of
    per-row lists (``data``). Indexing with an int, a slice, a boolean mask or an index
    array keeps every other field (``model`` for instance) as it is.

    >>> from pixsight.core.types import Faces
    >>> f = Faces(boxes=[[0, 0, 4, 4], [1, 1, 3, 3]], scores=[0.3, 0.8], model="dlib-faces@1")
    >>> strong = f[f.scores > 0.5]
    >>> len(strong), strong.scores.tolist(), strong.model
    (1, [0.800000011920929], 'dlib-faces@1')
    """

    _rows: ClassVar[tuple[str, ...]] = ()

    def __len__(self) -> int:
        return len(getattr(self, self._rows[0]))

    def _take(self, index: int | slice | Sequence[int] | np.ndarray) -> dict[str, Any]:
        """The per-row fields restricted to ``index`` (as keyword arguments for ``replace``)."""
        idx = np.atleast_1d(np.arange(len(self))[index])
        out: dict[str, Any] = {}
        for name in self._rows:
            value = getattr(self, name)
            if value is None:
                out[name] = None
            elif isinstance(value, np.ndarray):
                out[name] = value[idx]
            elif isinstance(value, dict):
                out[name] = {key: [rows[i] for i in idx] for key, rows in value.items()}
            else:
                out[name] = [value[i] for i in idx]
        return out

    def __getitem__(self: _R, index: int | slice | Sequence[int] | np.ndarray) -> _R:
        return dataclasses.replace(self, **self._take(index))  # type: ignore[type-var]
