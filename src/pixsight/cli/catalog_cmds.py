"""``pixsight show PATH|SHA256`` and ``pixsight export --format jsonl|csv``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..core.errors import PixsightError
from ..core.fileio import printable_path
from .common import default_db, fail, usage_error

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    show = sub.add_parser("show", help="print the stored analysis of an image",
                          description="Print the stored analysis of an image, found by path or sha256 (prefix).")
    show.add_argument("key", metavar="PATH|SHA256")
    show.add_argument("--db", help="catalog file (default: $PIXSIGHT_DB or $PIXSIGHT_HOME/catalog.sqlite)")
    show.add_argument("--with-vectors", action="store_true", help="include embedding vectors")
    show.set_defaults(func=run_show)

    exp = sub.add_parser("export", help="export the catalog as JSON Lines or CSV")
    exp.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    exp.add_argument("--db", help="catalog file (default: $PIXSIGHT_DB or $PIXSIGHT_HOME/catalog.sqlite)")
    exp.add_argument("-o", "--output", metavar="FILE", help="output file (default: stdout)")
    exp.add_argument("--with-vectors", action="store_true", help="include embedding vectors (jsonl)")
    exp.set_defaults(func=run_export)


def _open_catalog(db: str | None):
    from ..catalog.store import Catalog

    path = Path(db) if db else default_db()
    if not path.exists():
        raise PixsightError(f"no catalog at {path}; run `pixsight analyze` first or pass --db")
    return Catalog(path)


def run_show(args: argparse.Namespace) -> int:
    try:
        catalog = _open_catalog(args.db)
    except PixsightError as err:
        return fail(str(err))
    with catalog:
        shas = catalog.find(args.key)
        if not shas:
            err = catalog.file_error(args.key)
            if err is not None:
                print(json.dumps({"path": printable_path(args.key), "status": "error", "error": err}, indent=2))
                return 0
            return fail(f"{printable_path(args.key)!r} is not in the catalog {catalog.path}")
        if len(shas) > 1:
            return usage_error(f"{printable_path(args.key)!r} matches {len(shas)} images; give more of the sha256")
        analysis = catalog.load_analysis(shas[0], path=printable_path(args.key) if Path(args.key).exists() else None,
                                         with_vectors=args.with_vectors)
        assert analysis is not None
        try:  # faces get `person` / `person_distance` when the catalog has a gallery
            from ..faces.naming import name_faces

            analysis = name_faces(catalog.path, analysis)
        except PixsightError as err:
            print(f"pixsight: warning: faces not named: {err}", file=sys.stderr)
        print(json.dumps(analysis.to_dict(with_vectors=args.with_vectors), indent=2, ensure_ascii=False))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from ..catalog.export import export_catalog
    from ..core.fileio import atomic_writer

    try:
        catalog = _open_catalog(args.db)
    except PixsightError as err:
        return fail(str(err))
    with catalog:
        if args.output:
            with atomic_writer(args.output, "w", encoding="utf-8", newline="") as fh:
                n = export_catalog(catalog, fh, format=args.format, with_vectors=args.with_vectors)
            print(f"exported {n} rows to {args.output}", file=sys.stderr)
        else:
            export_catalog(catalog, sys.stdout, format=args.format, with_vectors=args.with_vectors)
    return 0
