"""``pixsight data ...``: dataset commands (issue 3; more verbs arrive with the format layer).

``pixsight data synth DIR --task classify|detect|segment [--n N] [--seed S]``
"""

from __future__ import annotations

import argparse
import json
import sys

from ..core.errors import PixsightError
from .common import console_for, fail

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="datasets: synthesise (convert, validate, split, stats to come)")
    verbs = data.add_subparsers(dest="data_command", metavar="VERB", parser_class=type(data))
    verbs.required = True
    synth = verbs.add_parser("synth", help="write a labelled synthetic shapes dataset with train/val splits",
                             description="Shapes of several classes on textured backgrounds, with exact boxes and "
                             "masks: COCO JSON (detect/segment) or class folders (classify).")
    synth.add_argument("out_dir", metavar="DIR")
    synth.add_argument("--task", required=True, choices=("classify", "detect", "segment"))
    synth.add_argument("--n", type=int, default=1000, help="images over both splits (default 1000)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    synth.add_argument("--val-fraction", type=float, default=0.2)
    synth.add_argument("--json", action="store_true", help="print the summary as JSON")
    synth.set_defaults(func=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    from ..data.synth import synth_dataset
    from .progress import simple_progress

    console = console_for(sys.stderr)
    try:
        with simple_progress(console, total=args.n, label="synth") as progress:
            summary = synth_dataset(args.out_dir, task=args.task, n=args.n, seed=args.seed,
                                    image_size=(args.size, args.size), val_fraction=args.val_fraction,
                                    progress=progress)
    except PixsightError as err:
        return fail(str(err), code=2)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for split, info in summary["splits"].items():
            counts = ", ".join(f"{k} {v}" for k, v in info["instances"].items())
            print(f"{split}: {info['images']} images ({counts}) -> {info['path']}")
    return 0
