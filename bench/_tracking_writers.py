"""Sustained throughput for ``bench/tracking.py``: several processes tracking into one store.

``writers(kind, settings, count, steps)`` starts ``count`` processes (spawned), each building the
chat application of ``tracking.py`` with its own tracker of ``kind`` (``LocalTracker`` into one
directory, or ``PostgresTracker`` into one database), waits until all are built, then lets them
run ``steps`` steps each at once; steps/s is over the wall time from that common start until the
last process has closed (flushed) its tracker. Not a test; run ``bench/tracking.py``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from tracking import TURNOUT, Settings, Variant, close_tracker, make_app, make_texts, make_tracker


def _writer_process(
    tracker_kind: str, settings: Settings, storage: str, index: int, steps: int,
    barrier: Any, results: Any,
) -> None:  # fmt: skip
    """One of the concurrent writers: build, wait for the others, run, close (flushing)."""
    texts = make_texts(steps, seed=index)
    variant = Variant(TURNOUT, tracker_kind)
    project = f"{settings.prefix}-w{tracker_kind[:5].lower()}"
    tracker = make_tracker(variant, Path(storage), settings, project)
    app = make_app(TURNOUT, texts, tracker, app_id=f"writer-{index}")
    barrier.wait()
    start = time.perf_counter()
    for _ in range(steps):
        app.step()
    stepped = time.perf_counter() - start
    close_tracker(tracker)
    dropped = getattr(tracker, "dropped", 0)
    results.put((index, stepped, time.perf_counter() - start, dropped))


def writers(tracker_kind: str, settings: Settings, count: int, steps: int) -> dict[str, Any]:
    """``count`` processes each running ``steps`` tracked steps into one store at once: steps/s
    over the whole (from the common start until the last one has flushed and closed)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(count + 1)
    results = context.Queue()
    storage = tempfile.mkdtemp(prefix="turnout-bench-writers-", dir=settings.directory)
    processes = [
        context.Process(
            target=_writer_process,
            args=(tracker_kind, settings, storage, i, steps, barrier, results),
        )
        for i in range(count)
    ]
    try:
        for process in processes:
            process.start()
        barrier.wait(timeout=120)
        start = time.perf_counter()
        done = [results.get(timeout=600) for _ in processes]
        wall = time.perf_counter() - start
        for process in processes:
            process.join()
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    dropped = sum(d[3] for d in done)
    if dropped:
        raise RuntimeError(f"{count} writers into {tracker_kind}: {dropped} records dropped")
    return {
        "tracker": tracker_kind,
        "processes": count,
        "steps_each": steps,
        "wall_seconds": wall,
        "steps_per_second": count * steps / wall,
        "slowest_step_loop_seconds": max(d[1] for d in done),
    }


def writers_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| tracker | processes x steps | wall s (until all flushed) | steps/s | "
        "slowest step loop s |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['tracker']} | {row['processes']} x {row['steps_each']:,} "
            f"| {row['wall_seconds']:,.2f} | {row['steps_per_second']:,.0f} "
            f"| {row['slowest_step_loop_seconds']:,.2f} |"
        )
    return lines
