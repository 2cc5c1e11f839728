"""Tracking overhead: what recording every step for the UI adds to each step.

This is a benchmark script, not a test. It answers: how many microseconds per step does a
tracker add to an application whose state keeps growing; how do turnout's ``LocalTracker`` and
``PostgresTracker`` compare with each other and with Burr's ``LocalTrackingClient``; and how
many steps per second do 8 processes tracking into one store at once sustain?

The workload is a chat-like application of ``--steps`` steps (1,000 by default). Its one action
appends a message (a dict holding about 200 characters of varied text) to a ``messages`` list
and increments a ``turn`` counter, so step *n* runs on a state of *n* messages. The same action
code is written once and imported from ``turnout`` or from ``burr.core``. Five variants run:

``turnout``
    ``turnout.ApplicationBuilder``, no tracker (the baseline for turnout's overhead).
``turnout + LocalTracker``
    The same with ``with_tracker(turnout.core.tracking.LocalTracker(...))``, default settings:
    a begin and an end line per step holding the step's changes, a full snapshot every 50 steps.
``turnout + PostgresTracker``
    The same with ``PostgresTracker(--dsn, ...)``, default settings, when psycopg is installed
    and the server answers. Only the step path is timed; the time its writer then takes to
    drain its queue is reported apart, and every finished step is checked in the table.
``burr``
    ``burr.core.ApplicationBuilder``, no tracker (the baseline for Burr's overhead).
``burr + LocalTrackingClient``
    The same with ``with_tracker(burr.tracking.LocalTrackingClient(...))``, default settings:
    a begin and an end line per step, the end line holding the whole state.

Burr's rows appear only when ``burr`` (``apache-burr``) can be imported. Every tracked run
writes into a new directory under a temporary root (``--dir`` to choose the disk), deleted
after the run has been measured.

Measured in one process, interleaved: every round runs each variant once, rotating which goes
first. Before each timed run, untimed: the application is built, ``os.sync()`` flushes the
previous run's writes, and ``gc.collect()`` runs; the collector stays enabled while timing, and
``gc.freeze()`` after the warm-up keeps import-time objects out of its way. One run is timed
whole (``time.perf_counter_ns`` around ``--steps`` calls of ``app.step()``) and divided by the
number of steps. Reported: the median µs/step over rounds (with the 25th-75th percentile
range), the overhead of each tracker (tracked minus untracked median), the ratio of Burr's
overhead to turnout's, and the bytes each tracker wrote.

Then ``--writers`` processes (8) each run ``--writer-steps`` (2,000) tracked steps into one store
at once, with each turnout tracker in turn: steps/s over the wall time from a common start until
the last process has closed (flushed) its tracker. The load average is printed with the figures.

Run ``python bench/tracking.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.metadata
import json
import os
import platform
import random
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TURNOUT = "turnout"
BURR = "burr"
LOCAL = "LocalTracker"
POSTGRES = "PostgresTracker"
BURR_TRACKER = "LocalTrackingClient"
PROJECT = "bench"
TARGET_RATIO = 5.0
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"

# --------------------------------------------------------------------------------------------
# The workload: the same texts and the same action code for both frameworks.
# --------------------------------------------------------------------------------------------

_WORDS = tuple(
    word
    for line in (
        "the a of to and in is it you that for on with as are this be at have or from by not",
        "but what all were when we there can an your which their said if do will each about how",
        "up out them then many some so these would other into has more two like see time could",
        "no make than first been its who now people my made over did down only way find use may",
        "long after model answer question order ticket refund delivery account password invoice",
    )
    for word in line.split()
)


def sentence(rng: random.Random, length: int = 200) -> str:
    """About ``length`` characters of word-like text (varied, so nothing compresses trivially)."""
    words: list[str] = []
    size = 0
    while size < length:
        word = rng.choice(_WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words)[:length].capitalize()


def make_texts(steps: int, seed: int = 5) -> tuple[str, ...]:
    rng = random.Random(seed)
    return tuple(sentence(rng) for _ in range(steps))


def make_app(framework: str, texts: tuple[str, ...], tracker: Any | None, app_id: str) -> Any:
    """The chat application, built with ``framework``'s builder and ``@action``."""
    module = importlib.import_module("turnout" if framework == TURNOUT else "burr.core")
    action: Callable[..., Callable[[Callable[[Any], Any]], Any]] = module.action

    @action(reads=["turn", "messages"], writes=["turn", "messages"])
    def chat(state: Any) -> Any:
        turn = state["turn"]
        role = "user" if turn % 2 == 0 else "assistant"
        message = {"role": role, "turn": turn, "content": texts[turn % len(texts)]}
        return state.append(messages=message).increment(turn=1)

    builder = (
        module.ApplicationBuilder()
        .with_actions(chat=chat)
        .with_transitions(("chat", "chat"))
        .with_state(turn=0, messages=[])
        .with_entrypoint("chat")
        .with_identifiers(app_id=app_id)
    )
    if tracker is not None:
        builder = builder.with_tracker(tracker)
    return builder.build()


def make_tracker(variant: Variant, storage: Path, settings: Settings, project: str) -> Any:
    if variant.tracker == LOCAL:
        from turnout.core.tracking import LocalTracker

        return LocalTracker(PROJECT, storage)
    if variant.tracker == POSTGRES:
        from turnout.integrations.postgres_tracking import PostgresTracker

        return PostgresTracker(settings.dsn, project=project, table_prefix=settings.prefix)
    tracking = importlib.import_module("burr.tracking")
    return tracking.LocalTrackingClient(project=PROJECT, storage_dir=str(storage))


def close_tracker(tracker: Any) -> None:
    close = getattr(tracker, "close", None)  # turnout's; Burr's closes its file in __del__
    if close is not None:
        close()
    elif getattr(tracker, "f", None) is not None:
        tracker.f.close()


def stored_bytes(settings: Settings, project: str, app_id: str, steps: int) -> int:
    """The payload bytes of one PostgreSQL-tracked run, after checking every step is there."""
    import psycopg

    table = f"{settings.prefix}_records"
    with psycopg.connect(settings.dsn, autocommit=True) as conn:
        ends, size = conn.execute(
            f"SELECT count(*) FILTER (WHERE kind = 'end' AND finished), "
            f"coalesce(sum(octet_length(payload)), 0) FROM {table} "
            f"WHERE project = %s AND app_id = %s",
            [project, app_id],
        ).fetchone()  # type: ignore[misc]
    if ends != steps:
        raise RuntimeError(f"{project}/{app_id}: {ends} finished steps stored, not {steps}")
    return int(size)


def drop_tables(settings: Settings) -> None:
    import psycopg

    with psycopg.connect(settings.dsn, autocommit=True) as conn:
        for table in ("records", "apps"):
            conn.execute(f"DROP TABLE IF EXISTS {settings.prefix}_{table}")


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


# --------------------------------------------------------------------------------------------
# Variants and samples.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    steps: int
    rounds: int
    directory: str | None
    dsn: str | None = None  # None: PostgresTracker left out
    prefix: str = "bench_tracking"


@dataclass(frozen=True)
class Variant:
    framework: str
    tracker: str | None  # LOCAL, POSTGRES, BURR_TRACKER, or None (untracked)

    @property
    def name(self) -> str:
        if self.tracker is None:
            return self.framework
        return f"{self.framework} + {self.tracker}"

    @property
    def key(self) -> str:
        return f"{self.framework}-{self.tracker or 'none'}"


@dataclass
class Samples:
    """Per variant: µs/step of each round; per tracked variant: bytes written by each run and
    (PostgreSQL) the µs/step spent after the run waiting for the writer to drain its queue."""

    us_per_step: dict[str, list[float]] = field(default_factory=dict)
    log_bytes: dict[str, list[int]] = field(default_factory=dict)
    drain_us_per_step: dict[str, list[float]] = field(default_factory=dict)


def run_once(
    variant: Variant,
    texts: tuple[str, ...],
    settings: Settings,
    root: Path,
    label: str,
    steps: int | None = None,
) -> tuple[float, int, float]:
    """Build (untimed), run ``steps`` steps (timed), check; return µs/step, bytes written and
    (PostgreSQL) µs/step spent draining the writer's queue after the timed run."""
    steps = settings.steps if steps is None else steps
    storage = root / label
    app_id = f"chat-{label}"
    tracker = make_tracker(variant, storage, settings, label) if variant.tracker else None
    app = make_app(variant.framework, texts, tracker, app_id=app_id)
    step: Callable[[], Any] = app.step
    os.sync()
    gc.collect()
    start = time.perf_counter_ns()
    for _ in range(steps):
        step()
    elapsed = time.perf_counter_ns() - start
    state = app.state
    if state["turn"] != steps or len(state["messages"]) != steps:
        raise RuntimeError(f"{variant.name}: the run ended at turn {state['turn']}, not {steps}")
    written, drain = 0, 0
    if tracker is not None:
        if variant.tracker == POSTGRES:
            drain_start = time.perf_counter_ns()
            if not tracker.flush(60):
                raise RuntimeError(f"{variant.name}: the writer did not drain in 60 s")
            drain = time.perf_counter_ns() - drain_start
            close_tracker(tracker)
            if tracker.dropped:
                raise RuntimeError(f"{variant.name}: {tracker.dropped} records dropped")
            written = stored_bytes(settings, label, app_id, steps)
        else:
            close_tracker(tracker)
            written = tree_bytes(storage)
            shutil.rmtree(storage)
        if written == 0:
            raise RuntimeError(f"{variant.name}: the tracker wrote nothing for {label}")
    return elapsed / steps / 1000, written, drain / steps / 1000


def measure(variants: list[Variant], texts: tuple[str, ...], settings: Settings) -> Samples:
    samples = Samples()
    root = Path(tempfile.mkdtemp(prefix="turnout-bench-tracking-", dir=settings.directory))
    try:
        for variant in variants:  # warm-up: imports, caches, first files and tables
            label = f"warm-{variant.key}"
            run_once(variant, texts, settings, root, label, min(settings.steps, 50))
        gc.collect()
        gc.freeze()
        for round_index in range(settings.rounds):
            shift = round_index % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                label = f"r{round_index}-{variant.key}"
                us, written, drain = run_once(variant, texts, settings, root, label)
                samples.us_per_step.setdefault(variant.name, []).append(us)
                if variant.tracker:
                    samples.log_bytes.setdefault(variant.name, []).append(written)
                if variant.tracker == POSTGRES:
                    samples.drain_us_per_step.setdefault(variant.name, []).append(drain)
                print(
                    f"round {round_index + 1}/{settings.rounds}: {variant.name}: {us:,.1f} µs/step",
                    file=sys.stderr,
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return samples


# --------------------------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------------------------


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def summary(samples: Samples, variants: list[Variant]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for variant in variants:
        if variant.tracker is None:
            continue
        plain = Variant(variant.framework, None).name
        untracked_median = statistics.median(samples.us_per_step[plain])
        tracked_median = statistics.median(samples.us_per_step[variant.name])
        row = {
            "framework": variant.framework,
            "tracker": variant.tracker,
            "untracked_us_per_step": untracked_median,
            "untracked_quartiles": quartiles(samples.us_per_step[plain]),
            "tracked_us_per_step": tracked_median,
            "tracked_quartiles": quartiles(samples.us_per_step[variant.name]),
            "overhead_us_per_step": tracked_median - untracked_median,
            "log_bytes": int(statistics.median(samples.log_bytes[variant.name])),
        }
        if variant.name in samples.drain_us_per_step:
            row["drain_us_per_step"] = statistics.median(samples.drain_us_per_step[variant.name])
        rows[variant.name] = row
    result: dict[str, Any] = {"systems": rows}
    local = rows.get(Variant(TURNOUT, LOCAL).name)
    burr = rows.get(Variant(BURR, BURR_TRACKER).name)
    postgres = rows.get(Variant(TURNOUT, POSTGRES).name)
    if local and burr:
        result["burr_over_turnout_overhead"] = (
            burr["overhead_us_per_step"] / local["overhead_us_per_step"]
        )
    if local and postgres:
        result["postgres_over_local_overhead"] = (
            postgres["overhead_us_per_step"] / local["overhead_us_per_step"]
        )
    return result


def table(results: dict[str, Any], steps: int) -> list[str]:
    lines = [
        "| system | tracker | untracked µs/step | tracked µs/step | overhead µs/step | "
        "log bytes | bytes/step |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in results["systems"].values():
        u1, _, u3 = row["untracked_quartiles"]
        t1, _, t3 = row["tracked_quartiles"]
        lines.append(
            f"| {row['framework']} | {row['tracker']} "
            f"| {row['untracked_us_per_step']:,.1f} ({u1:,.1f}-{u3:,.1f}) "
            f"| {row['tracked_us_per_step']:,.1f} ({t1:,.1f}-{t3:,.1f}) "
            f"| {row['overhead_us_per_step']:,.1f} "
            f"| {row['log_bytes']:,} | {row['log_bytes'] / steps:,.0f} |"
        )
    return lines


# --------------------------------------------------------------------------------------------
# Main.
# --------------------------------------------------------------------------------------------


def package_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Per-step overhead of turnout's LocalTracker and PostgresTracker, and of "
        "Burr's LocalTrackingClient; steps/s of several processes tracking at once."
    )
    parser.add_argument("--steps", type=int, help="steps per run (default 1000; --quick 200)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 7; --quick 2)")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--dir", help="where the logs go (default: a temporary directory)")
    parser.add_argument("--json", metavar="PATH", help="also write samples and results as JSON")
    parser.add_argument(
        "--dsn",
        default=os.environ.get("TURNOUT_BENCH_PG", DEFAULT_DSN),
        help=f"PostgreSQL for PostgresTracker (default $TURNOUT_BENCH_PG or {DEFAULT_DSN}); "
        "'' leaves it out",
    )
    parser.add_argument(
        "--writers", type=int, help="concurrent writer processes (default 8; 0: skip)"
    )
    parser.add_argument(
        "--writer-steps", type=int, help="steps per writer process (default 2000; --quick 200)"
    )
    return parser.parse_args(argv)


def postgres_note(dsn: str) -> str | None:
    """Why PostgresTracker must be left out, or ``None`` when it can run."""
    try:
        import psycopg

        importlib.import_module("turnout.integrations.postgres_tracking")
        psycopg.connect(dsn, connect_timeout=3).close()
    except Exception as error:
        return f"PostgresTracker: left out ({type(error).__name__}: {error})"
    return None


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} CPUs)"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    notes: list[str] = []
    dsn: str | None = args.dsn or None
    if dsn is not None and (note := postgres_note(dsn)) is not None:
        notes.append(note)
        dsn = None
    settings = Settings(
        steps=args.steps if args.steps is not None else (200 if args.quick else 1000),
        rounds=args.rounds if args.rounds is not None else (2 if args.quick else 7),
        directory=args.dir,
        dsn=dsn,
        prefix=f"bench_tracking_{os.getpid()}",
    )
    writer_count = args.writers if args.writers is not None else 8
    writer_steps = args.writer_steps or (200 if args.quick else 2000)
    if settings.steps < 1 or settings.rounds < 1 or writer_count < 0 or writer_steps < 1:
        raise SystemExit("--steps, --rounds and --writer-steps must be at least 1, --writers 0+")
    frameworks = [TURNOUT]
    try:
        importlib.import_module("burr.core")
        importlib.import_module("burr.tracking")
        frameworks.append(BURR)
    except ImportError as error:
        notes.append(f"burr: left out, not importable ({type(error).__name__}: {error})")
    variants = [Variant(TURNOUT, None), Variant(TURNOUT, LOCAL)]
    if dsn is not None:
        variants.append(Variant(TURNOUT, POSTGRES))
    if BURR in frameworks:
        variants += [Variant(BURR, None), Variant(BURR, BURR_TRACKER)]
    texts = make_texts(settings.steps)

    load_before = load_average()
    started = time.perf_counter()
    writer_rows: list[dict[str, Any]] = []
    from _tracking_writers import writers, writers_table  # beside this script; imports it

    try:
        samples = measure(variants, texts, settings)
        if writer_count:
            for kind in [LOCAL] + ([POSTGRES] if dsn is not None else []):
                writer_rows.append(writers(kind, settings, writer_count, writer_steps))
                print(f"{writer_count} writers, {kind}: done", file=sys.stderr)
    finally:
        if dsn is not None:
            drop_tables(settings)
    wall = time.perf_counter() - started
    results = summary(samples, variants)

    command = shlex.join([sys.executable, *sys.argv])
    versions = {
        "python": platform.python_version(),
        TURNOUT: package_version("turnout"),
        BURR: package_version("apache-burr"),
        "psycopg": package_version("psycopg"),
    }
    out = [
        "# Tracking overhead",
        "",
        f"- command: `{command}`",
        f"- python: {versions['python']} ({platform.python_implementation()}, "
        f"{platform.machine()}, {platform.system()})",
        f"- turnout: {versions[TURNOUT] or 'unknown'}; apache-burr: "
        f"{versions[BURR] or 'not installed'}; psycopg: {versions['psycopg'] or 'not installed'}",
        f"- {settings.steps:,} steps per run (a ~200-character message appended per step), "
        f"{settings.rounds} interleaved rounds, wall time {wall:.1f} s",
        f"- load average (1, 5, 15 min): {load_before} before, {load_average()} after",
        *(f"- note: {note}" for note in notes),
        "",
        "Median µs/step over rounds (25th-75th percentile); overhead = tracked - untracked; "
        "log bytes of one run (PostgreSQL: payload bytes stored).",
        "",
        *table(results, settings.steps),
    ]
    postgres = results["systems"].get(Variant(TURNOUT, POSTGRES).name)
    if postgres is not None:
        ratio = results["postgres_over_local_overhead"]
        verdict = "met" if ratio <= 1.0 else "NOT met"
        out += [
            "",
            f"PostgresTracker's step-path overhead / LocalTracker's: **{ratio:,.2f}x** "
            f"(goal: at most 1x, {verdict}); after each run its writer took a further "
            f"{postgres['drain_us_per_step']:,.1f} µs/step (median) to drain its queue, off "
            "the step path.",
        ]
    ratio = results.get("burr_over_turnout_overhead")
    if ratio is not None:
        verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
        out += [
            "",
            f"Burr's tracking overhead / turnout's: **{ratio:,.1f}x** "
            f"(target: at least {TARGET_RATIO:g}x, {verdict}).",
        ]
    if writer_rows:
        out += [
            "",
            f"{writer_count} processes tracking at once into one store (one app each):",
            "",
            *writers_table(writer_rows),
        ]
    print("\n".join(out))

    if args.json:
        document = {
            "command": command,
            "versions": versions,
            "settings": settings.__dict__,
            "notes": notes,
            "wall_seconds": wall,
            "results": results,
            "writers": writer_rows,
            "samples": {
                "us_per_step": samples.us_per_step,
                "log_bytes": samples.log_bytes,
                "drain_us_per_step": samples.drain_us_per_step,
            },
        }
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
            handle.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
