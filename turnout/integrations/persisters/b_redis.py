"""Burr's ``burr.integrations.persisters.b_redis`` path: its Redis persister constructors over
``turnout.integrations.redis``.

Burr's ``namespace`` (the project a persister's data belongs to) becomes the key prefix, so two
namespaces on one server never see each other's apps; it follows the prefix's rule (letters,
digits and underscores). Without one the prefix is ``"turnout"``.
"""

from __future__ import annotations

from typing import Any

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


def _client_kwargs(
    host: str, port: int, db: int, password: str | None, extra: dict[str, Any] | None
) -> dict[str, Any]:
    return {"host": host, "port": port, "db": db, "password": password, **(extra or {})}


class RedisBasePersister(_Redis):
    """Burr's Redis persister: a ``redis.Redis`` client (yours to close), Burr's
    ``serde_kwargs`` and an optional ``namespace`` (the key prefix)."""

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
        self.connection = connection
        self.namespace = namespace or ""

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
        self.connection = connection
        self.namespace = namespace or ""

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
