"""``pixsight models ...``: list, show, pull, add and remove registry entries.

Each sub-command calls one public function of :mod:`pixsight.models` and formats the
result; errors become one ``error: ...`` line on stderr and exit code 1.

Example (from a shell)::

    pixsight models list --task classify
    pixsight models add ./birds.onnx --task classify --labels birds.txt
    pixsight models add runs/detect/shapes --default     # a run folder from pixsight train
    pixsight models pull my-detector
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from typing import Any, Callable

from ..core.errors import PixsightError
from ..models.spec import TASKS
from .common import console_for, fail

__all__ = ["register"]

log = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace], int]


def _guard(fn: Handler) -> Handler:
    """Turn pixsight errors into ``error: ...`` on stderr and exit code 1 (never a traceback)."""

    @functools.wraps(fn)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except PixsightError as err:
            return fail(str(err).replace("\n", " "))
        except Exception as err:  # a bug: say so in one line, keep the traceback in the log
            log.debug("unexpected error in pixsight models", exc_info=True)
            return fail(f"unexpected {type(err).__name__}: {err}")

    return wrapper


def _floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 0.5,0.5,0.5, got {text!r}") from None
    if len(values) not in (1, 3):
        raise argparse.ArgumentTypeError(f"expected 1 or 3 values, got {len(values)}")
    return values


def _size(text: str) -> int | list[int]:
    parts = text.lower().replace(",", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or HxW, got {text!r}") from None
    if len(values) not in (1, 2) or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive N or HxW, got {text!r}")
    return values[0] if len(values) == 1 else values


def _human(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _console():
    return console_for(sys.stdout)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=False, default=str))


@_guard
def _cmd_list(args: argparse.Namespace) -> int:
    from ..models.registry import describe, get_registry

    rows = [describe(spec) for spec in get_registry().list(task=args.task)]
    if args.json:
        _print_json(rows)
        return 0
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"pixsight models{f' (task {args.task})' if args.task else ''}", box=box.SIMPLE_HEAD, pad_edge=False)
    trained = any(r["classes"] for r in rows)
    # every column may wrap: rich drops no-wrap columns that do not fit a narrow terminal
    for col in ("name", "task", "backend", "size", "available", *(("classes", "metric") if trained else ()),
                "licence", "origin", "how to get"):
        table.add_column(col, overflow="fold")
    for r in rows:
        name = r["name"] + (" *" if r["default"] else "") + (" (user)" if r["user"] else "")
        status = Text("yes", style="green") if r["available"] else Text("no", style="red")
        how = "" if r["available"] else f"{r['reason']}: {r['hint']}".strip(": ")
        learned = (Text(_short(", ".join(r["classes"]), 32) or "-"), r["metric"] or "-") if trained else ()
        table.add_row(
            Text(name), r["task"], r["backend"], _human(r["size_bytes"]), status, *learned,
            Text(_short(r["license"], 24)),
            Text(_short(r["origin"] or "-", 32)),  # in full: pixsight models show NAME
            Text(how or "-"),
        )
    console = _console()
    if rows:
        console.print(table)
        console.print("* default model for its task")
    else:
        console.print(f"no models{f' for task {args.task!r}' if args.task else ''}")
    return 0


@_guard
def _cmd_show(args: argparse.Namespace) -> int:
    from ..models.registry import describe, get_registry

    spec = get_registry().get(args.name)
    data = {**spec.to_dict(), **describe(spec)}
    if args.json:
        _print_json(data)
        return 0
    from rich.table import Table
    from rich.text import Text

    table = Table(title=spec.key, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key in ("task", "backend", "license", "origin", "description", "available", "reason", "hint", "labels",
                "metric"):
        if data.get(key) not in (None, "", [], {}):
            table.add_row(key, Text(str(data[key])))
    if data.get("classes"):
        table.add_row("classes", Text(f"{len(data['classes'])}: " + ", ".join(data["classes"])))
    table.add_row("size", _human(data["size_bytes"]))
    for source in spec.weights:
        table.add_row(f"weights ({source.kind})", Text(source.location))
    for name, sources in spec.files.items():
        for source in sources:
            table.add_row(f"file {name} ({source.kind})", Text(source.location))
    for key in ("preprocess", "metrics", "options"):
        if data.get(key):
            table.add_row(key, Text(json.dumps(data[key], default=str)))
    _console().print(table)
    return 0


@_guard
def _cmd_pull(args: argparse.Namespace) -> int:
    from ..models.pull import pull
    from ..models.registry import availability, get_registry

    spec = get_registry().get(args.name)
    console = _console()
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=console, transient=True) as bar:
        task_id = bar.add_task(f"pull {spec.name}", total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task_id, completed=done, total=total)

        paths = pull(spec, progress=progress, timeout=args.timeout)
    if not paths:
        console.print(f"{spec.name}: nothing to download ({availability(spec).reason})")
    for path in paths:
        console.print(f"{spec.name}: verified {path}")
    return 0


_ONNX_ONLY = ("labels", "size", "mean", "std", "origin")


@_guard
def _cmd_add(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..models.runs import is_run_dir

    if Path(args.path).expanduser().is_dir():
        if not is_run_dir(args.path):
            return fail(f"{args.path} is not a training run folder (no model.json); "
                        "train one with `pixsight train TASK DATASET`, or add an .onnx file with --task", code=2)
        given = [f"--{k}" for k in _ONNX_ONLY if getattr(args, k) is not None]
        if given:
            return fail(f"{', '.join(given)} apply to .onnx files; a run folder brings its own (model.json)", code=2)
        from ..train.run import register_run  # exports a missing model.onnx (torch, on demand)

        spec = register_run(args.path, name=args.name, replace=args.replace, default=args.default)
        if args.task and args.task != spec.task:
            log.warning("--task %s ignored: the run is a %s model", args.task, spec.task)
        classes = spec.options.get("classes") or []
        metric = _metric(spec)
        print(f"added {spec.key} (trained {spec.task}, {len(classes)} classes: {', '.join(classes)}"
              f"{f', {metric}' if metric else ''}) from {args.path}")
        if not args.default:
            print(f"run it: pixsight analyze PATH --tasks {spec.task}   (or --model {spec.name})")
        return 0
    if not args.task:
        return fail("--task is required for an .onnx file (classify or embed); a run folder needs none", code=2)
    if args.default:
        return fail("--default applies to trained run folders", code=2)
    from ..models.user import add_model

    spec = add_model(
        args.path,
        task=args.task,
        name=args.name,
        labels=args.labels,
        size=args.size,
        mean=args.mean,
        std=args.std,
        license=args.license,
        origin=args.origin,
        replace=args.replace,
    )
    h, w = spec.preprocess["size"]
    outputs = spec.options.get("outputs")
    print(f"added {spec.key} ({spec.task}, input {h}x{w} {spec.preprocess['layout']}, {outputs} outputs) from {args.path}")
    return 0


def _metric(spec: Any) -> str:
    from ..models.registry import describe

    return describe(spec)["metric"]


@_guard
def _cmd_default(args: argparse.Namespace) -> int:
    from ..models.registry import get_registry

    spec = get_registry().set_default(args.name)
    print(f"{spec.name} is now the default {spec.task} model (pixsight analyze --tasks {spec.task})")
    return 0


@_guard
def _cmd_remove(args: argparse.Namespace) -> int:
    from ..models.registry import get_registry

    spec = get_registry().remove(args.name)
    print(f"removed {spec.key} (its files were left in place)")
    return 0


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``models`` and its sub-commands to a ``parser.add_subparsers()`` object.

    >>> parser = argparse.ArgumentParser(prog="pixsight")
    >>> _ = register(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["models", "list", "--json"]).json
    True
    """
    models = subparsers.add_parser("models", help="list, show, pull, add and remove models")
    sub = models.add_subparsers(dest="models_command", metavar="{list,show,pull,add,default,remove}")
    sub.required = True

    p = sub.add_parser("list", help="every registry entry and whether it runs offline now")
    p.add_argument("--task", choices=TASKS, help="only models of this task")
    p.add_argument("--json", action="store_true", help="machine-readable JSON")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("show", help="everything about one model")
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help="machine-readable JSON")
    p.set_defaults(func=_cmd_show)

    p = sub.add_parser("pull", help="download a model's URL weights (checked against their sha256)")
    p.add_argument("name")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the server (default 60)")
    p.set_defaults(func=_cmd_pull)

    p = sub.add_parser("add", help="register a training run folder or your own ONNX model",
                       description="Register a run folder written by `pixsight train` (model.json + model.onnx; "
                       "the ONNX file is exported first when missing, which needs torch) or an .onnx file "
                       "(--task classify|embed). Nothing is copied: the entry points at the files.")
    p.add_argument("path", help="a run folder (runs/detect/x) or an .onnx file (it stays where it is)")
    p.add_argument("--task", choices=("classify", "embed"), help="task of an .onnx file (a run folder knows its own)")
    p.add_argument("--default", action="store_true",
                   help="make this run the model `pixsight analyze --tasks TASK` uses (default: the latest added)")
    p.add_argument("--name", help="registry name (default: the file name)")
    p.add_argument("--labels", help="text file with one class name per line (classify)")
    p.add_argument("--size", type=_size, help="input size N or HxW (default: from the model)")
    p.add_argument("--mean", type=_floats, help="per-channel mean after scaling to [0, 1] (default ImageNet)")
    p.add_argument("--std", type=_floats, help="per-channel std after scaling to [0, 1] (default ImageNet)")
    p.add_argument("--license", default="unknown", help="licence of the weights (default: unknown)")
    p.add_argument("--origin", help="where the model comes from (default: the file path)")
    p.add_argument("--replace", action="store_true", help="replace a user model of the same name")
    p.set_defaults(func=_cmd_add)

    p = sub.add_parser("default", help="make a trained model the one its task uses (pixsight analyze --tasks TASK)")
    p.add_argument("name")
    p.set_defaults(func=_cmd_default)

    p = sub.add_parser("remove", help="forget a user model (its files stay)")
    p.add_argument("name")
    p.set_defaults(func=_cmd_remove)
    return models
