"""The journal of side effects behind ``ApplicationContext.durable``.

A step that calls ``durable(key, fn, ...)`` runs ``fn`` once: its result, encoded by the
persister's ``Serde``, is written to the persister's journal (committed) before ``durable``
returns it, keyed by (partition key, app id, sequence id, call index). When the same step runs
again — a retry of the step, a resume after a crash before the step's record was saved — its
durable calls are answered from the journal, in order, without calling ``fn``; a call whose key
differs from the journaled one at its place raises ``DeterminismError``.

The journal lives next to the records, in the persister's store (a ``JournalStore``): the
``<prefix>_journal`` table of the SQL persisters, ``<prefix>:journal:...`` hashes on Redis, a
dict in memory. The store removes an app's journal with the app (``delete``), a pruned step's
journal with the step (``prune``), and copies the parent's journal up to the fork point into a
fork, with the fork's first record. Entries of a step whose record is not saved yet stay until
the step is saved and pruned, or the app deleted.

There is no fallback inside the state for persisters without a journal: state is saved after the
step, so a crash between the side effect and that save would lose the journal entry — the very
case the journal exists for. ``durable`` refuses such persisters with an error naming the ones
that keep a journal.

A failed step's journal carries over to its rerun: ``initialize_from`` on a record saved as
``failed`` runs its action again at the next sequence id, and that step replays the failed one's
journal (copying it under its own sequence id first, so a rerun of the rerun does too).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from turnout.core.engine import drive
from turnout.core.errors import AsyncRequiredError, DeterminismError, UnsupportedOperationError
from turnout.core.persistence import AsyncPersister, ParentPointer, SyncPersister
from turnout.core.serde import Serde

__all__ = ["JournalEntry", "JournalStore", "StepJournal", "journal_for"]

T = TypeVar("T")
_SUPPORTED = (
    "SQLitePersister, PostgreSQLPersister, MySQLPersister, RedisPersister (or their Async "
    "forms), and InMemoryPersister, whose journal lives as long as the process"
)


@dataclass(frozen=True, kw_only=True, slots=True)
class JournalEntry:
    """One journaled call: the result of the ``index``-th durable call of a step."""

    partition_key: str  # "" for None, as in the Store
    app_id: str
    sequence_id: int
    index: int
    key: str
    payload: str  # the result, as the persister's Serde wrote it
    created_at: dt.datetime


@runtime_checkable
class JournalStore(Protocol):
    """Where a persister keeps its journal; implemented by the persister's ``Store``.

    ``journal_record`` must be durable (committed) when it returns and conditional: an entry
    already stored at the same (partition key, app id, sequence id, index) raises
    ``ConcurrencyError`` and changes nothing. The store calls the other three itself, inside its
    own operations and atomically with them: ``journal_remove`` from ``remove`` (prune),
    ``journal_delete`` from ``delete``, ``journal_copy`` from the ``insert`` that creates a
    forked app's row.
    """

    async def journal_record(self, entry: JournalEntry) -> None: ...

    async def journal_entries(
        self, partition_key: str, app_id: str, sequence_id: int
    ) -> list[JournalEntry]:
        """The entries of one step, by index."""
        ...

    async def journal_remove(
        self, partition_key: str, app_id: str, sequence_ids: Sequence[int]
    ) -> None: ...

    async def journal_delete(self, partition_key: str | None, app_id: str) -> None:
        """Remove an app's journal (in every partition when ``partition_key`` is ``None``)."""
        ...

    async def journal_copy(self, parent: ParentPointer, partition_key: str, app_id: str) -> None:
        """Copy the parent's entries up to ``parent.sequence_id`` into the app (keeping any the
        app already has)."""
        ...


class _Access:
    """How ``durable`` runs a journal coroutine, from sync or async code."""

    def __init__(self, store: JournalStore, serde: Serde, *, suspends: bool, threaded: bool):
        self.store = store
        self.serde = serde
        self.suspends = suspends  # an async driver: only awaiting runs it
        self.threaded = threaded  # a sync driver under an async persister: run it in a thread

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self.suspends:
            coro.close()
            raise AsyncRequiredError(
                "ApplicationContext.durable() was called from a synchronous action, but the "
                "application's persister is asynchronous: make the action async and call "
                "`await __context.adurable(key, fn, ...)`."
            )
        return drive(coro)

    async def arun(self, coro: Coroutine[Any, Any, T]) -> T:
        if self.suspends:
            return await coro
        if self.threaded:
            return await asyncio.to_thread(drive, coro)
        return drive(coro)


def journal_for(persister: Any, call: str) -> _Access:
    """The journal of ``persister``; ``UnsupportedOperationError`` if it keeps none."""
    core = getattr(persister, "core", None)
    store = getattr(core, "store", None)
    if store is not None and isinstance(store, JournalStore):
        serde: Serde = core.codec.serde  # type: ignore[union-attr]
        if isinstance(persister, SyncPersister):
            return _Access(store, serde, suspends=False, threaded=False)
        if isinstance(persister, AsyncPersister):
            threaded = persister.threaded
            return _Access(store, serde, suspends=not threaded, threaded=threaded)
    what = (
        "the application has no persister"
        if persister is None
        else f"its persister, {type(persister).__name__}, keeps no journal"
    )
    raise UnsupportedOperationError(
        f"{call} needs a journal that outlives the step, and {what}. The journal cannot live "
        f"in the state: the state is saved after the step, so a crash between the side effect "
        f"and that save would lose it. Give the application a persister that keeps a journal "
        f"with ApplicationBuilder().with_state_persister(...): {_SUPPORTED}."
    )


class StepJournal:
    """The journal of one step in progress: its entries (read once) and the next call's
    index, which starts again at 0 on every attempt of the step."""

    def __init__(
        self,
        access: _Access,
        *,
        partition_key: str | None,
        app_id: str,
        sequence_id: int,
        carried_from: int | None = None,
    ) -> None:
        self.access = access
        self.partition_key = "" if partition_key is None else partition_key
        self.app_id = app_id
        self.sequence_id = sequence_id
        self.carried_from = carried_from
        self._entries: dict[int, JournalEntry] | None = None
        self._attempt = 0
        self._next = 0
        # Calls from threads the action starts are ordered by this lock; their order (and so
        # their indexes) must still be the same on a replay.
        self._lock = threading.Lock()

    async def begin(self, key: str, attempt: int) -> tuple[int, JournalEntry | None]:
        """Place the next call: its index and the entry journaled there (``None``: call it)."""
        if not isinstance(key, str) or not key:
            raise TypeError(f"durable() takes a non-empty str key first, got {key!r}")
        if self._entries is None:
            self._entries = await self._load()
        with self._lock:
            if attempt != self._attempt:
                self._attempt, self._next = attempt, 0
            index = self._next
            self._next += 1
        entry = self._entries.get(index)
        if entry is not None and entry.key != key:
            raise DeterminismError(
                app_id=self.app_id,
                partition_key=self.partition_key,
                sequence_id=self.sequence_id,
                index=index,
                key=key,
                journaled_key=entry.key,
            )
        return index, entry

    async def _load(self) -> dict[int, JournalEntry]:
        store = self.access.store
        own = await store.journal_entries(self.partition_key, self.app_id, self.sequence_id)
        entries = {entry.index: entry for entry in own}
        if self.carried_from is not None:
            carried = await store.journal_entries(
                self.partition_key, self.app_id, self.carried_from
            )
            for old in carried:
                # Negative indexes hold a suspension and its answers (turnout.core.suspension):
                # they belong to the suspended step, not to its rerun.
                if old.index >= 0 and old.index not in entries:
                    entry = _moved(old, self.sequence_id)
                    await store.journal_record(entry)
                    entries[entry.index] = entry
        return entries

    async def finish(self, index: int, key: str, value: Any) -> Any:
        """Journal ``value`` as call ``index``; what a replay will return (the decoded value)."""
        entry = JournalEntry(
            partition_key=self.partition_key,
            app_id=self.app_id,
            sequence_id=self.sequence_id,
            index=index,
            key=key,
            payload=self.access.serde.dumps(value),
            created_at=dt.datetime.now(dt.UTC),
        )
        await self.access.store.journal_record(entry)
        assert self._entries is not None
        self._entries[index] = entry
        return self.replay(entry)

    def replay(self, entry: JournalEntry) -> Any:
        return self.access.serde.loads(entry.payload)


def _moved(entry: JournalEntry, sequence_id: int) -> JournalEntry:
    return JournalEntry(
        partition_key=entry.partition_key,
        app_id=entry.app_id,
        sequence_id=sequence_id,
        index=entry.index,
        key=entry.key,
        payload=entry.payload,
        created_at=entry.created_at,
    )
