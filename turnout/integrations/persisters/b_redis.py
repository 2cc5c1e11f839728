"""Burr's ``burr.integrations.persisters.b_redis`` path: its Redis persister constructors over
``turnout.integrations.redis``.

Burr's ``namespace`` (the project a persister's data belongs to) becomes the key prefix, so two
namespaces on one server never see each other's apps; it follows the prefix's rule (letters,
digits and underscores). Without one the prefix is ``"turnout"``.

What Burr's Redis persister wrote under the same namespace is read too, read-only (see
``turnout.core.burr_layout``): a hash per step at ``[<namespace>:]<partition>:<app>:<sequence>``
and a sorted set per partition at ``[<namespace>:]<partition>`` (app id -> latest sequence id).
"""

from __future__ import annotations

import inspect
from typing import Any

from turnout.core.burr_layout import BurrReadingPersister, burr_record
from turnout.core.errors import PersistenceError
from turnout.core.persistence import PersistedStateData
from turnout.core.serde import Serde
from turnout.integrations.redis import AsyncRedisPersister as _AsyncRedis
from turnout.integrations.redis import RedisPersister as _Redis

import redis  # isort: skip  (after turnout.integrations.redis, which names the missing extra)
import redis.asyncio  # isort: skip

__all__ = [
    "AsyncRedisBasePersister",
    "RedisBasePersister",
    "RedisPersister",
    "add_namespace_to_partition_key",
]


def add_namespace_to_partition_key(partition_key: str, namespace: str | None = None) -> str:
    """``"<namespace>:<partition_key>"``, or the partition key alone without a namespace."""
    return f"{namespace}:{partition_key}" if namespace else partition_key


class BurrRedisKeys:
    """The keys Burr's Redis persister wrote under ``namespace``, read with ``client`` (sync or
    async: a sync client's calls return at once, so the coroutines never suspend)."""

    def __init__(self, client: Any, namespace: str | None) -> None:
        self.client = client
        self.namespace = namespace

    async def _call(self, command: str, *args: Any) -> Any:
        try:
            result = getattr(self.client, command)(*args)
            return await result if inspect.isawaitable(result) else result
        except redis.exceptions.RedisError as exc:
            raise PersistenceError(
                f"Redis failed reading Burr's keys (namespace {self.namespace!r}): "
                f"{type(exc).__name__}: {exc}. Nothing was changed."
            ) from exc

    async def load(
        self, partition_key: str, app_id: str, sequence_id: int | None
    ) -> PersistedStateData | None:
        if sequence_id is None:
            score = await self._call("zscore", self._key(partition_key), app_id)
            if score is None:
                return None
            sequence_id = int(score)
        fields = await self._call("hgetall", self._key(f"{partition_key}:{app_id}:{sequence_id}"))
        data = {_text(k): _text(v) for k, v in (fields or {}).items()}
        if "state" not in data:
            return None
        return burr_record(
            partition_key=partition_key,
            app_id=app_id,
            sequence_id=sequence_id,
            position=data.get("position"),
            stored_state=data["state"],
            status=data.get("status"),
            created_at=data.get("created_at"),
            source=f"Burr's Redis keys (namespace {self.namespace!r})",
        )

    async def app_ids(self, partition_key: str) -> list[str]:
        members = await self._call("zrevrange", self._key(partition_key), 0, -1)
        return [_text(member) for member in members or []]

    def _key(self, key: str) -> str:
        return add_namespace_to_partition_key(key, self.namespace)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _use_namespace(persister: Any, namespace: str | None) -> None:
    """Give ``persister`` (built or unpickled on its client) Burr's ``connection`` and
    ``namespace`` attributes and the rules that also read Burr's keys under ``namespace``."""
    persister.connection = persister.client
    persister.namespace = namespace or ""
    core = persister.core
    persister.core = BurrReadingPersister(
        core.store,
        serde=core.codec.serde,
        snapshot_every=core.snapshot_every,
        burr=BurrRedisKeys(persister.client, namespace),
    )


def _client_kwargs(
    host: str, port: int, db: int, password: str | None, extra: dict[str, Any] | None
) -> dict[str, Any]:
    return {"host": host, "port": port, "db": db, "password": password, **(extra or {})}


class RedisBasePersister(_Redis):
    """Burr's Redis persister: a ``redis.Redis`` client (yours to close), Burr's
    ``serde_kwargs`` and an optional ``namespace`` (the key prefix)."""

    connection: redis.Redis
    namespace: str

    def __init__(
        self,
        connection: redis.Redis,
        serde_kwargs: dict[str, Any] | None = None,
        namespace: str | None = None,
        *,
        serde: Serde | None = None,
        snapshot_every: int = 100,
    ) -> None:
        super().__init__(
            connection,
            namespace or "turnout",
            serde=serde,
            snapshot_every=snapshot_every,
            serde_kwargs=serde_kwargs,
        )
        _use_namespace(self, namespace)

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "namespace": self.namespace}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        _use_namespace(self, state["namespace"] or None)

    @classmethod
    def from_values(
        cls,
        host: str,
        port: int,
        db: int,
        password: str | None = None,
        serde_kwargs: dict[str, Any] | None = None,
        redis_client_kwargs: dict[str, Any] | None = None,
        namespace: str | None = None,
        **options: Any,
    ) -> RedisBasePersister:
        """A persister on a client it creates (``close()``/``cleanup()`` closes it)."""
        client = redis.Redis(**_client_kwargs(host, port, db, password, redis_client_kwargs))
        persister = cls(client, serde_kwargs, namespace, **options)
        persister._owned = True
        return persister


class RedisPersister(RedisBasePersister):
    """Burr's older constructor: ``RedisPersister(host, port, db, password, serde_kwargs,
    redis_client_kwargs, namespace)``; the persister creates the client and closes it."""

    def __init__(
        self,
        host: str,
        port: int,
        db: int,
        password: str | None = None,
        serde_kwargs: dict[str, Any] | None = None,
        redis_client_kwargs: dict[str, Any] | None = None,
        namespace: str | None = None,
    ) -> None:
        client = redis.Redis(**_client_kwargs(host, port, db, password, redis_client_kwargs))
        super().__init__(client, serde_kwargs, namespace)
        self._owned = True


class AsyncRedisBasePersister(_AsyncRedis):
    """``RedisBasePersister`` for async applications, over a ``redis.asyncio.Redis`` client."""

    connection: redis.asyncio.Redis
    namespace: str

    def __init__(
        self,
        connection: redis.asyncio.Redis,
        serde_kwargs: dict[str, Any] | None = None,
        namespace: str | None = None,
        *,
        serde: Serde | None = None,
        snapshot_every: int = 100,
    ) -> None:
        super().__init__(
            connection,
            namespace or "turnout",
            serde=serde,
            snapshot_every=snapshot_every,
            serde_kwargs=serde_kwargs,
        )
        _use_namespace(self, namespace)

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "namespace": self.namespace}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        _use_namespace(self, state["namespace"] or None)

    @classmethod
    def from_values(
        cls,
        host: str,
        port: int,
        db: int,
        password: str | None = None,
        serde_kwargs: dict[str, Any] | None = None,
        redis_client_kwargs: dict[str, Any] | None = None,
        namespace: str | None = None,
        **options: Any,
    ) -> AsyncRedisBasePersister:
        """A persister on a client it creates (``await close()``/``cleanup()`` closes it)."""
        kwargs = _client_kwargs(host, port, db, password, redis_client_kwargs)
        persister = cls(redis.asyncio.Redis(**kwargs), serde_kwargs, namespace, **options)
        persister._owned = True
        return persister
