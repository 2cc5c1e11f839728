"""The Redis persisters against a real server: construction (client or URL, sync or async),
closing, the missing-extra error, key escaping, the atomic conditional insert under racing
writers, an unreachable server, and applications that save and resume through Redis.

Each test uses its own key prefix and deletes its keys afterwards. When the server is not
reachable the tests skip, except under ``CI=true``, where that is a failure. Async code runs in
``asyncio.run()``: no pytest plugin is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("redis")
import redis
import redis.asyncio

from turnout import ApplicationBuilder, State, action
from turnout.core.errors import ConcurrencyError, PersistenceError
from turnout.core.memory import MemoryStore
from turnout.core.persistence import AppRow, ParentPointer, StepRecord
from turnout.core.state import Change
from turnout.integrations.redis import AsyncRedisPersister, RedisPersister

URL = os.environ.get("TURNOUT_REDIS_URL", "redis://127.0.0.1:6379/0")
KINDS = ["url", "client", "decoded-client"]


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    """An administration client; skips (fails under CI=true) when Redis is unreachable."""
    admin = redis.Redis.from_url(URL)
    try:
        admin.ping()
    except redis.exceptions.ConnectionError as exc:
        admin.close()
        reason = (
            f"Redis is not reachable at {URL} ({exc}); start it with `redis-server --daemonize "
            f"yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no`"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    yield admin
    admin.close()


@pytest.fixture
def prefix(server: Any) -> Iterator[str]:
    """A key prefix of this test alone; its keys are deleted afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    keys = list(server.scan_iter(match=f"{name}:*"))
    if keys:
        server.delete(*keys)


@pytest.fixture
def make(prefix: str) -> Iterator[Callable[..., RedisPersister]]:
    """Makes sync persisters (over a URL, or a client with bytes or decoded replies)."""
    persisters: list[RedisPersister] = []
    clients: list[Any] = []

    def make_persister(kind: str = "url", **kwargs: Any) -> RedisPersister:
        if kind == "url":
            persister = RedisPersister(URL, prefix, **kwargs)
        else:
            client = redis.Redis.from_url(URL, decode_responses=kind == "decoded-client")
            clients.append(client)
            persister = RedisPersister(client, prefix, **kwargs)
        persisters.append(persister)
        return persister

    yield make_persister
    for persister in persisters:
        persister.close()
    for client in clients:
        client.close()


@contextlib.asynccontextmanager
async def async_persister(kind: str, prefix: str, **kwargs: Any) -> AsyncIterator[Any]:
    if kind == "url":
        async with AsyncRedisPersister(URL, prefix, **kwargs) as persister:
            yield persister
        return
    client = redis.asyncio.Redis.from_url(URL, decode_responses=kind == "decoded-client")
    try:
        yield AsyncRedisPersister(client, prefix, **kwargs)
    finally:
        await client.aclose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def keys_of(server: Any, prefix: str) -> set[str]:
    return {key.decode() for key in server.scan_iter(match=f"{prefix}:*")}


# A chain of four records: a snapshot, then deltas (with snapshot_every=100).
STATES = [State({"count": i, "log": list(range(i))}) for i in range(4)]


def changes(i: int) -> list[Change]:
    return [Change("set", "count", i), Change("append", "log", i - 1)]


def save_chain(persister: Any, partition_key: str | None) -> None:
    """Save the chain of ``STATES`` as the steps 0 to 3 of the app ``app``, all completed."""
    persister.save(partition_key, "app", 0, "start", STATES[0], "completed")
    for i in range(1, 4):
        persister.save(
            partition_key, "app", i, "step", STATES[i], "completed",
            changes=changes(i), previous_sequence_id=i - 1,
        )  # fmt: skip


# -- construction, loading, closing --------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_sync_persister_saves_and_loads_every_sequence_id(make, kind):
    persister = make(kind)
    parent = ParentPointer(app_id="origin", partition_key="p", sequence_id=7)
    persister.save("user:1", "chat", 0, "start", STATES[0], "completed", parent=parent)
    for i in range(1, 4):
        status = "failed" if i == 3 else "completed"
        persister.save(
            "user:1", "chat", i, "step", STATES[i], status,
            changes=changes(i), previous_sequence_id=i - 1,
        )  # fmt: skip

    for i in range(4):
        loaded = persister.load("user:1", "chat", i)
        assert loaded is not None
        assert loaded.state.get_all() == STATES[i].get_all()
        assert loaded.sequence_id == i
        assert loaded.parent == parent
    latest = persister.load("user:1", "chat")
    assert latest is not None
    assert (latest.sequence_id, latest.position, latest.status) == (3, "step", "failed")
    assert persister.load("user:1", "chat", 9) is None
    assert persister.load("user:2", "chat") is None
    assert persister.list_app_ids("user:1") == ["chat"]


@pytest.mark.parametrize("kind", KINDS)
def test_async_persister_saves_and_loads_every_sequence_id(prefix, kind):
    async def scenario() -> None:
        async with async_persister(kind, prefix) as persister:
            await persister.save(None, "chat", 0, "start", STATES[0], "completed")
            for i in range(1, 4):
                await persister.save(
                    None, "chat", i, "step", STATES[i], "completed",
                    changes=changes(i), previous_sequence_id=i - 1,
                )  # fmt: skip
            for i in range(4):
                loaded = await persister.load(None, "chat", i)
                assert loaded is not None
                assert loaded.state.get_all() == STATES[i].get_all()
            assert await persister.list_app_ids(None) == ["chat"]
            assert await persister.delete("chat") == 4
            assert await persister.load(None, "chat") is None

    asyncio.run(scenario())


def test_list_app_ids_puts_the_most_recent_app_first(make):
    persister = make()
    for name in ["first", "second", "third"]:
        persister.save("p", name, 0, "start", STATES[0], "completed")
    assert persister.list_app_ids("p") == ["third", "second", "first"]
    assert persister.list_app_ids("other") == []


def client_names(server: Any) -> set[str]:
    return {client.get("name", "") for client in server.client_list()}


def disconnected(server: Any, name: str) -> bool:
    """Whether the server dropped the connections named ``name``. It handles a closed socket
    in its next event-loop turn; each CLIENT LIST is a round trip that gives it one, so a few
    suffice (no sleeping)."""
    return any(name not in client_names(server) for _ in range(50))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_close_closes_a_client_made_from_a_url_and_leaves_a_given_client_open(server, prefix, mode):
    name = f"turnout-test-{uuid.uuid4().hex[:8]}"
    url = f"{URL}?client_name={name}"
    if mode == "sync":
        owned = RedisPersister(url, prefix)
        owned.save(None, "a", 0, "start", STATES[0], "completed")
        assert name in client_names(server)
        owned.close()
        assert disconnected(server, name)

        with redis.Redis.from_url(URL) as client:
            given = RedisPersister(client, prefix)
            given.close()
            assert client.ping()
            assert given.load(None, "a") is not None
        return

    async def scenario() -> None:
        owned = AsyncRedisPersister(url, prefix)
        await owned.save(None, "a", 0, "start", STATES[0], "completed")
        assert name in client_names(server)
        await owned.close()
        assert disconnected(server, name)

        client = redis.asyncio.Redis.from_url(URL)
        try:
            given = AsyncRedisPersister(client, prefix)
            await given.close()
            assert await client.ping()
            assert await given.load(None, "a") is not None
        finally:
            await client.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: RedisPersister(URL, "bad:prefix"), ValueError, "key prefix 'bad:prefix'"),
        (
            lambda: RedisPersister(42),  # type: ignore[arg-type]
            TypeError,
            "takes a redis.Redis client or a URL",
        ),
        (
            lambda: RedisPersister(redis.asyncio.Redis()),  # type: ignore[arg-type]
            TypeError,
            "use AsyncRedisPersister",
        ),
        (
            lambda: AsyncRedisPersister(redis.Redis()),  # type: ignore[arg-type]
            TypeError,
            "use RedisPersister",
        ),
        (lambda: RedisPersister(URL, snapshot_every=0), ValueError, "snapshot_every"),
    ],
    ids=["bad-prefix", "not-a-client", "async-client", "sync-client", "bad-snapshot-every"],
)
def test_constructors_reject_bad_arguments_with_a_clear_message(call, error, message):
    with pytest.raises(error, match=re.escape(message)):
        call()


def test_a_missing_redis_package_names_the_extra_to_install():
    code = (
        "import sys\n"
        "sys.modules['redis'] = None  # as if redis were not installed\n"
        "from turnout.core.errors import MissingExtraError\n"
        "try:\n"
        "    import turnout.integrations.redis\n"
        "except MissingExtraError as exc:\n"
        "    assert isinstance(exc, ImportError)\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert 'pip install "turnout[redis]"' in done.stdout


# -- keys ----------------------------------------------------------------------------------------

COLLIDING = [
    (("x", "a:b"), ("x:a", "b")),
    (("x:a", "b"), ("x%3Aa", "b")),
    (("p", "a:b"), ("p", "a%3Ab")),
    (("p", "a%b"), ("p", "a%25b")),
    (("", "a:b"), ("a", "b")),
]


@pytest.mark.parametrize(
    ("one", "other"),
    COLLIDING,
    ids=["colon-moves-between-parts", "escaped-colon", "app-escaped-colon", "percent", "empty"],
)
def test_partition_keys_and_app_ids_with_colons_or_percents_do_not_collide(make, one, other):
    persister = make()
    persister.save(*one, 0, "start", State({"who": "one"}), "completed")
    persister.save(*other, 0, "start", State({"who": "other"}), "completed")

    for (partition_key, app_id), who in [(one, "one"), (other, "other")]:
        loaded = persister.load(partition_key, app_id)
        assert loaded is not None
        assert loaded.state["who"] == who
        assert (loaded.partition_key, loaded.app_id) == (partition_key, app_id)
        assert app_id in persister.list_app_ids(partition_key)

    assert persister.delete(one[1], partition_key=one[0]) == 1
    assert persister.load(*one) is None
    remaining = persister.load(*other)
    assert remaining is not None
    assert remaining.state["who"] == "other"


def test_prune_and_delete_across_partitions_leave_only_the_schema_marker(server, prefix, make):
    persister = make(snapshot_every=2)
    for partition_key in ["a", "b:c"]:
        save_chain(persister, partition_key)
    persister.save("a", "other", 0, "start", STATES[0], "completed")

    assert persister.prune(keep_last=1, partition_key="a") == 3
    for partition_key in ["a", "b:c"]:
        loaded = persister.load(partition_key, "app")
        assert loaded is not None
        assert loaded.state.get_all() == STATES[3].get_all()
    assert persister.load("a", "app", 2) is None
    assert persister.load("b:c", "app", 2) is not None

    assert persister.delete("app") == 1 + 4  # every partition
    assert persister.delete("other", partition_key="a") == 1
    assert keys_of(server, prefix) == {f"{prefix}:meta"}


def test_keys_written_by_a_newer_schema_are_refused(server, prefix, make):
    server.hset(f"{prefix}:meta", "schema", "99")
    with pytest.raises(
        PersistenceError, match=r"schema version 99.*reads up to version 2.*upgrade turnout"
    ):
        make().load(None, "app")


def test_a_schema_version_that_is_not_a_number_is_refused(server, prefix, make):
    server.hset(f"{prefix}:meta", "schema", "abc")
    with pytest.raises(PersistenceError, match=rf"{prefix}:meta.*'abc'.*not a version number"):
        make().load(None, "app")


def test_keys_of_schema_version_1_are_read_and_marked_version_2(server, prefix, make):
    """Version 1 had no latest-sequence-id hash: an app saved then still loads and saves."""
    persister = make()
    for i in range(3):
        persister.save(None, "old", i, "start", STATES[i], "completed")
    server.delete(f"{prefix}:latest:")
    server.hset(f"{prefix}:meta", "schema", "1")
    again = make()
    loaded = again.load(None, "old")
    assert loaded is not None
    assert loaded.sequence_id == 2
    with pytest.raises(ConcurrencyError):
        again.save(None, "old", 2, "start", STATES[2], "completed")
    again.save(None, "old", 3, "start", STATES[3], "completed", previous_sequence_id=2)
    assert server.hget(f"{prefix}:meta", "schema") == b"2"
    assert server.hget(f"{prefix}:latest:", "old") == b"3"


def test_a_corrupt_record_is_reported_and_the_others_still_load(server, prefix, make):
    persister = make()
    persister.save(None, "app", 0, "start", STATES[0], "completed")
    persister.save(None, "app", 1, "start", STATES[1], "completed")
    server.hset(f"{prefix}:records::app", "1", "{not json")

    with pytest.raises(PersistenceError, match=r"records::app.*unreadable"):
        persister.load(None, "app")
    loaded = persister.load(None, "app", 0)
    assert loaded is not None
    assert loaded.state.get_all() == STATES[0].get_all()


@pytest.mark.parametrize(
    ("field", "value"),
    [("sequence_id", "abc"), ("created_at", "last tuesday")],
    ids=["sequence-id", "created-at"],
)
def test_damaged_record_metadata_names_the_key_and_the_value(server, prefix, make, field, value):
    persister = make()
    persister.save(None, "app", 0, "start", STATES[0], "completed")
    persister.save(None, "app", 1, "start", STATES[1], "completed")
    key = f"{prefix}:records::app"
    record = json.loads(server.hget(key, "1"))
    server.hset(key, "1", json.dumps({**record, field: value}))

    with pytest.raises(PersistenceError, match=rf"{key}.*unreadable.*{value}"):
        persister.load(None, "app")
    loaded = persister.load(None, "app", 0)
    assert loaded is not None


@pytest.mark.parametrize("removal", ["hdel", "zrem"])
def test_a_record_gone_from_one_index_only_is_a_gap(server, prefix, make, removal):
    """Half a hand-made removal (the record without its id, or the id without its record)."""
    persister = make()
    save_chain(persister, None)
    if removal == "hdel":
        server.hdel(f"{prefix}:records::app", "2")
    else:
        server.zrem(f"{prefix}:ids::app", "2")
    for sequence_id in (None, 3):
        with pytest.raises(PersistenceError, match="sequence id 2 is missing"):
            persister.load(None, "app", sequence_id)
    loaded = persister.load(None, "app", 1)
    assert loaded is not None
    assert loaded.state.get_all() == STATES[1].get_all()


METHODS = ("app", "app_ids", "delete", "records", "rewrite", "remove", "all_apps")


def test_the_store_answers_like_the_in_memory_store_on_random_operations(make):
    """A seeded random walk over every ``Store`` method (with partition keys and app ids that
    would collide unescaped), compared call by call with ``MemoryStore``."""
    redis_store, memory_store = make("decoded-client").store, MemoryStore()
    rng = random.Random(4)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)

    async def both(method: str, *args: Any) -> list[Any]:
        answers = []
        for store in (memory_store, redis_store):
            try:
                answer = await getattr(store, method)(*args)
            except ConcurrencyError as exc:
                answer = ("conflict", exc.sequence_id)
            if method == "all_apps":
                answer = sorted(answer, key=lambda a: (a.partition_key, a.app_id))
            answers.append(answer)
        return answers

    async def walk() -> None:
        for step in range(600):
            method = rng.choice(["insert"] * 4 + ["chain"] * 3 + list(METHODS))
            pk, app_id = rng.choice(["", "a", "a:b", "a%3Ab"]), rng.choice(["x", "y:z", "y%3Az"])
            now = start + dt.timedelta(seconds=step)
            if method == "insert":
                record = StepRecord(
                    partition_key=pk, app_id=app_id, sequence_id=rng.randint(0, 9),
                    position="p", status="completed", kind=rng.choice(["snapshot", "delta"]),
                    payload=f'"{step}"', created_at=now,
                )  # fmt: skip
                parent = rng.choice(
                    [None, ParentPointer(app_id="q", partition_key=None, sequence_id=3)]
                )
                row = AppRow(partition_key=pk, app_id=app_id, created_at=now, parent=parent)
                args: tuple[Any, ...] = (
                    record, rng.choice([None, rng.randint(0, 9)]), rng.choice([None, row])
                )  # fmt: skip
            elif method == "chain":
                args = (pk, app_id, rng.choice([None, rng.randint(0, 9)]))
            elif method == "rewrite":
                stored = await memory_store.records(pk, app_id)
                if not stored:
                    continue
                old = rng.choice(stored)
                args = (StepRecord(
                    partition_key=pk, app_id=app_id, sequence_id=old.sequence_id,
                    position=old.position, status=old.status, kind="snapshot",
                    payload='"rewritten"', created_at=old.created_at,
                ),)  # fmt: skip
            elif method == "remove":
                args = (pk, app_id, rng.sample(range(10), rng.randint(0, 4)))
            elif method == "app_ids":
                args = (pk,)
            elif method in ("delete", "all_apps"):
                args = (rng.choice([None, pk]), app_id)[: 2 if method == "delete" else 1]
            else:
                args = (pk, app_id)
            memory, redis_answer = await both(method, *args)
            assert memory == redis_answer, (step, method, args)

    asyncio.run(walk())


# -- the conditional insert ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sequence_id", "previous"),
    [(1, None), (0, None), (2, 0), (3, 5)],
    ids=["same-sequence-id", "older-sequence-id", "delta-after-a-newer-record", "delta-gap"],
)
def test_an_insert_that_would_break_the_history_raises_concurrency_error(
    make, sequence_id, previous
):
    persister = make()
    persister.save("p", "app", 0, "start", STATES[0], "completed")
    persister.save("p", "app", 1, "step", STATES[1], "completed")

    with pytest.raises(ConcurrencyError) as caught:
        persister.save(
            "p", "app", sequence_id, "step", STATES[2], "completed",
            changes=changes(2), previous_sequence_id=previous,
        )  # fmt: skip
    assert (caught.value.app_id, caught.value.sequence_id) == ("app", sequence_id)
    loaded = persister.load("p", "app")
    assert loaded is not None
    assert (loaded.sequence_id, loaded.state.get_all()) == (1, STATES[1].get_all())


def test_a_delta_on_an_app_without_records_raises_concurrency_error(make):
    persister = make()
    with pytest.raises(ConcurrencyError):
        persister.save(
            "p", "app", 1, "step", STATES[1], "completed",
            changes=changes(1), previous_sequence_id=0,
        )  # fmt: skip
    assert persister.load("p", "app") is None


WRITERS = 8


@pytest.mark.parametrize("case", ["first-record", "delta"])
def test_threads_racing_to_save_one_sequence_id_exactly_one_wins(make, case):
    """Each thread has its own client, as separate processes would."""
    persisters = [make() for _ in range(WRITERS)]
    sequence_id = 0
    if case == "delta":
        persisters[0].save("p", "app", 0, "start", STATES[0], "completed")
        sequence_id = 1
    barrier = threading.Barrier(WRITERS)
    outcomes: list[str] = [""] * WRITERS

    def write(index: int) -> None:
        state = State({"count": 1, "log": [0], "writer": index})
        kwargs: dict[str, Any] = {}
        if case == "delta":
            kwargs = {
                "changes": [*changes(1), Change("set", "writer", index)],
                "previous_sequence_id": 0,
            }
        barrier.wait()
        try:
            persisters[index].save("p", "app", sequence_id, "step", state, "completed", **kwargs)
            outcomes[index] = "won"
        except ConcurrencyError:
            outcomes[index] = "lost"

    threads = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["lost"] * (WRITERS - 1) + ["won"]
    loaded = persisters[0].load("p", "app")
    assert loaded is not None
    assert loaded.sequence_id == sequence_id
    assert loaded.state["writer"] == outcomes.index("won")


def test_concurrent_async_saves_of_one_sequence_id_exactly_one_wins(prefix):
    async def scenario() -> None:
        async with async_persister("url", prefix) as persister:

            async def write(index: int) -> str:
                state = State({"writer": index})
                try:
                    await persister.save("p", "app", 0, "start", state, "completed")
                except ConcurrencyError:
                    return "lost"
                return "won"

            outcomes = await asyncio.gather(*(write(i) for i in range(WRITERS)))
            assert sorted(outcomes) == ["lost"] * (WRITERS - 1) + ["won"]
            loaded = await persister.load("p", "app")
            assert loaded is not None
            assert loaded.state["writer"] == outcomes.index("won")

    asyncio.run(scenario())


# -- an unreachable server -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_unreachable_server_raises_persistence_error_naming_its_address(mode):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    expected = re.escape(f"cannot reach Redis at redis://127.0.0.1:{port}/0")
    if mode == "sync":
        with RedisPersister(url) as persister:
            with pytest.raises(PersistenceError, match=expected):
                persister.load(None, "app")
            with pytest.raises(PersistenceError, match=expected):
                persister.save(None, "app", 0, "start", STATES[0], "completed")
        return

    async def scenario() -> None:
        async with AsyncRedisPersister(url) as persister:
            with pytest.raises(PersistenceError, match=expected):
                await persister.list_app_ids(None)

    asyncio.run(scenario())


# -- applications --------------------------------------------------------------------------------


@action(reads=["count"], writes=["count"])
def count(state: State) -> State:
    return state.update(count=state["count"] + 1)


@action(reads=["count"], writes=["count"])
async def acount(state: State) -> State:
    return state.update(count=state["count"] + 1)


def builder(persister: Any, app_id: str, step: Any = count, **fork: Any) -> ApplicationBuilder:
    return (
        ApplicationBuilder()
        .with_actions(count=step)
        .with_transitions(("count", "count"))
        .with_identifiers(app_id=app_id, partition_key="user:1")
        .initialize_from(persister, default_state={"count": 0}, default_entrypoint="count", **fork)
        .with_state_persister(persister)
    )


def test_an_application_saves_to_redis_and_resumes_after_a_restart(make):
    first = builder(make(snapshot_every=10), "chat:1").build()
    for _ in range(3):
        first.run(halt_after=["count"])

    persister = make(snapshot_every=10)  # a new process: a new client
    resumed = builder(persister, "chat:1").build()
    assert resumed.sequence_id == 2
    _, _, state = resumed.run(halt_after=["count"])
    assert state["count"] == 4

    loaded = persister.load("user:1", "chat:1")
    assert loaded is not None
    assert (loaded.sequence_id, loaded.state["count"]) == (3, 4)
    assert persister.list_app_ids("user:1") == ["chat:1"]
    # the resumed run continued the chain of deltas after the stored snapshot
    records = asyncio.run(persister.store.records("user:1", "chat:1"))
    assert [r.kind for r in records] == ["snapshot", "delta", "delta", "delta"]

    fork = builder(persister, "chat:2", fork_from_app_id="chat:1",
                   fork_from_partition_key="user:1", fork_from_sequence_id=1).build()  # fmt: skip
    _, _, forked = fork.run(halt_after=["count"])
    assert forked["count"] == 3
    record = persister.load("user:1", "chat:2")
    assert record is not None
    assert record.parent == ParentPointer(app_id="chat:1", partition_key="user:1", sequence_id=1)


def test_an_async_application_saves_to_redis_and_resumes_after_a_restart(prefix):
    async def scenario() -> None:
        async with async_persister("url", prefix, snapshot_every=10) as persister:
            first = await builder(persister, "chat:1", acount).abuild()
            for _ in range(3):
                await first.arun(halt_after=["count"])

        async with async_persister("client", prefix, snapshot_every=10) as persister:
            resumed = await builder(persister, "chat:1", acount).abuild()
            assert resumed.sequence_id == 2
            _, _, state = await resumed.arun(halt_after=["count"])
            assert state["count"] == 4
            loaded = await persister.load("user:1", "chat:1")
            assert loaded is not None
            assert (loaded.sequence_id, loaded.state["count"]) == (3, 4)

    asyncio.run(scenario())
