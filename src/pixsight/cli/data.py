"""``pixsight data ...``: dataset commands (issue 3).

``pixsight data synth DIR --task classify|detect|segment [--n N] [--seed S]``
``pixsight data convert SRC DST --to coco|yolo|voc|folders [--from FMT] [--lossy]``
``pixsight data split SRC [--ratios 0.8,0.1,0.1] [--seed S] [--no-near-duplicates] [--out DST] [--format FMT]``
``pixsight data stats SRC [--html FILE] [--json]``
``pixsight data validate SRC [--fix] [--out FILE] [--json] [--no-image-check]`` (COCO so far)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import PixsightError
from .common import console_for, fail

if TYPE_CHECKING:
    from ..data.validate import FixSummary, Problem, ValidationReport

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="datasets: synthesise, convert, split, stats, validate")
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

    split = verbs.add_parser("split", help="assign seeded, stratified, near-duplicate-aware train/val/test splits",
                             description="Stratified by class (the rarest class of each image for detect/segment), "
                             "group-aware so near-duplicate images (perceptual hash) never straddle splits. "
                             "Writes the split into SRC (same format) unless --out.")
    split.add_argument("src", metavar="SRC")
    split.add_argument("--ratios", default="0.8,0.1,0.1", help="train,val[,test] fractions (default 0.8,0.1,0.1)")
    split.add_argument("--seed", type=int, default=0)
    split.add_argument("--no-near-duplicates", dest="near_duplicates", action="store_false",
                       help="split images independently (skip the perceptual-hash grouping)")
    split.add_argument("--out", metavar="DST", help="write the split dataset here instead of in place")
    split.add_argument("--format", choices=FORMATS, dest="out_format", help="format of --out (default: SRC's)")
    split.add_argument("--from", choices=FORMATS, dest="from_format", help="format of SRC (default: detect)")
    split.add_argument("--json", action="store_true", help="print the counts as JSON")
    split.set_defaults(func=run_split)

    stats = verbs.add_parser("stats", help="images, classes, instances, box and image sizes, class imbalance",
                             description="Print dataset statistics as a table (or --json), optionally as an "
                             "HTML page with charts (--html).")
    stats.add_argument("src", metavar="SRC")
    stats.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page")
    stats.add_argument("--from", choices=FORMATS, dest="from_format", help="format of SRC (default: detect)")
    stats.add_argument("--json", action="store_true", help="print the statistics as one JSON object")
    stats.set_defaults(func=run_stats)

    validate = verbs.add_parser("validate", help="report every problem in a dataset (COCO so far); --fix the safe ones",
                                description="Lists every problem with file and record: missing or unreadable images, "
                                "image sizes that differ from the labels, boxes outside the image, with zero or "
                                "negative size or NaN, unknown image/category ids, duplicate ids, missing keys, wrong "
                                "types. Exit 0 when clean, 1 when problems remain, 2 for usage errors. --fix clips "
                                "boxes to the image and drops empty/NaN boxes and annotations of unknown images or "
                                "categories (images are never touched).")
    validate.add_argument("src", metavar="SRC", help="a COCO JSON file, or a folder holding one")
    validate.add_argument("--fix", action="store_true", help="apply the safe fixes (in place unless --out)")
    validate.add_argument("--out", metavar="FILE", help="with --fix: write the fixed JSON here instead")
    validate.add_argument("--json", action="store_true", help="print the report as one JSON object")
    validate.add_argument("--no-image-check", dest="check_images", action="store_false",
                          help="do not open the image files (labels only; much faster)")
    validate.set_defaults(func=run_validate)


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
    try:
        ds = read_dataset(args.src, args.from_format)
        out = write_dataset(ds, dst, args.to_format, lossy=args.lossy)  # cleans up after itself
    except PixsightError as err:
        message = str(err).replace("pass lossy=True", "pass --lossy")
        return fail(message, code=1)
    print(f"{len(ds.images)} images, {ds.num_instances()} instances, {len(ds.classes)} classes -> {out}")
    return 0


def _parse_ratios(text: str) -> tuple[float, ...] | None:
    try:
        ratios = tuple(float(v) for v in text.split(","))
    except ValueError:
        return None
    return ratios if 1 <= len(ratios) <= 3 else None


def run_split(args: argparse.Namespace) -> int:
    from ..data.formats import detect_format, read_dataset, rewrite_dataset, write_dataset
    from ..data.ops import dataset_stats, split_dataset

    ratios = _parse_ratios(args.ratios)
    if ratios is None:
        return fail(f"--ratios must be 1 to 3 comma-separated numbers such as 0.8,0.1,0.1, got {args.ratios!r}", code=2)
    src = Path(args.src)
    if args.out_format and not args.out:
        return fail("--format needs --out (in place the dataset keeps its format)", code=2)
    if args.out:
        dst = Path(args.out)
        target_dir = dst.parent if dst.suffix.lower() == ".json" else dst
        if target_dir.exists() and any(target_dir.iterdir()):
            return fail(f"{target_dir} exists and is not empty; choose a new folder", code=2)
    try:
        fmt = args.from_format or detect_format(src)
        ds = read_dataset(src, fmt)
        out_ds = split_dataset(ds, ratios=ratios, seed=args.seed, near_duplicates=args.near_duplicates)
        if args.out:
            written = write_dataset(out_ds, dst, args.out_format or fmt)  # cleans up after itself
        else:
            written = rewrite_dataset(out_ds, src, fmt)
    except PixsightError as err:
        from ..core.errors import ConfigError

        return fail(str(err), code=2 if isinstance(err, ConfigError) else 1)
    stats = dataset_stats(out_ds)
    if args.json:
        print(json.dumps({"path": str(written), "splits": stats["splits"]}, indent=2))
        return 0
    from rich.table import Table

    from rich.markup import escape

    table = Table(title=escape(f"split -> {written}"))
    table.add_column("split")
    table.add_column("images", justify="right")
    for name in stats["classes"]:
        table.add_column(escape(name), justify="right")
    for split_name, info in stats["splits"].items():
        table.add_row(escape(split_name), str(info["images"]), *(str(info["instances"][c]) for c in stats["classes"]))
    console_for(sys.stdout).print(table)
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from ..data.formats import read_dataset
    from ..data.ops import dataset_stats

    try:
        ds = read_dataset(args.src, args.from_format)
        stats = dataset_stats(ds)
        if args.html:
            from ..viz.dataset_report import write_stats_html

            write_stats_html(stats, args.html, title=f"Dataset: {Path(args.src).name}")
    except PixsightError as err:
        return fail(str(err), code=1)
    except OSError as err:
        return fail(f"cannot write {args.html}: {err.strerror or err}", code=1)
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    _print_stats(stats)
    return 0


def _print_stats(stats: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    console = console_for(sys.stdout)
    ratio = stats["imbalance_ratio"]
    console.print(escape(f"{stats['task']}: {stats['images']} images, {len(stats['classes'])} classes, "
                  f"{stats['instances']} instances, {stats['empty_images']} empty images, "
                  f"imbalance (max/min) {'n/a' if ratio is None else ratio}"))
    classes = Table(title="classes")
    for col in ("class", "instances", "images"):
        classes.add_column(col, justify="left" if col == "class" else "right")
    for name in stats["classes"]:
        classes.add_row(escape(name), str(stats["instances_per_class"][name]), str(stats["images_per_class"][name]))
    console.print(classes)
    if stats["box_width"]:
        boxes = Table(title="box sizes (pixels)")
        boxes.add_column("")
        keys = list(stats["box_width"])
        for k in keys:
            boxes.add_column(k, justify="right")
        for label in ("width", "height", "area"):
            q = stats[f"box_{label}"]
            boxes.add_row(label, *(f"{q[k]:g}" for k in keys))
        console.print(boxes)
    sizes = Table(title="image sizes")
    sizes.add_column("width x height")
    sizes.add_column("images", justify="right")
    for size, n in list(stats["image_sizes"].items())[:10]:
        sizes.add_row(size, str(n))
    console.print(sizes)
    if stats["splits"]:
        splits = Table(title="splits")
        splits.add_column("split")
        splits.add_column("images", justify="right")
        for name in stats["classes"]:
            splits.add_column(escape(name), justify="right")
        for split_name, info in stats["splits"].items():
            splits.add_row(escape(split_name), str(info["images"]), *(str(info["instances"][c]) for c in stats["classes"]))
        console.print(splits)


def _coco_jsons(src: Path) -> list[Path]:
    """The COCO JSON files SRC names: itself when it is a ``.json`` file, else the COCO JSONs
    in the folder."""
    from ..data.formats.coco import looks_like_coco

    if src.suffix.lower() == ".json" and not src.is_dir():
        return [src]
    if src.is_dir():
        return [j for j in sorted(src.glob("*.json")) if looks_like_coco(j)]
    return []


def run_validate(args: argparse.Namespace) -> int:
    from ..data.validate import fix_coco, validate_coco

    if args.out and not args.fix:
        return fail("--out needs --fix (without --fix nothing is written)", code=2)
    src = Path(args.src)
    if not src.exists():
        return fail(f"{src}: no such file or folder", code=2)
    jsons = _coco_jsons(src)
    if len(jsons) > 1:
        return fail(f"{src} holds {len(jsons)} COCO JSON files ({', '.join(j.name for j in jsons)}); "
                    "name the one to validate", code=2)
    if not jsons:
        from ..data.formats import detect_format

        try:
            fmt = f"a {detect_format(src)} dataset"
        except PixsightError:
            fmt = "not a dataset pixsight recognises"
        return fail(f"{src} is {fmt}; only COCO JSON datasets can be validated so far "
                    "(convert it with `pixsight data convert SRC DST --to coco`, then validate DST)", code=2)
    json_path = jsons[0]
    report = validate_coco(json_path, check_images=args.check_images)
    fixed = None
    if args.fix and any(p.fixable for p in report.problems):
        out = Path(args.out) if args.out else json_path
        try:
            fixed = fix_coco(json_path, out, report)
        except PixsightError as err:
            return fail(str(err), code=1)
        except OSError as err:
            return fail(f"cannot write {out}: {err.strerror or err}", code=1)
    remaining = report.unfixable if fixed is not None else report.problems
    if args.json:
        doc = report.to_dict()
        if fixed is not None:
            doc["fixed"] = fixed.to_dict()
        doc["remaining"] = len(remaining)
        print(json.dumps(doc, indent=2))
    else:
        _print_report(report, fixed, remaining)
    return 1 if remaining else 0


def _print_report(report: ValidationReport, fixed: FixSummary | None, remaining: list[Problem]) -> None:
    from rich.markup import escape
    from rich.table import Table

    console = console_for(sys.stdout)
    if report.problems:
        table = Table(title=escape(f"problems in {report.path}"))
        for col in ("severity", "file", "record", "message", "fix"):
            table.add_column(col)
        order = sorted(report.problems, key=lambda p: (p.severity != "error", p.record.split("[")[0]))
        for p in order:
            table.add_row(p.severity, escape(p.file), escape(p.record), escape(p.message), p.fix or "")
        console.print(table)
    console.print(escape(f"{report.path}: {report.images} images, {report.annotations} annotations, "
                         f"{report.categories} categories: {len(report.errors)} errors, "
                         f"{len(report.warnings)} warnings, {sum(p.fixable for p in report.problems)} fixable"))
    if fixed is not None:
        console.print(escape(f"fixed -> {fixed.out_path}: {len(fixed.clipped)} boxes clipped, "
                             f"{len(fixed.dropped)} annotations dropped; {len(remaining)} problems remain"))
    elif report.ok:
        console.print("no problems found")
