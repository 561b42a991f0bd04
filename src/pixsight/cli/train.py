"""``pixsight train TASK --data TRAIN [--val VAL] --out RUN_DIR [options]``.

Calls :func:`pixsight.train.api.train`; draws one progress bar per epoch (live loss and the
last validation metric, on stderr) and a summary at the end. Exit codes: 0 done, 1 training
failed, 2 bad input/options, 130 interrupted (Ctrl-C; the checkpoint is saved: ``--resume``).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from typing import Any, Callable

from ..core.errors import ConfigError, DatasetFormatError, ImageDecodeError, PixsightError
from .common import console_for, fail

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a classify/detect/segment model on your data (writes a run folder)",
                       description="Fine-tune EfficientNet-Lite0 (ImageNet weights) on a labelled dataset. Writes "
                       "RUN_DIR with model.json, metrics, plots, weights, a resume checkpoint and model.onnx. "
                       "See docs/training.md for the config file keys.")
    p.add_argument("task", choices=("classify", "detect", "segment"))
    p.add_argument("--data", metavar="TRAIN", help="training data (class folders, COCO, YOLO, VOC, ...)")
    p.add_argument("--val", metavar="VAL", help="validation data (default: TRAIN's val split, or 20%% of it)")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder to write (new or empty)")
    p.add_argument("--config", metavar="FILE", help="TOML file of training options")
    p.add_argument("--epochs", type=int)
    p.add_argument("--time-limit", type=float, metavar="MIN", dest="time_limit_min",
                   help="stop cleanly after the epoch that crosses MIN minutes")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--size", type=int, help="model input side in pixels (default: 224 classify, 256 detect/segment; detect and segment need a multiple of 32)")
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--workers", type=int, help="data-loading processes (default 0)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--no-pretrained", dest="pretrained", action="store_false", default=None,
                   help="start from random weights instead of ImageNet")
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR from its checkpoint")
    p.set_defaults(func=run_train)


_OVERRIDES = ("epochs", "time_limit_min", "batch_size", "size", "lr", "seed", "workers", "device", "pretrained")


@contextlib.contextmanager
def _epoch_bars(console: Any, primary: str) -> Iterator[Callable[[Any], None]]:
    """A progress callback drawing one rich bar per epoch (terminal only); plain lines otherwise."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if not console.is_terminal:
        def plain(p: Any) -> None:
            if p.phase == "epoch":
                m = p.metrics or {}
                value = m.get(primary)
                shown = f"{value:.4f}" if isinstance(value, float) else "-"
                loss = f"{p.loss:.4f}" if p.loss is not None else "-"
                console.print(f"epoch {p.epoch}/{p.epochs}  loss {loss}  {primary} {shown}  ({m.get('seconds', 0):.1f} s)")
        yield plain
        return
    bar = Progress(TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[metric]}"), TimeElapsedColumn(),
                   console=console)
    state: dict[str, Any] = {"task": None, "epoch": None, "metric": ""}

    def update(p: Any) -> None:
        if state["epoch"] != p.epoch:
            state["task"] = bar.add_task("", total=p.steps, epoch=f"{p.epoch}/{p.epochs}", loss="-",
                                         metric=state["metric"])
            state["epoch"] = p.epoch
        loss = f"{p.loss:.4f}" if p.loss is not None else "-"
        if p.phase == "epoch":
            value = (p.metrics or {}).get(primary)
            state["metric"] = f"{primary} {value:.4f}" if isinstance(value, float) else ""
        elif p.phase == "val":
            bar.update(state["task"], metric="validating...")
        bar.update(state["task"], completed=p.step, total=p.steps, loss=loss,
                   **({"metric": state["metric"]} if p.phase != "val" else {}))

    with bar:
        yield update


def run_train(args: argparse.Namespace) -> int:
    from ..train.api import train
    from ..train.loop import TrainingInterrupted
    from ..train.run import RunError
    from ..train.tasks import get_task

    if not args.resume and not args.data:
        return fail("--data is required (the training dataset); or --resume an existing run", code=2)
    overrides = {k: getattr(args, k) for k in _OVERRIDES if getattr(args, k) is not None}
    console = console_for(sys.stderr)
    try:
        task = get_task(args.task)
        with _epoch_bars(console, task.primary_metric) as progress:
            run = train(args.task, args.data, val=args.val, out=args.out, config=args.config, progress=progress,
                        resume=args.resume, **overrides)
    except TrainingInterrupted as err:
        print(f"interrupted in epoch {err.epoch}; checkpoint saved to {err.checkpoint}\n"
              f"continue with: pixsight train {args.task} --out {args.out} --resume", file=sys.stderr)
        return 130
    except (ConfigError, DatasetFormatError, ImageDecodeError, RunError) as err:
        return fail(str(err), code=2)
    except PixsightError as err:
        return fail(str(err), code=1)
    _summary(console, run)
    return 0


def _summary(console: Any, run: Any) -> None:
    from rich.table import Table

    meta = run.meta
    training = meta.get("training", {})
    table = Table(title=f"pixsight train {run.task}", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    primary = meta.get("primary_metric")
    best = run.metrics.get(primary)
    table.add_row(f"best {primary}", f"{best:.4f}" if isinstance(best, float) else "-")
    table.add_row("best epoch", f"{training.get('best_epoch')} of {training.get('epochs')} "
                  f"({training.get('stopped')})")
    for key in ("macro_f1", "map", "miou", "val_loss"):
        if isinstance(run.metrics.get(key), float) and key != primary:
            table.add_row(key, f"{run.metrics[key]:.4f}")
    table.add_row("time", f"{training.get('seconds', 0):.1f} s")
    table.add_row("run folder", str(run.path))
    table.add_row("ONNX", f"{run.path / 'model.onnx'} (max |diff| vs torch {meta.get('onnx', {}).get('max_abs_diff', 0):.1g})")
    val_path = (meta.get("data") or {}).get("val", {}).get("path") or "VAL"
    table.add_row("next", f"pixsight eval {run.path} --data {val_path}   |   pixsight models add {run.path}")
    console.print(table)
