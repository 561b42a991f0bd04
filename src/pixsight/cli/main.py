"""``pixsight`` command line: parse, call the Python API, format. No logic lives here only.

Exit codes: 0 success, 1 some items failed (the rest are saved), 2 usage error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

from .. import __version__

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """argparse with 'error: ...' on stderr and exit code 2 (its default), kept explicit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        from .common import terminal_safe

        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {terminal_safe(message)}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pixsight", description="Offline-first image analysis.")
    parser.add_argument("--version", action="version", version=f"pixsight {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    import importlib

    from . import analyze, catalog_cmds, data

    analyze.register(sub)
    catalog_cmds.register(sub)
    data.register(sub)
    for name in ("models", "train", "evaluate", "explain", "monitor", "search", "faces", "review", "serve", "keys"):  # register(sub)
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{__package__}.{name}":
                raise
            continue  # a verb still being built is simply absent
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Process-wide settings belong to the CLI layer: decompression-bomb warnings are errors.
    from PIL import Image

    warnings.simplefilter("error", Image.DecompressionBombWarning)
    os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    from .common import TerminalSafeFormatter

    handler = logging.StreamHandler(sys.stderr)  # log messages quote file names: no raw control characters
    handler.setFormatter(TerminalSafeFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
