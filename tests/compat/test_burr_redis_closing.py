"""Burr's Redis persisters close a client they created, and only that one (``b_redis``)."""

from __future__ import annotations

import asyncio
import pickle
from typing import Any

import pytest

pytest.importorskip("turnout.integrations.redis")

import redis
import redis.asyncio

from turnout.integrations.persisters import b_redis

VALUES: dict[str, Any] = {"host": "127.0.0.1", "port": 6379, "db": 0}


def _spy_close(persister: Any, method: str) -> list[str]:
    """Record calls of the client's ``method`` (``close`` or ``aclose``) instead of closing."""
    calls: list[str] = []

    def close() -> None:
        calls.append(method)

    async def aclose() -> None:
        calls.append(method)

    setattr(persister.client, method, aclose if method == "aclose" else close)
    return calls


@pytest.mark.parametrize(
    "make",
    [
        lambda: b_redis.RedisBasePersister.from_values(**VALUES, namespace="tclose"),
        lambda: b_redis.RedisPersister(VALUES["host"], VALUES["port"], VALUES["db"]),
        lambda: pickle.loads(pickle.dumps(b_redis.RedisBasePersister(redis.Redis(**VALUES)))),
    ],
    ids=["from_values", "older_constructor", "unpickled_copy"],
)
def test_cleanup_closes_a_client_the_persister_created(make: Any) -> None:
    persister = make()
    calls = _spy_close(persister, "close")
    persister.cleanup()
    assert calls == ["close"]


def test_cleanup_leaves_a_given_client_open() -> None:
    client = redis.Redis(**VALUES)
    close = client.close  # the spy below replaces it
    persister = b_redis.RedisBasePersister(client, None, "tclose")
    calls = _spy_close(persister, "close")
    persister.cleanup()
    close()
    assert calls == []


@pytest.mark.parametrize("given", [False, True], ids=["from_values", "given_client"])
def test_async_cleanup_closes_only_a_client_the_persister_created(given: bool) -> None:
    async def main() -> list[str]:
        if given:
            client = redis.asyncio.Redis(**VALUES)
            persister = b_redis.AsyncRedisBasePersister(client, None, "tclose")
        else:
            persister = b_redis.AsyncRedisBasePersister.from_values(**VALUES, namespace="tclose")
        aclose = persister.client.aclose  # the spy below replaces it
        calls = _spy_close(persister, "aclose")
        await persister.cleanup()
        if given:
            await aclose()
        return calls

    assert asyncio.run(main()) == ([] if given else ["aclose"])
