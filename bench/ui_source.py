"""The tracking UI's data side, without a browser: what a page asks its tracking source.

This is a benchmark script, not a test. ``bench/ui_load.py`` times whole pages in Chromium;
this script times only what a page asks the store, for both stores, on issue 17's shapes:

``long app``
    A ``--steps``-step application (100,000 by default; its state a counter). Time to have its
    last page of steps and the state of its last step: read tail-first (``AppLog.tail_first``
    for files, ``PostgresSource.app`` for PostgreSQL: the default) against a whole read (what
    the UI did before), and the ratio.
``many apps``
    A project of ``--apps`` three-step applications (10,000). Time to have the first page of 50
    from the source: files with no summary index yet (the first visit ever), after a restart
    (the index file read back), and warm; the whole read (every log opened, as before) for the
    ratio; PostgreSQL's one query.

Every figure is the median of ``--repeat`` runs (the whole reads once: they are slow), printed
with the load average: other processes share the machine.

    python bench/ui_source.py                # Markdown table
    python bench/ui_source.py --steps 20000 --apps 2000 --store files
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _store_bench import Row, add_store_options, each_store, print_table, timed
from _ui_data import (  # the same generated data as the page benchmark
    LARGE_PROJECT,
    MANY_PROJECT,
    Store,
    generate_large,
    generate_many,
    large_app_id,
)

from turnout.core.trackfiles import TrackingIndex
from turnout.core.tracksource import INDEX_NAME, AppQuery
from turnout.core.trackview import AppLog


def last_page(log: AppLog) -> None:
    steps = log.step_list()
    last = steps[-1].seq
    log.state_after(last)
    log.state_before(last)
    log.summary("p")


def files(args: argparse.Namespace, store: Store) -> list[Row]:
    path = store.root / LARGE_PROJECT / large_app_id(args.steps) / "log.jsonl"

    def tail() -> None:
        log = AppLog.tail_first(path)
        log.refresh()
        last_page(log)

    def whole() -> None:
        log = AppLog(path)
        log.refresh()
        last_page(log)

    rows = [
        (
            "files: long app, tail first",
            timed(tail, args.repeat),
            f"{path.stat().st_size / 1e6:.0f} MB log",
        )
    ]
    rows.append(("files: long app, whole read (before)", timed(whole, 1), "once"))
    index_file = store.root / MANY_PROJECT / INDEX_NAME

    def cold() -> None:
        index_file.unlink(missing_ok=True)
        TrackingIndex(store.root).app_page(MANY_PROJECT, AppQuery())

    def restart() -> None:
        TrackingIndex(store.root).app_page(MANY_PROJECT, AppQuery(), budget=None)

    rows.append(("files: many apps, first page, no index yet", timed(cold, args.repeat),
                 "the page's 50 + 0.25 s of others"))  # fmt: skip
    index_file.unlink(missing_ok=True)
    TrackingIndex(store.root).app_page(MANY_PROJECT, AppQuery(), budget=None)  # the whole index
    rows.append(("files: many apps, first page after a restart", timed(restart, args.repeat),
                 "index file read back, no log opened"))  # fmt: skip
    warm = TrackingIndex(store.root)
    warm.app_page(MANY_PROJECT, AppQuery())
    seconds = timed(lambda: warm.app_page(MANY_PROJECT, AppQuery()), args.repeat)
    rows.append(("files: many apps, first page, warm", seconds, "stat of every log"))

    def every_log() -> None:
        for log in (store.root / MANY_PROJECT).glob("*/log.jsonl"):
            opened = AppLog(log)
            opened.refresh()
            opened.summary(MANY_PROJECT)

    rows.append(("files: many apps, every log opened (before)", timed(every_log, 1), "once"))
    return rows


def postgresql(args: argparse.Namespace, store: Store) -> list[Row]:
    from turnout.integrations.postgres_tracking import PostgresSource

    def app(**options: Any) -> Callable[[], None]:
        def run() -> None:
            source = PostgresSource(store.dsn, table_prefix=store.prefix, listen=False, **options)
            try:
                log = source.app(LARGE_PROJECT, large_app_id(args.steps))
                assert log is not None
                last_page(log)
            finally:
                source.close()

        return run

    rows = [("postgresql: long app, tail first", timed(app(), args.repeat), "")]
    rows.append(("postgresql: long app, whole read (before)",
                 timed(app(long_app=10**12), 1), "once"))  # fmt: skip
    source = PostgresSource(store.dsn, table_prefix=store.prefix, listen=False)
    try:
        source.app_page(MANY_PROJECT, AppQuery())
        seconds = timed(lambda: source.app_page(MANY_PROJECT, AppQuery()), args.repeat)
        rows.append(("postgresql: many apps, first page", seconds, "one query on _apps"))
        failed = AppQuery(status="failed")
        seconds = timed(lambda: source.app_page(MANY_PROJECT, failed), args.repeat)
        rows.append(("postgresql: many apps, failed ones", seconds, ""))
    finally:
        source.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--apps", type=int, default=10_000)
    add_store_options(parser)
    args = parser.parse_args(argv)
    rows = each_store(
        args,
        "ui-source",
        lambda store: (generate_large(store, args.steps, "count"), generate_many(store, args.apps)),
        lambda store: files(args, store) if store.kind == "files" else postgresql(args, store),
    )
    print_table(
        f"python bench/ui_source.py --steps {args.steps} --apps {args.apps}", args.repeat, rows
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
