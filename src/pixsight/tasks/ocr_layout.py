"""Reading order for detected text lines: deskew, columns, rows.

:func:`reading_order` sorts line quadrilaterals the way a person reads a page: the page's
skew (median line angle) is removed first, column gutters are found from the horizontal
projection of the lines, lines that cross a gutter (a title over two columns) split the
page into sections, and inside a section each column is read top to bottom, lines that
overlap vertically forming one row read left to right.

>>> import numpy as np
>>> boxes = np.float32([[300, 0, 500, 20], [0, 0, 200, 20], [0, 40, 200, 60]])
>>> polys = np.stack([boxes[:, [0, 1]], boxes[:, [2, 1]], boxes[:, [2, 3]], boxes[:, [0, 3]]], 1)
>>> [list(r) for r in reading_order(polys)]
[[1, 0], [2]]
"""

from __future__ import annotations

import numpy as np

__all__ = ["reading_order", "join_rows"]


def _deskewed(polygons: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per line: (x0, x1) and (y0, y1) intervals after removing the page skew, and heights."""
    p = polygons.astype(np.float64)
    top_vec = p[:, 1] - p[:, 0]
    widths = np.hypot(top_vec[:, 0], top_vec[:, 1])
    angles = np.arctan2(top_vec[:, 1], np.maximum(top_vec[:, 0], 1e-6))
    long_enough = widths > 2 * np.hypot(*(p[:, 3] - p[:, 0]).T)
    skew = float(np.median(angles[long_enough])) if long_enough.any() else 0.0
    c, s = np.cos(-skew), np.sin(-skew)
    xs = p[..., 0] * c - p[..., 1] * s
    ys = p[..., 0] * s + p[..., 1] * c
    x = np.stack([xs.min(1), xs.max(1)], 1)
    y = np.stack([ys.min(1), ys.max(1)], 1)
    return x, y, np.maximum(y[:, 1] - y[:, 0], 1.0)


def _gutters(x: np.ndarray, height: float) -> list[float]:
    """x positions of column gutters: wide empty vertical strips with >= 3 lines each side."""
    n = len(x)
    if n < 6:
        return []
    lo, hi = float(x[:, 0].min()), float(x[:, 1].max())
    step = max(1.0, height / 4)
    grid = np.arange(lo, hi, step)
    crossing = ((x[:, 0][None, :] < grid[:, None]) & (x[:, 1][None, :] > grid[:, None])).sum(1)
    free = crossing <= max(2, int(0.15 * n))
    cuts: list[float] = []
    i = 0
    while i < len(grid):
        if not free[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(grid) and free[j + 1]:
            j += 1
        gap_w = (j - i + 1) * step
        mid = float(grid[(i + j) // 2])
        left = int((x[:, 1] <= mid).sum())
        right = int((x[:, 0] >= mid).sum())
        if gap_w >= 1.2 * height and left >= 3 and right >= 3:
            cuts.append(mid)
        i = j + 1
    return cuts


def _rows(idx: np.ndarray, x: np.ndarray, y: np.ndarray) -> list[list[int]]:
    """Group lines that overlap vertically by >= half the smaller height; rows top to bottom."""
    order = idx[np.argsort((y[idx, 0] + y[idx, 1]) / 2, kind="stable")]
    rows: list[list[int]] = []
    row_y = (0.0, 0.0)
    for i in order:
        y0, y1 = y[i]
        if rows:
            overlap = min(y1, row_y[1]) - max(y0, row_y[0])
            if overlap >= 0.5 * min(y1 - y0, row_y[1] - row_y[0]):
                rows[-1].append(int(i))
                continue
        rows.append([int(i)])
        row_y = (float(y0), float(y1))
    return [sorted(r, key=lambda k: x[k, 0]) for r in rows]


def reading_order(polygons: np.ndarray) -> list[list[int]]:
    """Rows of line indices in reading order (see the module docstring).

    Args:
        polygons: (N, 4, 2) line quadrilaterals, corners clockwise from top-left.

    Returns:
        a list of rows; each row lists indices into ``polygons``, left to right. A column
        change starts a new row.
    """
    polygons = np.asarray(polygons, dtype=np.float32).reshape(-1, 4, 2)
    n = len(polygons)
    if n == 0:
        return []
    x, y, h = _deskewed(polygons)
    height = float(np.median(h))
    cuts = _gutters(x, height)
    if not cuts:
        return _rows(np.arange(n), x, y)
    bounds = [-np.inf, *cuts, np.inf]
    column = np.full(n, -1)
    for c in range(len(bounds) - 1):
        inside = (x[:, 0] >= bounds[c]) & (x[:, 1] <= bounds[c + 1])
        column[inside & (column < 0)] = c
    spanning = np.flatnonzero(column < 0)
    spanning = spanning[np.argsort(y[spanning, 0], kind="stable")]
    out: list[list[int]] = []
    top = -np.inf
    for stop in [*spanning.tolist(), None]:
        bottom = np.inf if stop is None else float((y[stop, 0] + y[stop, 1]) / 2)
        centre = (y[:, 0] + y[:, 1]) / 2
        in_section = (column >= 0) & (centre >= top) & (centre < bottom)
        for c in range(len(bounds) - 1):
            out.extend(_rows(np.flatnonzero(in_section & (column == c)), x, y))
        if stop is not None:
            out.extend(_rows(np.array([stop]), x, y))
        top = bottom
    return [r for r in out if r]


def join_rows(rows: list[list[int]], texts: list[str]) -> str:
    """Full text: a row's lines joined by spaces, rows by newlines.

    >>> join_rows([[1, 0], [2]], ["b", "a", "c"])
    'a b\\nc'
    """
    return "\n".join(" ".join(texts[i] for i in row if texts[i]) for row in rows).strip("\n")
