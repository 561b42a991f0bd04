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

__all__ = ["figure", "to_png", "line_chart", "data_uri", "save_png"]


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
