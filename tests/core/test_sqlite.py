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


def test_a_pickled_persister_reopens_the_same_file(tmp_path: Path):
    """Children of parallel actions on process pools receive the parent's persister by pickle."""
    import pickle

    from turnout import ApplicationBuilder, State, action

    @action(reads=["n"], writes=["n"])
    def bump(state: State) -> State:
        return state.update(n=state["n"] + 1)

    with SQLitePersister(tmp_path / "app.db", "runs", snapshot_every=7) as persister:
        app = (
            ApplicationBuilder()
            .with_actions(bump)
            .with_transitions(("bump", "bump"))
            .with_state(n=0)
            .with_entrypoint("bump")
            .with_identifiers(app_id="a")
            .with_state_persister(persister)
            .build()
        )
        app.step()
        app.step()
        copy = pickle.loads(pickle.dumps(persister))
    try:
        assert copy.connection is not persister.connection
        loaded = copy.load(None, "a")
        assert loaded is not None
        assert loaded.state["n"] == 2
    finally:
        copy.close()


def test_an_in_memory_persister_refuses_to_be_pickled():
    import pickle

    import pytest

    with SQLitePersister(":memory:") as persister, pytest.raises(TypeError, match="file path"):
        pickle.dumps(persister)
