"""Artifact stores in Redis: ``RedisArtifactStore`` (``redis.Redis``) and
``AsyncRedisArtifactStore`` (``redis.asyncio.Redis``), for deployments whose processes share a
Redis server but no disk.

Each blob is one string key, ``<prefix>:artifact:<digest>``, written with ``SET ... NX`` (one
atomic command: a reader sees the whole value or no key)::

    store = RedisArtifactStore("redis://127.0.0.1:6379/0")
    ref = store.put(image_bytes, media_type="image/png")
    store.get(ref)                       # checked against the digest

Redis keeps everything in memory and a string holds at most 512 MB: use it for artifacts of a
few MB, and give the server the memory (and persistence settings) they need; keys never
expire. The client must return bytes (``decode_responses=False``, the default).
"""

from __future__ import annotations

import inspect
from typing import Any

from turnout.core.artifacts import ArtifactStore, AsyncArtifactStore
from turnout.core.sql import check_name
from turnout.integrations._guard import missing_extra

try:
    import redis
    import redis.asyncio
except ImportError as _error:  # pragma: no cover - exercised in a subprocess
    raise missing_extra(
        "turnout.integrations.artifacts_redis", 'pip install "turnout[redis]"', _error
    ) from _error

from turnout.integrations.redis import _address

__all__ = ["AsyncRedisArtifactStore", "RedisArtifactStore"]


class _Keys:
    """The ``ArtifactBackend`` over Redis keys, written once for the sync and the async client
    (over the sync one its coroutines never suspend)."""

    def __init__(self, client: redis.Redis | redis.asyncio.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = check_name(prefix, "key prefix")
        self.address = _address(client)

    def describe(self, digest: str | None = None) -> str:
        if digest is None:
            return f"Redis at {self.address} (keys {self.prefix}:artifact:*)"
        return f"the Redis key {self._key(digest)!r} at {self.address}"

    def _key(self, digest: str) -> str:
        return f"{self.prefix}:artifact:{digest}"

    async def _do(self, command: str, *args: Any, **options: Any) -> Any:
        result = getattr(self.client, command)(*args, **options)
        return await result if inspect.isawaitable(result) else result

    async def write(self, digest: str, data: bytes) -> None:
        await self._do("set", self._key(digest), data, nx=True)

    async def read(self, digest: str) -> bytes | None:
        data = await self._do("get", self._key(digest))
        return None if data is None else bytes(data)

    async def contains(self, digest: str) -> bool:
        return bool(await self._do("exists", self._key(digest)))

    async def remove(self, digest: str) -> bool:
        return bool(await self._do("delete", self._key(digest)))


class RedisArtifactStore(ArtifactStore):
    """Artifacts in Redis (see the module docstring).

    Args:
        client_or_url: a ``redis.Redis`` client (yours: ``close()`` leaves it open) or a URL
            such as ``"redis://127.0.0.1:6379/0"`` (the store creates the client and
            ``close()`` closes it).
        prefix: the first segment of every key (letters, digits and underscores).
    """

    def __init__(self, client_or_url: redis.Redis | str, prefix: str = "turnout") -> None:
        check_name(prefix, "key prefix")
        if isinstance(client_or_url, str):
            client = redis.Redis.from_url(client_or_url)
        elif isinstance(client_or_url, redis.Redis):
            client = _bytes_client(client_or_url, "RedisArtifactStore")
        else:
            raise TypeError(_wrong_client(client_or_url, sync=True))
        self.client = client
        self._owned = isinstance(client_or_url, str)
        super().__init__(_Keys(client, prefix))

    def close(self) -> None:
        """Close the client if the store created it from a URL."""
        if self._owned:
            self.client.close()


class AsyncRedisArtifactStore(AsyncArtifactStore):
    """``RedisArtifactStore`` for async code, over ``redis.asyncio.Redis`` (a client, or a URL
    for which the store creates one); the arguments are ``RedisArtifactStore``'s."""

    def __init__(self, client_or_url: redis.asyncio.Redis | str, prefix: str = "turnout") -> None:
        check_name(prefix, "key prefix")
        if isinstance(client_or_url, str):
            client = redis.asyncio.Redis.from_url(client_or_url)
        elif isinstance(client_or_url, redis.asyncio.Redis):
            client = _bytes_client(client_or_url, "AsyncRedisArtifactStore")
        else:
            raise TypeError(_wrong_client(client_or_url, sync=False))
        self.client = client
        self._owned = isinstance(client_or_url, str)
        super().__init__(_Keys(client, prefix))

    async def close(self) -> None:
        """Close the client if the store created it from a URL."""
        if self._owned:
            await self.client.aclose()


def _bytes_client(client: Any, store: str) -> Any:
    """``client`` if it returns bytes; a client decoding replies to text would break blobs."""
    if client.connection_pool.connection_kwargs.get("decode_responses"):
        raise TypeError(
            f"{store}() needs a client that returns bytes, and this one decodes replies to "
            f"text (decode_responses=True), which breaks binary artifacts: pass a client made "
            f"with decode_responses=False (the default), or a URL"
        )
    return client


def _wrong_client(given: object, *, sync: bool) -> str:
    store, expected = (
        ("RedisArtifactStore", "redis.Redis")
        if sync
        else ("AsyncRedisArtifactStore", "redis.asyncio.Redis")
    )
    hint = ""
    if isinstance(given, redis.asyncio.Redis) and sync:
        hint = " (an async client: use AsyncRedisArtifactStore)"
    elif isinstance(given, redis.Redis) and not sync:
        hint = " (a synchronous client: use RedisArtifactStore)"
    return (
        f"{store}() takes a {expected} client or a URL such as 'redis://127.0.0.1:6379/0', "
        f"got {type(given).__module__}.{type(given).__qualname__}{hint}."
    )
