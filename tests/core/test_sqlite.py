"""SQLite specifics of ``turnout.core.sqlite`` not covered by the persister contract suite."""

from __future__ import annotations

import threading
from pathlib import Path

from turnout.core.sqlite import SQLitePersister


def test_many_persisters_opening_a_new_file_at_once_all_succeed(tmp_path: Path):
    """Switching a new file to WAL from several connections at the same moment makes SQLite
    answer "database is locked" without waiting; opening must retry, not fail."""
    for trial in range(40):
        path = tmp_path / f"race-{trial}.db"
        barrier = threading.Barrier(8)
        errors: list[BaseException] = []

        def open_one(
            path: Path = path,
            barrier: threading.Barrier = barrier,
            errors: list[BaseException] = errors,
        ) -> None:
            barrier.wait()
            try:
                SQLitePersister(path).close()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=open_one) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [], f"trial {trial}: {errors[0]!r}"
