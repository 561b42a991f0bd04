"""Small helpers shared by CLI commands (consoles, errors, defaults, renamed flags)."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path
from typing import IO, Any, Sequence

from rich.console import Console

from ..core.config import pixsight_home
from ..core.fileio import make_private_dirs

__all__ = ["console_for", "default_db", "fail", "usage_error", "add_renamed_flag", "terminal_safe", "markup_safe",
           "TerminalSafeFormatter"]

# C0, DEL, C1 (a terminal obeys them: colours, titles, cursor moves, clearing lines), lone
# surrogates (file names that are not UTF-8) and the bidi overrides that reorder what is shown.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: object) -> str:
    r"""``text`` with every control character written as a visible escape (SECURITY.md item 25).

    Everything the CLI prints to a terminal that holds a name it did not choose (file names,
    key and person names, error messages quoting them) goes through this; JSON output is
    already escaped by ``json.dumps``.

    >>> terminal_safe("a\x1b[31mred\x1b]0;pwned\x07.png")
    'a\\x1b[31mred\\x1b]0;pwned\\x07.png'
    >>> terminal_safe("line\r\nnext\x9b\u202e"), terminal_safe("ok ünïcödé.jpg")
    ('line\\x0d\\x0anext\\x9b\\u202e', 'ok ünïcödé.jpg')
    """
    return _UNSAFE.sub(_visible, str(text))


def markup_safe(text: object) -> str:
    """:func:`terminal_safe` and escaped for rich markup (``[bold]`` in a name stays text)."""
    from rich.markup import escape

    return escape(terminal_safe(text))


class TerminalSafeFormatter(logging.Formatter):
    """A logging formatter whose messages (which may quote file names) are :func:`terminal_safe`;
    tracebacks keep their lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return terminal_safe(super().formatMessage(record))


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
    make_private_dirs(home)  # it holds the catalog: 0700 when pixsight makes it
    return home / "catalog.sqlite"


def fail(message: str, *, code: int = 1) -> int:
    """Print ``error: message`` on stderr (never a traceback) and return ``code``."""
    print(f"pixsight: error: {terminal_safe(message)}", file=sys.stderr)
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
        print(f"pixsight: note: {terminal_safe(option_string)} is deprecated; use {self.new}", file=sys.stderr)
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
