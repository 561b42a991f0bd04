"""``pixsight analyze PATH... [--tasks ...] [--model RUN_DIR|NAME] [--db FILE] [--jsonl FILE|-] [--annotate DIR] [--report FILE]``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from ..core.config import AnalyzeConfig
from ..core.errors import ConfigError, PixsightError
from ..core.image import LoadedImage, load_image
from ..core.types import Analysis
from .common import console_for, default_db, fail, markup_safe, terminal_safe, usage_error

__all__ = ["register", "run_analyze"]

_PICTURE_SIDE = 2048  # overlays and report thumbnails are drawn from images this large at most


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze",
        help="analyse images: classify, OCR, faces, embeddings, and your trained detect/segment models",
        description="Analyse image files and folders (recursively). Results go to the catalog "
        "(--db) and, if asked, to JSON Lines, overlay images and an HTML report. "
        "Without --tasks and --model, every offline-available built-in task runs (classify,ocr,faces,embed); "
        "models you trained run only when asked: --tasks detect (or segment) runs the registered model of "
        "that task (pixsight models add RUN_DIR; the one added with --default, else the latest), and "
        "--model RUN_DIR|NAME runs that model in place of its task's default (alone, unless --tasks adds others).",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument("--tasks", help="comma-separated tasks (default: every offline-available built-in one: "
                   "classify,ocr,faces,embed); detect,segment run the trained model registered for them")
    p.add_argument("--model", action="append", metavar="RUN_DIR|NAME", default=[],
                   help="a training run folder (runs/detect/x) or registered model name to run for its task; "
                   "repeatable, one per task; without --tasks only these models run")
    p.add_argument("--db", help="catalog SQLite file (default: $PIXSIGHT_DB or $PIXSIGHT_HOME/catalog.sqlite)")
    p.add_argument("--jsonl", metavar="FILE|-", help="write one JSON object per image ('-' = stdout)")
    p.add_argument("--annotate", metavar="DIR", help="write overlay images (boxes, masks, landmarks, text, label) here")
    p.add_argument("--report", metavar="FILE", help="write a self-contained HTML report")
    p.add_argument("--workers", type=int, help="decode threads (default 2)")
    p.add_argument("--batch-size", type=int, help="images per model batch (default 16)")
    p.add_argument("--config", metavar="FILE", help="TOML config (thresholds, models, options)")
    p.add_argument("--with-vectors", action="store_true", help="include embedding vectors in the JSON output")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_analyze)


def _config_from_args(args: argparse.Namespace) -> AnalyzeConfig:
    from ..tasks import SUPPORTED_TASKS, config_with_models

    cfg = AnalyzeConfig.from_file(args.config) if args.config else AnalyzeConfig()
    changes: dict[str, Any] = {}
    if args.tasks:
        tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
        unknown = [t for t in tasks if t not in SUPPORTED_TASKS]
        if unknown or not tasks:
            raise ConfigError(f"unknown task(s) {unknown or args.tasks!r} in --tasks; choose from {','.join(SUPPORTED_TASKS)}")
        changes["tasks"] = tuple(dict.fromkeys(tasks))
    if args.workers is not None:
        changes["workers"] = args.workers
    if args.batch_size is not None:
        changes["batch_size"] = args.batch_size
    if args.with_vectors:
        changes["with_vectors"] = True
    cfg = cfg.replace(**changes) if changes else cfg
    return config_with_models(cfg, args.model)


def run_analyze(args: argparse.Namespace) -> int:
    from ..catalog.store import Catalog
    from ..pipeline.analyzer import Analyzer, iter_image_paths

    missing = [p for p in args.paths if not os.path.exists(p)]
    if missing:
        return usage_error(f"no such file or folder: {', '.join(missing)}")  # usage_error escapes
    try:
        config = _config_from_args(args)
    except PixsightError as err:
        return usage_error(str(err))
    jsonl_to_stdout = args.jsonl == "-"
    err_console = console_for(sys.stderr)
    out_console = err_console if jsonl_to_stdout else console_for(sys.stdout)
    files = list(iter_image_paths(args.paths))
    if not files:
        out_console.print("no image files found in the given paths")
        return 0
    db_path = Path(args.db) if args.db else default_db()

    with ExitStack() as stack:
        try:
            catalog = stack.enter_context(Catalog(db_path))
            with err_console.status("loading models...", spinner="dots") if err_console.is_terminal else ExitStack():
                analyzer = stack.enter_context(Analyzer(config))
        except ConfigError as err:
            return usage_error(str(err))
        except PixsightError as err:
            return fail(str(err), code=2)
        if not analyzer.tasks:
            return fail("no task can run: " + "; ".join(f"{t}: {r}" for t, r in analyzer.skipped_tasks.items()), code=2)
        for task, reason in analyzer.skipped_tasks.items():
            err_console.print(f"[yellow]skipping {markup_safe(task)}[/]: {markup_safe(reason)}")

        jsonl: IO[str] | None = None
        if jsonl_to_stdout:
            jsonl = sys.stdout
        elif args.jsonl:
            Path(args.jsonl).parent.mkdir(parents=True, exist_ok=True)
            jsonl = stack.enter_context(open(args.jsonl, "w", encoding="utf-8"))
        report = None
        if args.report:
            from ..viz.report import ReportWriter

            report = stack.enter_context(ReportWriter(args.report))
        annotate_dir = Path(args.annotate) if args.annotate else None
        if annotate_dir is not None:
            from ..viz.annotate import save_annotated

        from ..faces.naming import name_faces, names_in

        seen_people: dict[str, int] = {}
        naming_failed: list[str] = []

        def on_result(analysis: Analysis, image: LoadedImage | None) -> None:
            if "faces" in analysis.results and not naming_failed:
                try:  # faces get `person` / `person_distance` when the catalog has a gallery
                    analysis = name_faces(db_path, analysis)
                except PixsightError as err:  # say it once; the analyses themselves are fine
                    naming_failed.append(str(err))
                    err_console.print(f"[yellow]faces not named[/]: {markup_safe(err)}", highlight=False)
                for person in names_in(analysis):
                    seen_people[person] = seen_people.get(person, 0) + 1
            if jsonl is not None:
                jsonl.write(json.dumps(analysis.to_dict(with_vectors=config.with_vectors), ensure_ascii=False) + "\n")
                jsonl.flush()
            if (annotate_dir is None and report is None):
                return
            pixels = None
            if analysis.status == "ok":
                wanted = min(_PICTURE_SIDE, max(analysis.width or 0, analysis.height or 0))
                if image is None or max(image.pixels.shape[:2]) < wanted:
                    # reused from the catalog, or decoded small for the models: decode for the pictures
                    source = image.path if image is not None and image.path else analysis.path
                    try:
                        image = load_image(source, max_side=_PICTURE_SIDE, limits=config.limits)
                    except PixsightError:
                        image = None
                pixels = image.pixels if image is not None else None
            try:
                if annotate_dir is not None and pixels is not None:
                    save_annotated(pixels, analysis, annotate_dir)
                if report is not None:
                    report.add(analysis, pixels)
            except OSError as err:  # e.g. disk full: the analysis is stored; say so and go on
                err_console.print(f"[red]cannot write picture for {markup_safe(analysis.path)}[/]: {markup_safe(err)}",
                                  highlight=False)

        from .progress import progress_reporter

        with progress_reporter(err_console, total=len(files), enabled=not args.no_progress) as on_progress:
            summary = analyzer.run(files, catalog=catalog, on_result=on_result, on_progress=on_progress)

    outputs = {"catalog": markup_safe(db_path)}
    if args.jsonl:
        outputs["jsonl"] = "stdout" if jsonl_to_stdout else markup_safe(args.jsonl)
    if args.annotate:
        outputs["overlays"] = markup_safe(args.annotate)
    if args.report:
        outputs["report"] = markup_safe(args.report)
    from .progress import print_summary

    print_summary(out_console, summary, outputs)
    if seen_people:
        out_console.print("people: " + ", ".join(f"{terminal_safe(name)} ({n} image{'s' if n != 1 else ''})"
                                                 for name, n in sorted(seen_people.items())),
                          markup=False, highlight=False)
    return 1 if summary.failed else 0
