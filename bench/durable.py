"""The cost of a journaled call (``ApplicationContext.durable``) on SQLite and PostgreSQL.

This is a benchmark script, not a test. One step makes ``--calls`` calls of a trivial function
(it returns a small dict), timed inside the action with ``perf_counter``:

``plain``
    ``fn(i)`` itself;
``journaled``
    ``__context.durable(f"call-{i}", fn, i)`` on the first run: a committed insert per call
    (plus one read of the step's journal at its first call);
``replayed``
    the same step run again after a simulated crash (the step raised a ``BaseException``, so its
    record was never saved): every call answered from the journal, ``fn`` not called.

Reported: µs per call (median of ``--repeat`` runs, each on a fresh app), the extra cost of a
journaled call over a plain one, and the load average of the machine (``os.getloadavg``), since
a loaded machine slows the databases. PostgreSQL is measured when it answers at ``--dsn``.

Run ``python bench/durable.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from turnout import ApplicationBuilder, State, action
from turnout.core.context import ApplicationContext


class _Crash(BaseException):
    """Ends the step without saving it, as a killed process would."""


def _receipt(i: int) -> dict[str, Any]:
    return {"message_id": f"msg-{i}", "ok": True}


def _one_run(persister: Any, calls: int) -> tuple[float, float, float]:
    """µs per call: plain, journaled, replayed."""
    timings: dict[str, float] = {}

    @action(reads=[], writes=["done"])
    def step(state: State, __context: ApplicationContext, mode: str) -> State:
        started = time.perf_counter()
        if mode == "plain":
            for i in range(calls):
                _receipt(i)
        else:
            for i in range(calls):
                __context.durable(f"call-{i}", _receipt, i)
        timings[mode] = (time.perf_counter() - started) / calls * 1e6
        if mode == "journaled":
            raise _Crash
        return state.update(done=True)

    app_id = uuid.uuid4().hex

    def build() -> Any:
        return (
            ApplicationBuilder()
            .with_actions(step)
            .with_transitions()
            .with_identifiers(app_id=app_id)
            .initialize_from(persister, default_state={}, default_entrypoint="step")
            .with_state_persister(persister)
            .build()
        )

    build().step(inputs={"mode": "plain"})
    app_id = uuid.uuid4().hex
    with contextlib.suppress(_Crash):
        build().step(inputs={"mode": "journaled"})
    build().step(inputs={"mode": "replayed"})
    return timings["plain"], timings["journaled"], timings["replayed"]


def _measure(name: str, persister: Any, calls: int, repeat: int) -> None:
    runs = [_one_run(persister, calls) for _ in range(repeat)]
    plain, journaled, replayed = (statistics.median(r[i] for r in runs) for i in range(3))
    print(
        f"{name:<11} plain {plain:8.2f} µs   journaled {journaled:8.1f} µs "
        f"(+{journaled - plain:.1f})   replayed {replayed:8.1f} µs   per call, {calls} calls"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500, help="durable calls per step")
    parser.add_argument("--repeat", type=int, default=5, help="runs per backend (median)")
    parser.add_argument(
        "--dsn",
        default=os.environ.get("TURNOUT_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1/test"),
        help="PostgreSQL to measure (skipped when it does not answer)",
    )
    args = parser.parse_args()
    print(
        f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}  (cores: {os.cpu_count()})"
    )
    from turnout.core.sqlite import SQLitePersister

    with (
        tempfile.TemporaryDirectory() as directory,
        SQLitePersister(Path(directory) / "bench.db") as sqlite,
    ):
        _measure("SQLite", sqlite, args.calls, args.repeat)
    try:
        from turnout.integrations.postgres import PostgreSQLPersister

        postgres = PostgreSQLPersister(args.dsn, table_name=f"bench_{uuid.uuid4().hex[:8]}")
        postgres.initialize()
    except Exception as exc:  # no server, no driver: say so and stop
        print(f"PostgreSQL  skipped: {type(exc).__name__}: {exc}")
        return
    try:
        _measure("PostgreSQL", postgres, args.calls, args.repeat)
    finally:
        prefix = postgres.core.store.prefix
        connection = postgres.core.store.connection
        for table in ("journal", "steps", "apps", "meta"):
            _drop(connection, f"{prefix}_{table}")
        postgres.close()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def _drop(connection: Any, table: str) -> None:
    from turnout.core.engine import drive

    drive(connection.execute(f"DROP TABLE IF EXISTS {table}"))


if __name__ == "__main__":
    main()
