"""What ``bench/ui_search.py`` and ``bench/ui_source.py`` share: their options, the loop over
stores (generate, measure, drop) and the Markdown table printed with the load average."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _ui_data import Store

Row = tuple[str, float, str]


def load_average() -> str:
    """The load averages (1, 5, 15 min): other processes share the machine."""
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


def timed(run: Callable[[], Any], repeat: int) -> float:
    """The median seconds of ``repeat`` runs of ``run``."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """``--repeat``, ``--store`` and ``--dsn``."""
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--store", choices=["files", "postgresql", "both"], default="both")
    parser.add_argument(
        "--dsn",
        default=os.environ.get(
            "TURNOUT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )


def each_store(
    args: argparse.Namespace,
    name: str,
    generate: Callable[[Store], Any],
    measure: Callable[[Store], list[Row]],
) -> list[Row]:
    """Generate, measure and drop each store ``--store`` names, in a temporary directory."""
    base = Path(tempfile.mkdtemp(prefix=f"turnout-{name}-"))
    rows: list[Row] = []
    try:
        for kind in ("files", "postgresql") if args.store == "both" else (args.store,):
            store = Store(kind=kind, root=base / kind, dsn=args.dsn,
                          prefix=f"bench_{uuid.uuid4().hex[:10]}")  # fmt: skip
            store.root.mkdir(parents=True)
            print(f"[{kind}] generating ...", file=sys.stderr)
            generate(store)
            try:
                rows += measure(store)
            finally:
                store.drop()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return rows


def print_table(command: str, repeat: int, rows: list[Row]) -> None:
    """The command, the load average, then one Markdown row a measure."""
    print(f"`{command}` (median of {repeat}; load average at the end: {load_average()})\n")
    print("| measure | seconds | note |\n| --- | --- | --- |")
    for name, seconds, note in rows:
        print(f"| {name} | {seconds:.3f} | {note} |")
