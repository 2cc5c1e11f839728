"""Persistence cost: bytes on disk and time per step for a chat whose history grows.

This is a benchmark script, not a test. It answers two questions about saving an application to
SQLite after every step: how much disk does a long conversation take, and how much time does
each save add?

The workload is a chat of ``--steps`` turns. Every step is one action that appends a user
message and an assistant reply (two dicts, about 200 characters of text each) to a
``messages`` list and bumps a ``turn`` counter, so the state grows by the same amount at every
step. Every system stores the conversation in one SQLite file with its own persister, as its
documentation shows, with default settings:

``turnout``
    ``turnout.core.sqlite.SQLitePersister``: WAL journal, ``synchronous=NORMAL``, a delta per step
    and a full snapshot every 100 steps.
``turnout, synchronous=FULL``
    The same, with ``PRAGMA synchronous=FULL`` (an fsync at every commit, as LangGraph's and
    Burr's defaults do), to separate the cost of the format from the cost of durability.
``burr``
    ``burr.core.persistence.SQLitePersister``: the whole state as JSON on every step, SQLite's
    default rollback journal and ``synchronous=FULL``.
``langgraph``
    ``langgraph.checkpoint.sqlite.SqliteSaver`` under a one-node ``StateGraph`` whose
    ``messages`` channel is ``Annotated[list, operator.add]`` (the usual idiom): a checkpoint
    holding every channel plus the node's pending writes per step; WAL, ``synchronous=FULL``.
    The graph loops on itself and is driven one superstep at a time through ``stream(...,
    durability="sync")``, so there is one checkpoint per step (a graph invoked once per turn
    writes two), and each step waits for its checkpoint like the other systems.
``langgraph, DeltaChannel``
    The same graph with ``Annotated[list, DeltaChannel(...)]`` (LangGraph's beta delta
    channel, snapshot every 100 updates), which stores the writes instead of the list.

Measured in one process. Every round runs each system's chat once, rotating which system goes
first; before each chat ``os.sync()`` (untimed) flushes the previous one's writes, so one
system's disk traffic does not land on another's timed steps. (Stepping the systems in lock-step,
one step each in turn, made turnout's steps two to three times slower than when it ran alone:
its writes waited behind the other systems' fsyncs.) Reported:

* bytes on disk after step 100 and after the last step: the database file plus its WAL and
  rollback journal, after ``PRAGMA wal_checkpoint(TRUNCATE)`` (at step 100, from a separate
  connection) or after closing every connection (at the end). The ``-shm`` WAL index (32 KiB,
  deleted on close) is not counted;
* save time per step: the time spent inside the persister's own methods (``save`` for turnout
  and Burr; ``put`` and ``put_writes`` for LangGraph, serialisation included). Reported as the
  median over the ``--window`` steps that end at step 100 and at the last step, and as the mean
  over every step (which includes turnout's snapshot steps);
* step time: one whole step (``app.step()``, ``next()`` on LangGraph's stream), the framework
  and the save together;
* load time: a new persister on the closed file loads the latest state (turnout and Burr
  ``load``, LangGraph ``graph.get_state``), checked to hold every message.

Run ``python bench/persistence.py --help`` for the options.
"""

import argparse
import gc
import importlib.metadata
import json
import operator
import os
import platform
import random
import shlex
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypedDict

TURNOUT = "turnout"
TURNOUT_FULL = "turnout, synchronous=FULL"
BURR = "burr"
LANGGRAPH = "langgraph"
LANGGRAPH_DELTA = "langgraph, DeltaChannel"
ALL_SYSTEMS = (TURNOUT, TURNOUT_FULL, BURR, LANGGRAPH, LANGGRAPH_DELTA)
NEAR_STEP = 100
APP_ID = "chat"

# --------------------------------------------------------------------------------------------
# The conversation: the same texts for every system, generated once.
# --------------------------------------------------------------------------------------------

_WORDS = tuple(
    word
    for line in (
        "the a of to and in is it you that for on with as are this be at have or from by",
        "not but what all were when we there can an your which their said if do will each",
        "about how up out them then she many some so these would other into has more her",
        "two like him see time could no make than first been its who now people my made",
        "over did down only way find use may water long little very after words called just",
        "where most know model answer question order ticket refund delivery account",
        "password invoice schedule meeting summary draft",
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


@dataclass(frozen=True)
class Conversation:
    """The messages appended at each step: ``pairs[i]`` is step ``i``'s user + assistant."""

    pairs: tuple[tuple[dict[str, str], dict[str, str]], ...]

    @classmethod
    def make(cls, steps: int, seed: int = 4) -> "Conversation":
        rng = random.Random(seed)
        return cls(
            tuple(
                (
                    {"role": "user", "content": sentence(rng)},
                    {"role": "assistant", "content": sentence(rng)},
                )
                for _ in range(steps)
            )
        )

    def messages(self, turn: int) -> list[dict[str, str]]:
        user, assistant = self.pairs[turn]
        return [dict(user), dict(assistant)]


# --------------------------------------------------------------------------------------------
# Timing the persister's own methods.
# --------------------------------------------------------------------------------------------


class SaveClock:
    """Adds up the nanoseconds spent inside wrapped methods (also from LangGraph's threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending = 0
        self.total = 0
        self.calls = 0

    def wrap(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter_ns()
            try:
                return method(*args, **kwargs)
            finally:
                elapsed = time.perf_counter_ns() - start
                with self._lock:
                    self._pending += elapsed
                    self.total += elapsed
                    self.calls += 1

        return timed

    def take(self) -> int:
        """The time recorded since the last ``take``."""
        with self._lock:
            value, self._pending = self._pending, 0
            return value


# --------------------------------------------------------------------------------------------
# The systems: each builds its chat (untimed), steps it, flushes, closes and reloads it.
# --------------------------------------------------------------------------------------------


def db_bytes(path: Path) -> int:
    """The database file plus its WAL and rollback journal (the ``-shm`` index excluded)."""
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-journal")]
    return sum(f.stat().st_size for f in files if f.exists())


def checkpoint_wal(path: Path) -> None:
    """Move the WAL's pages into the database file, from a connection of our own."""
    connection = sqlite3.connect(path)
    try:
        busy, _log, _done = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        connection.close()
    if busy:
        raise RuntimeError(f"could not checkpoint {path}: a reader or writer holds it")


class System:
    """One persister under test."""

    name: str

    def __init__(self, conversation: Conversation) -> None:
        self.conversation = conversation
        self.clock = SaveClock()
        self.path = Path()

    def open(self, path: Path, steps: int) -> None:
        raise NotImplementedError

    def step(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def load_latest(self) -> int:
        """Load the latest state from ``self.path`` with a new persister; its message count."""
        raise NotImplementedError


def _burr_style_turn(api: Any, conversation: Conversation) -> Any:
    @api.action(reads=["messages", "turn"], writes=["messages", "turn"])
    def turn(state: Any) -> Any:
        number = state["turn"]
        return state.extend(messages=conversation.messages(number)).update(turn=number + 1)

    return turn


class Turnout(System):
    name = TURNOUT
    synchronous_full = False

    def open(self, path: Path, steps: int) -> None:
        import turnout
        from turnout.core.sqlite import SQLitePersister

        self.path = path
        sync_mode = "FULL" if self.synchronous_full else "NORMAL"
        self.persister = SQLitePersister(path, synchronous=sync_mode)
        self.persister.save = self.clock.wrap(self.persister.save)  # type: ignore[method-assign]
        self.app = (
            turnout.ApplicationBuilder()
            .with_actions(turn=_burr_style_turn(turnout, self.conversation))
            .with_transitions(("turn", "turn"))
            .with_state(messages=[], turn=0)
            .with_entrypoint("turn")
            .with_identifiers(app_id=APP_ID)
            .with_state_persister(self.persister)
            .build()
        )

    def step(self) -> None:
        self.app.step()

    def close(self) -> None:
        self.persister.close()

    def load_latest(self) -> int:
        from turnout.core.sqlite import SQLitePersister

        with SQLitePersister(self.path) as persister:
            loaded = persister.load(None, APP_ID)
        assert loaded is not None
        return len(loaded.state["messages"])


class TurnoutFull(Turnout):
    name = TURNOUT_FULL
    synchronous_full = True


class Burr(System):
    name = BURR

    def open(self, path: Path, steps: int) -> None:
        import burr.core
        from burr.core.persistence import SQLitePersister

        self.path = path
        self.persister = SQLitePersister(db_path=str(path))
        self.persister.initialize()  # creates the table, as Burr's documentation shows
        self.persister.save = self.clock.wrap(self.persister.save)
        self.app = (
            burr.core.ApplicationBuilder()
            .with_actions(turn=_burr_style_turn(burr.core, self.conversation))
            .with_transitions(("turn", "turn"))
            .with_state(messages=[], turn=0)
            .with_entrypoint("turn")
            .with_identifiers(app_id=APP_ID)
            .with_state_persister(self.persister)
            .build()
        )

    def step(self) -> None:
        self.app.step()

    def close(self) -> None:
        self.persister.connection.close()

    def load_latest(self) -> int:
        from burr.core.persistence import SQLitePersister

        with SQLitePersister(db_path=str(self.path)) as persister:
            loaded = persister.load(None, APP_ID)
        assert loaded is not None
        return len(loaded["state"]["messages"])


def _extend_batches(current: list[Any], batches: list[list[Any]]) -> list[Any]:
    """The ``DeltaChannel`` reducer: append every batch of new messages."""
    merged = list(current)
    for batch in batches:
        merged.extend(batch)
    return merged


class Chat(TypedDict):
    messages: Annotated[list[dict[str, str]], operator.add]
    turn: int


class LangGraph(System):
    name = LANGGRAPH
    delta = False

    def _graph(self, steps: int) -> Any:
        from langgraph.graph import END, START, StateGraph

        if self.delta:
            from langgraph.channels.delta import DeltaChannel

            class DeltaChat(TypedDict):
                messages: Annotated[list[dict[str, str]], DeltaChannel(_extend_batches)]
                turn: int

            schema: Any = DeltaChat
        else:
            schema = Chat
        conversation = self.conversation

        def turn(state: dict[str, Any]) -> dict[str, Any]:
            number = state["turn"]
            return {"messages": conversation.messages(number), "turn": number + 1}

        def route(state: dict[str, Any]) -> str:
            return "turn" if state["turn"] < steps else END

        graph = StateGraph(schema)
        graph.add_node("turn", turn)
        graph.add_edge(START, "turn")
        graph.add_conditional_edges("turn", route, ["turn", END])
        return graph

    def _config(self, steps: int) -> dict[str, Any]:
        return {"configurable": {"thread_id": APP_ID}, "recursion_limit": steps + 10}

    def open(self, path: Path, steps: int) -> None:
        from langgraph.checkpoint.sqlite import SqliteSaver

        self.path = path
        self.steps = steps
        self.connection = sqlite3.connect(path, check_same_thread=False)
        saver = SqliteSaver(self.connection)
        saver.put = self.clock.wrap(saver.put)
        saver.put_writes = self.clock.wrap(saver.put_writes)
        graph = self._graph(steps).compile(checkpointer=saver)
        self.stream: Iterator[dict[str, Any]] = graph.stream(
            {"messages": [], "turn": 0},
            self._config(steps),
            stream_mode="values",
            durability="sync",
        )
        next(self.stream)  # the input, before any step ran
        self.clock.take()  # the input's own checkpoints are not a step

    def step(self) -> None:
        next(self.stream)

    def close(self) -> None:
        for _ in self.stream:  # a finished stream has nothing left to save
            raise RuntimeError("the LangGraph stream has more steps than expected")
        self.connection.close()

    def load_latest(self) -> int:
        from langgraph.checkpoint.sqlite import SqliteSaver

        connection = sqlite3.connect(self.path, check_same_thread=False)
        try:
            graph = self._graph(self.steps).compile(checkpointer=SqliteSaver(connection))
            values = graph.get_state(self._config(self.steps)).values
        finally:
            connection.close()
        return len(values["messages"])


class LangGraphDelta(LangGraph):
    name = LANGGRAPH_DELTA
    delta = True


FACTORIES: dict[str, type[System]] = {
    TURNOUT: Turnout,
    TURNOUT_FULL: TurnoutFull,
    BURR: Burr,
    LANGGRAPH: LangGraph,
    LANGGRAPH_DELTA: LangGraphDelta,
}
IMPORTS = {
    TURNOUT: "turnout.core.sqlite",
    TURNOUT_FULL: "turnout.core.sqlite",
    BURR: "burr.core.persistence",
    LANGGRAPH: "langgraph.checkpoint.sqlite",
    LANGGRAPH_DELTA: "langgraph.channels.delta",
}


# --------------------------------------------------------------------------------------------
# Measurement.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    steps: int
    rounds: int
    window: int
    gc_enabled: bool = True


@dataclass
class Result:
    """One system's measurements over every round."""

    bytes_near: list[int] = field(default_factory=list)
    bytes_end: list[int] = field(default_factory=list)
    save_near_us: list[float] = field(default_factory=list)  # one per step in the window
    save_end_us: list[float] = field(default_factory=list)
    step_near_us: list[float] = field(default_factory=list)
    step_end_us: list[float] = field(default_factory=list)
    save_mean_us: list[float] = field(default_factory=list)  # one per round
    load_ms: list[float] = field(default_factory=list)


def run_chat(system: System, settings: Settings, path: Path) -> dict[str, Any]:
    """One system chats ``settings.steps`` turns into a new file; its measurements."""
    steps, window = settings.steps, settings.window
    near = min(NEAR_STEP, steps)
    system.clock = SaveClock()
    system.open(path, steps)
    data: dict[str, Any] = {"save": [], "step": []}
    os.sync()  # the previous system's dirty pages reach the disk before this one is timed
    gc.collect()
    if not settings.gc_enabled:
        gc.disable()
    try:
        for index in range(steps):
            start = time.perf_counter_ns()
            system.step()
            elapsed = time.perf_counter_ns() - start
            data["step"].append(elapsed / 1000)
            data["save"].append(system.clock.take() / 1000)
            if index + 1 == near:
                checkpoint_wal(path)
                data["bytes_near"] = db_bytes(path)
    finally:
        gc.enable()
    system.close()
    data["bytes_end"] = db_bytes(path)
    data["save_total_us"] = system.clock.total / 1000
    start = time.perf_counter_ns()
    count = system.load_latest()
    data["load_ms"] = (time.perf_counter_ns() - start) / 1e6
    if count != 2 * steps:
        raise RuntimeError(f"{system.name} loaded {count} messages, expected {2 * steps}")
    data["save_near"] = data["save"][max(0, near - window) : near]
    data["save_end"] = data["save"][steps - window :]
    data["step_near"] = data["step"][max(0, near - window) : near]
    data["step_end"] = data["step"][steps - window :]
    return data


def rotated(systems: list[System], shift: int) -> list[System]:
    shift %= len(systems)
    return systems[shift:] + systems[:shift]


def measure(systems: list[System], settings: Settings, directory: Path) -> dict[str, Result]:
    """Every round runs every system's chat once, rotating which system goes first."""
    results = {system.name: Result() for system in systems}
    for round_index in range(settings.rounds):
        for system in rotated(systems, round_index):
            path = directory / f"{round_index}-{ALL_SYSTEMS.index(system.name)}.db"
            data = run_chat(system, settings, path)
            result = results[system.name]
            result.bytes_near.append(data["bytes_near"])
            result.bytes_end.append(data["bytes_end"])
            result.save_near_us.extend(data["save_near"])
            result.save_end_us.extend(data["save_end"])
            result.step_near_us.extend(data["step_near"])
            result.step_end_us.extend(data["step_end"])
            result.save_mean_us.append(data["save_total_us"] / settings.steps)
            result.load_ms.append(data["load_ms"])
            for leftover in directory.glob(f"{path.name}*"):
                leftover.unlink()
        print(f"  round {round_index + 1}/{settings.rounds} done", file=sys.stderr, flush=True)
    return results


def warm_up(systems: list[System], directory: Path) -> None:
    """One short untimed chat per system, so imports and first calls stay out of the rounds."""
    for system in systems:
        path = directory / "warm-up.db"
        run_chat(system, Settings(steps=30, rounds=1, window=10), path)
        for leftover in directory.glob(f"{path.name}*"):
            leftover.unlink()


# --------------------------------------------------------------------------------------------
# Reporting.
# --------------------------------------------------------------------------------------------


def median(values: list[float] | list[int]) -> float:
    return float(statistics.median(values))


def ratio(value: float, reference: float | None) -> str:
    if reference is None or reference == 0:
        return "n/a"
    factor = value / reference
    digits = 0 if factor >= 100 else 1 if factor >= 10 else 2
    return f"{factor:.{digits}f}x"


def size(value: float) -> str:
    for unit, scale in (("MB", 1e6), ("kB", 1e3)):
        if value >= scale:
            return f"{value / scale:,.1f} {unit}"
    return f"{value:,.0f} B"


def tables(results: dict[str, Result], settings: Settings) -> list[str]:
    near, end = min(NEAR_STEP, settings.steps), settings.steps
    reference = results.get(TURNOUT)

    def base(attribute: str) -> float | None:
        return median(getattr(reference, attribute)) if reference else None

    lines = [
        f"### Bytes on disk after step {near} and after step {end:,}",
        "",
        f"| system | @ {near} | @ {end:,} | bytes per step, {near}-{end:,} "
        f"| @ {end:,} vs turnout |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, result in results.items():
        at_near, at_end = median(result.bytes_near), median(result.bytes_end)
        per_step = (at_end - at_near) / max(1, end - near)
        lines.append(
            f"| {name} | {size(at_near)} | {size(at_end)} | {size(per_step)} "
            f"| {ratio(at_end, base('bytes_end'))} |"
        )
    lines += [
        "",
        f"### Time per step (µs): the save, and the whole step; medians over the "
        f"{settings.window} steps ending at step {near} and at step {end:,}",
        "",
        f"| system | save @ {near} | save @ {end:,} | save, mean of all steps "
        f"| whole step @ {near} | whole step @ {end:,} | save @ {end:,} vs turnout |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, result in results.items():
        save_end = median(result.save_end_us)
        lines.append(
            f"| {name} | {median(result.save_near_us):,.0f} | {save_end:,.0f} "
            f"| {median(result.save_mean_us):,.0f} | {median(result.step_near_us):,.0f} "
            f"| {median(result.step_end_us):,.0f} | {ratio(save_end, base('save_end_us'))} |"
        )
    lines += [
        "",
        f"### Loading the latest state after step {end:,} (ms, a new persister on the file)",
        "",
        "| system | load ms |",
        "| --- | ---: |",
        *(f"| {name} | {median(result.load_ms):,.1f} |" for name, result in results.items()),
    ]
    return lines


def summary(results: dict[str, Result]) -> dict[str, Any]:
    return {
        name: {
            "bytes_near": median(result.bytes_near),
            "bytes_end": median(result.bytes_end),
            "save_near_median_us": median(result.save_near_us),
            "save_end_median_us": median(result.save_end_us),
            "save_mean_us": median(result.save_mean_us),
            "step_near_median_us": median(result.step_near_us),
            "step_end_median_us": median(result.step_end_us),
            "load_ms": median(result.load_ms),
            "samples": result.__dict__,
        }
        for name, result in results.items()
    }


def package_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


# --------------------------------------------------------------------------------------------
# Entry point.
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Bytes on disk and time per step of SQLite persisters: turnout, Burr, "
        "LangGraph, for a chat whose history grows at every step.",
    )
    parser.add_argument("--steps", type=int, help="chat turns per run (default 1000, quick 200)")
    parser.add_argument("--rounds", type=int, help="runs per system (default 3, quick 1)")
    parser.add_argument(
        "--window", type=int, help="steps in each timed window (default 20, quick 10)"
    )
    parser.add_argument("--quick", action="store_true", help="small smoke run (a few seconds)")
    parser.add_argument(
        "--no-gc",
        action="store_true",
        help="disable the garbage collector while the systems step (for every system alike)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=ALL_SYSTEMS,
        help="measure only these systems (repeatable)",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        help="where to write the database files (default: a temporary directory, removed)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    def pick(value: int | None, full: int, small: int) -> int:
        return value if value is not None else (small if args.quick else full)

    settings = Settings(
        steps=pick(args.steps, 1000, 200),
        rounds=pick(args.rounds, 3, 1),
        window=pick(args.window, 20, 10),
        gc_enabled=not args.no_gc,
    )
    if settings.steps < 2 or settings.rounds < 1 or not 1 <= settings.window <= settings.steps:
        raise SystemExit("--steps must be >= 2, --rounds >= 1, 1 <= --window <= --steps")
    return settings


def load_systems(
    wanted: list[str] | None, conversation: Conversation
) -> tuple[list[System], list[str]]:
    systems: list[System] = []
    notes: list[str] = []
    for name in ALL_SYSTEMS:
        if wanted and name not in wanted:
            continue
        try:
            importlib.import_module(IMPORTS[name])
        except ImportError as error:
            notes.append(f"{name}: skipped, not importable ({type(error).__name__}: {error})")
            continue
        systems.append(FACTORIES[name](conversation))
    return systems, notes


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    settings = settings_from(args)
    conversation = Conversation.make(settings.steps)
    systems, notes = load_systems(args.only, conversation)
    if not systems:
        raise SystemExit("no system to measure: " + "; ".join(notes))
    owned = args.dir is None
    directory = Path(tempfile.mkdtemp(prefix="turnout-bench-")) if owned else args.dir
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        warm_up(systems, directory)
        gc.collect()
        gc.freeze()
        results = measure(systems, settings, directory)
    finally:
        if owned:
            shutil.rmtree(directory, ignore_errors=True)
    wall = time.perf_counter() - started

    versions = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        TURNOUT: package_version("turnout"),
        BURR: package_version("apache-burr"),
        LANGGRAPH: package_version("langgraph"),
        "langgraph-checkpoint-sqlite": package_version("langgraph-checkpoint-sqlite"),
    }
    command = shlex.join([sys.executable, *sys.argv])
    text_size = median([len(m["content"]) for pair in conversation.pairs for m in pair])
    out = [
        "# Persistence: a growing chat saved to SQLite",
        "",
        f"- command: `{command}`",
        f"- python: {versions['python']} ({platform.python_implementation()}, "
        f"{platform.machine()}, {platform.system()}), SQLite {versions['sqlite']}",
        *(
            f"- {name}: {versions[name] or 'not installed'}"
            for name in (TURNOUT, BURR, LANGGRAPH, "langgraph-checkpoint-sqlite")
        ),
        f"- {settings.steps:,} steps per run, each appending a user and an assistant message "
        f"of {text_size:.0f} characters; {settings.rounds} round(s), each running every "
        f"system once (order rotated); timed windows of {settings.window} steps; "
        f"gc {'enabled' if settings.gc_enabled else 'disabled while stepping'}; "
        f"wall time {wall:.1f} s",
        *(f"- note: {note}" for note in notes),
        "",
        *tables(results, settings),
    ]
    print("\n".join(out))
    if args.json:
        document = {
            "command": command,
            "versions": versions,
            "settings": settings.__dict__,
            "notes": notes,
            "wall_seconds": wall,
            "results": summary(results),
        }
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
            handle.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
