"""``turnout migrate``: rewrite a persister's stored states to the current state schema version.

``turnout migrate MODULE:ATTR (--sqlite PATH | --postgres CONNINFO) [--table NAME]
[--partition-key KEY] [--app-id ID ...] [--apply]`` imports the ``StateSchema`` named by
``MODULE:ATTR`` (the current directory is importable, as with ``python -m``) and runs
``turnout.core.migrate.migrate`` over the persister's tables: a dry run by default, which prints
the apps and records it would rewrite; ``--apply`` writes. A progress bar goes to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from contextlib import AbstractContextManager
from typing import Any

from turnout.core.errors import PersistenceError, TurnoutError
from turnout.core.migrate import migrate
from turnout.core.versions import StateSchema

__all__ = ["add_migrate_parser", "load_schema", "migrate_command"]


def add_migrate_parser(commands: Any) -> None:
    """Add the ``migrate`` subcommand to ``turnout``'s subparsers."""
    parser = commands.add_parser(
        "migrate",
        help="rewrite stored states to the current state schema version (dry run by default)",
        description="Rewrite the states a persister stored under older state schema versions "
        "to the current one, with the migrations of a StateSchema. Prints what it would change "
        "unless --apply is given; running it again changes nothing.",
    )
    parser.add_argument(
        "schema", metavar="MODULE:ATTR", help="the StateSchema, e.g. myapp.state:SCHEMA"
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--sqlite", metavar="PATH", help="an SQLite database file")
    where.add_argument("--postgres", metavar="CONNINFO", help="a PostgreSQL connection string")
    parser.add_argument(
        "--table", default="turnout", help="the persister's table_name (default turnout)"
    )
    parser.add_argument("--partition-key", default=None, help="only the apps of this partition")
    parser.add_argument(
        "--app-id",
        action="append",
        dest="app_ids",
        default=None,
        help="only this app (repeatable; default: every app)",
    )
    parser.add_argument("--apply", action="store_true", help="write (default: a dry run)")


def load_schema(spec: str) -> StateSchema:
    """The ``StateSchema`` that ``MODULE:ATTR`` names (``ATTR`` may be dotted)."""
    module_name, colon, attr = spec.partition(":")
    if not colon or not module_name or not attr:
        raise ValueError(f"{spec!r} is not MODULE:ATTR, e.g. myapp.state:SCHEMA")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # the user's package, as `python -m` would find it
    value: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        if not hasattr(value, part):
            raise ValueError(f"{module_name!r} has no attribute {attr!r}")
        value = getattr(value, part)
    if not isinstance(value, StateSchema):
        raise ValueError(
            f"{spec} is a {type(value).__name__}, not a StateSchema: define "
            f"SCHEMA = StateSchema(version=..., migrations={{...}}) and pass it to both "
            f"with_typing(SCHEMA) and turnout migrate."
        )
    return value


def _open(args: argparse.Namespace) -> AbstractContextManager[Any]:
    if args.sqlite is not None:
        from turnout.core.sqlite import SQLitePersister

        if not os.path.isfile(args.sqlite):
            raise ValueError(f"no SQLite database at {args.sqlite!r}")
        return SQLitePersister(args.sqlite, args.table)
    from turnout.integrations.postgres import PostgreSQLPersister

    return PostgreSQLPersister(args.postgres, args.table)


def _progress(done: int, total: int, name: str) -> None:
    filled = 30 * done // total
    bar = "#" * filled + "." * (30 - filled)
    end = "\n" if done == total else ""
    print(f"\r[{bar}] {done}/{total} {name[:50]:<50}", end=end, file=sys.stderr, flush=True)


def migrate_command(args: argparse.Namespace) -> int:
    """Run ``turnout migrate``; the exit status (1: refused or failed, nothing more written)."""
    try:
        schema = load_schema(args.schema)
        with _open(args) as persister:
            report = migrate(
                persister,
                schema,
                apply=args.apply,
                partition_key=args.partition_key,
                app_ids=args.app_ids,
                progress=_progress,
            )
    except (ImportError, ValueError, PersistenceError, TurnoutError) as exc:
        print(f"turnout migrate: {exc}", file=sys.stderr)
        return 1
    for app in report.pending:
        print(app.describe(report.version))
    print(f"turnout migrate: {report.summary()}")
    return 0
