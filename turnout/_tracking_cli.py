"""``turnout prune`` and ``turnout tracking copy``: retention and copying of tracking data.

``turnout prune (--older-than 30d | --keep-last N) [--project P ...] [--dir DIR | --store
postgresql://...] [--table-prefix X] [--apply]`` removes whole applications (see
``turnout.core.trackadmin``): a dry run by default, which prints what would go; ``--apply``
removes, with a progress bar on stderr; a summary per project either way.

``turnout tracking copy FROM TO --project P [--to-project Q] [--table-prefix X]
[--to-table-prefix Y]`` copies a project between stores; ``FROM`` and ``TO`` are each a tracking
directory or a ``postgresql://`` connection string. Running it again copies nothing new.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from turnout.core.errors import MissingExtraError, PersistenceError, TurnoutError
from turnout.core.trackadmin import FileStore, TrackingStore, copy_project, parse_duration, prune

__all__ = ["add_tracking_parsers", "prune_command", "tracking_command"]

_PG = ("postgresql://", "postgres://")


def add_tracking_parsers(commands: Any) -> None:
    """Add the ``prune`` and ``tracking`` subcommands to ``turnout``'s subparsers."""
    parser = commands.add_parser(
        "prune",
        help="remove old tracked applications (dry run by default)",
        description="Remove whole tracked applications whose last activity is older than a "
        "duration, or all but the N most recent of each project. Prints what it would remove "
        "unless --apply is given.",
    )
    rule = parser.add_mutually_exclusive_group(required=True)
    rule.add_argument("--older-than", metavar="AGE", help="e.g. 30d, 12h, 2w (units s m h d w)")
    rule.add_argument("--keep-last", type=int, metavar="N", help="keep the N most recent apps")
    parser.add_argument(
        "--project",
        action="append",
        dest="projects",
        default=None,
        help="only this project (repeatable; default: every project)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--dir", default=None, help="tracking directory (default $TURNOUT_HOME)")
    where.add_argument(
        "--store", default=None, metavar="postgresql://...", help="a PostgreSQL tracking store"
    )
    parser.add_argument(
        "--table-prefix", default="turnout_tracking", help="its tables' prefix (turnout_tracking)"
    )
    parser.add_argument("--apply", action="store_true", help="remove (default: a dry run)")
    tracking = commands.add_parser(
        "tracking", help="manage tracking data (copy)", description="Manage tracking data."
    )
    actions = tracking.add_subparsers(dest="tracking_command", metavar="ACTION", required=True)
    copy = actions.add_parser(
        "copy",
        help="copy a project between tracking directories and PostgreSQL",
        description="Copy every application of a project, line for line, from FROM to TO "
        "(each a tracking directory or a postgresql:// connection string). Apps already "
        "there are skipped, partial ones completed, differing ones refused: run it again "
        "safely.",
    )
    copy.add_argument("source", metavar="FROM", help="tracking directory or postgresql://...")
    copy.add_argument("target", metavar="TO", help="tracking directory or postgresql://...")
    copy.add_argument("--project", required=True, help="the project to copy")
    copy.add_argument("--to-project", default=None, help="its name at TO (default: the same)")
    copy.add_argument(
        "--table-prefix", default="turnout_tracking", help="FROM's table prefix (PostgreSQL)"
    )
    copy.add_argument(
        "--to-table-prefix", default=None, help="TO's table prefix (default: --table-prefix)"
    )


def _progress(done: int, total: int, name: str) -> None:
    filled = 30 * done // total
    bar = "#" * filled + "." * (30 - filled)
    end = "\n" if done == total else ""
    print(f"\r[{bar}] {done}/{total} {name[:50]:<50}", end=end, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _store(where: str | None, project: str, prefix: str) -> Iterator[TrackingStore]:
    if where is not None and where.startswith(_PG):
        from turnout.integrations.postgres_tracking import PostgresTrackingStore

        with PostgresTrackingStore(where, project=project, table_prefix=prefix) as store:
            yield store
    else:
        yield FileStore(project, where)


def _projects(args: argparse.Namespace) -> list[str]:
    if args.projects:
        return list(args.projects)
    if args.store is None:
        return FileStore.projects(args.dir)
    from turnout.integrations.postgres_tracking import PostgresTrackingStore

    with PostgresTrackingStore(args.store, project="default", table_prefix=args.table_prefix) as s:
        return s.projects()


def prune_command(args: argparse.Namespace) -> int:
    """Run ``turnout prune``; the exit status (1: refused or failed)."""
    try:
        older = None if args.older_than is None else parse_duration(args.older_than)
        for project in _projects(args):
            with _store(args.store or args.dir, project, args.table_prefix) as store:
                report = prune(
                    store, older_than=older, keep_last=args.keep_last, apply=args.apply,
                    progress=_progress,
                )  # fmt: skip
            if not args.apply:
                for app in report.selected:
                    print(f"  {project}/{app.app_id}")
            print(f"turnout prune: {report.summary()}")
    except (MissingExtraError, PersistenceError, TurnoutError, OSError) as exc:
        print(f"turnout prune: {exc}", file=sys.stderr)
        return 1
    return 0


def tracking_command(args: argparse.Namespace) -> int:
    """Run ``turnout tracking copy``; the exit status (1: failed, or an app was refused)."""
    to_prefix = args.to_table_prefix or args.table_prefix
    try:
        with (
            _store(args.source, args.project, args.table_prefix) as source,
            _store(args.target, args.to_project or args.project, to_prefix) as target,
        ):
            report = copy_project(source, target, progress=_progress)
    except (MissingExtraError, PersistenceError, TurnoutError, OSError) as exc:
        print(f"turnout tracking copy: {exc}", file=sys.stderr)
        return 1
    for app_id, why in report.refused:
        print(f"  refused {app_id}: {why}", file=sys.stderr)
    print(f"turnout tracking copy: {report.summary()}")
    return 1 if report.refused else 0
