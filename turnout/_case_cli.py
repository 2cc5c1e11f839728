"""``turnout test-case --store postgresql://...``: a tracked step's test case read from a
PostgreSQL tracking store (the tables a ``PostgresTracker`` writes), through the same reader
the UI uses, in the format ``turnout test-case`` writes from a tracking directory
(``turnout.core.trackcases``)."""

from __future__ import annotations

import argparse

__all__ = ["add_store_arguments", "store_case_command"]


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """``--store`` and ``--table-prefix`` on the ``test-case`` subcommand."""
    parser.add_argument(
        "--store",
        default=None,
        metavar="postgresql://...",
        help="read a PostgresTracker's tables instead of a tracking directory",
    )
    parser.add_argument(
        "--table-prefix", default="turnout_tracking", help="with --store: the tables' prefix"
    )


def store_case_command(args: argparse.Namespace, template: str) -> int:
    """``turnout test-case --store postgresql://...``: the step's case from a PostgreSQL
    tracking store (``turnout.core.trackcases``), merged into ``--out``."""
    from turnout.cli import _masked as masked
    from turnout.core.errors import PersistenceError
    from turnout.core.trackcases import CaseError, merge_cases, step_case

    dsn: str = args.store
    if args.dir is not None:
        raise SystemExit("turnout test-case: give --dir or --store, not both")
    if not dsn.startswith(("postgresql://", "postgres://")):
        raise SystemExit(
            f"turnout test-case: --store takes a postgresql:// connection string, not "
            f"{dsn[:40]!r} (a tracking directory is --dir)"
        )
    try:
        from turnout.integrations.postgres_tracking import PostgresSource

        source = PostgresSource(dsn, table_prefix=args.table_prefix, listen=False)
    except (ImportError, ValueError, ConnectionError) as exc:
        raise SystemExit(f"turnout test-case: {exc} (--store {masked(dsn)})") from exc
    try:
        log = source.app(args.project, args.app_id)
        if log is None:
            raise SystemExit(
                f"turnout test-case: no application {args.app_id!r} in project "
                f"{args.project!r} of {source.location}"
            )
        if args.partition_key is not None and log.partition_key != args.partition_key:
            raise SystemExit(
                f"turnout test-case: application {args.app_id!r} has partition key "
                f"{log.partition_key!r}, not {args.partition_key!r}"
            )
        case = step_case(log, args.app_id, args.sequence_id)
        merge_cases(args.out, [case])
    except CaseError as exc:
        raise SystemExit(f"turnout test-case: {exc}") from exc
    except PersistenceError as exc:
        raise SystemExit(f"turnout test-case: {exc} (--store {masked(dsn)})") from exc
    finally:
        source.close()
    print(f"wrote case {case['name']!r} to {args.out}; test it with:\n")
    print(template.format(path=args.out, action=case["action"]))
    return 0
