"""``pixsight explain MODEL IMAGE... [--out DIR] [--target LABEL] [--method M] [--box-only] [--json]``

Saves one heatmap overlay PNG per image (:func:`pixsight.explain.explain`) and prints
where it went and what was explained. Exit codes: 0 all explained, 1 some images failed (the
others are saved), 2 bad model / option.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..core.errors import ImageDecodeError, PixsightError
from .common import add_renamed_flag, console_for, fail

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain", help="heatmaps of where a model looked (Grad-CAM / EigenCAM overlays)",
        description="Explain a classifier, detector or segmenter on images: Grad-CAM for classifiers and "
        "segmenters (the predicted class, or --target), EigenCAM for detectors (with the detected boxes). "
        "MODEL is a training run folder or efficientnet-lite0 (the built-in ImageNet classifier). "
        "Overlays are written as PNG files (no metadata) into --out.")
    p.add_argument("model", metavar="MODEL", help="run folder (runs/<task>/<name>) or efficientnet-lite0")
    p.add_argument("images", metavar="IMAGE", nargs="+", help="image files")
    p.add_argument("--out", default="explanations", metavar="DIR",
                   help="folder for the overlays (default ./explanations)")
    p.add_argument("--target", metavar="LABEL", help="class to explain (default: the prediction)")
    p.add_argument("--method", default="auto", choices=("auto", "gradcam", "gradcam++", "eigencam"),
                   help="auto = gradcam for classify/segment, eigencam for detect")
    p.add_argument("--box-only", action="store_true", help="detect: keep the heat inside the detected boxes")
    p.add_argument("--conf-threshold", type=float, metavar="S",
                   help="detect: lowest score of the boxes drawn (default: the run's analyze threshold)")
    add_renamed_flag(p, "--score-threshold", "--conf-threshold", type=float)
    p.add_argument("--json", action="store_true", help="print one JSON object per image (JSON Lines)")
    p.set_defaults(func=run_explain)


def run_explain(args: argparse.Namespace) -> int:
    from ..core.image import load_image
    from ..explain import explain, load_explainable, resolve_class, save_explanation
    from .progress import simple_progress

    try:
        model = load_explainable(args.model)
        if args.target is not None:
            resolve_class(args.target, model.classes)  # a typo is a usage error, before any work
        if args.conf_threshold is not None and not 0.0 <= args.conf_threshold <= 1.0:
            return fail(f"--conf-threshold must be between 0 and 1, got {args.conf_threshold}", code=2)
    except PixsightError as err:
        return fail(str(err), code=2)
    console = console_for(sys.stderr)
    failed = 0
    with simple_progress(console, total=len(args.images), label="explain") as progress:
        for i, path in enumerate(args.images):
            try:
                image = load_image(path)
                expl = explain(model, image.pixels, target=args.target, method=args.method,
                               box_only=args.box_only, score_threshold=args.conf_threshold)
                out = save_explanation(expl, args.out, source=path)
            except PixsightError as err:
                failed += 1
                _report_error(path, err, as_json=args.json)
            except OSError as err:  # the output folder is not writable
                return fail(f"cannot write to {args.out}: {err}", code=2)
            else:
                _report(path, out, expl.to_dict(), as_json=args.json)
            progress(i + 1, len(args.images))
    if failed:
        print(f"pixsight: {failed} of {len(args.images)} images could not be explained", file=sys.stderr)
    return 1 if failed else 0


def _report(path: str, out: object, info: dict, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"path": path, "output": str(out), **info}), flush=True)
        return
    what = info["label"] if info["label"] is not None else "(nothing detected)"
    score = "" if info["score"] is None else f" {info['score']:.2f}"
    box = "" if info.get("box") is None else f" box {[round(v) for v in info['box']]}"
    print(f"{path}: {what}{score}{box} [{info['method']}] -> {out}", flush=True)


def _report_error(path: str, err: PixsightError, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"path": path, "error": err.to_dict()}), flush=True)
    kind = "cannot read image" if isinstance(err, ImageDecodeError) else "cannot explain"
    print(f"pixsight: error: {kind}: {err}", file=sys.stderr)
