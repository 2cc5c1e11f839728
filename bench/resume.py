"""Resume from a tracking log: how long ``initialize_from(LocalTracker(...))`` takes.

This is a benchmark script, not a test. A chat-like application (``bench/tracking.py``'s: each
step appends a ~200-character message dict to ``messages`` and increments ``turn``) runs
``--steps`` steps (10,000 by default) tracked by a ``LocalTracker`` with default settings (a
snapshot every 50 steps). Then, timed: ``ApplicationBuilder()...initialize_from(tracker,
resume_at_next_action=True, ...).build()`` for the same app id, from a new tracker object, as a
restarted process would; the state it resumes must be the state the run ended with.

Rows: ``latest`` (the default: the last step), ``seq <n>`` (``fork_from_sequence_id`` of a step
in the middle, into a new app id), and ``latest, no index`` (the same log with its side index
``log.index`` removed: the whole log is replayed; skipped where the index does not exist, e.g.
when this script runs against a turnout without marks: set ``PYTHONPATH`` to that checkout).

Each row: ``--rounds`` timed builds (``time.perf_counter``), ``gc.collect()`` before each, the
median and min in ms. The load average is printed before and after.

``--store postgres`` tracks into PostgreSQL instead (``PostgresTracker``, ``--dsn``, tables
under a fresh prefix, dropped afterwards); its third row, ``latest, every row``, rebuilds the
state from a replay of all the app's rows (what ``load`` falls back to).

Run ``python bench/resume.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tracking import make_texts

import turnout
from turnout import ApplicationBuilder, State, action
from turnout.core.tracking import LocalTracker

APP = "chat"


def chat_action(texts: tuple[str, ...]) -> Any:
    @action(reads=["turn", "messages"], writes=["turn", "messages"])
    def chat(state: State) -> State:
        turn = state["turn"]
        role = "user" if turn % 2 == 0 else "assistant"
        message = {"role": role, "turn": turn, "content": texts[turn % len(texts)]}
        return state.append(messages=message).increment(turn=1)

    return chat


def builder(chat: Any, app_id: str) -> Any:
    return (
        ApplicationBuilder()
        .with_actions(chat=chat)
        .with_transitions(("chat", "chat"))
        .with_identifiers(app_id=app_id)
    )


def make_tracker(root: Path, store: Any) -> Any:
    """The tracker a fresh process would make: files under ``root``, or PostgreSQL when
    ``store`` is ``(dsn, table_prefix)``."""
    if store is None:
        return LocalTracker("resume", root)
    from turnout.integrations.postgres_tracking import PostgresTracker

    dsn, prefix = store
    return PostgresTracker(dsn, project="resume", table_prefix=prefix)


def track(root: Path, steps: int, chat: Any, store: Any = None) -> Any:
    tracker = make_tracker(root, store)
    app = (
        builder(chat, APP)
        .with_state(turn=0, messages=[])
        .with_entrypoint("chat")
        .with_tracker(tracker)
        .build()
    )
    for _ in range(steps):
        app.step()
    tracker.close()
    return app.state


def resume(root: Path, chat: Any, fork_at: int | None, store: Any = None) -> Any:
    tracker = make_tracker(root, store)
    if fork_at is None:
        app = builder(chat, APP).initialize_from(
            tracker, resume_at_next_action=True, default_state={}, default_entrypoint="chat"
        )
    else:
        app = builder(chat, "forked").initialize_from(
            tracker,
            resume_at_next_action=True,
            default_state={},
            default_entrypoint="chat",
            fork_from_app_id=APP,
            fork_from_sequence_id=fork_at,
        )
    built = app.build()
    if store is not None:
        tracker.close()
    return built


def every_row(store: Any) -> Any:
    """The latest state from a replay of every row (PostgreSQL's fallback path)."""
    from turnout.core.serde import DEFAULT_SERDE
    from turnout.core.trackhistory import load_chain
    from turnout.integrations.postgres_tracking import _reader

    tracker = make_tracker(Path(), store)
    with tracker._reading() as conn:
        chain = _reader.full_chain(conn, tracker._tables, APP, None)
    tracker.close()
    return load_chain(chain, APP, None, DEFAULT_SERDE, where="bench")


def timed(rounds: int, run: Any) -> list[float]:
    samples = []
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10_000, help="tracked steps (10,000)")
    parser.add_argument("--rounds", type=int, default=7, help="timed builds per row (7)")
    parser.add_argument("--dir", help="where the log goes (default: a temporary directory)")
    parser.add_argument("--store", choices=["files", "postgres"], default="files")
    parser.add_argument(
        "--dsn",
        default=os.environ.get("TURNOUT_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"),
        help="the PostgreSQL server of --store postgres",
    )
    args = parser.parse_args(argv)
    if args.store == "postgres":
        return main_postgres(args)
    print(f"turnout from {Path(turnout.__file__).parent}, python {sys.version.split()[0]}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    root = Path(tempfile.mkdtemp(prefix="turnout-resume-", dir=args.dir))
    try:
        chat = chat_action(make_texts(min(args.steps, 1000)))
        started = time.perf_counter()
        final = track(root, args.steps, chat)
        log = LocalTracker("resume", root).log_path(APP)
        print(
            f"tracked {args.steps} steps in {time.perf_counter() - started:.1f} s; "
            f"log {log.stat().st_size / 1e6:.1f} MB"
        )
        resumed = resume(root, chat, None)
        if resumed.sequence_id != args.steps - 1 or resumed.state != final:
            raise SystemExit("the resumed state is not the state the run ended with")
        middle = args.steps // 2 + 17  # not on a snapshot: the deltas after one are applied
        forked = resume(root, chat, middle)
        if len(forked.state["messages"]) != middle + 1:
            raise SystemExit(f"the fork from step {middle} does not hold its state")
        rows = [
            ("latest", timed(args.rounds, lambda: resume(root, chat, None))),
            (f"seq {middle}", timed(args.rounds, lambda: resume(root, chat, middle))),
        ]
        index = log.parent / "log.index"
        if index.exists():
            index.unlink()
            rows.append(
                (
                    "latest, no index",
                    timed(max(args.rounds // 3, 1), lambda: resume(root, chat, None)),
                )
            )
        print(f"{'initialize_from(...).build()':<30} {'median ms':>10} {'min ms':>10}")
        for name, samples in rows:
            print(f"{name:<30} {statistics.median(samples):>10.1f} {min(samples):>10.1f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


def main_postgres(args: Any) -> int:
    import psycopg

    store = (args.dsn, f"bench_resume_{os.urandom(4).hex()}")
    print(f"turnout from {Path(turnout.__file__).parent}, python {sys.version.split()[0]}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    root = Path()
    try:
        chat = chat_action(make_texts(min(args.steps, 1000)))
        started = time.perf_counter()
        final = track(root, args.steps, chat, store)
        with psycopg.connect(args.dsn) as conn:
            size = conn.execute(f"SELECT pg_total_relation_size('{store[1]}_records')").fetchone()
        print(
            f"tracked {args.steps} steps into PostgreSQL in "
            f"{time.perf_counter() - started:.1f} s; table {size[0] / 1e6:.1f} MB"  # type: ignore[index]
        )
        resumed = resume(root, chat, None, store)
        if resumed.sequence_id != args.steps - 1 or resumed.state != final:
            raise SystemExit("the resumed state is not the state the run ended with")
        middle = args.steps // 2 + 17
        forked = resume(root, chat, middle, store)
        if len(forked.state["messages"]) != middle + 1:
            raise SystemExit(f"the fork from step {middle} does not hold its state")
        rows = [
            ("latest", timed(args.rounds, lambda: resume(root, chat, None, store))),
            (f"seq {middle}", timed(args.rounds, lambda: resume(root, chat, middle, store))),
            ("latest, every row", timed(max(args.rounds // 3, 1), lambda: every_row(store))),
        ]
        print(f"{'initialize_from(...).build()':<30} {'median ms':>10} {'min ms':>10}")
        for name, samples in rows:
            print(f"{name:<30} {statistics.median(samples):>10.1f} {min(samples):>10.1f}")
    finally:
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            for table in ("records", "apps"):
                conn.execute(f"DROP TABLE IF EXISTS {store[1]}_{table}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
