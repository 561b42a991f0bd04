"""Small helpers shared by CLI commands (consoles, errors, defaults)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO

from rich.console import Console

from ..core.config import pixsight_home

__all__ = ["console_for", "default_db", "fail", "usage_error"]


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
