"""How fast ``PostgresRelay`` carries a run's events to a follower in another worker, against
the in-memory ``EventBus`` a follower in the running worker reads.

This is a benchmark script, not a test. Two relays in one process stand in for two workers
(each with its own PostgreSQL connections, as in two processes): a bus attached to the first
publishes ``--events`` token-sized items (``{"delta": "word "}``, as a streamed reply does) and
``--big`` items of 20,000 characters (three notifications each), then closes; the second
relay's follower reads them all. Reported: events/s end to end through the relay, the same
through the in-memory bus, their ratio, and the 1-minute load average before and after (the
machine may be shared: compare ratios, not absolute figures).

Usage: python bench/serve_relay.py [--events 5000] [--big 50]
       [--dsn postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

from turnout.integrations.fastapi.pgrelay import PostgresRelay
from turnout.integrations.fastapi.streaming import EventBus, sse_events

KEY = ("bench", "relay")


def _items(events: int, big: int) -> list[dict[str, Any]]:
    small = [{"index": i, "item": {"delta": "word "}} for i in range(events)]
    large = [{"index": i, "item": {"delta": "x" * 20_000}} for i in range(big)]
    return small + large


async def _committed() -> dict[str, Any]:
    return {"app_id": KEY[1], "sequence_id": 0}


async def relayed(dsn: str, items: list[dict[str, Any]]) -> float:
    runner, follower = (PostgresRelay(dsn, namespace="bench_relay") for _ in range(2))
    try:
        bus = EventBus()
        runner.attach(bus, KEY)
        await runner.ready(bus)
        stream = follower.follow(KEY, _committed)
        first = await anext(stream)
        assert first["event"] == "following", first
        start = time.perf_counter()
        for item in items:
            bus.publish("item", item)
        bus.close()
        count = sum([1 async for _ in stream])
        elapsed = time.perf_counter() - start
        assert count == len(items), (count, len(items))
        return elapsed
    finally:
        await runner.aclose()
        await follower.aclose()


async def local(items: list[dict[str, Any]]) -> float:
    bus = EventBus()
    queue = bus.subscribe()
    start = time.perf_counter()
    for item in items:
        bus.publish("item", item)
    bus.close()
    count = sum([1 async for _ in sse_events(queue)])
    assert count == len(items)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--big", type=int, default=50)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    items = _items(args.events, args.big)
    before = os.getloadavg()[0]
    through_relay = asyncio.run(relayed(args.dsn, items))
    in_memory = asyncio.run(local(items))
    after = os.getloadavg()[0]
    n = len(items)
    print(f"{n} events ({args.events} token items, {args.big} of 20,000 characters)")
    print(f"  PostgresRelay, another worker: {n / through_relay:10.0f} events/s")
    print(f"  EventBus, the running worker:  {n / in_memory:10.0f} events/s")
    print(f"  ratio (bus / relay):           {in_memory and through_relay / in_memory:10.1f}x")
    print(f"load average (1 min): {before:.2f} before, {after:.2f} after")


if __name__ == "__main__":
    main()
