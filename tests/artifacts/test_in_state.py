"""Refs in an application's state: the pattern the docs teach (put the large value, keep the
ref, get it back in a later action) through SQLitePersister and the local tracker, sync and
async; what they store is the small ref, and loading it never reads the blob."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from turnout import ApplicationBuilder, State, action
from turnout.core.application import Application
from turnout.core.artifacts import ArtifactRef, AsyncLocalArtifactStore, LocalArtifactStore
from turnout.core.errors import ArtifactNotFoundError
from turnout.core.sqlite import AsyncSQLitePersister, SQLitePersister
from turnout.core.tracking import LocalTracker

BIG = hashlib.sha256(b"frame").digest() * (5 * 1024 * 1024 // 32)  # 5 MB
APP = "report-1"


def build(
    store: LocalArtifactStore, *, persister: Any = None, tracker: Any = None, resume: bool = False
) -> Application:
    @action(reads=[], writes=["frame"])
    def render(state: State) -> State:
        return state.update(frame=store.put(BIG, media_type="image/raw", name="frame.raw"))

    @action(reads=["frame"], writes=["frame_size"])
    def measure(state: State) -> State:
        return state.update(frame_size=len(store.get(state["frame"])))

    builder = (
        ApplicationBuilder()
        .with_actions(render=render, measure=measure)
        .with_transitions(("render", "measure"))
        .with_identifiers(app_id=APP)
    )
    if persister is not None:
        builder = builder.with_state_persister(persister)
    if tracker is not None:
        builder = builder.with_tracker(tracker)
    source = persister if persister is not None else tracker
    if resume:
        builder = builder.initialize_from(source, default_state={}, default_entrypoint="render")
    else:
        builder = builder.with_entrypoint("render")
    return builder.build()


def database_bytes(path: Path) -> int:
    """The bytes of every saved record (state and deltas) in a turnout SQLite file."""
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        total = 0
        for table in tables:
            columns = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
            for column in columns:
                row = db.execute(f"SELECT sum(length({column})) FROM {table}").fetchone()
                total += int(row[0] or 0)
        return total


def test_a_ref_in_state_survives_sqlite_persistence_and_a_later_action_gets_the_value(
    tmp_path: Path,
) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    db = tmp_path / "app.db"
    persister = SQLitePersister(str(db))
    build(store, persister=persister).step()
    persister.close()

    again = SQLitePersister(str(db))
    app = build(store, persister=again, resume=True)
    ref = app.state["frame"]
    assert isinstance(ref, ArtifactRef)
    assert (ref.size_bytes, ref.name) == (len(BIG), "frame.raw")
    app.step()
    assert app.state["frame_size"] == len(BIG)
    again.close()
    assert database_bytes(db) < 5_000  # the ref, not the 5 MB


def test_a_ref_in_state_survives_the_local_tracker(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    tracker = LocalTracker("proj", tmp_path / "tracking")
    build(store, tracker=tracker).step()
    tracker.close()
    assert tracker.log_path(APP).stat().st_size < 10_000

    again = LocalTracker("proj", tmp_path / "tracking")
    app = build(store, tracker=again, resume=True)
    assert app.state["frame"].size_bytes == len(BIG)
    app.step()
    assert app.state["frame_size"] == len(BIG)
    again.close()


def test_loading_a_ref_never_reads_the_blob(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    db = str(tmp_path / "app.db")
    persister = SQLitePersister(db)
    build(store, persister=persister).step()
    persister.close()
    for blob in (tmp_path / "artifacts").rglob("*"):
        if blob.is_file():
            blob.unlink()

    again = SQLitePersister(db)
    app = build(store, persister=again, resume=True)
    assert app.state["frame"].size_bytes == len(BIG)  # loaded without the blob
    with pytest.raises(ArtifactNotFoundError):
        app.step()
    again.close()


def test_async_actions_keep_refs_through_the_async_sqlite_persister(tmp_path: Path) -> None:
    store = AsyncLocalArtifactStore(tmp_path / "artifacts")
    db = str(tmp_path / "app.db")

    @action(reads=[], writes=["frame"])
    async def render(state: State) -> State:
        return state.update(frame=await store.put(BIG, name="frame.raw"))

    @action(reads=["frame"], writes=["frame_size"])
    async def measure(state: State) -> State:
        return state.update(frame_size=len(await store.get(state["frame"])))

    async def run(resume: bool) -> Any:
        persister = AsyncSQLitePersister(db)
        builder = (
            ApplicationBuilder()
            .with_actions(render=render, measure=measure)
            .with_transitions(("render", "measure"))
            .with_identifiers(app_id=APP)
            .with_state_persister(persister)
        )
        if resume:
            builder = builder.initialize_from(
                persister, default_state={}, default_entrypoint="render"
            )
        else:
            builder = builder.with_entrypoint("render")
        app = await builder.abuild()
        await app.astep()
        await persister.close()
        return app.state

    assert isinstance((asyncio.run(run(False)))["frame"], ArtifactRef)
    assert asyncio.run(run(True))["frame_size"] == len(BIG)
