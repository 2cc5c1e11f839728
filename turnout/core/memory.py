"""An in-memory persister, for tests and notebooks: the same rules as every other backend."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from turnout.core._chain import SNAPSHOT
from turnout.core.errors import ConcurrencyError
from turnout.core.persistence import (
    AppRow,
    AsyncPersister,
    ParentPointer,
    StepRecord,
    StorePersister,
    SyncPersister,
)
from turnout.core.serde import Serde

if TYPE_CHECKING:
    from turnout.core.journal import JournalEntry

__all__ = ["AsyncInMemoryPersister", "InMemoryPersister", "MemoryStore"]


class MemoryStore:
    """A ``Store`` in dicts; records are kept as the encoded JSON text a database would hold.
    Also the ``JournalStore`` of ``turnout.core.journal`` (its journal lives as long as the
    process: a retried step replays, a new process does not)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._records: dict[tuple[str, str], dict[int, StepRecord]] = {}
        self._apps: dict[tuple[str, str], AppRow] = {}
        self._journal: dict[tuple[str, str], dict[tuple[int, int], JournalEntry]] = {}

    async def insert(self, record: StepRecord, previous: int | None, app: AppRow | None) -> None:
        key = (record.partition_key, record.app_id)
        conflict = (record.partition_key, record.app_id, record.sequence_id)
        with self._lock:
            row = self._apps.get(key) or app
            if row is None:
                raise ConcurrencyError(*conflict, deleted=True)
            latest = row.latest_sequence_id
            stale = latest is not None and latest >= record.sequence_id
            if stale or (previous is not None and latest != previous):
                raise ConcurrencyError(*conflict)
            if key not in self._apps and row.parent is not None:
                await self.journal_copy(row.parent, record.partition_key, record.app_id)
            self._records.setdefault(key, {})[record.sequence_id] = record
            self._apps[key] = dataclasses.replace(row, latest_sequence_id=record.sequence_id)

    async def chain(
        self, partition_key: str, app_id: str, sequence_id: int | None
    ) -> list[StepRecord]:
        with self._lock:
            steps = self._records.get((partition_key, app_id), {})
            ids = sorted(i for i in steps if sequence_id is None or i <= sequence_id)
            if not ids or (sequence_id is not None and ids[-1] != sequence_id):
                return []
            start = max((i for i in ids if steps[i].kind == SNAPSHOT), default=ids[0])
            return [steps[i] for i in ids if i >= start]

    async def app(self, partition_key: str, app_id: str) -> AppRow | None:
        with self._lock:
            return self._apps.get((partition_key, app_id))

    async def app_ids(self, partition_key: str) -> list[str]:
        with self._lock:
            rows = [a for (pk, _), a in self._apps.items() if pk == partition_key]
        rows.sort(key=lambda a: a.created_at, reverse=True)
        return [a.app_id for a in rows]

    async def delete(self, partition_key: str | None, app_id: str) -> int:
        removed = 0
        with self._lock:
            for key in list(self._records):
                if key[1] == app_id and (partition_key is None or key[0] == partition_key):
                    removed += len(self._records.pop(key))
            for key in list(self._apps):
                if key[1] == app_id and (partition_key is None or key[0] == partition_key):
                    del self._apps[key]
            await self.journal_delete(partition_key, app_id)
        return removed

    async def records(self, partition_key: str, app_id: str) -> list[StepRecord]:
        with self._lock:
            steps = self._records.get((partition_key, app_id), {})
            return [steps[i] for i in sorted(steps)]

    async def rewrite(self, record: StepRecord) -> None:
        with self._lock:
            steps = self._records.get((record.partition_key, record.app_id), {})
            if record.sequence_id in steps:
                steps[record.sequence_id] = record

    async def remove(self, partition_key: str, app_id: str, sequence_ids: Sequence[int]) -> int:
        with self._lock:
            steps = self._records.get((partition_key, app_id), {})
            await self.journal_remove(partition_key, app_id, sequence_ids)
            return sum(steps.pop(i, None) is not None for i in sequence_ids)

    async def all_apps(self, partition_key: str | None) -> list[AppRow]:
        with self._lock:
            return [a for (pk, _), a in self._apps.items() if partition_key in (None, pk)]

    # -- the JournalStore protocol --------------------------------------------------------------

    async def journal_record(self, entry: JournalEntry) -> None:
        with self._lock:
            entries = self._journal.setdefault((entry.partition_key, entry.app_id), {})
            place = (entry.sequence_id, entry.index)
            if place in entries:
                raise ConcurrencyError(entry.partition_key, entry.app_id, entry.sequence_id)
            entries[place] = entry

    async def journal_entries(
        self, partition_key: str, app_id: str, sequence_id: int
    ) -> list[JournalEntry]:
        with self._lock:
            entries = self._journal.get((partition_key, app_id), {})
            return sorted(
                (e for (s, _), e in entries.items() if s == sequence_id), key=lambda e: e.index
            )

    async def journal_remove(
        self, partition_key: str, app_id: str, sequence_ids: Sequence[int]
    ) -> None:
        gone = set(sequence_ids)
        with self._lock:
            entries = self._journal.get((partition_key, app_id), {})
            for place in [p for p in entries if p[0] in gone]:
                del entries[place]

    async def journal_delete(self, partition_key: str | None, app_id: str) -> None:
        with self._lock:
            for key in list(self._journal):
                if key[1] == app_id and (partition_key is None or key[0] == partition_key):
                    del self._journal[key]

    async def journal_copy(self, parent: ParentPointer, partition_key: str, app_id: str) -> None:
        with self._lock:
            source = self._journal.get((parent.partition_key or "", parent.app_id), {})
            target = self._journal.setdefault((partition_key, app_id), {})
            for (sequence_id, index), entry in source.items():
                if parent.sequence_id is None or sequence_id <= parent.sequence_id:
                    target.setdefault(
                        (sequence_id, index),
                        dataclasses.replace(entry, partition_key=partition_key, app_id=app_id),
                    )


class InMemoryPersister(SyncPersister):
    """A persister in memory (lost with the process); ``snapshot_every`` as in
    ``StorePersister``."""

    def __init__(self, *, serde: Serde | None = None, snapshot_every: int = 100) -> None:
        super().__init__(StorePersister(MemoryStore(), serde=serde, snapshot_every=snapshot_every))


class AsyncInMemoryPersister(AsyncPersister):
    """The async form of ``InMemoryPersister``."""

    def __init__(self, *, serde: Serde | None = None, snapshot_every: int = 100) -> None:
        super().__init__(StorePersister(MemoryStore(), serde=serde, snapshot_every=snapshot_every))
