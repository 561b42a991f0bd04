"""Progress bar (rate and ETA) and the end-of-run summary table."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..pipeline.analyzer import AnalyzeSummary, Progress as AnalyzeProgress

__all__ = ["progress_reporter", "print_summary", "simple_progress"]


@contextlib.contextmanager
def progress_reporter(console: Console, *, total: int, enabled: bool = True) -> Iterator[Callable[[AnalyzeProgress], None]]:
    """Yields an ``on_progress`` callback; draws a bar only on a terminal."""
    if not enabled or not console.is_terminal:
        yield lambda p: None
        return
    bar = Progress(
        TextColumn("[bold]analyze"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>7.1f} img/s"),
        TextColumn("[red]{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    task = bar.add_task("analyze", total=total, rate=0.0, failed=0)

    def update(p: AnalyzeProgress) -> None:
        rate = p.done / p.elapsed_s if p.elapsed_s > 0 else 0.0
        bar.update(task, completed=p.done, rate=rate, failed=p.failed)

    with bar:
        yield update


@contextlib.contextmanager
def simple_progress(console: Console, *, total: int, label: str) -> Iterator[Callable[[int, int], None]]:
    """Yields a ``progress(done, total)`` callback drawing a bar on a terminal only."""
    if not console.is_terminal:
        yield lambda done, total: None
        return
    bar = Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("ETA"), TimeRemainingColumn(), console=console)
    task = bar.add_task(label, total=total)
    with bar:
        yield lambda done, total: bar.update(task, completed=done, total=total)


def print_summary(console: Console, summary: AnalyzeSummary, outputs: dict[str, str]) -> None:
    table = Table(title="pixsight analyze", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("images", str(summary.images))
    table.add_row("analysed now", str(summary.ok - summary.reused))
    table.add_row("already in catalog / duplicates", str(summary.reused))
    table.add_row("failed", f"[red]{summary.failed}[/]" if summary.failed else "0")
    table.add_row("needs review", str(summary.needs_review))
    for task in summary.tasks:
        ms = summary.timings_ms.get(task)
        n_new = max(1, summary.ok - summary.reused)
        extra = f"  ({ms / n_new:.1f} ms/image)" if ms else ""
        table.add_row(f"  {task}", f"{summary.task_counts.get(task, 0)} results{extra}")
    for task, reason in summary.skipped_tasks.items():
        table.add_row(f"  {task}", f"skipped: {reason}")
    table.add_row("time", f"{summary.elapsed_s:.1f} s")
    table.add_row("throughput", f"{summary.images_per_s:.1f} images/s")
    for name, where in outputs.items():
        table.add_row(name, where)
    console.print(table)
