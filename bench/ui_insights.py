"""What the web UI's cost and token insights cost, without a browser, on a tracking directory:
``app_insights`` on one application of ``--steps`` steps (each in a span logging tokens of a
priced model) and ``project_insights`` over a project of ``--apps`` three-step applications
(the page reads its 100 most recent ones; ``--limit``).

``first`` is a fresh ``Reader`` (the logs parsed once); ``again`` is the median of ``--repeat``
calls on the same reader (the logs kept, the insights computed again). Printed with the load
average: other processes share the machine.

    python bench/ui_insights.py
    python bench/ui_insights.py --steps 20000 --apps 1000 --limit 1000
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from turnout import ApplicationBuilder, State, TracerFactory, action
from turnout.core.tracking import LocalTracker
from turnout.integrations.fastapi.ui._source import Reader, open_source
from turnout.integrations.fastapi.ui.insights import app_insights, project_insights
from turnout.integrations.fastapi.ui.prices import DEFAULT_PRICES

PROJECT = "costs"


@action(reads=["n"], writes=["n"])
def call(state: State, __tracer: TracerFactory) -> State:
    with __tracer("llm") as span:
        span.log_attributes(
            **{
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 120 + state["n"] % 7,
                "gen_ai.usage.output_tokens": 40,
            }
        )
    return state.update(n=state["n"] + 1)


def generate(root: Path, steps: int, apps: int) -> None:
    tracker = LocalTracker(PROJECT, storage_dir=root)
    try:
        app = ApplicationBuilder().with_actions(call).with_transitions(("call", "call"))
        long_app = (
            app.with_state(n=0).with_entrypoint("call").with_tracker(tracker)
            .with_identifiers(app_id="long").build()
        )  # fmt: skip
        for _ in range(steps):
            long_app.step()
        for i in range(apps):
            short = (
                ApplicationBuilder().with_actions(call).with_transitions(("call", "call"))
                .with_state(n=0).with_entrypoint("call").with_tracker(tracker)
                .with_identifiers(app_id=f"app-{i:05d}").build()
            )  # fmt: skip
            for _ in range(3):
                short.step()
    finally:
        tracker.close()


def timed(work: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Seconds of the first call and the median of ``repeat`` more."""
    start = time.perf_counter()
    work()
    first = time.perf_counter() - start
    again = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        again.append(time.perf_counter() - start)
    return first, statistics.median(again)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--apps", type=int, default=300)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(root, args.steps, args.apps)
        load_before = os.getloadavg()[0]
        app_reader = Reader(open_source(root))
        app = timed(lambda: app_insights(app_reader, PROJECT, "long", DEFAULT_PRICES), args.repeat)
        project_reader = Reader(open_source(root))
        project = timed(
            lambda: project_insights(project_reader, PROJECT, DEFAULT_PRICES, limit=args.limit),
            args.repeat,
        )
        load_after = os.getloadavg()[0]
    print("| measure | first | again (median) |")
    print("| --- | --- | --- |")
    ms = [f"{seconds * 1000:,.0f} ms" for seconds in (*app, *project)]
    print(f"| app insights, {args.steps:,} steps | {ms[0]} | {ms[1]} |")
    print(
        f"| project insights, {min(args.limit, args.apps + 1):,} of {args.apps + 1:,} apps "
        f"| {ms[2]} | {ms[3]} |"
    )
    print(f"\nload average (1 min): {load_before:.2f} before, {load_after:.2f} after")


if __name__ == "__main__":
    main()
