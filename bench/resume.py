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


def track(root: Path, steps: int, chat: Any) -> Any:
    tracker = LocalTracker("resume", root)
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


def resume(root: Path, chat: Any, fork_at: int | None) -> Any:
    tracker = LocalTracker("resume", root)
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
    return app.build()


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
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
