"""``pixsight keys create|list|revoke``: API keys of ``pixsight serve`` (stored hashed in the catalog)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ..core.errors import PixsightError
from .common import console_for, default_db, fail, markup_safe, terminal_safe, usage_error

__all__ = ["register"]

_ROLES = ("viewer", "reviewer", "admin")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="create, list and revoke API keys for pixsight serve",
                       description="API keys for pixsight serve. Roles: viewer (send images, read results), "
                       "reviewer (+ review decisions and exports), admin (+ keys, people). Only a hash of each key "
                       "is stored: a key is shown once, when created.")
    ksub = p.add_subparsers(dest="keys_command", metavar="ACTION", parser_class=type(p))
    ksub.required = True
    db_help = "catalog SQLite file (default: $PIXSIGHT_DB or $PIXSIGHT_HOME/catalog.sqlite)"

    c = ksub.add_parser("create", help="create a key and print it once")
    c.add_argument("--role", required=True, choices=_ROLES, help="what the key may do")
    c.add_argument("--name", default="", help="a label for the key (who or what uses it)")
    c.add_argument("--db", help=db_help)
    c.set_defaults(func=_create)

    ls = ksub.add_parser("list", help="list keys (never their secrets)")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.add_argument("--db", help=db_help)
    ls.set_defaults(func=_list)

    r = ksub.add_parser("revoke", help="revoke a key by its id")
    r.add_argument("id", help="the key id (the 8 hex characters after pxs_)")
    r.add_argument("--db", help=db_help)
    r.set_defaults(func=_revoke)


def _store(args: argparse.Namespace):  # noqa: ANN202 - KeyStore, imported lazily (serve extra)
    from ..serve.keys import KeyStore

    return KeyStore(Path(args.db) if args.db else default_db())


def _create(args: argparse.Namespace) -> int:
    try:
        info, token = _store(args).create(args.role, args.name)
    except PixsightError as err:
        return usage_error(str(err))
    print(token, flush=True)
    print(f"created {info.role} key {info.id} ({terminal_safe(info.name)}); it is shown only this once: store it now",
          file=sys.stderr)
    return 0


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


def _list(args: argparse.Namespace) -> int:
    try:
        keys = _store(args).list()
    except PixsightError as err:
        return fail(str(err), code=2)
    if args.json:
        print(json.dumps([k.to_dict() for k in keys], indent=2))
        return 0
    console = console_for(sys.stdout)
    if not keys:
        console.print("no API keys (pixsight keys create --role admin)")
        return 0
    from rich.table import Table

    table = Table("id", "name", "role", "created", "last used", "revoked", box=None)
    for k in keys:  # names made before control characters were refused may still hold some
        table.add_row(markup_safe(k.id), markup_safe(k.name), k.role, _when(k.created), _when(k.last_used),
                      _when(k.revoked))
    console.print(table)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    try:
        revoked = _store(args).revoke(args.id)
    except PixsightError as err:
        return fail(str(err), code=2)
    if not revoked:
        return fail(f"no live key with id {args.id!r} (pixsight keys list)")  # fail() escapes
    print(f"revoked key {terminal_safe(args.id)}")
    return 0
