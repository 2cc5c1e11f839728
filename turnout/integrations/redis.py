"""Redis persisters: ``RedisPersister`` (``redis.Redis``) and ``AsyncRedisPersister``
(``redis.asyncio.Redis``).

Every store operation is one Lua script, so each runs atomically on the server: the conditional
insert checks the app's latest sequence id (and the record a delta applies to) and writes the
record, its indexes and the app's row in one step, and a load never sees a half-pruned app. The
store is written once, as coroutines over a client adapter; the adapter over the synchronous
client never suspends, so ``RedisPersister`` runs the same coroutines without an event loop.

Keys, under a validated prefix ``P`` (partition keys and app ids percent-encode ``%`` and ``:``,
so no two of them share a key)::

    P:meta                       hash: the schema version
    P:partitions                 set: the partition keys holding apps
    P:apps:<partition>           hash: app id -> the app's row (JSON)
    P:latest:<partition>         hash: app id -> the sequence id of the app's latest record
    P:where:<app>                set: the partition keys holding records of the app id
    P:ids:<partition>:<app>      sorted set: every sequence id (score = sequence id)
    P:snapshots:<partition>:<app>   sorted set: the sequence ids of snapshots
    P:records:<partition>:<app>  hash: sequence id -> the record (JSON)
    P:jsteps:<partition>:<app>   sorted set: the sequence ids with a journal (``durable``)
    P:journal:<partition>:<app>:<sequence id>   hash: call index -> the journaled call (JSON)

The scripts touch keys of several apps' indexes at once, so one Redis server (with replicas if
wanted) is supported, not Redis Cluster.

Schema versions: 1 had no ``P:latest`` hashes; version 2 code reads an app without an entry there
from its ``P:ids`` set and adds the entry with the app's next save.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any, Protocol

from turnout.core.errors import ConcurrencyError, PersistenceError
from turnout.core.journal import JournalEntry
from turnout.core.persistence import (
    AppRow,
    AsyncPersister,
    ParentPointer,
    StepRecord,
    StorePersister,
    SyncPersister,
)
from turnout.core.serde import Serde
from turnout.core.sql import check_name
from turnout.integrations import _portable
from turnout.integrations._guard import missing_extra
from turnout.integrations._redis_scripts import SCRIPTS as _SCRIPTS

try:
    import redis
    import redis.asyncio
    import redis.exceptions
except ImportError as _error:  # pragma: no cover - exercised in a subprocess
    raise missing_extra(
        "turnout.integrations.redis", 'pip install "turnout[redis]"', _error
    ) from _error

__all__ = ["SCHEMA_VERSION", "AsyncRedisPersister", "RedisClient", "RedisPersister", "RedisStore"]

SCHEMA_VERSION = 2


class RedisClient(Protocol):
    """What ``RedisStore`` needs from a client: run one of its scripts by name."""

    address: str

    async def run(self, script: str, keys: Sequence[str], args: Sequence[str]) -> Any: ...


class _SyncClient:
    """Over ``redis.Redis``: its coroutines call the blocking client and never suspend."""

    def __init__(self, client: redis.Redis) -> None:
        self.address = _address(client)
        self._scripts = {name: client.register_script(text) for name, text in _SCRIPTS.items()}

    async def run(self, script: str, keys: Sequence[str], args: Sequence[str]) -> Any:
        return self._scripts[script](keys=list(keys), args=list(args))


class _AsyncClient:
    """Over ``redis.asyncio.Redis``."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.address = _address(client)
        self._scripts = {name: client.register_script(text) for name, text in _SCRIPTS.items()}

    async def run(self, script: str, keys: Sequence[str], args: Sequence[str]) -> Any:
        return await self._scripts[script](keys=list(keys), args=list(args))


class RedisStore:
    """The ``Store`` of ``turnout.core.persistence`` over Redis (see the module docstring)."""

    def __init__(self, client: RedisClient, prefix: str = "turnout") -> None:
        self.client = client
        self.prefix = check_name(prefix, "key prefix")
        self._ready = False

    # -- keys ------------------------------------------------------------------------------------

    def _steps(self, partition_key: str, app_id: str) -> list[str]:
        tail = f"{_escape(partition_key)}:{_escape(app_id)}"
        return [f"{self.prefix}:{kind}:{tail}" for kind in ("ids", "snapshots", "records")]

    def _indexes(self, partition_key: str, app_id: str) -> list[str]:
        return [
            f"{self.prefix}:apps:{_escape(partition_key)}",
            f"{self.prefix}:partitions",
            f"{self.prefix}:where:{_escape(app_id)}",
            f"{self.prefix}:latest:{_escape(partition_key)}",
        ]

    # -- calls -----------------------------------------------------------------------------------

    async def _call(self, script: str, keys: Sequence[str], args: Sequence[Any] = ()) -> Any:
        try:
            return await self.client.run(script, keys, [str(a) for a in args])
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise PersistenceError(
                f"cannot reach Redis at {self.client.address} ({type(exc).__name__}: {exc}); "
                f"start the server, or give the persister the right URL or client. Records "
                f"already saved are unchanged."
            ) from exc
        except redis.exceptions.RedisError as exc:
            raise PersistenceError(
                f"Redis at {self.client.address} failed on the {self.prefix!r} keys "
                f"({type(exc).__name__}: {exc}). Records already saved are unchanged."
            ) from exc

    async def _run(self, script: str, keys: Sequence[str], args: Sequence[Any] = ()) -> Any:
        if not self._ready:
            await self.setup()
        return await self._call(script, keys, args)

    async def setup(self) -> None:
        """Mark the keys with the schema version, or check the version already there."""
        stored = _text(await self._call("setup", [f"{self.prefix}:meta"], [SCHEMA_VERSION]))
        if not stored.isdigit():
            raise PersistenceError(
                f"the {self.prefix}:meta hash of Redis at {self.client.address} holds schema "
                f"version {stored!r}, which is not a version number: the keys are damaged or not "
                f"turnout's. Restore them from a backup, or use another prefix."
            )
        if int(stored) > SCHEMA_VERSION:
            raise PersistenceError(
                f"the {self.prefix!r} keys of Redis at {self.client.address} use schema version "
                f"{stored}, written by a newer turnout than this one (which reads up to version "
                f"{SCHEMA_VERSION}); upgrade turnout (pip install -U turnout), or use another "
                f"prefix."
            )
        self._ready = True

    async def initialized(self) -> bool:
        """Whether the keys are set up (``setup`` ran, here or in another process)."""
        return self._ready or bool(await self._call("exists", [f"{self.prefix}:meta"]))

    # -- the Store protocol ----------------------------------------------------------------------

    async def insert(self, record: StepRecord, previous: int | None, app: AppRow | None) -> None:
        pk, app_id = record.partition_key, record.app_id
        if app is not None and app.parent is not None and previous is None:
            # Before the fork's first record (kept if that insert fails: a retry copies again
            # and keeps what is there), so no fork is ever without its parent's journal.
            await self.journal_copy(app.parent, pk, app_id)
        written = await self._run(
            "insert",
            [*self._steps(pk, app_id), *self._indexes(pk, app_id)],
            [
                record.sequence_id,
                "" if previous is None else previous,
                record.kind,
                _dump_record(record),
                "" if app is None else _dump_app(app),
                app_id,
                pk,
            ],
        )
        if int(written) != 1:
            raise ConcurrencyError(pk, app_id, record.sequence_id, deleted=int(written) == 2)

    async def chain(
        self, partition_key: str, app_id: str, sequence_id: int | None
    ) -> list[StepRecord]:
        keys = self._steps(partition_key, app_id)
        values = await self._run("chain", keys, ["" if sequence_id is None else sequence_id])
        # A sequence id indexed without its record (a hand-made HDEL) is left out: the chain
        # then has a gap, which StorePersister reports.
        return [self._load_record(value, keys[2]) for value in values if value is not None]

    async def app(self, partition_key: str, app_id: str) -> AppRow | None:
        indexes = self._indexes(partition_key, app_id)
        value, latest = await self._run("app", [indexes[0], indexes[3]], [app_id])
        if value is None:
            return None
        return self._with_latest(self._load_app(value, indexes[0]), latest, indexes[3])

    async def app_ids(self, partition_key: str) -> list[str]:
        rows = sorted(await self.all_apps(partition_key), key=lambda a: a.app_id)
        rows.sort(key=lambda a: a.created_at, reverse=True)
        return [a.app_id for a in rows]

    async def delete(self, partition_key: str | None, app_id: str) -> int:
        if partition_key is None:
            where = await self._run("members", self._indexes("", app_id)[2:3])
            partitions = sorted(_text(pk) for pk in where)
        else:
            partitions = [partition_key]
        removed = 0
        for pk in partitions:
            keys = [*self._steps(pk, app_id), *self._indexes(pk, app_id)]
            removed += int(await self._run("delete", keys, [app_id, pk]))
            await self.journal_delete(pk, app_id)
        return removed

    async def records(self, partition_key: str, app_id: str) -> list[StepRecord]:
        keys = self._steps(partition_key, app_id)
        values = await self._run("records", [keys[0], keys[2]])
        return [self._load_record(value, keys[2]) for value in values]

    async def rewrite(self, record: StepRecord) -> None:
        keys = self._steps(record.partition_key, record.app_id)
        await self._run("rewrite", keys, [record.sequence_id, record.kind, _dump_record(record)])

    async def remove(self, partition_key: str, app_id: str, sequence_ids: Sequence[int]) -> int:
        keys = self._steps(partition_key, app_id)
        ids = list(sequence_ids)
        removed = 0
        for start in range(0, len(ids), 1000):
            removed += int(await self._run("remove", keys, ids[start : start + 1000]))
            await self.journal_remove(partition_key, app_id, ids[start : start + 1000])
        return removed

    async def all_apps(self, partition_key: str | None) -> list[AppRow]:
        if partition_key is None:
            found = await self._run("members", [f"{self.prefix}:partitions"])
            partitions = sorted(_text(pk) for pk in found)
        else:
            partitions = [partition_key]
        rows: list[AppRow] = []
        for pk in partitions:
            key, latest_key = (
                f"{self.prefix}:apps:{_escape(pk)}",
                f"{self.prefix}:latest:{_escape(pk)}",
            )
            values, pairs = await self._run("apps", [key, latest_key])
            latest = {_text(pairs[i]): pairs[i + 1] for i in range(0, len(pairs), 2)}
            for value in values:
                row = self._load_app(value, key)
                rows.append(self._with_latest(row, latest.get(row.app_id), latest_key))
        return rows

    # -- the JournalStore protocol --------------------------------------------------------------

    def _journal(self, partition_key: str, app_id: str) -> tuple[str, str]:
        """The app's journal index and the prefix of its steps' journal hashes."""
        tail = f"{_escape(partition_key)}:{_escape(app_id)}"
        return f"{self.prefix}:jsteps:{tail}", f"{self.prefix}:journal:{tail}:"

    async def journal_record(self, entry: JournalEntry) -> None:
        index, steps = self._journal(entry.partition_key, entry.app_id)
        value = json.dumps(
            {"key": entry.key, "payload": entry.payload, "at": entry.created_at.isoformat()},
            separators=(",", ":"),
        )
        written = await self._run(
            "journal_record",
            [index, f"{steps}{entry.sequence_id}"],
            [entry.sequence_id, entry.index, value],
        )
        if int(written) != 1:
            raise ConcurrencyError(entry.partition_key, entry.app_id, entry.sequence_id)

    async def journal_entries(
        self, partition_key: str, app_id: str, sequence_id: int
    ) -> list[JournalEntry]:
        key = f"{self._journal(partition_key, app_id)[1]}{sequence_id}"
        pairs = await self._run("journal_entries", [key])
        entries = []
        for i in range(0, len(pairs), 2):
            try:
                data = json.loads(_text(pairs[i + 1]))
                entries.append(
                    JournalEntry(
                        partition_key=partition_key,
                        app_id=app_id,
                        sequence_id=sequence_id,
                        index=int(_text(pairs[i])),
                        key=str(data["key"]),
                        payload=str(data["payload"]),
                        created_at=dt.datetime.fromisoformat(data["at"]),
                    )
                )
            except (ValueError, TypeError, KeyError) as exc:
                raise PersistenceError(
                    f"a journal entry in the Redis hash {key!r} at {self.client.address} is "
                    f"unreadable ({type(exc).__name__}: {exc}); delete the app to remove it."
                ) from exc
        return sorted(entries, key=lambda e: e.index)

    async def journal_remove(
        self, partition_key: str, app_id: str, sequence_ids: Sequence[int]
    ) -> None:
        index, steps = self._journal(partition_key, app_id)
        await self._run("journal_remove", [index], [steps, *sequence_ids])

    async def journal_delete(self, partition_key: str | None, app_id: str) -> None:
        index, steps = self._journal(partition_key or "", app_id)
        await self._run("journal_delete", [index], [steps])

    async def journal_copy(self, parent: ParentPointer, partition_key: str, app_id: str) -> None:
        source, source_steps = self._journal(parent.partition_key or "", parent.app_id)
        target, target_steps = self._journal(partition_key, app_id)
        last = "" if parent.sequence_id is None else parent.sequence_id
        await self._run("journal_copy", [source, target], [source_steps, target_steps, last])

    def _with_latest(self, row: AppRow, latest: Any, key: str) -> AppRow:
        if latest is None:
            return row
        try:
            number = int(_text(latest))
        except ValueError as exc:
            raise PersistenceError(
                f"the latest sequence id of app {row.app_id!r} in the Redis hash {key!r} at "
                f"{self.client.address} is {latest!r}, not a number: the keys are damaged. "
                f"Delete the app, or repair the entry."
            ) from exc
        return dataclasses.replace(row, latest_sequence_id=number)

    def _load_record(self, value: Any, key: str) -> StepRecord:
        try:
            data = json.loads(_text(value))
            return StepRecord(
                partition_key=data["partition_key"],
                app_id=data["app_id"],
                sequence_id=int(data["sequence_id"]),
                position=data["position"],
                status=data["status"],
                kind=data["kind"],
                payload=data["payload"],
                created_at=dt.datetime.fromisoformat(data["created_at"]),
            )
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise PersistenceError(
                f"a record in the Redis hash {key!r} at {self.client.address} is unreadable "
                f"({type(exc).__name__}: {exc}); the other records are intact: load an earlier "
                f"sequence id, or delete the app."
            ) from exc

    def _load_app(self, value: Any, key: str) -> AppRow:
        try:
            return _load_app(value)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise PersistenceError(
                f"an app row in the Redis hash {key!r} at {self.client.address} is unreadable "
                f"({type(exc).__name__}: {exc}); delete the app to remove it."
            ) from exc


def _escape(part: str) -> str:
    """A partition key or app id as a key segment: ``%`` first, so escapes stay unambiguous."""
    return part.replace("%", "%25").replace(":", "%3A")


def _text(value: Any) -> str:
    if value is None:
        raise ValueError("the value is missing")
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _dump_record(record: StepRecord) -> str:
    return json.dumps(
        {
            "partition_key": record.partition_key,
            "app_id": record.app_id,
            "sequence_id": record.sequence_id,
            "position": record.position,
            "status": record.status,
            "kind": record.kind,
            "payload": record.payload,
            "created_at": record.created_at.isoformat(),
        },
        separators=(",", ":"),
    )


def _dump_app(app: AppRow) -> str:
    parent = app.parent
    return json.dumps(
        {
            "partition_key": app.partition_key,
            "app_id": app.app_id,
            "created_at": app.created_at.isoformat(),
            "parent": None
            if parent is None
            else {
                "app_id": parent.app_id,
                "partition_key": parent.partition_key,
                "sequence_id": parent.sequence_id,
            },
        },
        separators=(",", ":"),
    )


def _load_app(value: Any) -> AppRow:
    data = json.loads(_text(value))
    parent = data.get("parent")
    return AppRow(
        partition_key=data["partition_key"],
        app_id=data["app_id"],
        created_at=dt.datetime.fromisoformat(data["created_at"]),
        parent=None
        if parent is None
        else ParentPointer(
            app_id=parent["app_id"],
            partition_key=parent["partition_key"],
            sequence_id=parent["sequence_id"],
        ),
    )


def _address(client: Any) -> str:
    """Where ``client`` connects, for error messages (never its password)."""
    try:
        kwargs = dict(client.connection_pool.connection_kwargs)
    except (AttributeError, TypeError):
        return type(client).__name__
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    host, port, db = kwargs.get("host", "localhost"), kwargs.get("port", 6379), kwargs.get("db", 0)
    return f"redis://{host}:{port}/{db}"


class RedisPersister(SyncPersister):
    """Save applications to Redis.

    Args:
        client_or_url: a ``redis.Redis`` client (yours: ``close()`` leaves it open), or a URL
            such as ``"redis://127.0.0.1:6379/0"`` (the persister creates the client and
            ``close()`` closes it). Any ``decode_responses`` setting works.
        prefix: the first segment of every key (letters, digits and underscores).
        serde: the codec registry (default: ``turnout.core.serde.DEFAULT_SERDE``).
        snapshot_every: a full snapshot every this many steps; the others store their delta.
        serde_kwargs: Burr's serialisation arguments (e.g. ``{"pandas_kwargs": {"path": dir}}``),
            passed to codecs registered Burr's way (``@serialize.register``, Burr's plugins).

    Burr's constructors (``from_values(host, port, db, ...)``, a client with ``namespace=``)
    are in ``turnout.integrations.persisters.b_redis``.
    """

    def __init__(
        self,
        client_or_url: redis.Redis | str,
        prefix: str = "turnout",
        *,
        serde: Serde | None = None,
        snapshot_every: int = 100,
        serde_kwargs: dict[str, Any] | None = None,
    ) -> None:
        check_name(prefix, "key prefix")
        if isinstance(client_or_url, str):
            client = redis.Redis.from_url(client_or_url)
        elif isinstance(client_or_url, redis.Redis):
            client = client_or_url
        else:
            raise TypeError(_wrong_client("RedisPersister", "redis.Redis", client_or_url))
        self.client = client
        self._owned = isinstance(client_or_url, str)
        self._settings: dict[str, Any] = {"serde": serde, "snapshot_every": snapshot_every}
        self.store = RedisStore(_SyncClient(client), prefix)
        try:
            core = StorePersister(self.store, serde=serde, snapshot_every=snapshot_every)
        except BaseException:
            self.close()
            raise
        super().__init__(core)
        self.set_serde_kwargs(serde_kwargs)

    def close(self) -> None:
        """Close the client if the persister created it from a URL."""
        if self._owned:
            self.client.close()

    def __getstate__(self) -> dict[str, Any]:
        # A copy sent to another process (a parallel action's child on a process pool, Ray or
        # Dask) creates its own client from the same arguments: a client holds sockets and locks.
        return _portable.copy_state(
            self, _portable.redis_arguments(self.client, "RedisPersister"), self.store.prefix
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        client = redis.Redis(**state["connect"])
        RedisPersister.__init__(
            self, client, state["name"], serde_kwargs=state["serde_kwargs"], **state["settings"]
        )
        self._owned = True  # the copy created its client, so its close() closes it


class AsyncRedisPersister(AsyncPersister):
    """``RedisPersister`` for async applications, over ``redis.asyncio.Redis`` (a client, or a
    URL for which the persister creates one); the arguments are ``RedisPersister``'s."""

    def __init__(
        self,
        client_or_url: redis.asyncio.Redis | str,
        prefix: str = "turnout",
        *,
        serde: Serde | None = None,
        snapshot_every: int = 100,
        serde_kwargs: dict[str, Any] | None = None,
    ) -> None:
        check_name(prefix, "key prefix")
        if isinstance(client_or_url, str):
            client = redis.asyncio.Redis.from_url(client_or_url)
        elif isinstance(client_or_url, redis.asyncio.Redis):
            client = client_or_url
        else:
            raise TypeError(
                _wrong_client("AsyncRedisPersister", "redis.asyncio.Redis", client_or_url)
            )
        self.client = client
        self._owned = isinstance(client_or_url, str)
        self._settings: dict[str, Any] = {"serde": serde, "snapshot_every": snapshot_every}
        self.store = RedisStore(_AsyncClient(client), prefix)
        super().__init__(StorePersister(self.store, serde=serde, snapshot_every=snapshot_every))
        self.set_serde_kwargs(serde_kwargs)

    async def close(self) -> None:
        """Close the client if the persister created it from a URL."""
        if self._owned:
            await self.client.aclose()

    def __getstate__(self) -> dict[str, Any]:
        return _portable.copy_state(
            self, _portable.redis_arguments(self.client, "AsyncRedisPersister"), self.store.prefix
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        client = redis.asyncio.Redis(**state["connect"])
        AsyncRedisPersister.__init__(
            self, client, state["name"], serde_kwargs=state["serde_kwargs"], **state["settings"]
        )
        self._owned = True


def _wrong_client(persister: str, expected: str, given: object) -> str:
    hint = ""
    if isinstance(given, redis.asyncio.Redis):
        hint = " (an async client: use AsyncRedisPersister)"
    elif isinstance(given, redis.Redis):
        hint = " (a synchronous client: use RedisPersister)"
    return (
        f"{persister}() takes a {expected} client or a URL such as 'redis://127.0.0.1:6379/0', "
        f"got {type(given).__module__}.{type(given).__qualname__}{hint}."
    )
