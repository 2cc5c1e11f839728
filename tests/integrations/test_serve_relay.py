"""``PostgresRelay`` on the PostgreSQL service, in one process: two relays stand in for two
workers. A bus attached in one is followed from the other, in order, with messages larger than
``NOTIFY``'s payload limit; a follower of a worker whose connection dies ends with
``worker_lost``; with no run going on it gets the committed state."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sse_starlette")
pytest.importorskip("psycopg")

import psycopg

from tests.persistence import backends
from tests.persistence.conftest import require_backend
from turnout.integrations.fastapi.pgrelay import PostgresRelay
from turnout.integrations.fastapi.relay import LocalRelay
from turnout.integrations.fastapi.streaming import EventBus

KEY = ("user-1", "app-1")
VIEW = {"app_id": "app-1", "sequence_id": 3, "state": {"history": ["x"]}}


@pytest.fixture(autouse=True)
def _postgres() -> None:
    require_backend("postgres")


async def _committed() -> dict[str, Any]:
    return VIEW


async def _until_following(stream: Any) -> dict[str, str]:
    first = await anext(stream)
    assert first["event"] == "following", first
    return first


def _relays(namespace: str) -> tuple[PostgresRelay, PostgresRelay]:
    # One namespace per test process: concurrent runs on one database never share channels.
    namespace = f"{namespace}_{os.getpid()}"

    def make() -> PostgresRelay:
        return PostgresRelay(backends.POSTGRES_DSN, namespace=namespace, check_interval=0.05)

    return make(), make()


def test_a_run_is_followed_from_another_worker_in_order_with_items_over_the_payload_limit():
    big = "é" + "x" * 20_000  # non-ASCII, and three notifications long

    async def main() -> list[tuple[str, Any]]:
        runner, follower = _relays("relay_order")
        try:
            bus = EventBus()
            runner.attach(bus, KEY)
            await runner.ready(bus)
            stream = follower.follow(KEY, _committed)
            await _until_following(stream)
            bus.publish("step_begin", {"action": "talk", "sequence_id": 4})
            bus.publish("item", {"index": 0, "item": {"delta": big}})
            bus.publish("item", {"index": 1, "item": {"delta": "!"}})
            bus.publish("step_end", {"action": "talk", "sequence_id": 4})
            bus.publish("state", {"sequence_id": 4})
            bus.close()
            return [(m["event"], json.loads(m["data"])) async for m in stream]
        finally:
            await runner.aclose()
            await follower.aclose()

    events = asyncio.run(main())
    assert [name for name, _ in events] == ["step_begin", "item", "item", "step_end", "state"]
    assert events[1][1]["item"]["delta"] == big
    assert events[-1][1] == {"sequence_id": 4}


def test_runs_queued_together_reach_their_followers_whole_and_end_with_their_end_marker():
    """The writer sends what is queued in one round trip: locks, events and unlocks of several
    runs at once, each run's events committed before its lock is released."""
    keys = [("user-1", f"app-{n}") for n in range(5)]

    async def main() -> tuple[list[list[tuple[str, Any]]], list[str]]:
        runner, follower = _relays("relay_batched")
        try:
            buses = [EventBus() for _ in keys]
            for bus, key in zip(buses, keys, strict=True):
                runner.attach(bus, key)
            await asyncio.gather(*(runner.ready(bus) for bus in buses))
            streams = [follower.follow(key, _committed) for key in keys]
            for stream in streams:
                await _until_following(stream)
            for number, bus in enumerate(buses):  # no await: all of it queued at once
                for step in range(3):
                    bus.publish("step_end", {"run": number, "sequence_id": step})
                bus.publish("state", {"run": number})
                bus.close()

            async def drained(stream: Any) -> list[tuple[str, Any]]:
                return [(m["event"], json.loads(m["data"])) async for m in stream]

            followed = await asyncio.gather(*(drained(stream) for stream in streams))
            after = [
                (await anext(follower.follow(key, _committed)))["event"] for key in keys
            ]  # fmt: skip
            return list(followed), after
        finally:
            await runner.aclose()
            await follower.aclose()

    followed, after = asyncio.run(main())
    for number, events in enumerate(followed):
        assert events == [
            ("step_end", {"run": number, "sequence_id": 0}),
            ("step_end", {"run": number, "sequence_id": 1}),
            ("step_end", {"run": number, "sequence_id": 2}),
            ("state", {"run": number}),
        ]
    assert after == ["state"] * len(keys)  # every lock released: no run goes on


def test_a_follower_drops_notifications_that_are_not_relay_events():
    """Anyone who can connect may NOTIFY on the channel: unknown events and non-JSON data
    never reach the stream."""

    async def main() -> list[tuple[str, Any]]:
        runner, follower = _relays("relay_forged")
        try:
            bus = EventBus()
            runner.attach(bus, KEY)
            await runner.ready(bus)
            stream = follower.follow(KEY, _committed)
            await _until_following(stream)
            channel = follower.channel(KEY)
            async with await psycopg.AsyncConnection.connect(
                backends.POSTGRES_DSN, autocommit=True
            ) as other:
                for forged in ("x:1:0:1:script\nevent: state:{}", "x:2:0:1:item:<b>", "junk"):
                    await other.execute("SELECT pg_notify(%s, %s)", (channel, forged))
            bus.publish("state", {"sequence_id": 4})
            bus.close()
            return [(m["event"], json.loads(m["data"])) async for m in stream]
        finally:
            await runner.aclose()
            await follower.aclose()

    assert asyncio.run(main()) == [("state", {"sequence_id": 4})]


def test_a_follower_with_no_run_going_on_gets_the_committed_state_and_ends():
    async def main() -> list[dict[str, str]]:
        runner, follower = _relays("relay_idle")
        try:
            return [m async for m in follower.follow(KEY, _committed)]
        finally:
            await runner.aclose()
            await follower.aclose()

    assert [(m["event"], json.loads(m["data"])) for m in asyncio.run(main())] == [("state", VIEW)]


def test_a_follower_ends_with_worker_lost_when_the_running_worker_connection_dies():
    async def main() -> list[tuple[str, Any]]:
        runner, follower = _relays("relay_lost")
        try:
            bus = EventBus()
            runner.attach(bus, KEY)
            await runner.ready(bus)
            stream = follower.follow(KEY, _committed)
            await _until_following(stream)
            bus.publish("step_begin", {"action": "talk", "sequence_id": 4})
            begun = await anext(stream)  # delivered before the runner goes
            # The runner's connection goes, as when its process is killed: its lock with it.
            async with await psycopg.AsyncConnection.connect(
                backends.POSTGRES_DSN, autocommit=True
            ) as admin:
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND granted AND objsubid = 1 AND classid = %s AND objid = %s",
                    _halves(runner.lock_key(KEY)),
                )
            rest = [(m["event"], json.loads(m["data"])) async for m in stream]
            return [(begun["event"], json.loads(begun["data"])), *rest]
        finally:
            await runner.aclose()
            await follower.aclose()

    events = asyncio.run(main())
    assert [name for name, _ in events] == ["step_begin", "error", "state"]
    assert events[1][1]["error"] == "worker_lost"
    assert events[2][1] == VIEW


def test_a_relay_whose_listener_connection_broke_listens_again_for_the_next_follower():
    name = f"relay-test-{uuid.uuid4().hex[:8]}"

    async def main() -> list[tuple[str, Any]]:
        runner = PostgresRelay(backends.POSTGRES_DSN, namespace="relay_again")
        follower = PostgresRelay(
            backends.POSTGRES_DSN, namespace="relay_again", check_interval=0.05,
            connect_kwargs={"application_name": name},
        )  # fmt: skip
        try:
            assert [m["event"] async for m in follower.follow(KEY, _committed)] == ["state"]
            async with await psycopg.AsyncConnection.connect(
                backends.POSTGRES_DSN, autocommit=True
            ) as admin:
                cur = await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = %s AND query LIKE %s",
                    (name, "%LISTEN%"),
                )
                assert await cur.fetchall() == [(True,)]  # the listener, not the writer
            bus = EventBus()
            runner.attach(bus, KEY)
            await runner.ready(bus)
            stream = follower.follow(KEY, _committed)
            await _until_following(stream)
            bus.publish("state", {"sequence_id": 4})
            bus.close()
            return [(m["event"], json.loads(m["data"])) async for m in stream]
        finally:
            await runner.aclose()
            await follower.aclose()

    assert asyncio.run(main()) == [("state", {"sequence_id": 4})]


def test_a_follower_whose_relay_cannot_reach_the_database_gets_an_error_and_the_state():
    async def main() -> list[tuple[str, Any]]:
        unreachable = f"postgresql://postgres@127.0.0.1:{backends.free_port()}/test"
        relay = PostgresRelay(unreachable, check_interval=0.05)
        try:
            return [
                (m["event"], json.loads(m["data"])) async for m in relay.follow(KEY, _committed)
            ]
        finally:
            await relay.aclose()

    events = asyncio.run(main())
    assert [name for name, _ in events] == ["error", "state"]
    assert events[0][1]["error"] == "relay_unavailable"
    assert "OperationalError" in events[0][1]["message"]
    assert events[1][1] == VIEW


def test_apps_of_different_partitions_or_namespaces_use_different_channels_and_locks():
    one, two = PostgresRelay("postgresql://x"), PostgresRelay("postgresql://x", namespace="b")
    names = {one.channel(KEY), one.channel(("user-2", "app-1")), two.channel(KEY)}
    assert len(names) == 3
    assert all(len(n) <= 63 for n in names)  # PostgreSQL's identifier limit
    assert one.lock_key(KEY) != one.lock_key(("user-2", "app-1"))


def test_local_relay_gives_a_follower_the_committed_state():
    async def main() -> list[dict[str, str]]:
        return [m async for m in LocalRelay().follow(KEY, _committed)]

    assert [(m["event"], json.loads(m["data"])) for m in asyncio.run(main())] == [("state", VIEW)]


def test_a_relay_refuses_a_check_interval_that_is_not_positive():
    with pytest.raises(ValueError, match="check_interval=0"):
        PostgresRelay("postgresql://x", check_interval=0)


def _halves(key: int) -> tuple[int, int]:
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return unsigned >> 32, unsigned & 0xFFFFFFFF
