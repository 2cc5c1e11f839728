"""Artifact refs against large values in state: bytes SQLitePersister writes over 100 steps.

This is a benchmark script, not a test. An application's first step puts a ``--size-mb`` value
(random bytes, so nothing compresses it) in its state; every later step only increments a
``counter``. Two ways of holding the value:

``in state``
    the bytes themselves are the state key ``blob`` (the serde stores them as base64);
``artifact ref``
    the first step puts the bytes in a ``LocalArtifactStore`` and keeps the ``ArtifactRef``.

Each runs ``--steps`` steps saved by ``turnout.core.sqlite.SQLitePersister`` (a delta per step,
a full snapshot every ``snapshot_every`` steps) with ``snapshot_every`` at its default (100)
and at 10. Reported per run:

* ``written``: bytes the process handed to ``write()`` during the run (``wchar`` of
  ``/proc/self/io``: the database, its WAL and journal, and the artifact file), Linux only;
* ``on disk``: the database file plus its WAL after the persister closed, plus the artifact
  directory;
* ``records``: the summed length of every column of every saved row (what the persister asked
  SQLite to keep, before SQLite's own page overhead).

Run ``python bench/artifacts.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from turnout import ApplicationBuilder, State, action
from turnout.core.artifacts import LocalArtifactStore
from turnout.core.sqlite import SQLitePersister


def _wchar() -> int | None:
    try:
        text = Path("/proc/self/io").read_text()
    except OSError:
        return None
    fields = dict(line.split(": ") for line in text.splitlines())
    return int(fields["wchar"])


def _record_bytes(db: Path) -> int:
    with sqlite3.connect(db) as connection:
        tables = [
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        total = 0
        for table in tables:
            for column in [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]:
                row = connection.execute(f"SELECT sum(length({column})) FROM {table}").fetchone()
                total += int(row[0] or 0)
    return total


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def run(
    workdir: Path, *, use_ref: bool, snapshot_every: int, steps: int, blob: bytes
) -> dict[str, Any]:
    """One application of ``steps`` steps; what it wrote."""
    db = workdir / "app.db"
    store = LocalArtifactStore(workdir / "artifacts")

    @action(reads=[], writes=["blob", "counter"])
    def load(state: State) -> State:
        return state.update(blob=store.put(blob) if use_ref else blob, counter=0)

    @action(reads=["counter"], writes=["counter"])
    def tick(state: State) -> State:
        return state.update(counter=state["counter"] + 1)

    persister = SQLitePersister(str(db), snapshot_every=snapshot_every)
    app = (
        ApplicationBuilder()
        .with_actions(load=load, tick=tick)
        .with_transitions(("load", "tick"), ("tick", "tick"))
        .with_entrypoint("load")
        .with_identifiers(app_id="bench")
        .with_state_persister(persister)
        .build()
    )
    before = _wchar()
    for _ in range(steps):
        app.step()
    persister.close()
    after = _wchar()
    wal = db.with_name(db.name + "-wal")
    return {
        "written": None if before is None or after is None else after - before,
        "on_disk": _size(db) + _size(wal) + _size(workdir / "artifacts"),
        "records": _record_bytes(db),
    }


def _mb(n: int | None) -> str:
    if n is None:
        return "n/a"
    return f"{n / 1e6:,.2f} MB" if n >= 100_000 else f"{n / 1e3:,.1f} kB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--size-mb", type=float, default=5.0)
    args = parser.parse_args()
    blob = os.urandom(int(args.size_mb * 1024 * 1024))
    print(f"{args.steps} steps, a {len(blob):,}-byte value, SQLitePersister\n")
    print("| snapshot_every | value kept | written | on disk | records |")
    print("| --- | --- | --- | --- | --- |")
    for snapshot_every in (100, 10):
        for use_ref in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                result = run(
                    Path(tmp),
                    use_ref=use_ref,
                    snapshot_every=snapshot_every,
                    steps=args.steps,
                    blob=blob,
                )
            kept = "artifact ref" if use_ref else "in state"
            print(
                f"| {snapshot_every} | {kept} | {_mb(result['written'])} | "
                f"{_mb(result['on_disk'])} | {_mb(result['records'])} |"
            )


if __name__ == "__main__":
    main()
