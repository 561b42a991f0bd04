"""``pixsight data ...``: dataset commands (issue 3).

``pixsight data synth DIR --task classify|detect|segment [--n N] [--seed S]``
``pixsight data convert SRC DST --to coco|yolo|voc|folders [--from FMT] [--lossy]``
``pixsight data split SRC [--ratios 0.8,0.1,0.1] [--seed S] [--no-near-duplicates] [--out DST] [--format FMT]``
``pixsight data stats SRC [--html FILE] [--json]``
``pixsight data validate SRC [--from FMT] [--fix] [--out PATH] [--json] [--no-image-check] [--decode]``
``pixsight data import ARCHIVE DEST``, ``pixsight data register NAME PATH``, ``pixsight data list``,
``pixsight data show NAME``, ``pixsight data remove NAME`` (see ``data_registry.py``)

SRC may be a dataset path, an archive of one (``.zip``, ``.tar``, ``.tar.gz``) or a registered name.
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
    data = sub.add_parser("data", help="datasets: synthesise, convert, split, stats, validate, import, register")
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

    validate = verbs.add_parser("validate", help="report every problem in a dataset (any format); --fix the safe ones",
                                description="Lists every problem with file and record: missing or unreadable images "
                                "(over the size limits, corrupt, truncated), image sizes that differ from the labels, "
                                "boxes outside the image, with zero or negative size or NaN, unknown classes, "
                                "duplicate ids or images, malformed records. Exit 0 when clean, 1 when problems "
                                "remain, 2 for usage errors. --fix clips boxes and polygons to their image and drops "
                                "empty, NaN or entirely-outside boxes, annotations of unknown classes or images, and "
                                "duplicate YOLO lines, writing the same format; images and class lists are never "
                                "touched.")
    validate.add_argument("src", metavar="SRC", help="a dataset (file or folder, any format), an archive, or a "
                          "registered name")
    validate.add_argument("--from", choices=FORMATS, dest="from_format", help="format of SRC (default: detect)")
    validate.add_argument("--fix", action="store_true", help="apply the safe fixes (in place unless --out)")
    validate.add_argument("--out", metavar="PATH", help="with --fix: write the fixed labels here instead (a file for "
                          "COCO, CVAT and Label Studio; a new folder holding a fixed copy for YOLO and VOC)")
    validate.add_argument("--json", action="store_true", help="print the report as one JSON object")
    validate.add_argument("--no-image-check", dest="check_images", action="store_false",
                          help="do not open the image files (labels only; much faster)")
    validate.add_argument("--decode", action="store_true",
                          help="decode every image (slower) instead of the cheapest check its format allows")
    validate.add_argument("--db", metavar="FILE", help="catalog to look a registered name up in")
    validate.set_defaults(func=run_validate)

    from . import data_registry

    data_registry.register_verbs(verbs)


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
    from ..data.formats import write_dataset
    from ..data.resolve import open_dataset

    dst = Path(args.dst)
    target_dir = dst.parent if dst.suffix.lower() == ".json" else dst
    if target_dir.exists() and any(target_dir.iterdir()):
        return fail(f"{target_dir} exists and is not empty; choose a new folder", code=2)
    try:
        ds = open_dataset(args.src, fmt=args.from_format)
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
    from ..data.ops import dataset_stats
    from ..data.resolve import open_dataset

    try:
        ds = open_dataset(args.src, fmt=args.from_format)
        stats = dataset_stats(ds)
        if args.html:
            from ..data.report import write_stats_html

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
    """The COCO JSON files in the folder ``src``."""
    from ..data.formats.coco import looks_like_coco

    return [j for j in sorted(src.glob("*.json")) if looks_like_coco(j)]


def _validate_target(args: argparse.Namespace) -> tuple[Path, str, bool] | int:
    """(path to validate, format, is an archive) or an exit code after a usage error."""
    from ..data.archive import extract_cached, is_archive
    from ..data.formats import detect_format
    from ..data.registry import valid_name

    src = Path(args.src)
    if not src.exists() and valid_name(args.src):
        from ..data.registry import get_dataset

        try:
            src = Path(get_dataset(args.src, db=args.db).path)
        except PixsightError as err:
            return fail(f"{args.src}: no such file or folder, and {err.message}", code=2)
    if not src.exists():
        return fail(f"{src}: no such file or folder", code=2)
    archive = src.is_file() and is_archive(src)
    if archive:
        if args.fix:
            return fail(f"{src} is an archive: import it first (`pixsight data import {src} DEST`), then "
                        "validate --fix DEST", code=2)
        from ..data.resolve import unwrap_folder

        try:
            src = unwrap_folder(extract_cached(src))
        except PixsightError as err:
            return fail(str(err), code=1)
    if src.is_dir() and args.from_format in (None, "coco"):
        jsons = _coco_jsons(src)
        if len(jsons) > 1:
            return fail(f"{src} holds {len(jsons)} COCO JSON files ({', '.join(j.name for j in jsons)}); "
                        "name the one to validate", code=2)
    try:
        fmt = args.from_format or detect_format(src)
    except PixsightError:
        return fail(f"{src} is not a dataset pixsight recognises; name its format with --from", code=2)
    return src, fmt, archive


def run_validate(args: argparse.Namespace) -> int:
    from ..data.validate import fix_dataset, validate_dataset

    if args.out and not args.fix:
        return fail("--out needs --fix (without --fix nothing is written)", code=2)
    target = _validate_target(args)
    if isinstance(target, int):
        return target
    src, fmt, _ = target
    if args.fix and fmt == "folders":
        return fail("image folders have no safe fixes (move or delete the files the report names)", code=2)
    try:
        report = validate_dataset(src, fmt=fmt, check_images=args.check_images, decode=args.decode)
    except PixsightError as err:
        return fail(str(err), code=2)
    fixed = None
    if args.fix and any(p.fixable for p in report.problems):
        try:
            fixed = fix_dataset(src, report, out=args.out)
        except PixsightError as err:
            return fail(str(err), code=1)
        except OSError as err:
            return fail(f"cannot write {args.out or src}: {err.strerror or err}", code=1)
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


def _short(file: str, base: Path) -> str:
    try:
        return Path(file).relative_to(base).as_posix() or "."
    except ValueError:
        return file


def _print_report(report: ValidationReport, fixed: FixSummary | None, remaining: list[Problem]) -> None:
    from rich.markup import escape
    from rich.table import Table

    console = console_for(sys.stdout)
    path = Path(report.path)
    base = path if path.is_dir() else path.parent
    if report.problems:
        table = Table(title=escape(f"problems in {report.path} (files relative to {base})"))
        for col in ("severity", "file", "record", "message", "fix"):
            table.add_column(col)
        order = sorted(report.problems, key=lambda p: (p.severity != "error", p.file, p.record.split("[")[0]))
        for p in order:
            table.add_row(p.severity, escape(_short(p.file, base)), escape(p.record), escape(p.message), p.fix or "")
        console.print(table)
    console.print(escape(f"{report.path} ({report.format}): {report.images} images, {report.annotations} "
                         f"annotations, {report.categories} classes: {len(report.errors)} errors, "
                         f"{len(report.warnings)} warnings, {sum(p.fixable for p in report.problems)} fixable"))
    if fixed is not None:
        console.print(escape(f"fixed -> {fixed.out_path}: {len(fixed.clipped)} boxes clipped, "
                             f"{len(fixed.dropped)} annotations dropped; {len(remaining)} problems remain"))
    elif report.ok:
        console.print("no problems found")
