"""``pixsight serve [--host H] [--port P] [--db FILE] [--tasks ...] ...``: the HTTP API and web UI."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ..core.errors import ConfigError, PixsightError
from .common import default_db, fail, usage_error

__all__ = ["register", "run_serve", "parse_rate"]


def parse_rate(text: str) -> float:
    """Requests per minute from ``N``, ``N/min``, ``N/s`` or ``N/h``.

    >>> parse_rate("600/min"), parse_rate("2/s"), parse_rate("120")
    (600.0, 120.0, 120.0)
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|m|min|h|hour))?\s*", text)
    if not m or float(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"invalid rate {text!r}; use e.g. 600/min, 10/s or 3600/h")
    per = {"s": 60.0, "sec": 60.0, "h": 1 / 60.0, "hour": 1 / 60.0}.get(m.group(2) or "min", 1.0)
    return float(m.group(1)) * per


def _positive(kind: type) -> object:
    def check(text: str) -> object:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return check


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the HTTP API and web UI over a catalog (needs the 'serve' extra)",
        description="Serve analysis over HTTP (POST /v1/analyze), the catalog (/v1/images, /v1/search, ...), "
        "the review queue, Prometheus metrics (/metrics) and a web UI (/). Every route needs an API key "
        "(pixsight keys create); on a loopback address without keys one admin key is created and printed "
        "once. SIGTERM/Ctrl-C drain in-flight work, then exit. Guide: docs/serving.md.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others need API keys)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--db", help="catalog SQLite file (default: $PIXSIGHT_DB or $PIXSIGHT_HOME/catalog.sqlite)")
    p.add_argument("--tasks", help="comma-separated tasks to run on uploads (default: as pixsight analyze)")
    p.add_argument("--model", action="append", metavar="RUN_DIR|NAME", default=[],
                   help="a training run folder or registered model to run for its task (repeatable)")
    p.add_argument("--config", metavar="FILE", help="TOML analysis config (thresholds, models, options)")
    p.add_argument("--no-models", action="store_true", help="serve the catalog and UI only (no analysis)")
    p.add_argument("--max-upload-mb", type=_positive(float), default=20.0, help="request body cap in MiB (default 20)")
    p.add_argument("--max-batch", type=_positive(int), default=16, help="images per model batch (default 16; 1 = no batching)")
    p.add_argument("--batch-wait-ms", type=float, default=5.0, help="wait this long for more images to batch (default 5)")
    p.add_argument("--queue-size", type=_positive(int), default=64, help="images waiting at most; more get 429 (default 64)")
    p.add_argument("--max-batch-files", type=_positive(int), default=32, help="files per /v1/analyze/batch (default 32)")
    p.add_argument("--rate-limit", type=parse_rate, default=600.0, metavar="N/min",
                   help="requests per key per minute (default 600/min)")
    p.add_argument("--rate-burst", type=_positive(int), default=60, help="burst allowance per key (default 60)")
    p.add_argument("--cors-origin", action="append", default=[], metavar="URL",
                   help="allow browser calls from this origin (repeatable; default none)")
    p.add_argument("--allow-fetch", action="append", default=[], metavar="HOST",
                   help="allow POST /v1/analyze url=... from this host (repeatable; default none)")
    p.add_argument("--fetch-deadline", type=_positive(float), default=30.0, metavar="S",
                   help="whole-download limit for --allow-fetch URLs; slower ones get 504 (default 30)")
    p.add_argument("--max-header-kb", type=_positive(int), default=64, metavar="KIB",
                   help="request line + headers cap in KiB; larger heads get 431 (default 64)")
    p.add_argument("--max-request-line-kb", type=_positive(int), default=8, metavar="KIB",
                   help="request target (URL) cap in KiB; longer ones get 414 (default 8)")
    p.add_argument("--drain-timeout", type=float, default=10.0, metavar="S",
                   help="seconds to finish in-flight work after SIGTERM (default 10)")
    p.add_argument("--drift-interval", type=float, default=60.0, metavar="S",
                   help="recompute live drift at most this often (default 60 s)")
    p.add_argument("--decode-budget-mp", type=_positive(float), default=None, metavar="MP",
                   help="megapixels all image decodes may hold at once; more wait, then get 503 "
                        "(default: twice the 80 MP image limit)")
    p.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    try:
        from ..serve.runner import ServerStartError, run_server
        from ..serve.settings import ServeSettings
    except ModuleNotFoundError as err:
        return fail(f"pixsight serve needs the 'serve' extra ({err.name} is missing): pip install 'pixsight[serve]'",
                    code=2)
    if args.config and not Path(args.config).is_file():
        return usage_error(f"no such config file: {args.config}")
    try:
        settings = ServeSettings(
            db=Path(args.db) if args.db else default_db(),
            host=args.host, port=args.port,
            tasks=tuple(t.strip() for t in args.tasks.split(",") if t.strip()) if args.tasks else None,
            model=tuple(args.model) or None, config_file=args.config, load_models=not args.no_models,
            max_upload_bytes=int(args.max_upload_mb * 1024 * 1024), max_batch=args.max_batch,
            batch_wait_ms=args.batch_wait_ms, queue_size=args.queue_size, max_batch_files=args.max_batch_files,
            rate_limit_per_min=args.rate_limit, rate_limit_burst=args.rate_burst,
            cors_origins=tuple(args.cors_origin), fetch_allow=tuple(args.allow_fetch),
            drain_timeout_s=args.drain_timeout, drift_interval_s=args.drift_interval,
            fetch_deadline_s=args.fetch_deadline,
            max_header_bytes=args.max_header_kb * 1024, max_request_line_bytes=args.max_request_line_kb * 1024,
            decode_budget_mp=args.decode_budget_mp,
        )
    except ConfigError as err:
        return usage_error(str(err))

    def show_key(token: str) -> None:
        print(f"pixsight: created admin key 'local-admin' (shown only this once; keep it):\n  {token}",
              file=sys.stderr, flush=True)

    def show_start() -> None:
        print(f"pixsight: starting on http://{settings.host}:{settings.port} over {settings.db}, "
              f"decode budget {settings.decode_budget_pixels / 1e6:g} MP (Ctrl-C or SIGTERM to stop)", file=sys.stderr, flush=True)

    try:
        run_server(settings, on_new_key=show_key, on_starting=show_start)
    except ServerStartError as err:
        return fail(str(err), code=1)
    except PixsightError as err:  # refused before binding: keys, tasks, models, config
        return usage_error(str(err))
    return 0
