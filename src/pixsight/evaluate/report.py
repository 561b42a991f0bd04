"""Self-contained HTML evaluation report for :class:`pixsight.evaluate.evaluator.EvalResult`.

Headline metrics, per-class table, subgroups (table, gaps and bars), confusion matrix, PR
curves, calibration plot, operating thresholds, and the worst examples drawn side by side
(ground truth in green on the left, prediction in red on the right), with the drawing
primitives of :mod:`pixsight.viz.panels` and :mod:`pixsight.viz.plots`. For classification
and detection runs an ``explainer`` (:func:`pixsight.explain.cam_explainer`, which
``pixsight eval`` passes) adds Grad-CAM overlays of the worst examples.

No scripts and no external references: plots and pictures are ``data:`` URIs, a
Content-Security-Policy allows nothing else, and every file name, label and text is escaped
by Jinja2 autoescaping (SECURITY.md items 5 and 16). The file is written atomically.

>>> import tempfile, os
>>> from pixsight.evaluate.evaluator import EvalResult
>>> r = EvalResult("ocr", {"cer": 0.1, "wer": 0.2}, "<pred>.jsonl", "truth.json", 1,
...                worst=[{"file_name": "<b>x</b>.png", "why": "CER 0.1", "reference": "a", "prediction": "b"}])
>>> text = open(write_eval_report(r, os.path.join(tempfile.mkdtemp(), "r.html")), encoding="utf-8").read()
>>> "&lt;b&gt;x&lt;/b&gt;.png" in text and "<b>x</b>" not in text
True
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from jinja2 import Environment, StrictUndefined
from PIL import Image

from ..core.errors import PixsightError
from ..core.fileio import atomic_writer
from ..core.image import load_image
from ..data.dataset import semantic_map
from ..viz import plots
from ..viz.panels import RED, draw_panel, jpeg_data_uri, side_by_side
from .scoring import SUMMARY_KEYS

if TYPE_CHECKING:
    from .evaluator import EvalResult

__all__ = ["Explainer", "Overlay", "write_eval_report"]

log = logging.getLogger(__name__)

#: ``overlay(pixels) -> (RGB uint8 overlay, method name)``, or ``None`` when that image failed.
Overlay = Callable[[np.ndarray], "tuple[np.ndarray, str] | None"]
#: ``explainer(model, task) -> Overlay | None``: what adds Grad-CAM overlays to the worst
#: examples of a model evaluation (:func:`pixsight.explain.cam_explainer`).
Explainer = Callable[[str, str], "Overlay | None"]

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
_SIDE = 384  # longest side of each drawn example panel
_MAX_EXPLAIN = 4

_CSS = """
*{box-sizing:border-box}body{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:#1d2330;background:#f3f4f7}header{background:#1d2330;color:#fff;padding:16px 24px}
h1{margin:0 0 4px;font-size:22px}header .muted{color:#b8bfcc}.muted{color:#6b7280}
main{padding:16px 24px;display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
.panel{background:#fff;border:1px solid #d9dde5;border-radius:8px;padding:12px 16px;max-width:100%}
.panel h2{font-size:15px;margin:0 0 8px}.wide{flex-basis:100%}table{border-collapse:collapse}
td,th{padding:2px 12px 2px 0;text-align:left;vertical-align:top}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.big{display:flex;gap:20px;flex-wrap:wrap}.big div b{display:block;font-size:24px}
.ex{display:inline-block;margin:0 12px 12px 0;vertical-align:top;max-width:800px}.ex img{max-width:100%;display:block}
.ex .why{font-size:12px}pre{white-space:pre-wrap;margin:2px 0;font-size:12px;max-width:380px;overflow-wrap:anywhere}
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="referrer" content="no-referrer">
<title>{{ title }}</title><style>{{ css }}</style></head><body>
<header><h1>{{ title }}</h1><div class="muted">{{ r.task }} · predictions: {{ r.source }} · ground truth: {{ r.data }}
· {{ d.images }} {{ "pairs" if r.task == "faces" else "images" }} ({{ d.evaluated }} evaluated{% if d.missing %},
{{ d.missing }} without prediction{% endif %}{% if d.unmatched %}, {{ d.unmatched }} prediction records matched no
ground truth{% endif %}) · {{ created }}</div></header>
<main>
<div class="panel"><h2>Metrics</h2><div class="big">{% for k, v in headline %}<div><b>{{ v }}</b>{{ k }}</div>{% endfor %}</div>
{% if extra_rows %}<table>{% for k, v in extra_rows %}<tr><td>{{ k }}</td><td class="n">{{ v }}</td></tr>{% endfor %}</table>{% endif %}
</div>
{% if per_class %}<div class="panel"><h2>Per class</h2><table><tr><th>class</th>{% for c in per_class_cols %}<th class="n">{{ c }}</th>{% endfor %}</tr>
{% for name, row in per_class %}<tr><td>{{ name }}</td>{% for v in row %}<td class="n">{{ v }}</td>{% endfor %}</tr>{% endfor %}
</table></div>{% endif %}
{% if groups %}<div class="panel"><h2>By {{ groups.field }}</h2><table><tr><th>{{ groups.field }}</th><th class="n">images</th>
{% for k in group_keys %}<th class="n">{{ k }}</th>{% endfor %}</tr>
{% for name, row in group_rows %}<tr><td>{{ name }}</td>{% for v in row %}<td class="n">{{ v }}</td>{% endfor %}</tr>{% endfor %}
<tr><td colspan="2"><b>largest gap</b></td>{% for g in gap_row %}<td class="n">{{ g }}</td>{% endfor %}</tr></table>
{% if group_png %}<img alt="metrics by group" src="{{ group_png }}">{% endif %}</div>{% endif %}
{% for title_, uri in plots_ %}<div class="panel"><h2>{{ title_ }}</h2><img alt="{{ title_ }}" src="{{ uri }}"></div>{% endfor %}
{% if thresholds %}<div class="panel"><h2>Thresholds for precision ≥ {{ thresholds.target_precision }}</h2>
<table><tr><th>decision</th><th class="n">threshold</th><th class="n">precision</th><th class="n">recall</th></tr>
{% for name, t in threshold_rows %}<tr><td>{{ name }}</td>{% if t %}<td class="n">{{ "%.3f"|format(t.threshold) }}</td>
<td class="n">{{ t.precision }}</td><td class="n">{{ t.recall }}</td>{% else %}<td colspan="3" class="muted">not reachable</td>{% endif %}</tr>
{% endfor %}</table></div>{% endif %}
{% if worst %}<div class="panel wide"><h2>Worst examples</h2>{% if drawn %}<p class="muted">left: ground truth (green) · right: prediction (red)</p>{% endif %}
{% for ex in worst %}<div class="ex">{% if ex.picture %}<img alt="{{ ex.file_name }}" src="{{ ex.picture }}">{% endif %}
{% if ex.cam %}<figure><img alt="{{ ex.cam[1] }} of {{ ex.file_name }}" src="{{ ex.cam[0] }}"><figcaption class="muted">{{ ex.cam[1] }}</figcaption></figure>{% endif %}
<div><b>{{ ex.file_name }}</b></div><div class="why">{{ ex.why }}</div>
{% if ex.reference is not none %}<pre>truth: {{ ex.reference }}</pre><pre>read:  {{ ex.prediction }}</pre>{% endif %}</div>
{% endfor %}</div>{% endif %}
</main></body></html>
"""


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool) or isinstance(v, (int, np.integer)):
        return str(v)
    if isinstance(v, (float, np.floating)):
        return f"{v:.4f}"
    return str(v)


def _draw_example(result: EvalResult, ex: dict[str, Any]) -> tuple[str | None, np.ndarray | None]:
    """The side-by-side picture (``data:`` URI) and the decoded pixels (for Grad-CAM)."""
    gt, items = result.dataset, result.items
    if gt is None or items is None or "index" not in ex:
        return None, None
    rec, pred = gt.images[ex["index"]], items[ex["index"]]
    try:
        loaded = load_image(gt.image_path(rec), max_side=_SIDE)
    except (PixsightError, OSError) as err:
        log.info("eval report: cannot draw %s: %s", rec.file_name, err)
        return None, None
    pixels = original = loaded.pixels
    if max(pixels.shape[:2]) < _SIDE:  # small images are blown up so that boxes and labels stay legible
        k = _SIDE / max(pixels.shape[:2])
        size = (max(1, round(pixels.shape[1] * k)), max(1, round(pixels.shape[0] * k)))
        pixels = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR))
    scale = pixels.shape[1] / rec.width
    names = gt.classes
    if result.task == "detect":
        gt_boxes = np.array([a.box for a in rec.annotations]).reshape(-1, 4)
        left = draw_panel(pixels, scale, boxes=gt_boxes, labels=[names[a.class_id] for a in rec.annotations])
        b, s, c = pred if pred is not None else (np.zeros((0, 4)), np.zeros(0), np.zeros(0, int))
        keep = np.asarray(s) >= 0.3
        right = draw_panel(pixels, scale, boxes=np.asarray(b)[keep], colour=RED,
                       labels=[f"{names[k]} {v:.2f}" for k, v in zip(np.asarray(c)[keep], np.asarray(s)[keep])])
    elif result.task == "segment":
        left = draw_panel(pixels, scale, class_map=semantic_map(rec))
        right = draw_panel(pixels, scale, class_map=np.asarray(pred))
    else:
        return jpeg_data_uri(draw_panel(pixels, scale)), original
    return jpeg_data_uri(side_by_side(left, right)), original


def _overlay(result: EvalResult, explainer: Explainer | None) -> Overlay | None:
    """The Grad-CAM overlay function for a classify/detect model evaluation, or ``None``."""
    if explainer is None or result.model is None or result.task not in ("classify", "detect"):
        return None
    return explainer(result.model, result.task)


def _cam_uri(overlay: Overlay, pixels: np.ndarray) -> tuple[str, str] | None:
    """``(data URI of the overlay, method name)`` or ``None`` when the explanation failed."""
    made = overlay(pixels)
    return None if made is None else (jpeg_data_uri(Image.fromarray(made[0])), made[1])


def _plots(result: EvalResult) -> list[tuple[str, str]]:
    m, out = result.metrics, []
    labels = list(result.dataset.classes) if result.dataset is not None else []
    if result.task == "classify" and m.get("confusion"):
        out.append(("Confusion matrix", plots.data_uri(plots.confusion_matrix(m["confusion"], labels))))
    if result.task == "segment" and m.get("confusion"):
        out.append(("Confusion matrix (pixels)",
                    plots.data_uri(plots.confusion_matrix(m["confusion"], ["background", *labels]))))
    if m.get("curves"):
        title = "Precision-recall per class" + (" (IoU 0.5)" if result.task == "detect" else "")
        out.append((title, plots.data_uri(plots.pr_curves(m["curves"], title=title))))
    if result.task == "classify" and m.get("reliability") and m.get("ece") is not None:
        out.append(("Calibration", plots.data_uri(plots.reliability_diagram(m["reliability"], ece=m["ece"]))))
    return out


def _per_class(result: EvalResult) -> tuple[list[str], list[tuple[str, list[str]]]]:
    m = result.metrics
    if result.task == "segment":
        iou, dice = m.get("per_class_iou", {}), m.get("per_class_dice", {})
        return ["IoU", "Dice"], [(n, [_fmt(iou[n]), _fmt(dice.get(n))]) for n in iou]
    rows = m.get("per_class") or {}
    cols = sorted({k for r in rows.values() for k in r}, key=["ap", "ap_50", "precision", "recall", "f1",
                                                                "support"].index)
    return cols, [(n, [_fmt(r.get(c)) for c in cols]) for n, r in rows.items()]


def write_eval_report(result: EvalResult, path: str | os.PathLike[str], *, title: str | None = None,
                      explainer: Explainer | None = None) -> Path:
    """Write the HTML report of ``result`` to ``path`` (atomically); return the path.

    ``explainer`` (e.g. :func:`pixsight.explain.cam_explainer`) adds Grad-CAM overlays to the
    first worst examples of a classify/detect model evaluation.
    """
    d = result.to_dict()
    keys = SUMMARY_KEYS[result.task]
    headline = [(k, _fmt(d.get(k))) for k in keys]
    extra_rows: list[tuple[str, str]] = []
    if result.task == "detect":
        extra_rows = [(k, _fmt(result.metrics.get(k))) for k in ("mar_1", "mar_10", "mar_100")]
    if result.task == "faces":
        extra_rows = [(f"TPR @ FPR {k}", _fmt(v)) for k, v in (result.metrics.get("tpr_at_fpr") or {}).items()]
        extra_rows += [("EER threshold (distance)", _fmt(result.metrics.get("eer_threshold")))]
    per_class_cols, per_class = _per_class(result)
    group_rows, gap_row, group_png = [], [], None
    if result.groups:
        values = result.groups["values"]
        group_rows = [(g, [str(v["images"]), *(_fmt(v.get(k)) for k in keys)]) for g, v in values.items()]
        gaps = result.groups["gaps"]
        gap_row = [_fmt(gaps[k]["gap"]) if k in gaps else "–" for k in keys]
        chart = {k: {g: v.get(k) for g, v in values.items()} for k in keys if k in gaps}
        group_png = plots.data_uri(plots.group_bars(chart, title=f"by {result.groups['field']}")) if chart else None
    thresholds = result.metrics.get("thresholds") if result.task == "classify" else None
    threshold_rows = []
    if thresholds:
        threshold_rows = [("top-1 label", thresholds["top1"])] + list(thresholds["per_class"].items())
    overlay = _overlay(result, explainer)
    worst, drawn = [], False
    for n, ex in enumerate(result.worst):
        picture, pixels = _draw_example(result, ex)
        drawn = drawn or (picture is not None and result.task in ("detect", "segment"))
        cam = _cam_uri(overlay, pixels) if overlay is not None and pixels is not None and n < _MAX_EXPLAIN else None
        worst.append({"file_name": ex.get("file_name", ""), "why": ex.get("why", ""), "picture": picture, "cam": cam,
                      "reference": ex.get("reference"), "prediction": ex.get("prediction")})
    env = Environment(autoescape=True, undefined=StrictUndefined)
    html = env.from_string(_PAGE).render(
        csp=_CSP, css=_CSS, title=title or f"pixsight eval · {result.task}", r=result, d=d, headline=headline,
        extra_rows=extra_rows, per_class=per_class, per_class_cols=per_class_cols, groups=result.groups,
        group_keys=keys, group_rows=group_rows, gap_row=gap_row, group_png=group_png, plots_=_plots(result),
        thresholds=thresholds, threshold_rows=threshold_rows, worst=worst, drawn=drawn,
        created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(p, "w", encoding="utf-8") as fh:
        fh.write(html)
    return p
