"""``pixsight data import|register|list|show|remove``: archives and datasets registered by name.

``pixsight data import ARCHIVE DEST`` extracts a ``.zip`` / ``.tar`` / ``.tar.gz`` safely.
``pixsight data register NAME PATH [--db FILE]`` records a dataset in the catalog; ``list``
and ``show`` browse them (``show`` re-reads the files and reports a changed fingerprint);
``remove`` forgets one (its files stay). Registered via :func:`register_verbs` from
``cli/data.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..core.errors import PixsightError
from .common import console_for, fail

__all__ = ["register_verbs"]


def register_verbs(verbs: argparse._SubParsersAction) -> None:
    from ..data.formats import FORMATS

    imp = verbs.add_parser("import", help="extract a dataset archive (.zip, .tar, .tar.gz) safely",
                           description="Refuses absolute paths, '..', symlinks, hard links, devices, duplicate "
                           "names, too many members and too-large or too-compressed archives (zip bombs), naming "
                           "the member; extracts into a temp folder renamed to DEST only when complete.")
    imp.add_argument("archive", metavar="ARCHIVE")
    imp.add_argument("dest", metavar="DEST", help="a new (or empty) folder")
    imp.add_argument("--json", action="store_true", help="print the result as JSON")
    imp.set_defaults(func=run_import)

    reg = verbs.add_parser("register", help="record a dataset in the catalog under a name",
                           description="Reads the dataset (any format, or an archive) and records its name, "
                           "format, path, task, classes, counts and fingerprint. Every command that takes a dataset "
                           "path then also takes NAME. Registering a name again updates it.")
    reg.add_argument("name", metavar="NAME")
    reg.add_argument("path", metavar="PATH")
    reg.add_argument("--from", choices=FORMATS, dest="from_format", help="format of PATH (default: detect)")
    reg.add_argument("--db", metavar="FILE", help="catalog file (default: $PIXSIGHT_DB or "
                     "$PIXSIGHT_HOME/catalog.sqlite)")
    reg.add_argument("--json", action="store_true", help="print the entry as JSON")
    reg.set_defaults(func=run_register)

    lst = verbs.add_parser("list", help="list registered datasets")
    lst.add_argument("--db", metavar="FILE", help="catalog file")
    lst.add_argument("--json", action="store_true", help="print the entries as a JSON list")
    lst.set_defaults(func=run_list)

    show = verbs.add_parser("show", help="show a registered dataset and whether its files changed",
                            description="Prints the entry and re-reads the dataset: 'changed' when its "
                            "fingerprint differs from the one registered, 'missing' when the path is gone.")
    show.add_argument("name", metavar="NAME")
    show.add_argument("--db", metavar="FILE", help="catalog file")
    show.add_argument("--json", action="store_true", help="print the entry and its status as JSON")
    show.set_defaults(func=run_show)

    rm = verbs.add_parser("remove", help="forget a registered dataset (its files stay)")
    rm.add_argument("name", metavar="NAME")
    rm.add_argument("--db", metavar="FILE", help="catalog file")
    rm.set_defaults(func=run_remove)


def run_import(args: argparse.Namespace) -> int:
    from ..data.archive import extract_archive
    from ..data.formats import detect_format
    from ..data.resolve import unwrap_folder
    from .progress import simple_progress

    archive = Path(args.archive)
    if not archive.is_file():
        return fail(f"{archive}: no such file", code=2)
    dest = Path(args.dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        return fail(f"{dest} exists and is not empty; choose a new folder", code=2)
    from ..data.archive import archive_members

    try:
        total = len(archive_members(archive))
        with simple_progress(console_for(sys.stderr), total=total, label="import") as progress:
            extract_archive(archive, dest, progress=progress)
    except PixsightError as err:
        return fail(str(err), code=1)
    inside = unwrap_folder(dest)
    try:
        fmt: str | None = detect_format(inside)
    except PixsightError:
        fmt = None
    if args.json:
        print(json.dumps({"archive": str(archive), "dest": str(dest), "members": total, "dataset": str(inside),
                          "format": fmt}, indent=2))
    else:
        what = f"a {fmt} dataset at {inside}" if fmt else "no dataset format pixsight recognises"
        print(f"{total} members -> {dest}: {what}")
    return 0


def _entry_lines(entry: dict) -> list[tuple[str, str]]:
    counts = ", ".join(f"{k} {v}" for k, v in entry["class_counts"].items())
    splits = ", ".join(f"{k} {v}" for k, v in entry["splits"].items()) or "-"
    return [("name", entry["name"]), ("format", entry["format"]), ("task", entry["task"]), ("path", entry["path"]),
            ("images", str(entry["images"])), ("instances", str(entry["instances"])),
            ("classes", f"{len(entry['classes'])}: {counts}"), ("splits", splits),
            ("fingerprint", entry["fingerprint"]), ("created", entry["created"]), ("updated", entry["updated"])]


def _print_entry(entry: dict, extra: list[tuple[str, str]] = ()) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(show_header=False)
    table.add_column("key")
    table.add_column("value")
    for k, v in [*_entry_lines(entry), *extra]:
        table.add_row(k, escape(v))
    console_for(sys.stdout).print(table)


def run_register(args: argparse.Namespace) -> int:
    from ..data.registry import get_dataset, register_dataset, valid_name

    if not valid_name(args.name):
        return fail(f"dataset name {args.name!r} must be 1-64 letters, digits, '.', '_' or '-' (starting with a "
                    "letter or digit)", code=2)
    previous = None
    try:
        previous = get_dataset(args.name, db=args.db).to_dict()
    except PixsightError:
        pass
    try:
        entry, updated = register_dataset(args.name, args.path, db=args.db, fmt=args.from_format)
    except PixsightError as err:
        return fail(str(err), code=1 if Path(args.path).exists() else 2)
    doc = entry.to_dict()
    if args.json:
        print(json.dumps({**doc, "updated": updated, "previous": previous}, indent=2))
        return 0
    if updated and previous is not None:
        same = previous["fingerprint"] == doc["fingerprint"] and previous["path"] == doc["path"]
        note = "same content" if same else (f"was {previous['path']}, {previous['images']} images, "
                                            f"fingerprint {previous['fingerprint'][:12]}")
        print(f"updated dataset {args.name!r} ({note})")
    else:
        print(f"registered dataset {args.name!r}")
    _print_entry(doc)
    return 0


def run_list(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from ..data.registry import list_datasets

    try:
        entries = [e.to_dict() for e in list_datasets(db=args.db)]
    except PixsightError as err:
        return fail(str(err), code=1)
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    if not entries:
        print("no datasets registered (add one with `pixsight data register NAME PATH`)")
        return 0
    table = Table(title="datasets")
    for col in ("name", "format", "task", "images", "instances", "classes", "fingerprint", "path"):
        table.add_column(col, justify="right" if col in ("images", "instances", "classes") else "left")
    for e in entries:
        table.add_row(escape(e["name"]), e["format"], e["task"], str(e["images"]), str(e["instances"]),
                      str(len(e["classes"])), e["fingerprint"][:12], escape(e["path"]))
    console_for(sys.stdout).print(table)
    return 0


def run_show(args: argparse.Namespace) -> int:
    from ..data.registry import dataset_status, get_dataset

    try:
        entry = get_dataset(args.name, db=args.db)
    except PixsightError as err:
        return fail(str(err), code=2)
    status = dataset_status(entry)
    doc = entry.to_dict()
    if args.json:
        print(json.dumps({**doc, "status": status.state, "current_fingerprint": status.fingerprint,
                          "status_message": status.message}, indent=2))
        return 0
    state = status.state if status.state == "ok" else f"{status.state.upper()}: {status.message}"
    extra = [("status", state)]
    if status.state == "changed" and status.fingerprint:
        extra.append(("fingerprint now", status.fingerprint))
    _print_entry(doc, extra)
    if status.state != "ok":
        print(f"pixsight: warning: dataset {args.name!r} {status.message}", file=sys.stderr)
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from ..data.registry import remove_dataset

    try:
        removed = remove_dataset(args.name, db=args.db)
    except PixsightError as err:
        return fail(str(err), code=1)
    if not removed:
        return fail(f"no dataset registered as {args.name!r}", code=2)
    print(f"removed dataset {args.name!r} (its files are untouched)")
    return 0
