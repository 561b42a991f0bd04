"""Inline SVG charts for HTML pages without scripts: horizontal bars and histograms.

Each function returns :class:`markupsafe.Markup` rendered by its own autoescaping Jinja2
template, so labels that came from files are escaped and the result can be inserted into an
autoescaped page as is. Style the marks with the ``bar`` and ``hist`` CSS classes.

>>> svg = bar_chart_svg({"<b>cat</b>": 3, "dog": 1})
>>> "&lt;b&gt;cat&lt;/b&gt;" in svg and "<b>" not in svg
True
>>> 'class="hist"' in histogram_svg([1, 4, 2], [0.0, 1.0, 2.0, 3.0], label="box width")
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup

__all__ = ["BAR_WIDTH", "HIST_HEIGHT", "HIST_WIDTH", "bar_chart_svg", "histogram_svg"]

#: Length of the longest bar, pixels.
BAR_WIDTH = 320
#: Size of a histogram's plot area, pixels.
HIST_WIDTH, HIST_HEIGHT = 360, 140
_ROW_H, _LABEL_W = 18, 140

_BARS = """{% if rows %}<svg width="{{ width }}" height="{{ height }}" viewBox="0 0 {{ width }} {{ height }}" role="img">
{% for r in rows %}<text x="{{ lw - 6 }}" y="{{ r.y + 13 }}" text-anchor="end">{{ r.label }}</text>\
<rect class="bar" x="{{ lw }}" y="{{ r.y + 2 }}" width="{{ r.w }}" height="{{ rh - 4 }}"></rect>\
<text x="{{ lw + r.w + 4 }}" y="{{ r.y + 13 }}">{{ r.value }}</text>
{% endfor %}</svg>{% endif %}"""

_HIST = """<svg width="{{ hw }}" height="{{ hh + 30 }}" viewBox="0 0 {{ hw }} {{ hh + 30 }}" role="img" \
aria-label="{{ label }} histogram">
{% for b in bins %}<rect class="hist" x="{{ b.x }}" y="{{ b.y }}" width="{{ b.w }}" height="{{ b.h }}"><title>{{ b.tip }}</title></rect>
{% endfor %}<text x="0" y="{{ hh + 14 }}">{{ lo }}</text><text x="{{ hw }}" y="{{ hh + 14 }}" text-anchor="end">{{ hi }}</text>
<text x="0" y="{{ hh + 28 }}" class="muted">max bin {{ top }}</text></svg>"""

_env = Environment(autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True)
_BARS_T, _HIST_T = _env.from_string(_BARS), _env.from_string(_HIST)


def bar_chart_svg(values: Mapping[str, int | float]) -> Markup:
    """One horizontal bar per item (label, bar scaled to the largest value, value); empty for
    no items. Labels are cut to 24 characters."""
    top = max(values.values(), default=0) or 1
    rows = [{"label": str(k)[:24], "value": v, "y": i * _ROW_H, "w": round(BAR_WIDTH * v / top, 1)}
            for i, (k, v) in enumerate(values.items())]
    return Markup(_BARS_T.render(rows=rows, width=_LABEL_W + BAR_WIDTH + 60, height=len(rows) * _ROW_H,
                                 lw=_LABEL_W, rh=_ROW_H))


def histogram_svg(counts: Sequence[int], edges: Sequence[float], *, label: str) -> Markup:
    """A histogram of ``counts`` between ``edges`` (``len(counts) + 1`` values), each bin with a
    tooltip, the range below it and the largest bin's count."""
    top = max(counts, default=0) or 1
    w = HIST_WIDTH / max(len(counts), 1)
    bins = [{"x": round(i * w, 1), "w": round(max(w - 1, 1), 1), "h": round(HIST_HEIGHT * c / top, 1),
             "y": round(HIST_HEIGHT - HIST_HEIGHT * c / top, 1), "tip": f"{edges[i]:g} to {edges[i + 1]:g}: {c}"}
            for i, c in enumerate(counts)]
    return Markup(_HIST_T.render(bins=bins, lo=f"{edges[0]:g}", hi=f"{edges[-1]:g}", top=top, label=label,
                                 hw=HIST_WIDTH, hh=HIST_HEIGHT))
