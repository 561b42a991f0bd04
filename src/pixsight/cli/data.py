"""``pixsight data ...``: dataset commands (issue 3; validate/split/stats arrive next).

``pixsight data synth DIR --task classify|detect|segment [--n N] [--seed S]``
``pixsight data convert SRC DST --to coco|yolo|voc|folders [--from FMT] [--lossy]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

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

    from ..data.formats import FORMATS

    convert = verbs.add_parser("convert", help="convert a dataset between formats",
                               description="Read SRC (format auto-detected unless --from) and write it to DST "
                               "in another format, images included. Data the target format cannot hold is an "
                               "error naming the record, unless --lossy.")
    convert.add_argument("src", metavar="SRC")
    convert.add_argument("dst", metavar="DST")
    convert.add_argument("--to", required=True, choices=FORMATS, dest="to_format")
    convert.add_argument("--from", choices=FORMATS, dest="from_format", help="source format (default: detect)")
    convert.add_argument("--lossy", action="store_true", help="drop what the target format cannot hold")
    convert.set_defaults(func=run_convert)


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


def run_convert(args: argparse.Namespace) -> int:
    from ..data.formats import read_dataset, write_dataset

    dst = Path(args.dst)
    target_dir = dst.parent if dst.suffix.lower() == ".json" else dst
    if target_dir.exists() and any(target_dir.iterdir()):
        return fail(f"{target_dir} exists and is not empty; choose a new folder", code=2)
    created = not target_dir.exists()
    try:
        ds = read_dataset(args.src, args.from_format)
        out = write_dataset(ds, dst, args.to_format, lossy=args.lossy)
    except PixsightError as err:
        if created and target_dir.exists():  # never leave a half-written dataset behind
            shutil.rmtree(target_dir, ignore_errors=True)
        message = str(err).replace("pass lossy=True", "pass --lossy")
        return fail(message, code=1)
    print(f"{len(ds.images)} images, {ds.num_instances()} instances, {len(ds.classes)} classes -> {out}")
    return 0
