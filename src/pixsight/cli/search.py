"""``pixsight search [TEXT] [filters] [--person NAME] [--similar IMAGE|SHA256] [--offset N] [--json]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..core.errors import PixsightError
from ..core.fileio import printable_path
from .common import console_for, default_db, markup_safe, usage_error

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search", help="search the catalog by text, labels, file names, filters or similarity",
        description="Full-text search over OCR text, labels and file names of analysed images, with filters. "
                    "With no TEXT, the filters alone list matching images.")
    p.add_argument("text", nargs="*", metavar="TEXT", help="words to find (all must match; prefixes match)")
    p.add_argument("--label", help="top classify label or detected label (case-insensitive)")
    p.add_argument("--has-text", action="store_true", default=None, help="only images with OCR text")
    p.add_argument("--has-faces", action="store_true", default=None, help="only images with faces")
    p.add_argument("--needs-review", action="store_true", default=None, help="only images flagged for review")
    p.add_argument("--folder", metavar="DIR", help="only files under this folder")
    p.add_argument("--since", metavar="YYYY-MM-DD", help="analysed on or after this date")
    p.add_argument("--until", metavar="YYYY-MM-DD", help="analysed on or before this date")
    p.add_argument("--person", metavar="NAME", help="only images where a face is recognised as this enrolled "
                   "person (see `pixsight faces list`)")
    p.add_argument("--similar", metavar="IMAGE|SHA256", help="images visually similar to this one")
    p.add_argument("--k", type=int, default=10, help="neighbours for --similar (default 10)")
    p.add_argument("--limit", type=int, default=50, help="most hits to print (default 50)")
    p.add_argument("--offset", type=int, default=0, help="skip this many hits first (paging; default 0)")
    p.add_argument("--json", action="store_true", help="JSON Lines: one hit per line")
    p.add_argument("--db", help="catalog file (default: $PIXSIGHT_DB or $PIXSIGHT_HOME/catalog.sqlite)")
    p.set_defaults(func=run_search)


def run_search(args: argparse.Namespace) -> int:
    from ..catalog.search import search_page

    db = Path(args.db) if args.db else default_db()
    if args.limit < 1 or args.k < 1:
        return usage_error("--limit and --k must be at least 1")
    if args.offset < 0:
        return usage_error("--offset must not be negative")
    if not db.is_file():
        return usage_error(f"no catalog at {db}; run `pixsight analyze` first or pass --db")
    text = " ".join(args.text).strip() or None
    total = None
    try:
        if args.similar:
            if text or args.offset or any(v is not None for v in (
                    args.label, args.has_text, args.has_faces, args.needs_review, args.folder, args.since,
                    args.until, args.person)):
                return usage_error("--similar cannot be combined with TEXT, filters or --offset")
            hits = _similar(db, args.similar, k=args.k)
        else:
            shas = _person_shas(db, args.person) if args.person is not None else None
            page = search_page(db, text, label=args.label, has_text=args.has_text, has_faces=args.has_faces,
                               needs_review=args.needs_review, folder=args.folder, since=args.since,
                               until=args.until, shas=shas, limit=args.limit, offset=args.offset)
            hits, total = page.items, page.total
    except PixsightError as err:
        return usage_error(str(err))
    hits = hits[: args.limit]
    if args.json:
        for hit in hits:
            sys.stdout.write(json.dumps(hit.to_dict(), ensure_ascii=False) + "\n")
        return 0
    _table(hits)
    if total is not None and hits and (args.offset or total > len(hits)):
        first = args.offset + 1
        print(f"hits {first}-{args.offset + len(hits)} of {total}; --offset {args.offset + len(hits)} for more"
              if args.offset + len(hits) < total else f"hits {first}-{args.offset + len(hits)} of {total}",
              file=sys.stderr)
    return 0


def _person_shas(db: Path, name: str) -> list[str]:
    """sha256s of the catalogued images where a face is recognised as ``name``."""
    from ..faces.gallery import find_person

    return [sha for sha, _paths, _dist in find_person(db, name.strip())]


def _similar(db: Path, key: str, *, k: int):
    """Hits for images similar to ``key`` (a catalogued path or sha256, or a new image file)."""
    from ..catalog.search import hits_for
    from ..catalog.store import Catalog

    try:
        from ..catalog.vectors import similar
    except ModuleNotFoundError as err:
        if err.name != "pixsight.catalog.vectors":
            raise
        raise PixsightError("--similar needs pixsight.catalog.vectors, which this install lacks") from err
    with Catalog(db) as catalog:
        shas = catalog.find(key)
    if len(shas) > 1:
        raise PixsightError(f"{printable_path(key)!r} matches {len(shas)} images; give more of the sha256")
    if shas:
        query = shas[0]
    elif Path(key).is_file():
        query = _embed_file(Path(key))
    else:
        raise PixsightError(f"{printable_path(key)!r} is neither an image file nor in the catalog {db}")
    return hits_for(db, similar(db, query, k=k))


def _embed_file(path: Path):
    import pixsight

    with pixsight.Analyzer(pixsight.AnalyzeConfig(tasks=("embed",))) as analyzer:
        analysis = analyzer.analyze_bytes(path.read_bytes(), name=str(path))
    emb = analysis.results.get("embed")
    if emb is None:
        detail = analysis.error or analysis.task_errors
        raise PixsightError(f"cannot embed {printable_path(path)}: {detail}")
    return emb.vector


def _table(hits) -> None:
    from rich.table import Table

    console = console_for(sys.stdout)
    if not hits:
        console.print("no matches", markup=False)
        return
    table = Table(show_lines=False)
    for col in ("path", "labels", "snippet", "score"):
        table.add_column(col, overflow="fold")
    for h in hits:
        path = h.paths[0] if h.paths else h.sha256[:16]
        if len(h.paths) > 1:
            path += f" (+{len(h.paths) - 1})"
        table.add_row(_esc(path), _esc(", ".join(h.labels)), _esc(h.snippet), f"{h.score:.3f}")
    console.print(table)


def _esc(text: str) -> str:
    return markup_safe(text)
