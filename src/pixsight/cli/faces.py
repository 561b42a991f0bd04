"""``pixsight faces ...``: a gallery of known people (issue 4, "Faces").

``pixsight faces enroll NAME IMAGE... [--db FILE]``
``pixsight faces list [--db FILE] [--json]``, ``pixsight faces remove NAME [--db FILE]``
``pixsight faces who IMAGE... [--distance-threshold 0.6] [--db FILE] [--json]``
``pixsight faces find NAME [--distance-threshold 0.6] [--db FILE] [--json]``
(``--threshold`` is the former name of ``--distance-threshold``; it still works, with a note.)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from ..core.errors import PixsightError
from .common import add_renamed_flag, default_db, fail, terminal_safe, usage_error

__all__ = ["register"]

_DB_HELP = "catalog file (default: $PIXSIGHT_DB or $PIXSIGHT_HOME/catalog.sqlite)"


def register(sub: argparse._SubParsersAction) -> None:
    faces = sub.add_parser("faces", help="known people: enroll, list, remove, who, find")
    verbs = faces.add_subparsers(dest="faces_command", metavar="VERB", parser_class=type(faces))
    verbs.required = True
    enroll = verbs.add_parser("enroll", help="add the largest face of each image to a person",
                              description="Runs face detection on each image and stores the embedding of its "
                              "largest face under NAME, in the catalog file.")
    enroll.add_argument("name", metavar="NAME")
    enroll.add_argument("images", metavar="IMAGE", nargs="+")
    enroll.add_argument("--db", metavar="FILE", help=_DB_HELP)
    enroll.add_argument("--json", action="store_true", help="one JSON object per image")
    enroll.set_defaults(func=run_enroll)

    lst = verbs.add_parser("list", help="enrolled people and how many images each")
    lst.add_argument("--db", metavar="FILE", help=_DB_HELP)
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=run_list)

    rm = verbs.add_parser("remove", help="forget a person")
    rm.add_argument("name", metavar="NAME")
    rm.add_argument("--db", metavar="FILE", help=_DB_HELP)
    rm.set_defaults(func=run_remove)

    who = verbs.add_parser("who", help="name the faces in images",
                           description="Nearest enrolled person by Euclidean distance of 128-D dlib face "
                           "embeddings when below --distance-threshold, else 'unknown'.")
    who.add_argument("images", metavar="IMAGE", nargs="+")
    who.add_argument("--distance-threshold", type=float, default=0.6, help="same-person distance (default 0.6, dlib's)")
    add_renamed_flag(who, "--threshold", "--distance-threshold", type=float)
    who.add_argument("--db", metavar="FILE", help=_DB_HELP)
    who.add_argument("--json", action="store_true", help="one JSON object per face")
    who.set_defaults(func=run_who)

    find = verbs.add_parser("find", help="catalogued images of a person",
                            description="Every image in the catalog (analysed with the faces task) where a "
                            "face is recognised as NAME.")
    find.add_argument("name", metavar="NAME")
    find.add_argument("--distance-threshold", type=float, default=0.6, help="same-person distance (default 0.6)")
    add_renamed_flag(find, "--threshold", "--distance-threshold", type=float)
    find.add_argument("--db", metavar="FILE", help=_DB_HELP)
    find.add_argument("--json", action="store_true", help="one JSON object per image")
    find.set_defaults(func=run_find)


def _db(args: argparse.Namespace, *, must_exist: bool) -> Path:
    path = Path(args.db) if args.db else default_db()
    if must_exist and not path.is_file():
        raise FileNotFoundError(f"no catalog at {path}; run `pixsight faces enroll` first or pass --db")
    return path


def _check_threshold(value: float) -> str | None:
    if not (value > 0 and math.isfinite(value)):
        return f"--distance-threshold must be a positive number, got {value}"
    return None


def run_enroll(args: argparse.Namespace) -> int:
    from ..faces.gallery import enroll

    missing = [p for p in args.images if not Path(p).is_file()]
    if missing:
        return usage_error(f"not a file: {', '.join(missing)}")
    try:
        db = _db(args, must_exist=False)

        def show(item) -> None:
            if args.json:
                print(json.dumps({"path": item.path, "sha256": item.sha256, "enrolled": item.ok,
                                  "faces": item.faces, "box": item.box, "note": item.note}))
            elif item.ok:
                extra = f" ({item.note})" if item.note else ""
                print(terminal_safe(f"{item.path}: enrolled as {args.name}{extra}"))
            else:
                print(terminal_safe(f"pixsight: {item.path}: not enrolled: {item.note}"), file=sys.stderr)

        results = enroll(db, args.name, args.images, on_image=show)
    except PixsightError as err:
        return usage_error(str(err))
    done = sum(r.ok for r in results)
    if done == 0:
        return fail(f"no face enrolled for {args.name}; use images with one clear, frontal face", code=2)
    return 0 if done == len(results) else 1


def run_list(args: argparse.Namespace) -> int:
    from ..faces.gallery import people

    try:
        db = _db(args, must_exist=True)
        rows = people(db)
    except (PixsightError, FileNotFoundError) as err:
        return usage_error(str(err))
    for p in rows:
        print(json.dumps({"name": p.name, "images": p.images}) if args.json else f"{terminal_safe(p.name)}\t{p.images}")
    if not rows and not args.json:
        print("no people enrolled", file=sys.stderr)
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from ..faces.gallery import remove

    try:
        n = remove(_db(args, must_exist=True), args.name)
    except (PixsightError, FileNotFoundError) as err:
        return usage_error(str(err))
    print(terminal_safe(f"removed {args.name} ({n} images)"))
    return 0


def run_who(args: argparse.Namespace) -> int:
    from .. import AnalyzeConfig, Analyzer
    from ..faces.gallery import people, recognise

    if (msg := _check_threshold(args.distance_threshold)) is not None:
        return usage_error(msg)
    missing = [p for p in args.images if not Path(p).is_file()]
    if missing:
        return usage_error(f"not a file: {', '.join(missing)}")
    failed = 0
    try:
        db = _db(args, must_exist=True)
        if not people(db):
            return usage_error(f"no people enrolled in {db}; run `pixsight faces enroll NAME IMAGE...` first")
        with Analyzer(AnalyzeConfig(tasks=("faces",))) as analyzer:
            for path in args.images:
                analysis = analyzer.analyze_bytes(Path(path).read_bytes(), name=path)
                faces = analysis.results.get("faces")
                if faces is None:
                    failed += 1
                    why = (analysis.error or analysis.task_errors.get("faces") or {}).get("message", "?")
                    print(terminal_safe(f"pixsight: {path}: {why}"), file=sys.stderr)
                    continue
                names = recognise(db, faces, args.distance_threshold, model=analysis.models.get("faces"))
                if not names and not args.json:
                    print(f"{terminal_safe(path)}: no face found")
                for i, (who, dist) in enumerate(names):
                    box = [round(float(v), 1) for v in faces.boxes[i]]
                    if args.json:
                        print(json.dumps({"path": path, "face_index": i, "box": box, "name": who,
                                          "distance": None if math.isinf(dist) else round(dist, 4)}))
                    else:
                        print(f"{terminal_safe(path)}\tface {i}\t{box}\t{terminal_safe(who or 'unknown')}\t{dist:.3f}")
    except (PixsightError, FileNotFoundError) as err:
        return usage_error(str(err))
    return 1 if failed else 0


def run_find(args: argparse.Namespace) -> int:
    from ..faces.gallery import find_person

    if (msg := _check_threshold(args.distance_threshold)) is not None:
        return usage_error(msg)
    try:
        hits = find_person(_db(args, must_exist=True), args.name, args.distance_threshold)
    except (PixsightError, FileNotFoundError) as err:
        return usage_error(str(err))
    for sha, paths, dist in hits:
        if args.json:
            print(json.dumps({"sha256": sha, "paths": paths, "distance": round(dist, 4)}))
        else:
            print(f"{dist:.3f}\t{sha[:12]}\t{terminal_safe(' '.join(paths)) or '(no path)'}")
    if not hits and not args.json:
        print(f"no catalogued image of {terminal_safe(args.name)} (analyse images with the faces task first)",
              file=sys.stderr)
    return 0
