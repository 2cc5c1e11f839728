"""The web UI's project search, without a browser: what ``search_project`` costs on a project
of ``--apps`` three-step applications (``bench/ui_load.py``'s ``many apps`` data), per store.

``absent text``
    A text no step holds: the worst case, every application searched. Files: each log scanned
    in chunks, none parsed; PostgreSQL: one SQL query over the records. Against the naive
    search (every application's log parsed and its steps searched) for the ratio.
``common text``
    A text every step holds: the search stops after 100 matches, newest applications first.

Every figure is the median of ``--repeat`` runs (the naive one once), printed with the load
average: other processes share the machine.

    python bench/ui_search.py                # Markdown table
    python bench/ui_search.py --apps 500 --store files
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _store_bench import Row, add_store_options, each_store, print_table, timed
from _ui_data import MANY_PROJECT, Store, generate_many

from turnout.core.tracksource import AppQuery
from turnout.integrations.fastapi.ui import search
from turnout.integrations.fastapi.ui._source import Reader, open_source

ABSENT = "no step holds this text"
COMMON = "count"


def naive(reader: Reader) -> int:
    """Every application parsed and searched: what a search without the stores' help costs."""
    hits = 0
    for app in reader.app_page(MANY_PROJECT, AppQuery(limit=None)).apps:
        hits += len(search.search_app(reader, MANY_PROJECT, app.app_id, ABSENT).hits)
    return hits


def measure(args: argparse.Namespace, store: Store) -> list[Row]:
    where: Any = store.root if store.kind == "files" else store.dsn
    reader = Reader(open_source(where, table_prefix=store.prefix))
    try:
        reader.app_page(MANY_PROJECT, AppQuery(limit=None))  # the summaries exist (files)

        def absent() -> None:
            results = search.search_project(reader, MANY_PROJECT, ABSENT, budget=60)
            assert results.stopped is None, results
            assert not results.hits, results

        def common() -> None:
            results = search.search_project(reader, MANY_PROJECT, COMMON, budget=60)
            assert results.stopped == "limit", results

        found = timed(absent, args.repeat)
        whole = timed(lambda: naive(reader), 1)
        first = timed(common, args.repeat)
    finally:
        reader.close()
    kind = store.kind
    return [
        (f"{kind}: absent text, {args.apps} apps", found, f"{whole / found:.1f}x faster"),
        (f"{kind}: naive (every log parsed and searched)", whole, ""),
        (f"{kind}: common text, stops at 100 matches", first, ""),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--apps", type=int, default=2_000)
    add_store_options(parser)
    args = parser.parse_args(argv)
    rows = each_store(
        args,
        "ui-search",
        lambda store: generate_many(store, args.apps),
        lambda store: measure(args, store),
    )
    print_table(f"python bench/ui_search.py --apps {args.apps}", args.repeat, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
