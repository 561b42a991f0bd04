"""Plots as PNG bytes (matplotlib, headless Agg canvas; no global pyplot state).

Training curves, PR curves, reliability diagrams and confusion matrices are all drawn here so
that run folders, eval reports and the web UI look the same.

>>> png = line_chart({"train": [(1, 1.0), (2, 0.5)]}, title="loss", xlabel="epoch", ylabel="loss")
>>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
True
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["figure", "to_png", "line_chart", "pr_curves", "reliability_diagram", "confusion_matrix", "group_bars",
           "data_uri", "save_png"]


def figure(width: float = 6.0, height: float = 3.6) -> tuple[Any, Any]:
    """A fresh ``(Figure, Axes)`` on an Agg canvas (thread-safe: never touches pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def to_png(fig: Any) -> bytes:
    """Render ``fig`` to PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    ylim: tuple[float, float] | None = None,
    logy: bool = False,
) -> bytes:
    """One line per named series of ``(x, y)`` points; ``None``/NaN y values are gaps."""
    fig, ax = figure()
    for name, points in series.items():
        pts = [(x, float("nan") if y is None else y) for x, y in points]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker="o" if len(pts) < 30 else None, markersize=3, label=str(name))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    return to_png(fig)


def pr_curves(curves: Mapping[str, Mapping[str, Sequence[float]]], *, title: str = "precision-recall") -> bytes:
    """One precision-recall curve per class: ``{name: {"recall": [...], "precision": [...]}}``.

    >>> pr_curves({"cat": {"recall": [0, 0.5, 1], "precision": [1, 0.8, 0.4]}})[:4] == b"\\x89PNG"
    True
    """
    fig, ax = figure(5.2, 4.0)
    for name, c in curves.items():
        ax.plot(c["recall"], c["precision"], label=str(name))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize="small", loc="lower left")
    return to_png(fig)


def reliability_diagram(reliability: Mapping[str, Sequence[Any]], *, ece: float | None = None) -> bytes:
    """Calibration plot from ``reliability_bins`` output: accuracy per confidence bin against
    the diagonal, bar width = bin, with the sample count per bin as a histogram below.

    >>> r = {"edges": [0, 0.5, 1], "count": [2, 3], "confidence": [0.3, 0.8], "accuracy": [0.5, 0.6]}
    >>> reliability_diagram(r, ece=0.1)[:4] == b"\\x89PNG"
    True
    """
    fig = figure(5.2, 4.6)[0]
    fig.clear()
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    edges = list(reliability["edges"])
    lefts = edges[:-1]
    widths = [b - a for a, b in zip(edges[:-1], edges[1:])]
    acc = [0.0 if v is None else v for v in reliability["accuracy"]]
    conf = [0.0 if v is None else v for v in reliability["confidence"]]
    top.bar(lefts, acc, width=widths, align="edge", edgecolor="black", alpha=0.8, label="accuracy")
    top.bar(lefts, [c - a if n else 0 for c, a, n in zip(conf, acc, reliability["count"])], bottom=acc,
            width=widths, align="edge", color="red", alpha=0.25, label="gap to confidence")
    top.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title("reliability" + (f" (ECE {ece:.3f})" if ece is not None else ""))
    top.legend(fontsize="small", loc="upper left")
    bottom.bar(lefts, reliability["count"], width=widths, align="edge", color="grey")
    bottom.set_xlabel("top-1 confidence")
    bottom.set_ylabel("images")
    bottom.set_xlim(0, 1)
    return to_png(fig)


def confusion_matrix(matrix: Sequence[Sequence[float]], labels: Sequence[str], *, normalize: bool = True,
                     title: str = "confusion matrix") -> bytes:
    """Heatmap of a confusion matrix (rows = truth, columns = prediction); ``normalize``
    shows each row as fractions of that class (the counts are written in the cells when small).

    >>> confusion_matrix([[3, 1], [0, 4]], ["a", "b"])[:4] == b"\\x89PNG"
    True
    """
    import numpy as np

    m = np.asarray(matrix, dtype=float)
    n = len(labels)
    shown = m / np.maximum(m.sum(axis=1, keepdims=True), 1) if normalize else m
    side = min(3.0 + 0.35 * n, 14.0)
    fig, ax = figure(side + 1.0, side)
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, shrink=0.8)
    ticks = list(range(n))
    ax.set_xticks(ticks, [str(v) for v in labels], rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
    ax.set_yticks(ticks, [str(v) for v in labels])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=8,
                        color="white" if shown[i, j] > 0.5 * (shown.max() or 1) else "black")
    return to_png(fig)


def group_bars(values: Mapping[str, Mapping[str, float | None]], *, title: str = "metrics by group") -> bytes:
    """Grouped bars: ``{metric: {group: value}}`` — one cluster per metric, one bar per group.

    >>> group_bars({"map": {"day": 0.6, "night": 0.4}})[:4] == b"\\x89PNG"
    True
    """
    metrics = list(values)
    groups = sorted({g for v in values.values() for g in v})
    fig, ax = figure(max(5.0, 1.2 * len(metrics) * max(1, len(groups)) / 2), 3.6)
    width = 0.8 / max(len(groups), 1)
    for k, g in enumerate(groups):
        xs = [i + (k - (len(groups) - 1) / 2) * width for i in range(len(metrics))]
        ys = [values[m].get(g) for m in metrics]
        ax.bar(xs, [0.0 if y is None else y for y in ys], width=width, label=str(g))
    ax.set_xticks(range(len(metrics)), metrics)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    if groups:
        ax.legend(fontsize="small", ncols=min(4, len(groups)))
    return to_png(fig)


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for embedding in a self-contained HTML page."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def save_png(png: bytes, path: str | Path) -> Path:
    """Write PNG bytes atomically."""
    from ..core.fileio import atomic_writer

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(p, "wb") as f:
        f.write(png)
    return p
