"""``pixsight eval``: score a trained model or a predictions file against ground truth.

``pixsight eval RUN_DIR|MODEL --data VAL [--json] [--report FILE] [--group-by FIELD]``
``pixsight eval --predictions PRED --data GT [--task T] [--json] [--report FILE] [--group-by FIELD]``

Exit codes: 0 scored, 2 bad input (missing/malformed files, unknown model, wrong task).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from ..core.errors import PixsightError
from .common import console_for, fail

__all__ = ["register"]

_TASKS = ("detect", "classify", "segment", "ocr", "faces")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="evaluate a trained model or a predictions file against ground truth",
        description="Score a run folder (runs/<task>/<name>) or registered model on a labelled dataset, or an "
        "existing predictions file (COCO results JSON, `pixsight analyze --jsonl` output, a folder of PNG class "
        "maps) against ground truth. Prints a table, or one JSON object with --json. See docs/evaluation.md.")
    p.add_argument("model", nargs="?", metavar="RUN_DIR|MODEL", help="run folder or registered model name")
    p.add_argument("--data", required=True, metavar="GT",
                   help="ground truth: a dataset (any format), or for --task ocr a text-truth JSON/CSV, "
                   "for --task faces a pairs CSV")
    p.add_argument("--predictions", metavar="PRED", help="score this predictions file instead of running a model")
    p.add_argument("--task", choices=_TASKS, help="task of --predictions (default: guessed from the file)")
    p.add_argument("--group-by", metavar="FIELD", dest="group_by",
                   help="per-image attribute (e.g. split, or a COCO image's extra key): metrics per group and the "
                   "largest gap between groups")
    p.add_argument("--report", metavar="FILE", help="also write a self-contained HTML report")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.set_defaults(func=run_eval)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def run_eval(args: argparse.Namespace) -> int:
    if bool(args.model) == bool(args.predictions):
        return fail("give either a RUN_DIR/MODEL or --predictions PRED (not both, not neither)", code=2)
    if args.model and args.task:
        return fail("--task only applies to --predictions (a run knows its task)", code=2)
    from .progress import simple_progress

    console = console_for(sys.stderr)
    try:
        with simple_progress(console, total=1, label="eval") as progress:
            if args.predictions:
                from ..evaluate.evaluator import evaluate_predictions

                result = evaluate_predictions(args.predictions, args.data, task=args.task, group_by=args.group_by,
                                              report=args.report, progress=progress)
            else:
                from ..evaluate.model_eval import evaluate_model
                from ..explain.report import cam_explainer

                result = evaluate_model(args.model, args.data, group_by=args.group_by, report=args.report,
                                        progress=progress, explainer=cam_explainer)
    except PixsightError as err:
        return fail(str(err), code=2)
    except OSError as err:
        return fail(f"{getattr(err, 'filename', '') or ''}: {err.strerror or err}".lstrip(": "), code=2)
    if args.json:
        print(json.dumps(_json_safe(result.to_dict()), allow_nan=False))
    else:
        _print_tables(result.to_dict(), result.task, report=args.report)
    return 0


def _f(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _print_tables(d: dict[str, Any], task: str, *, report: str | None) -> None:
    from rich.markup import escape
    from rich.table import Table

    from ..evaluate.scoring import SUMMARY_KEYS

    console = console_for(sys.stdout)
    keys = SUMMARY_KEYS[task]
    what = "pairs" if task == "faces" else "images"
    line = f"{task}: {d['evaluated']} of {d['images']} {what} evaluated"
    if d["missing"]:
        line += f", {d['missing']} without prediction"
    if d["unmatched"]:
        line += f", {d['unmatched']} prediction records matched no ground truth"
    console.print(escape(line))
    table = Table(title="metrics", show_header=False, title_justify="left")
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    for k in keys:
        table.add_row(k, _f(d.get(k)))
    for k, v in (d.get("tpr_at_fpr") or {}).items():
        table.add_row(f"tpr@fpr={k}", _f(v))
    console.print(table)
    per_class = d.get("per_class") or {}
    if task == "segment":
        per_class = {n: {"iou": v, "dice": d["per_class_dice"].get(n)} for n, v in d.get("per_class_iou", {}).items()}
    if per_class:
        cols = list(next(iter(per_class.values())))
        pc = Table(title="per class", title_justify="left")
        pc.add_column("class")
        for c in cols:
            pc.add_column(c, justify="right")
        for name, row in per_class.items():
            pc.add_row(escape(str(name)), *(_f(row.get(c)) for c in cols))
        console.print(pc)
    groups = d.get("groups")
    if groups:
        gt = Table(title=f"by {escape(str(groups['field']))}", title_justify="left")
        gt.add_column(escape(str(groups["field"])))
        gt.add_column("images", justify="right")
        for k in keys:
            gt.add_column(k, justify="right")
        for name, row in groups["values"].items():
            gt.add_row(escape(str(name)), str(row["images"]), *(_f(row.get(k)) for k in keys))
        gaps = groups["gaps"]
        gt.add_row("[bold]largest gap[/bold]", "", *(_f(gaps[k]["gap"]) if k in gaps else "-" for k in keys))
        console.print(gt)
    for ex in d.get("worst", [])[:5]:
        console.print(escape(f"worst: {ex['file_name']}: {ex['why']}"))
    if report:
        console.print(escape(f"report: {report}"))
