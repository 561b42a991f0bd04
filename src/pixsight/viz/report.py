"""Self-contained HTML report: one card per image, a summary on top.

The page has no external references (inline CSS, a small inline filter script, images as
``data:`` URIs) and a Content-Security-Policy that allows nothing else. Every piece of
text that came from a file or a model (file names, labels, OCR text, error messages) goes
through Jinja2 autoescaping (SECURITY.md items 5 and 16). Thumbnails are re-encoded
overlays, so no EXIF/GPS from the source reaches the report.

:class:`ReportWriter` streams: each card is rendered and written to a temp file as soon as
it is added, only running counters are kept in memory, and :meth:`ReportWriter.close`
writes the summary followed by the cards into a temp file beside the target that is
renamed into place (item 20).

>>> import tempfile, os, numpy as np
>>> from pixsight.core.types import Analysis
>>> path = os.path.join(tempfile.mkdtemp(), "report.html")
>>> with ReportWriter(path, title="demo") as report:
...     report.add(Analysis(path="a.jpg", width=8, height=8), np.zeros((8, 8, 3), np.uint8))
>>> "a.jpg" in open(path, encoding="utf-8").read()
True
"""

from __future__ import annotations

import base64
import io
import logging
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, Iterable

import numpy as np
from jinja2 import Environment, StrictUndefined

from pixsight.core.errors import PixsightError
from pixsight.core.fileio import atomic_writer
from pixsight.core.types import Analysis, Classification, Detections, Faces, Segmentation, TextLines

from .annotate import draw_analysis

__all__ = ["ReportWriter", "write_report"]

log = logging.getLogger(__name__)

_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'")
_MAX_TEXT = 600  # OCR characters shown on a card
_MAX_SEARCH = 2000  # characters of a card the filter can search
_MAX_HIST = 30  # labels shown in the histogram

_CSS = """
*{box-sizing:border-box}body{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:#1d2330;background:#f3f4f7}header{background:#1d2330;color:#fff;padding:16px 24px}
h1{margin:0 0 4px;font-size:22px}.muted{color:#6b7280}header .muted{color:#b8bfcc}
main{padding:16px 24px}section.summary{display:flex;flex-wrap:wrap;gap:16px;margin-bottom:16px}
.panel{background:#fff;border:1px solid #d9dde5;border-radius:8px;padding:12px 16px;min-width:220px}
.panel h2{font-size:15px;margin:0 0 8px}.stats{display:flex;gap:18px;flex-wrap:wrap}
.stat b{display:block;font-size:24px}table{border-collapse:collapse}td,th{padding:2px 10px 2px 0;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}.bar{background:#3b82f6;height:10px;border-radius:3px;min-width:2px}
.toolbar{display:flex;gap:8px;align-items:center;flex-wrap:wrap;margin:8px 0 16px}
.toolbar button{border:1px solid #9aa3b2;background:#fff;border-radius:6px;padding:5px 12px;cursor:pointer}
.toolbar button.on{background:#1d2330;color:#fff;border-color:#1d2330}
.toolbar input{padding:6px 10px;border:1px solid #9aa3b2;border-radius:6px;min-width:260px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:14px}
.card{background:#fff;border:1px solid #d9dde5;border-radius:8px;overflow:hidden;display:flex;flex-direction:column}
.card[hidden]{display:none}.card.review{border:2px solid #f59e0b}.card.error{border:2px solid #dc2626}
.thumb{background:#11151c;display:flex;align-items:center;justify-content:center;min-height:120px}
.thumb img{max-width:100%;max-height:480px;display:block}.thumb .none{color:#b8bfcc;padding:40px 0}
.body{padding:10px 12px;overflow-wrap:anywhere}.name{font-weight:600}.path{font-size:12px}
.badge{display:inline-block;font-size:11px;font-weight:700;border-radius:4px;padding:1px 6px;margin:2px 4px 2px 0}
.b-ok{background:#dcfce7;color:#166534}.b-error{background:#fee2e2;color:#991b1b}.b-review{background:#fef3c7;color:#92400e}
.err{background:#fee2e2;color:#7f1d1d;border-radius:4px;padding:6px 8px;margin:6px 0;white-space:pre-wrap}
.ocr{background:#f3f4f7;border-radius:4px;padding:6px 8px;margin:6px 0;white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:12px}
ul.labels{margin:4px 0;padding-left:18px}.timing{font-size:12px}
"""

_JS = """
(function(){var q=document.getElementById('q'),mode='all',cards=document.querySelectorAll('.card'),
btns=document.querySelectorAll('button[data-mode]'),shown=document.getElementById('shown');
function apply(){var s=q.value.trim().toLowerCase(),n=0;cards.forEach(function(c){
var m=mode==='all'||(mode==='review'&&c.dataset.review==='1')||(mode==='error'&&c.dataset.status==='error');
var ok=m&&(!s||c.dataset.search.indexOf(s)>=0);c.hidden=!ok;if(ok){n++;}});shown.textContent=String(n);}
btns.forEach(function(b){b.addEventListener('click',function(){mode=b.dataset.mode;
btns.forEach(function(x){x.classList.toggle('on',x===b);});apply();});});q.addEventListener('input',apply);apply();})();
"""

_HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{ title }}</title><style>{{ css }}</style></head><body>
<header><h1>{{ title }}</h1><div class="muted">{{ s.images }} images · generated {{ generated }} by pixsight</div></header>
<main><section class="summary">
<div class="panel"><h2>Images</h2><div class="stats">
<div class="stat"><b>{{ s.images }}</b>total</div><div class="stat"><b>{{ s.ok }}</b>ok</div>
<div class="stat"><b>{{ s.errors }}</b>errors</div><div class="stat"><b>{{ s.needs_review }}</b>needs review</div>
</div></div>
{% if tasks %}<div class="panel"><h2>Tasks</h2><table><tr><th>task</th><th>images</th><th>failed</th><th>found</th></tr>
{% for t in tasks %}<tr><td>{{ t.name }}</td><td class="n">{{ t.done }}</td><td class="n">{{ t.failed }}</td><td class="n">{{ t.found }}</td></tr>
{% endfor %}</table></div>{% endif %}
{% if timings %}<div class="panel"><h2>Timings (ms)</h2><table><tr><th>step</th><th>total</th><th>mean</th></tr>
{% for t in timings %}<tr><td>{{ t.name }}</td><td class="n">{{ "%.1f"|format(t.total) }}</td><td class="n">{{ "%.1f"|format(t.mean) }}</td></tr>
{% endfor %}</table></div>{% endif %}
{% if labels %}<div class="panel"><h2>Top labels{% if more_labels %} (top {{ labels|length }} of {{ more_labels + labels|length }}){% endif %}</h2><table>
{% for name, count, pct in labels %}<tr><td>{{ name }}</td><td class="n">{{ count }}</td><td><div class="bar" style="width:{{ pct }}px"></div></td></tr>
{% endfor %}</table></div>{% endif %}
{% if objects %}<div class="panel"><h2>Objects detected</h2><table>
{% for name, count in objects %}<tr><td>{{ name }}</td><td class="n">{{ count }}</td></tr>
{% endfor %}</table></div>{% endif %}
{% if models %}<div class="panel"><h2>Models</h2><table>
{% for (task, model), count in models %}<tr><td>{{ task }}</td><td>{{ model }}</td><td class="n">{{ count }}</td></tr>
{% endfor %}</table></div>{% endif %}
</section>
<div class="toolbar"><button type="button" data-mode="all" class="on">All</button>
<button type="button" data-mode="review">Needs review ({{ s.needs_review }})</button>
<button type="button" data-mode="error">Errors ({{ s.errors }})</button>
<input id="q" type="search" placeholder="Filter by file name, label or text" aria-label="filter">
<span class="muted"><span id="shown">{{ s.images }}</span> shown</span></div>
<div class="grid">
"""

_CARD = """<article class="card{% if c.status == 'error' %} error{% elif c.review %} review{% endif %}" \
data-status="{{ c.status }}" data-review="{{ '1' if c.review else '0' }}" data-search="{{ c.search }}">
<div class="thumb">{% if c.thumb %}<img src="{{ c.thumb }}" alt="{{ c.name }}" loading="lazy">\
{% else %}<div class="none">no preview</div>{% endif %}</div>
<div class="body"><div class="name">{{ c.name }}</div><div class="path muted">{{ c.path }}</div>
<div>{% if c.status == 'error' %}<span class="badge b-error">error</span>{% else %}<span class="badge b-ok">ok</span>{% endif %}\
{% if c.review %}<span class="badge b-review">needs review</span>{% endif %}\
{% if c.size %}<span class="muted">{{ c.size }}</span>{% endif %}</div>
{% if c.error %}<div class="err">{{ c.error }}</div>{% endif %}
{% if c.reasons %}<div class="muted">review: {{ c.reasons|join(", ") }}</div>{% endif %}
{% if c.labels %}<ul class="labels">{% for label, score in c.labels %}<li>{{ label }} <span class="muted">{{ "%.0f"|format(score * 100) }}%</span></li>{% endfor %}</ul>{% endif %}
{% if c.objects is not none %}<div>objects: {% if c.objects %}{% for name, n in c.objects %}{{ name }} ×{{ n }}{% if not loop.last %}, {% endif %}{% endfor %}{% else %}none{% endif %}</div>{% endif %}
{% if c.segments is not none %}<div>segments: {% if c.segments %}{% for name, frac in c.segments %}{{ name }} {{ "%.1f"|format(frac * 100) }}%{% if not loop.last %}, {% endif %}{% endfor %}{% else %}background only{% endif %}</div>{% endif %}
{% if c.faces is not none %}<div>faces: {{ c.faces }}</div>{% endif %}
{% if c.ocr is not none %}<div>text lines: {{ c.ocr_lines }}</div>{% if c.ocr %}<div class="ocr">{{ c.ocr }}</div>{% endif %}{% endif %}
{% for task, msg in c.task_errors %}<div class="err">{{ task }} failed: {{ msg }}</div>{% endfor %}
{% if c.timings %}<div class="timing muted">{% for k, v in c.timings %}{{ k }} {{ "%.0f"|format(v) }} ms{% if not loop.last %} · {% endif %}{% endfor %}</div>{% endif %}
</div></article>
"""

_TAIL = """</div></main><script>{{ js }}</script></body></html>
"""

_env = Environment(autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True)
_HEAD_T, _CARD_T, _TAIL_T = (_env.from_string(t) for t in (_HEAD, _CARD, _TAIL))


@dataclass
class _Stats:
    """Running totals; size is bounded by the number of distinct tasks, labels and models."""

    images: int = 0
    ok: int = 0
    errors: int = 0
    needs_review: int = 0
    task_done: Counter[str] = field(default_factory=Counter)
    task_failed: Counter[str] = field(default_factory=Counter)
    task_found: Counter[str] = field(default_factory=Counter)
    labels: Counter[str] = field(default_factory=Counter)
    objects: Counter[str] = field(default_factory=Counter)  # detected objects per label
    models: Counter[tuple[str, str]] = field(default_factory=Counter)
    time_total: Counter[str] = field(default_factory=Counter)
    time_n: Counter[str] = field(default_factory=Counter)

    def add(self, a: Analysis) -> None:
        self.images += 1
        self.errors += a.status == "error"
        self.ok += a.status == "ok"
        self.needs_review += bool(a.needs_review)
        for task, result in a.results.items():
            self.task_done[task] += 1
            self.task_found[task] += len(result) if hasattr(result, "__len__") else 1
        for task in a.task_errors:
            self.task_failed[task] += 1
        cls = a.results.get("classify")
        if isinstance(cls, Classification) and cls.top_label is not None:
            self.labels[cls.top_label] += 1
        dets = a.results.get("detect")
        if isinstance(dets, Detections):
            self.objects.update(dets.labels)
        for task, model in a.models.items():
            self.models[(str(task), str(model))] += 1
        for step, ms in a.timings_ms.items():
            self.time_total[step] += float(ms)
            self.time_n[step] += 1


def _thumbnail(image: np.ndarray, analysis: Analysis, side: int) -> str | None:
    """The overlay as a metadata-free JPEG ``data:`` URI, or ``None`` if it cannot be drawn."""
    try:
        overlay = draw_analysis(image, analysis, max_side=side)
    except (PixsightError, ValueError, TypeError, OSError) as err:
        log.warning("report: no thumbnail for %s: %s", analysis.path, err)
        return None
    buf = io.BytesIO()
    overlay.save(buf, format="JPEG", quality=80, subsampling="4:4:4")  # crisp coloured strokes
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _card_context(a: Analysis, thumb: str | None) -> dict[str, Any]:
    cls, faces, ocr = a.results.get("classify"), a.results.get("faces"), a.results.get("ocr")
    labels = list(zip(cls.labels[:3], (float(s) for s in cls.scores[:3]))) if isinstance(cls, Classification) else []
    dets, seg = a.results.get("detect"), a.results.get("segment")
    objects = list(dets.counts().items()) if isinstance(dets, Detections) else None
    segments = list(seg.coverage().items()) if isinstance(seg, Segmentation) else None
    text = ocr.text if isinstance(ocr, TextLines) else None
    error = None
    if a.status == "error" and a.error:
        error = f"{a.error.get('type', 'Error')}: {a.error.get('message', '')}"
    task_errors = [(t, str((e or {}).get("message", e))) for t, e in a.task_errors.items()]
    name = os.path.basename(a.path.replace("\\", "/")) or a.path
    search = " ".join([a.path, *(lbl for lbl, _ in labels), *(n for n, _ in objects or ()), *(n for n, _ in segments or ()),
                       text or "", error or "", *a.review_reasons,
                       *(m for _, m in task_errors)])
    return {
        "status": a.status,
        "review": bool(a.needs_review),
        "thumb": thumb,
        "name": name,
        "path": a.path,
        "size": f"{a.width}×{a.height}" if a.width and a.height else "",
        "error": error,
        "reasons": list(a.review_reasons),
        "labels": labels,
        "faces": len(faces) if isinstance(faces, Faces) else None,
        "objects": objects,
        "segments": segments,
        "ocr": None if text is None else (text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "…"),
        "ocr_lines": len(ocr) if isinstance(ocr, TextLines) else 0,
        "task_errors": task_errors,
        "timings": [(k, float(v)) for k, v in a.timings_ms.items()],
        "search": " ".join(search.split())[:_MAX_SEARCH].lower(),
    }


class ReportWriter:
    """Stream analyses into a self-contained HTML report at ``path``.

    Use it as a context manager; on a clean exit the report is written, on an exception
    nothing is written and any existing file at ``path`` is left untouched.

    Args:
        path: the ``.html`` file to write (its folder is created).
        title: the page title (escaped like every other text).
        thumb_side: longest side of the overlay thumbnails in pixels.

    Example:
        >>> import tempfile, os
        >>> from pixsight.core.types import Analysis
        >>> p = os.path.join(tempfile.mkdtemp(), "r.html")
        >>> with ReportWriter(p) as rw:
        ...     rw.add(Analysis(path="bad.png", status="error",
        ...                     error={"type": "ImageDecodeError", "message": "truncated"}), None)
        >>> "ImageDecodeError: truncated" in open(p, encoding="utf-8").read()
        True
    """

    def __init__(self, path: str | os.PathLike[str], *, title: str = "pixsight report", thumb_side: int = 480) -> None:
        if thumb_side < 16:
            raise ValueError(f"thumb_side must be >= 16, got {thumb_side}")
        self.path = Path(path)
        self.title = title
        self.thumb_side = thumb_side
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._stats = _Stats()
        # Cards go to an anonymous temp file beside the target (same filesystem, no leftovers).
        self._cards = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace", dir=self.path.parent)
        self._closed = False

    @property
    def count(self) -> int:
        """How many analyses were added so far."""
        return self._stats.images

    def add(self, analysis: Analysis, image: np.ndarray | None = None) -> None:
        """Render one card (overlay thumbnail, labels, text, errors) and append it."""
        if self._closed:
            raise PixsightError("ReportWriter is closed; create a new one to write another report",
                                path=str(self.path))
        thumb = _thumbnail(image, analysis, self.thumb_side) if image is not None else None
        self._cards.write(_CARD_T.render(c=_card_context(analysis, thumb)))
        self._stats.add(analysis)

    def _head(self) -> str:
        s = self._stats
        tasks = [{"name": t, "done": s.task_done[t], "failed": s.task_failed[t], "found": s.task_found[t]}
                 for t in sorted(set(s.task_done) | set(s.task_failed))]
        timings = [{"name": k, "total": s.time_total[k], "mean": s.time_total[k] / s.time_n[k]}
                   for k in sorted(s.time_total)]
        top = s.labels.most_common(_MAX_HIST)
        peak = top[0][1] if top else 1
        labels = [(name, n, max(2, round(160 * n / peak))) for name, n in top]
        return _HEAD_T.render(
            csp=_CSP, css=_CSS, title=self.title, s=s, tasks=tasks, timings=timings, labels=labels,
            more_labels=max(0, len(s.labels) - len(top)), models=sorted(s.models.items()),
            objects=s.objects.most_common(_MAX_HIST),
            generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        )

    def close(self) -> Path:
        """Write summary + cards to ``path`` atomically and return it (idempotent)."""
        if self._closed:
            return self.path
        try:
            with atomic_writer(self.path, "w", encoding="utf-8", errors="replace") as fh:
                fh.write(self._head())
                self._cards.seek(0)
                shutil.copyfileobj(self._cards, fh, 1 << 20)
                fh.write(_TAIL_T.render(js=_JS))
        finally:
            self._cards.close()
            self._closed = True
        log.info("wrote report for %d images to %s", self._stats.images, self.path)
        return self.path

    def abort(self) -> None:
        """Discard everything added; ``path`` is not written."""
        if not self._closed:
            self._cards.close()
            self._closed = True

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_report(items: Iterable[tuple[Analysis, np.ndarray | None]], path: str | os.PathLike[str],
                 **kw: Any) -> Path:
    """Write an HTML report for ``(analysis, image_or_None)`` pairs; return its path.

    ``items`` is consumed lazily, so a generator that decodes images one at a time keeps
    memory flat. Keyword arguments go to :class:`ReportWriter`.

    Example:
        >>> import tempfile, os, numpy as np
        >>> from pixsight.core.types import Analysis
        >>> p = os.path.join(tempfile.mkdtemp(), "r.html")
        >>> write_report([(Analysis(path="x.png", width=4, height=4), np.zeros((4, 4, 3), np.uint8))], p).name
        'r.html'
    """
    with ReportWriter(path, **kw) as writer:
        for analysis, image in items:
            writer.add(analysis, image)
    return writer.path
