"""``pixsight review ...``: the human review queue from the terminal.

``pixsight review stats [--db FILE] [--json]``
``pixsight review next [--reviewer NAME] [--db FILE] [--json]``  (claims the image for 5 minutes)
``pixsight review submit IMAGE --decision accept|reject|relabel|fix [--label L]... [--box x1,y1,x2,y2:label]...``
``pixsight review history IMAGE [--db FILE] [--json]``
``pixsight review export OUT --format coco|folders [--include-rejected] [--strip-metadata] [--db FILE]``

IMAGE is a sha256, a sha256 prefix (8+ characters) or a catalogued path. The reviewer
recorded is ``--reviewer``, default ``cli:<login name>``.
Exit codes: 0 done, 1 export left out images whose files are gone, 2 usage error.
"""

from __future__ import annotations

import argparse
import getpass
import json
import re
import sys
from pathlib import Path
from typing import Any

from ..core.errors import PixsightError
from ..core.fileio import printable, printable_path
from .common import console_for, default_db, usage_error

__all__ = ["register", "parse_box"]

_DB_HELP = "catalog file (default: $PIXSIGHT_DB or $PIXSIGHT_HOME/catalog.sqlite)"
_BOX = re.compile(r"^\s*([^,:]+),([^,:]+),([^,:]+),([^,:]+):(.+)$")


def parse_box(text: str) -> dict[str, Any]:
    """``"x1,y1,x2,y2:label"`` -> ``{"box": [x1, y1, x2, y2], "label": label}``.

    >>> parse_box("10,20,110,220:cat")
    {'box': [10.0, 20.0, 110.0, 220.0], 'label': 'cat'}
    """
    m = _BOX.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"box {text!r} must look like x1,y1,x2,y2:label")
    try:
        box = [float(v) for v in m.groups()[:4]]
    except ValueError:
        raise argparse.ArgumentTypeError(f"box {text!r}: coordinates must be numbers") from None
    return {"box": box, "label": m.group(5).strip()}


def _default_reviewer() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name (containers)
        return "cli:unknown"


def register(sub: argparse._SubParsersAction) -> None:
    review = sub.add_parser("review", help="human review queue: stats, next, submit, history, export",
                            description="Judge the images the analyzer flagged needs_review; export the "
                            "judged images as a COCO or class-folders dataset.")
    verbs = review.add_subparsers(dest="review_command", metavar="VERB", parser_class=type(review))
    verbs.required = True

    st = verbs.add_parser("stats", help="pending, reviewed and per-decision counts")
    st.add_argument("--db", metavar="FILE", help=_DB_HELP)
    st.add_argument("--json", action="store_true", help="one JSON object")
    st.set_defaults(func=run_stats)

    nxt = verbs.add_parser("next", help="claim and show the next image to review",
                           description="Shows the oldest flagged image nobody else holds and claims it for "
                           "--claim-s seconds, so other reviewers (CLI or web) get a different one.")
    nxt.add_argument("--reviewer", default=None, help="who claims it (default cli:<login name>)")
    nxt.add_argument("--claim-s", type=float, default=300.0, help="claim length in seconds (default 300)")
    nxt.add_argument("--db", metavar="FILE", help=_DB_HELP)
    nxt.add_argument("--json", action="store_true", help="the item as JSON (null when the queue is empty)")
    nxt.set_defaults(func=run_next)

    sb = verbs.add_parser("submit", help="record a decision on an image",
                          description="accept: the model is right; reject: leave the image out; relabel: "
                          "give --label (first = class); fix: give --box x1,y1,x2,y2:label in pixels.")
    sb.add_argument("image", metavar="IMAGE", help="sha256, sha256 prefix (8+) or catalogued path")
    sb.add_argument("--decision", required=True, choices=("accept", "reject", "relabel", "fix"))
    sb.add_argument("--label", action="append", dest="labels", metavar="LABEL", help="a label (repeatable)")
    sb.add_argument("--box", action="append", dest="boxes", type=parse_box, metavar="X1,Y1,X2,Y2:LABEL",
                    help="a box (repeatable)")
    sb.add_argument("--note", help="free text kept with the decision")
    sb.add_argument("--reviewer", default=None, help="who decides (default cli:<login name>)")
    sb.add_argument("--db", metavar="FILE", help=_DB_HELP)
    sb.add_argument("--json", action="store_true", help="the recorded decision as JSON")
    sb.set_defaults(func=run_submit)

    hi = verbs.add_parser("history", help="every decision on an image, oldest first")
    hi.add_argument("image", metavar="IMAGE", help="sha256, sha256 prefix (8+) or catalogued path")
    hi.add_argument("--db", metavar="FILE", help=_DB_HELP)
    hi.add_argument("--json", action="store_true", help="JSON Lines, one decision per line")
    hi.set_defaults(func=run_history)

    ex = verbs.add_parser("export", help="write the reviewed images as a dataset",
                          description="accept -> the model's top label / detections, relabel -> the given "
                          "labels, fix -> the given boxes (coco only), reject -> left out.")
    ex.add_argument("out", metavar="OUT", help="new or empty folder")
    ex.add_argument("--format", required=True, choices=("coco", "folders"))
    ex.add_argument("--include-rejected", action="store_true",
                    help="keep rejected images (coco: no annotations; folders: a 'rejected' class)")
    ex.add_argument("--strip-metadata", action="store_true",
                    help="re-encode images without EXIF/metadata instead of copying them")
    ex.add_argument("--db", metavar="FILE", help=_DB_HELP)
    ex.add_argument("--json", action="store_true", help="the export summary as JSON")
    ex.set_defaults(func=run_export)


def _db(args: argparse.Namespace) -> Path | None:
    db = Path(args.db) if args.db else default_db()
    return db if db.is_file() else None


def _no_db(args: argparse.Namespace) -> int:
    db = Path(args.db) if args.db else default_db()
    return usage_error(f"no catalog at {db}; run `pixsight analyze` first or pass --db")


def _resolve(db: Path, key: str) -> str:
    from ..catalog.store import Catalog

    with Catalog(db) as cat:
        shas = cat.find(key)
    if not shas:
        raise PixsightError(f"{printable_path(key)!r} is not in the catalog {db}; give a sha256 or a catalogued path")
    if len(shas) > 1:
        raise PixsightError(f"{printable_path(key)!r} matches {len(shas)} images; give more of the sha256")
    return shas[0]


def run_stats(args: argparse.Namespace) -> int:
    from ..review.queue import stats

    db = _db(args)
    if db is None:
        return _no_db(args)
    try:
        data = stats(db)
    except PixsightError as err:
        return usage_error(str(err))
    if args.json:
        print(json.dumps(data))
        return 0
    out = console_for(sys.stdout)
    for key, value in data.items():
        out.print(f"{key:<10} {value}", markup=False)
    return 0


def run_next(args: argparse.Namespace) -> int:
    from ..review.queue import next_item

    db = _db(args)
    if db is None:
        return _no_db(args)
    try:
        item = next_item(db, args.reviewer or _default_reviewer(), claim_s=args.claim_s)
    except PixsightError as err:
        return usage_error(str(err))
    if args.json:
        print(json.dumps(item.to_dict() if item else None, ensure_ascii=False))
        return 0
    out = console_for(sys.stdout)
    if item is None:
        out.print("no image waits for review", markup=False)
        return 0
    classify = item.analysis.get("classify", {}).get("labels", [])
    lines = [f"sha256   {item.sha256}", f"path     {printable_path(item.path)}",
             f"size     {item.width}x{item.height}",
             "labels   " + (", ".join(f"{printable(c['label'])} {c['score']:.2f}" for c in classify[:3]) or "-"),
             *[f"reason   {printable(r)}" for r in item.reasons], f"pending  {item.pending}"]
    for line in lines:
        out.print(line, markup=False)
    return 0


def run_submit(args: argparse.Namespace) -> int:
    from ..review.queue import submit

    db = _db(args)
    if db is None:
        return _no_db(args)
    try:
        sha = _resolve(db, args.image)
        review = submit(db, sha, args.decision, args.reviewer or _default_reviewer(), labels=args.labels,
                        boxes=args.boxes, note=args.note)
    except PixsightError as err:
        return usage_error(str(err))
    if args.json:
        print(json.dumps(review.to_dict(), ensure_ascii=False))
    else:
        console_for(sys.stdout).print(f"{review.decision} recorded for {sha[:16]} by {printable(review.reviewer)}",
                                      markup=False)
    return 0


def run_history(args: argparse.Namespace) -> int:
    import datetime as dt

    from ..review.queue import history

    db = _db(args)
    if db is None:
        return _no_db(args)
    try:
        reviews = history(db, _resolve(db, args.image))
    except PixsightError as err:
        return usage_error(str(err))
    if args.json:
        for r in reviews:
            sys.stdout.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
        return 0
    out = console_for(sys.stdout)
    if not reviews:
        out.print("no decisions yet", markup=False)
    for r in reviews:
        when = dt.datetime.fromtimestamp(r.created).isoformat(timespec="seconds")
        what = ", ".join(r.labels) or ", ".join(f"{b['label']} {b['box']}" for b in r.boxes)
        out.print(printable(f"{when}  {r.decision:<8} {r.reviewer}  {what}  {r.note or ''}".rstrip()), markup=False)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from ..review.export import export_reviewed

    db = _db(args)
    if db is None:
        return _no_db(args)
    try:
        summary = export_reviewed(db, args.out, format=args.format, include_rejected=args.include_rejected,
                                  strip_metadata=args.strip_metadata)
    except PixsightError as err:
        return usage_error(str(err))
    missing = [s for s in summary.skipped if s["reason"] != "rejected"]
    if args.json:
        print(json.dumps(summary.to_dict(), ensure_ascii=False))
    else:
        out = console_for(sys.stdout)
        out.print(f"wrote {summary.images} images, {summary.annotations} boxes, {len(summary.classes)} classes "
                  f"({summary.format}) to {printable_path(summary.dataset_path)}", markup=False)
        for s in missing:
            print(f"pixsight: warning: left out {s['sha256'][:16]}: {s['reason']}", file=sys.stderr)
    gone = [s for s in missing if "no catalogued file" in s["reason"] or "no longer" in s["reason"]]
    return 1 if gone else 0
