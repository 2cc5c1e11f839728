"""Persistence: saving every step and loading any of them back.

The contract (Burr's, so Burr persisters' users feel at home): a persister ``load``s the record
of ``(partition_key, app_id, sequence_id)`` (the latest when ``sequence_id`` is ``None``),
``save``s one record per step, lists app ids, and — ours — ``delete``s an app and ``prune``s old
records. ``ApplicationBuilder.with_state_persister`` saves after every step;
``ApplicationBuilder.initialize_from`` resumes or forks from a loader.

What a record holds on disk is our own design. A step stores only its *delta* (the changes the
engine recorded), with a full *snapshot* every ``snapshot_every`` steps and whenever the chain
would be broken (the first save, a resumed app whose state was edited, a fork); loading any
sequence id starts from the nearest snapshot and replays the deltas after it. Saves are
conditional: the record's sequence id must be new and, for a delta, must follow the record it
applies to, so a second writer gets ``ConcurrencyError`` instead of corrupting the history.

Backends implement ``Store`` (a handful of async methods); ``StorePersister`` holds every rule
above once. A store over a synchronous driver never suspends, so the sync persister runs the same
coroutines with ``drive`` — one implementation for sync and async, like the engine.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from turnout.core._burr_names import lazy_names as _lazy_names
from turnout.core._chain import DELTA, SNAPSHOT, Codec, check_whole, missing_latest, orphaned
from turnout.core._persister_bases import (
    AsyncBaseStateLoader,
    AsyncBaseStatePersister,
    AsyncBaseStateSaver,
    BaseStateLoader,
    BaseStatePersister,
    BaseStateSaver,
    Opening,
    Status,
)
from turnout.core.engine import drive
from turnout.core.errors import PersistenceError
from turnout.core.serde import DEFAULT_SERDE, Serde
from turnout.core.state import Change, State

__all__ = [
    "AppRow",
    "AsyncBaseStateLoader",
    "AsyncBaseStatePersister",
    "AsyncBaseStateSaver",
    "BaseStateLoader",
    "BaseStatePersister",
    "BaseStateSaver",
    "Opening",
    "ParentPointer",
    "PersistedStateData",
    "Status",
    "StepRecord",
    "Store",
    "StorePersister",
]

T = TypeVar("T")
P = TypeVar("P", bound="SyncPersister")
A = TypeVar("A", bound="AsyncPersister")
STATUSES: tuple[Status, ...] = ("completed", "failed", "suspended")
__getattr__ = _lazy_names(__name__)  # Burr's names of persisters defined in modules importing this


@dataclass(frozen=True, kw_only=True, slots=True)
class ParentPointer:
    """The record an app was forked from."""

    app_id: str
    partition_key: str | None
    sequence_id: int | None


@dataclass(frozen=True, kw_only=True, slots=True)
class PersistedStateData(Mapping[str, Any]):
    """A loaded record; also readable as a mapping (``data["state"]``), as in Burr.
    ``schema_version`` is the state schema version its state was written under
    (``turnout.core.versions``; 1 for records written before versions existed)."""

    partition_key: str | None
    app_id: str
    sequence_id: int
    position: str | None
    state: State
    created_at: dt.datetime
    status: Status
    parent: ParentPointer | None = None
    schema_version: int = 1

    def __getitem__(self, key: str) -> Any:
        if key in _RECORD_FIELDS:
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(_RECORD_FIELDS)

    def __len__(self) -> int:
        return len(_RECORD_FIELDS)


_RECORD_FIELDS = (
    "partition_key",
    "app_id",
    "sequence_id",
    "position",
    "state",
    "created_at",
    "status",
    "parent",
)


@dataclass(frozen=True, kw_only=True, slots=True)
class StepRecord:
    """One stored step, as a ``Store`` reads and writes it."""

    partition_key: str
    app_id: str
    sequence_id: int
    position: str | None
    status: Status
    kind: str  # SNAPSHOT or DELTA
    payload: str  # JSON: the encoded state (snapshot) or a list of [op, key, value] (delta)
    created_at: dt.datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class AppRow:
    """What a ``Store`` keeps per app: when it started, what it was forked from and (when read
    back) the sequence id of its latest record, so that a missing latest record is noticed."""

    partition_key: str
    app_id: str
    created_at: dt.datetime
    parent: ParentPointer | None = None
    latest_sequence_id: int | None = None


class Store(Protocol):
    """Where records live. Keys use ``""`` for a ``None`` partition key.

    ``insert`` is the only write of a step and must be atomic and conditional. ``app`` (given
    with an app's first record, and whenever the writer does not know the app's latest record)
    is stored unless the app already has a row. Then, raise ``ConcurrencyError`` and write
    nothing

    * with ``deleted=True`` if the app has no row (it was deleted while its writer ran);
    * if ``record.sequence_id`` is not greater than the app's latest sequence id;
    * if ``previous`` is not ``None`` and the app's latest sequence id is not ``previous``.

    Otherwise store the record and make it the app's latest (``AppRow.latest_sequence_id``).
    ``delete`` removes the app's row with its records atomically, so a writer never re-creates
    records of an app that has no row.
    """

    async def insert(
        self, record: StepRecord, previous: int | None, app: AppRow | None
    ) -> None: ...

    async def chain(
        self, partition_key: str, app_id: str, sequence_id: int | None
    ) -> list[StepRecord]:
        """The records needed to rebuild ``sequence_id`` (the latest if ``None``): the nearest
        snapshot at or before it, then every record after it up to it, in order; ``[]`` if that
        sequence id is not stored (or the app has no record at all)."""
        ...

    async def app(self, partition_key: str, app_id: str) -> AppRow | None: ...

    async def app_ids(self, partition_key: str) -> list[str]:
        """The app ids of a partition, most recently created first."""
        ...

    async def delete(self, partition_key: str | None, app_id: str) -> int:
        """Remove an app (from every partition if ``partition_key`` is ``None``); the number of
        records removed."""
        ...

    async def records(self, partition_key: str, app_id: str) -> list[StepRecord]:
        """Every record of an app, in sequence order."""
        ...

    async def rewrite(self, record: StepRecord) -> None:
        """Replace the stored record with the same key (turning a delta into a snapshot); a
        record that is not stored is left absent."""
        ...

    async def remove(self, partition_key: str, app_id: str, sequence_ids: Sequence[int]) -> int: ...

    async def all_apps(self, partition_key: str | None) -> list[AppRow]: ...


def _key(partition_key: str | None) -> str:
    return "" if partition_key is None else partition_key


def _check_ids(partition_key: str | None, app_id: str | None) -> None:
    """Refuse an id no backend can store: a string with a lone surrogate (``"a\\ud800"``, e.g.
    from ``os.fsdecode`` of undecodable bytes) is not Unicode text, so it has no UTF-8 form."""
    for what, value in (("partition key", partition_key), ("app id", app_id)):
        if not isinstance(value, str):
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise PersistenceError(
                f"the {what} {value!r} cannot be stored: its character {exc.start} "
                f"({value[exc.start]!r}) is a lone surrogate, which is not Unicode text. Use a "
                f"valid string, e.g. value.encode('utf-8', 'replace').decode('utf-8')."
            ) from None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class StorePersister:
    """Every persistence rule, over any ``Store``; its methods are coroutines.

    Use it through ``SyncPersister`` or ``AsyncPersister`` (what backends return).

    Args:
        store: where the records live.
        serde: the codec registry for state values.
        snapshot_every: write a full snapshot every this many sequence ids (and whenever a
            delta would not apply); loading replays at most this many deltas.
    """

    def __init__(self, store: Store, *, serde: Serde | None = None, snapshot_every: int = 100):
        if snapshot_every < 1:
            raise ValueError(f"snapshot_every must be at least 1, got {snapshot_every}")
        self.store = store
        self.codec = Codec(serde=serde or DEFAULT_SERDE)
        self.snapshot_every = snapshot_every

    async def load(
        self, partition_key: str | None, app_id: str, sequence_id: int | None = None
    ) -> PersistedStateData | None:
        _check_ids(partition_key, app_id)
        # The app row first: a writer saving in between only makes the chain longer than the
        # latest sequence id the row recorded, never shorter.
        app = await self.store.app(_key(partition_key), app_id)
        chain = await self.store.chain(_key(partition_key), app_id, sequence_id)
        if not chain:
            latest = app.latest_sequence_id if app is not None else None
            if latest is not None and sequence_id in (None, latest):  # prune keeps the latest
                raise missing_latest(partition_key, app_id, latest)
            return None
        last = chain[-1]
        if app is None:
            raise orphaned(partition_key, app_id, last.sequence_id)
        latest = app.latest_sequence_id if sequence_id is None else None
        check_whole(chain, partition_key=partition_key, app_id=app_id, latest=latest)
        state, version = self.codec.rebuild_versioned(chain)
        return PersistedStateData(
            partition_key=partition_key,
            app_id=app_id,
            sequence_id=last.sequence_id,
            position=last.position,
            state=state,
            created_at=last.created_at,
            status=last.status,
            parent=app.parent,
            schema_version=version,
        )

    async def save(
        self,
        partition_key: str | None,
        app_id: str,
        sequence_id: int,
        position: str | None,
        state: State,
        status: Status,
        *,
        changes: Sequence[Change] | None = None,
        previous_sequence_id: int | None = None,
        parent: ParentPointer | None = None,
        first: bool = False,
        schema_version: int = 1,
    ) -> None:
        """Save one step; ``schema_version`` is the state schema version ``state`` is in (a
        snapshot records it; a delta is in the version of the snapshot it follows, which the
        saving hook guarantees by saving a snapshot after a migration)."""
        _check_ids(partition_key, app_id)
        # A delta only ever follows the sequence id just before it, so a chain with a gap is
        # always a damaged one (see check_whole).
        use_delta = (
            changes is not None
            and previous_sequence_id is not None
            and sequence_id == previous_sequence_id + 1
            and sequence_id // self.snapshot_every == previous_sequence_id // self.snapshot_every
        )
        record = StepRecord(
            partition_key=_key(partition_key),
            app_id=app_id,
            sequence_id=sequence_id,
            position=position,
            status=status,
            kind=DELTA if use_delta else SNAPSHOT,
            payload=(
                self.codec.delta(changes or (), state)
                if use_delta
                else self.codec.snapshot(state, schema_version)
            ),
            created_at=_now(),
        )
        app = None
        if first or previous_sequence_id is None:
            app = AppRow(
                partition_key=_key(partition_key), app_id=app_id, created_at=_now(), parent=parent
            )
        await self.store.insert(record, previous_sequence_id, app)

    async def list_app_ids(self, partition_key: str | None) -> list[str]:
        _check_ids(partition_key, None)
        return await self.store.app_ids(_key(partition_key))

    async def app_row(self, partition_key: str | None, app_id: str) -> AppRow | None:
        """The app's row (when it was created, its parent, the sequence id of its latest
        record), read without loading its state: the cheap check that a state held in memory
        is still the stored one. ``None``: no such app."""
        _check_ids(partition_key, app_id)
        return await self.store.app(_key(partition_key), app_id)

    async def records(self, partition_key: str | None, app_id: str) -> list[StepRecord]:
        """Every stored record of the app, in sequence order (``[]``: no such app)."""
        _check_ids(partition_key, app_id)
        return await self.store.records(_key(partition_key), app_id)

    async def delete(self, app_id: str, partition_key: str | None = None) -> int:
        """Remove the app (its row and records, atomically). A writer still running on it gets
        ``ConcurrencyError(deleted=True)`` at its next save instead of re-creating records."""
        _check_ids(partition_key, app_id)
        return await self.store.delete(partition_key, app_id)

    async def prune(
        self,
        *,
        keep_last: int | None = None,
        older_than: dt.datetime | dt.timedelta | None = None,
        partition_key: str | None = None,
        app_id: str | None = None,
    ) -> int:
        """Remove old records of every app (or of one partition / app).

        ``keep_last=N`` keeps each app's N latest records; ``older_than`` (a time, or an age)
        removes records created before it, always keeping each app's latest record so every app
        stays resumable. The oldest record kept is rewritten as a snapshot if it was a delta, so
        every kept sequence id still loads. Returns the number of records removed.
        """
        if (keep_last is None) == (older_than is None):
            raise ValueError("prune() takes exactly one of keep_last=N or older_than=...")
        if keep_last is not None and keep_last < 1:
            raise ValueError(f"prune(keep_last={keep_last}) must keep at least 1 record")
        if isinstance(older_than, dt.datetime) and older_than.utcoffset() is None:
            raise ValueError(
                f"prune(older_than={older_than!r}) needs a timezone-aware time, e.g. "
                f"datetime.now(timezone.utc) - timedelta(days=30), or a timedelta"
            )
        _check_ids(partition_key, app_id)
        cutoff = _now() - older_than if isinstance(older_than, dt.timedelta) else older_than
        removed = 0
        for app in await self.store.all_apps(partition_key):
            if app_id is not None and app.app_id != app_id:
                continue
            records = await self.store.records(app.partition_key, app.app_id)
            if keep_last is not None:
                kept = records[-keep_last:]
            else:
                assert cutoff is not None
                kept = [r for r in records[:-1] if r.created_at >= cutoff] + records[-1:]
            if len(kept) == len(records):
                continue
            oldest = kept[0]
            if oldest.kind != SNAPSHOT:
                chain = await self.store.chain(app.partition_key, app.app_id, oldest.sequence_id)
                check_whole(chain, partition_key=app.partition_key or None, app_id=app.app_id)
                state, version = self.codec.rebuild_versioned(chain)
                await self.store.rewrite(
                    StepRecord(
                        partition_key=oldest.partition_key,
                        app_id=oldest.app_id,
                        sequence_id=oldest.sequence_id,
                        position=oldest.position,
                        status=oldest.status,
                        kind=SNAPSHOT,
                        payload=self.codec.snapshot(state, version),
                        created_at=oldest.created_at,
                    )
                )
            kept_ids = {r.sequence_id for r in kept}
            gone = [r.sequence_id for r in records if r.sequence_id not in kept_ids]
            removed += await self.store.remove(app.partition_key, app.app_id, gone)
        return removed


class _Checks:
    core: StorePersister
    serde_kwargs: dict[str, Any]
    # Its records carry the state schema version (``save(schema_version=)``, ``load`` reports
    # it): ``build()`` refuses a declared version > 1 with a persister that would drop it.
    stores_schema_version = True

    def check_state(self, state: State) -> None:
        """Round-trip ``state`` through this persister's codec; ``SerdeError`` names the first
        value that cannot be saved (``build()`` calls it on the initial state)."""
        serde = self.core.codec.serde
        serde.loads(serde.dumps_state(state.get_all()))

    def set_serde_kwargs(self, serde_kwargs: dict[str, Any] | None) -> None:
        """Burr's per-call serialisation arguments (e.g. ``{"pandas_kwargs": {"path": dir}}``):
        passed to the codecs registered Burr's way (``@serialize.register``, Burr's serde
        plugins) whenever this persister saves or loads. turnout's own codecs take none."""
        self.serde_kwargs = dict(serde_kwargs or {})
        if self.serde_kwargs:
            codec = self.core.codec
            codec.serde = codec.serde.with_kwargs(**self.serde_kwargs)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Any:
        """Burr's constructor from a configuration mapping: ``cls.from_values(**config)``."""
        from_values = getattr(cls, "from_values", None)
        if from_values is None:
            return cls(**config)
        return from_values(**config)


class SyncPersister(_Checks, BaseStatePersister):
    """A synchronous persister over a ``StorePersister`` whose store never suspends; a context
    manager that calls ``close()`` on exit.

    Burr's lifecycle methods work on every backend: ``initialize()`` creates the tables or keys
    now (otherwise the first call does), ``is_initialized()`` says whether they exist, and
    ``cleanup()`` is ``close()``.
    """

    def initialize(self) -> None:
        """Create the storage (tables, keys) now and check its schema version."""
        setup = getattr(self.core.store, "setup", None)
        if setup is not None:
            drive(setup())

    def is_initialized(self) -> bool:
        """Whether the storage exists (``initialize()`` or a first save created it)."""
        probe = getattr(self.core.store, "initialized", None)
        return True if probe is None else bool(drive(probe()))

    def cleanup(self) -> None:
        """Burr's name for ``close()``."""
        self.close()

    def __init__(self, core: StorePersister) -> None:
        self.core = core
        self.serde_kwargs = {}

    def close(self) -> None:
        """Release what this persister opened itself (backends override it)."""

    def __enter__(self: P) -> P:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def load(
        self, partition_key: str | None, app_id: str, sequence_id: int | None = None, **kwargs: Any
    ) -> PersistedStateData | None:
        return drive(self.core.load(partition_key, app_id, sequence_id))

    def save(
        self,
        partition_key: str | None,
        app_id: str,
        sequence_id: int,
        position: str | None,
        state: State,
        status: Status,
        **kwargs: Any,
    ) -> None:
        drive(self.core.save(partition_key, app_id, sequence_id, position, state, status, **kwargs))

    def list_app_ids(self, partition_key: str | None, **kwargs: Any) -> list[str]:
        return drive(self.core.list_app_ids(partition_key))

    def app_row(self, partition_key: str | None, app_id: str) -> AppRow | None:
        return drive(self.core.app_row(partition_key, app_id))

    def records(self, partition_key: str | None, app_id: str) -> list[StepRecord]:
        return drive(self.core.records(partition_key, app_id))

    def delete(self, app_id: str, partition_key: str | None = None) -> int:
        return drive(self.core.delete(app_id, partition_key))

    def prune(
        self,
        *,
        keep_last: int | None = None,
        older_than: dt.datetime | dt.timedelta | None = None,
        partition_key: str | None = None,
        app_id: str | None = None,
    ) -> int:
        return drive(
            self.core.prune(
                keep_last=keep_last,
                older_than=older_than,
                partition_key=partition_key,
                app_id=app_id,
            )
        )


class AsyncPersister(_Checks, AsyncBaseStatePersister):
    """An asynchronous persister over a ``StorePersister``; ``initialize``, ``is_initialized``
    and ``cleanup`` are ``SyncPersister``'s, awaited.

    Args:
        core: the rules and the store.
        threaded: the store's driver is synchronous: run each call to completion in a worker
            thread, so the event loop never waits on it.
    """

    def __init__(self, core: StorePersister, *, threaded: bool = False) -> None:
        self.core = core
        self.threaded = threaded
        self.serde_kwargs = {}

    async def initialize(self) -> None:
        """Create the storage (tables, keys) now and check its schema version."""
        setup = getattr(self.core.store, "setup", None)
        if setup is not None:
            await self._call(setup())

    async def is_initialized(self) -> bool:
        """Whether the storage exists (``initialize()`` or a first save created it)."""
        probe = getattr(self.core.store, "initialized", None)
        return True if probe is None else bool(await self._call(probe()))

    async def cleanup(self) -> None:
        """Burr's name for ``close()``."""
        await self.close()

    async def close(self) -> None:
        """Release what this persister opened itself (backends override it)."""

    async def __aenter__(self: A) -> A:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self.threaded:
            return await asyncio.to_thread(drive, coro)
        return await coro

    async def load(
        self, partition_key: str | None, app_id: str, sequence_id: int | None = None, **kwargs: Any
    ) -> PersistedStateData | None:
        return await self._call(self.core.load(partition_key, app_id, sequence_id))

    async def save(
        self,
        partition_key: str | None,
        app_id: str,
        sequence_id: int,
        position: str | None,
        state: State,
        status: Status,
        **kwargs: Any,
    ) -> None:
        await self._call(
            self.core.save(partition_key, app_id, sequence_id, position, state, status, **kwargs)
        )

    async def list_app_ids(self, partition_key: str | None, **kwargs: Any) -> list[str]:
        return await self._call(self.core.list_app_ids(partition_key))

    async def app_row(self, partition_key: str | None, app_id: str) -> AppRow | None:
        return await self._call(self.core.app_row(partition_key, app_id))

    async def records(self, partition_key: str | None, app_id: str) -> list[StepRecord]:
        return await self._call(self.core.records(partition_key, app_id))

    async def delete(self, app_id: str, partition_key: str | None = None) -> int:
        return await self._call(self.core.delete(app_id, partition_key))

    async def prune(
        self,
        *,
        keep_last: int | None = None,
        older_than: dt.datetime | dt.timedelta | None = None,
        partition_key: str | None = None,
        app_id: str | None = None,
    ) -> int:
        return await self._call(
            self.core.prune(
                keep_last=keep_last,
                older_than=older_than,
                partition_key=partition_key,
                app_id=app_id,
            )
        )
