"""Small helpers shared by CLI commands (consoles, errors, defaults, renamed flags)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import IO, Any, Sequence

from rich.console import Console

from ..core.config import pixsight_home

__all__ = ["console_for", "default_db", "fail", "usage_error", "add_renamed_flag"]


def console_for(stream: IO[str]) -> Console:
    """A rich console on ``stream``; plain text when it is not a terminal."""
    is_tty = hasattr(stream, "isatty") and stream.isatty()
    # Piped output (logs, CI, `| less`) gets a wide page instead of rich's 80 columns.
    return Console(file=stream, soft_wrap=True, highlight=False, width=None if is_tty else 160)


def default_db() -> Path:
    """``$PIXSIGHT_DB``, else ``$PIXSIGHT_HOME/catalog.sqlite``."""
    env = os.environ.get("PIXSIGHT_DB")
    if env:
        return Path(env).expanduser()
    home = pixsight_home()
    home.mkdir(parents=True, exist_ok=True)
    return home / "catalog.sqlite"


def fail(message: str, *, code: int = 1) -> int:
    """Print ``error: message`` on stderr (never a traceback) and return ``code``."""
    print(f"pixsight: error: {message}", file=sys.stderr)
    return code


def usage_error(message: str) -> int:
    return fail(message, code=2)


class _RenamedFlag(argparse.Action):
    """The former spelling of a flag: stores into the new flag's ``dest`` and notes the new
    name on stderr."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, new: str, **kwargs: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"pixsight: note: {option_string} is deprecated; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_renamed_flag(parser: argparse.ArgumentParser, old: str, new: str, **kwargs: Any) -> None:
    """Keep ``old`` working as a hidden alias of the flag ``new`` (added before, same ``type``
    in ``kwargs``); using it prints a deprecation note naming ``new`` on stderr.

    >>> p = argparse.ArgumentParser(prog="demo")
    >>> _ = p.add_argument("--conf-threshold", type=float)
    >>> add_renamed_flag(p, "--score-threshold", "--conf-threshold", type=float)
    >>> p.parse_args(["--score-threshold", "0.4"]).conf_threshold
    0.4
    """
    dest = new.lstrip("-").replace("-", "_")
    parser.add_argument(old, dest=dest, action=_RenamedFlag, new=new, help=argparse.SUPPRESS,
                        default=argparse.SUPPRESS, **kwargs)
