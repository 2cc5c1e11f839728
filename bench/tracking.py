"""Tracking overhead: what recording every step for the UI adds to each step.

This is a benchmark script, not a test. It answers one question: how many microseconds per step
does a local tracker add to an application whose state keeps growing, and how does turnout's
``LocalTracker`` compare with Burr's ``LocalTrackingClient``?

The workload is a chat-like application of ``--steps`` steps (1,000 by default). Its one action
appends a message (a dict holding about 200 characters of varied text) to a ``messages`` list
and increments a ``turn`` counter, so step *n* runs on a state of *n* messages. The same action
code is written once and imported from ``turnout`` or from ``burr.core``. Four variants run:

``turnout``
    ``turnout.ApplicationBuilder``, no tracker (the baseline for turnout's overhead).
``turnout + LocalTracker``
    The same with ``with_tracker(turnout.core.tracking.LocalTracker(...))``, default settings:
    a begin and an end line per step holding the step's changes, a full snapshot every 50 steps.
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
TRACKER_NAMES = {TURNOUT: "LocalTracker", BURR: "LocalTrackingClient"}
PROJECT = "bench"
TARGET_RATIO = 5.0

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


def make_tracker(framework: str, storage: Path) -> Any:
    if framework == TURNOUT:
        from turnout.core.tracking import LocalTracker

        return LocalTracker(PROJECT, storage)
    tracking = importlib.import_module("burr.tracking")
    return tracking.LocalTrackingClient(project=PROJECT, storage_dir=str(storage))


def close_tracker(tracker: Any) -> None:
    close = getattr(tracker, "close", None)  # turnout's; Burr's closes its file in __del__
    if close is not None:
        close()
    elif getattr(tracker, "f", None) is not None:
        tracker.f.close()


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


@dataclass(frozen=True)
class Variant:
    framework: str
    tracked: bool

    @property
    def name(self) -> str:
        if not self.tracked:
            return self.framework
        return f"{self.framework} + {TRACKER_NAMES[self.framework]}"


@dataclass
class Samples:
    """Per variant: µs/step of each round; per tracked variant: bytes written by each run."""

    us_per_step: dict[str, list[float]] = field(default_factory=dict)
    log_bytes: dict[str, list[int]] = field(default_factory=dict)


def run_once(
    variant: Variant, texts: tuple[str, ...], steps: int, root: Path, label: str
) -> tuple[float, int]:
    """Build (untimed), run ``steps`` steps (timed), check; return µs/step and bytes written."""
    storage = root / label
    tracker = make_tracker(variant.framework, storage) if variant.tracked else None
    app = make_app(variant.framework, texts, tracker, app_id=f"chat-{label}")
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
    written = 0
    if tracker is not None:
        close_tracker(tracker)
        written = tree_bytes(storage)
        if written == 0:
            raise RuntimeError(f"{variant.name}: the tracker wrote nothing under {storage}")
        shutil.rmtree(storage)
    return elapsed / steps / 1000, written


def measure(variants: list[Variant], texts: tuple[str, ...], settings: Settings) -> Samples:
    samples = Samples()
    root = Path(tempfile.mkdtemp(prefix="turnout-bench-tracking-", dir=settings.directory))
    try:
        for variant in variants:  # warm-up: imports, caches, first files
            label = f"warm-{variant.framework}-{int(variant.tracked)}"
            run_once(variant, texts, min(settings.steps, 50), root, label)
        gc.collect()
        gc.freeze()
        for round_index in range(settings.rounds):
            shift = round_index % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                label = f"r{round_index}-{variant.framework}-{int(variant.tracked)}"
                us, written = run_once(variant, texts, settings.steps, root, label)
                samples.us_per_step.setdefault(variant.name, []).append(us)
                if variant.tracked:
                    samples.log_bytes.setdefault(variant.name, []).append(written)
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


def summary(samples: Samples, frameworks: list[str]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for framework in frameworks:
        plain = Variant(framework, tracked=False).name
        tracked = Variant(framework, tracked=True).name
        untracked_median = statistics.median(samples.us_per_step[plain])
        tracked_median = statistics.median(samples.us_per_step[tracked])
        written = samples.log_bytes[tracked]
        rows[framework] = {
            "untracked_us_per_step": untracked_median,
            "untracked_quartiles": quartiles(samples.us_per_step[plain]),
            "tracked_us_per_step": tracked_median,
            "tracked_quartiles": quartiles(samples.us_per_step[tracked]),
            "overhead_us_per_step": tracked_median - untracked_median,
            "log_bytes": int(statistics.median(written)),
        }
    result: dict[str, Any] = {"systems": rows}
    if TURNOUT in rows and BURR in rows:
        result["burr_over_turnout_overhead"] = (
            rows[BURR]["overhead_us_per_step"] / rows[TURNOUT]["overhead_us_per_step"]
        )
    return result


def table(results: dict[str, Any], steps: int) -> list[str]:
    lines = [
        "| system | tracker | untracked µs/step | tracked µs/step | overhead µs/step | "
        "log bytes | bytes/step |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for framework, row in results["systems"].items():
        u1, _, u3 = row["untracked_quartiles"]
        t1, _, t3 = row["tracked_quartiles"]
        lines.append(
            f"| {framework} | {TRACKER_NAMES[framework]} "
            f"| {row['untracked_us_per_step']:,.1f} ({u1:,.1f}-{u3:,.1f}) "
            f"| {row['tracked_us_per_step']:,.1f} ({t1:,.1f}-{t3:,.1f}) "
            f"| {row['overhead_us_per_step']:,.1f} "
            f"| {row['log_bytes']:,} | {row['log_bytes'] / steps:,.0f} |"
        )
    return lines


def package_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Per-step overhead of turnout's LocalTracker and Burr's LocalTrackingClient."
    )
    parser.add_argument("--steps", type=int, help="steps per run (default 1000; --quick 200)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 7; --quick 2)")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--dir", help="where the logs go (default: a temporary directory)")
    parser.add_argument("--json", metavar="PATH", help="also write samples and results as JSON")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    settings = Settings(
        steps=args.steps if args.steps is not None else (200 if args.quick else 1000),
        rounds=args.rounds if args.rounds is not None else (2 if args.quick else 7),
        directory=args.dir,
    )
    if settings.steps < 1 or settings.rounds < 1:
        raise SystemExit("--steps and --rounds must be at least 1")
    frameworks = [TURNOUT]
    notes: list[str] = []
    try:
        importlib.import_module("burr.core")
        importlib.import_module("burr.tracking")
        frameworks.append(BURR)
    except ImportError as error:
        notes.append(f"burr: left out, not importable ({type(error).__name__}: {error})")
    variants = [Variant(f, tracked) for f in frameworks for tracked in (False, True)]
    texts = make_texts(settings.steps)

    started = time.perf_counter()
    samples = measure(variants, texts, settings)
    wall = time.perf_counter() - started
    results = summary(samples, frameworks)

    command = shlex.join([sys.executable, *sys.argv])
    versions = {
        "python": platform.python_version(),
        TURNOUT: package_version("turnout"),
        BURR: package_version("apache-burr"),
    }
    out = [
        "# Tracking overhead",
        "",
        f"- command: `{command}`",
        f"- python: {versions['python']} ({platform.python_implementation()}, "
        f"{platform.machine()}, {platform.system()})",
        f"- turnout: {versions[TURNOUT] or 'unknown'}; apache-burr: "
        f"{versions[BURR] or 'not installed'}",
        f"- {settings.steps:,} steps per run (a ~200-character message appended per step), "
        f"{settings.rounds} interleaved rounds, wall time {wall:.1f} s",
        *(f"- note: {note}" for note in notes),
        "",
        "Median µs/step over rounds (25th-75th percentile); overhead = tracked - untracked; "
        "log bytes of one run.",
        "",
        *table(results, settings.steps),
    ]
    ratio = results.get("burr_over_turnout_overhead")
    if ratio is not None:
        verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
        out += [
            "",
            f"Burr's tracking overhead / turnout's: **{ratio:,.1f}x** "
            f"(target: at least {TARGET_RATIO:g}x, {verdict}).",
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
            "samples": {"us_per_step": samples.us_per_step, "log_bytes": samples.log_bytes},
        }
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
            handle.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
