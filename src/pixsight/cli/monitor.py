"""``pixsight monitor drift --reference REF --current CUR [--db FILE] [--json] [--plot FILE]``.

REF and CUR are each a ``pixsight analyze --jsonl FILE --with-vectors`` file, or a folder / glob of
images already analysed into the catalog (``--db``). Exit 0 when the comparison ran (drift or not;
``--fail-on-drift`` makes drift exit 1), 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from ..core.errors import PixsightError
from .common import console_for, default_db, usage_error

if TYPE_CHECKING:
    from ..monitor.drift import DriftReport

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    monitor = sub.add_parser("monitor", help="monitoring: drift between a reference and a current window")
    verbs = monitor.add_subparsers(dest="monitor_command", metavar="VERB", parser_class=type(monitor))
    verbs.required = True
    drift = verbs.add_parser(
        "drift", help="compare two windows of analysed images (embeddings, labels, confidences)",
        description="Embeddings: RBF-kernel MMD with a permutation test. Top-1 labels: PSI and chi-square. "
        "Top-1 confidences: KS test and PSI. Drift when the MMD p-value < alpha, or labels/confidences have "
        "p < alpha and PSI >= --psi-threshold. See docs/monitoring.md.")
    drift.add_argument("--reference", required=True, metavar="REF",
                       help="analyze --jsonl file (with --with-vectors), or a folder/glob of images in the catalog")
    drift.add_argument("--current", required=True, metavar="CUR", help="same kinds as --reference")
    drift.add_argument("--db", metavar="FILE", help="catalog for folder/glob windows (default: $PIXSIGHT_DB)")
    drift.add_argument("--alpha", type=float, default=0.01, help="significance level (default 0.01)")
    drift.add_argument("--psi-threshold", type=float, default=0.2, help="practical effect size (default 0.2)")
    drift.add_argument("--seed", type=int, default=0, help="seed of the subsampling and permutations")
    drift.add_argument("--permutations", type=int, default=500, help="permutation test size (default 500)")
    drift.add_argument("--json", action="store_true", help="print one JSON object")
    drift.add_argument("--plot", metavar="FILE", help="write a PNG of confidence histograms and label shares")
    drift.add_argument("--fail-on-drift", action="store_true", help="exit 1 when drift is detected")
    drift.set_defaults(func=run_drift)


def run_drift(args: argparse.Namespace) -> int:
    from ..monitor.drift import detect_drift, drift_plot, load_window
    from ..viz.plots import save_png

    if not 0 < args.alpha < 1:
        return usage_error(f"--alpha must be in (0, 1), got {args.alpha}")
    if args.permutations < 10:
        return usage_error(f"--permutations must be at least 10, got {args.permutations}")
    try:
        db = args.db or default_db()
        ref = load_window(args.reference, db=db, name="reference")
        cur = load_window(args.current, db=db, name="current")
        report = detect_drift(ref, cur, alpha=args.alpha, psi_threshold=args.psi_threshold, seed=args.seed,
                              permutations=args.permutations)
        if args.plot:
            save_png(drift_plot(report), args.plot)
    except PixsightError as err:
        return usage_error(str(err))
    except OSError as err:
        return usage_error(f"{getattr(err, 'filename', '') or ''}: {err.strerror or err}")
    if args.json:
        out = report.to_dict()
        if args.plot:
            out["plot"] = args.plot
        print(json.dumps(out))
    else:
        _print_table(report)
    return 1 if report.drift and args.fail_on_drift else 0


def _print_table(report: DriftReport) -> None:
    from rich.table import Table

    console = console_for(sys.stdout)
    table = Table(title=f"drift: reference {report.n_reference} vs current {report.n_current} images")
    for col in ("signal", "test", "statistic", "p-value", "PSI"):
        table.add_column(col)
    e = report.embedding
    table.add_row("embeddings", "MMD² (RBF, permutation)", f"{e['mmd2']:.4g}", f"{e['p_value']:.3g}", "-")
    if report.labels:
        lab = report.labels
        table.add_row("top-1 labels", f"chi-square ({lab['categories']} classes)", f"{lab['chi2']:.4g}",
                      f"{lab['p_value']:.3g}", f"{lab['psi']:.3f}")
    if report.confidence:
        c = report.confidence
        table.add_row("top-1 confidence", "KS", f"{c['ks']:.4g}", f"{c['p_value']:.3g}", f"{c['psi']:.3f}")
    console.print(table)
    if report.drift:
        console.print("verdict: DRIFT - " + "; ".join(report.reasons))
    else:
        console.print(f"verdict: no drift (alpha={report.alpha:g}, PSI threshold={report.psi_threshold:g})")
