"""Checks of lost-connection recovery written once: ``ReconnectTests`` holds the tests both SQL
backends run, and test_postgres_reconnect and test_mysql_reconnect each subclass it with their
server. The checks take ``kill(persister)`` (ends the session of the connection the persister
opened, as an administrator or a server restart would, and waits until it has ended) and
``open_async()`` (an async context manager opening an async persister that connects from
connection arguments)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Any

import pytest

from tests.integrations import sql_backend_checks as checks
from turnout import State
from turnout.core.errors import PersistenceError
from turnout.core.hooks import PreRunStepHook, PreRunStepHookAsync

Kill = Callable[[Any], None]
End = Callable[[Any], None]
OpenAsync = Callable[[], AbstractAsyncContextManager[Any]]


def save(persister: Any, sequence_id: int, count: int) -> None:
    persister.save(
        "user", "app", sequence_id, "count", State({"count": count}), "completed",
        changes=[("set", "count", count)], previous_sequence_id=sequence_id - 1,
    )  # fmt: skip


async def asave(persister: Any, sequence_id: int, count: int) -> None:
    await persister.save(
        "user", "app", sequence_id, "count", State({"count": count}), "completed",
        changes=[("set", "count", count)], previous_sequence_id=sequence_id - 1,
    )  # fmt: skip


def counts(persister: Any, last: int) -> list[int | None]:
    """The count saved at each sequence id up to ``last``, each rebuilt from the store."""
    loaded = [persister.load("user", "app", i) for i in range(last + 1)]
    return [None if record is None else record.state["count"] for record in loaded]


async def acounts(persister: Any, last: int) -> list[int | None]:
    loaded = [await persister.load("user", "app", i) for i in range(last + 1)]
    return [None if record is None else record.state["count"] for record in loaded]


class KillBeforeEachStep(PreRunStepHook):
    def __init__(self, kill: Kill, persister: Any) -> None:
        self.kill, self.persister, self.kills = kill, persister, 0

    def pre_run_step(self, **future_kwargs: Any) -> None:
        self.kill(self.persister)
        self.kills += 1


class AsyncKillBeforeEachStep(PreRunStepHookAsync):
    def __init__(self, kill: Kill, persister: Any) -> None:
        self.kill, self.persister, self.kills = kill, persister, 0

    async def pre_run_step(self, **future_kwargs: Any) -> None:
        self.kill(self.persister)
        self.kills += 1


def an_application_keeps_saving_when_its_connection_is_dropped_before_each_step(
    persister: Any, kill: Kill
) -> None:
    hook = KillBeforeEachStep(kill, persister)
    checks.builder(persister, "app").with_hooks(hook).build().run(halt_after=["done"])
    assert hook.kills == 6
    kill(persister)
    resumed = checks.builder(persister, "app").build()  # loads on a dropped connection
    assert (resumed.sequence_id, resumed.state["count"]) == (5, 5)
    assert counts(persister, 5) == [1, 2, 3, 4, 5, 5]


def an_async_application_keeps_saving_when_its_connection_is_dropped_before_each_step(
    open_async: OpenAsync, kill: Kill
) -> None:
    async def main() -> None:
        async with open_async() as persister:
            hook = AsyncKillBeforeEachStep(kill, persister)
            app = await checks.builder(persister, "app").with_hooks(hook).abuild()
            await app.arun(halt_after=["done"])
            assert hook.kills == 6
            kill(persister)
            resumed = await checks.builder(persister, "app").abuild()
            assert (resumed.sequence_id, resumed.state["count"]) == (5, 5)
            assert await acounts(persister, 5) == [1, 2, 3, 4, 5, 5]

    asyncio.run(main())


def cut_transactions(persister: Any, prefix: str, kill: Kill, *, after: bool) -> Callable[[], int]:
    """Make ``persister`` lose its connection in its next save, through its ``SQLConnection``
    adapter: just before the step's insert (the middle of the transaction), or just ``after``
    the save's last statement (the app row's latest sequence id), so the next thing the server
    would see is ``COMMIT``. Returns a counter of the kills."""
    execute = persister.connection.execute
    kills = 0

    async def cutting(sql: str, params: Any = ()) -> Any:
        nonlocal kills
        last = f"UPDATE {prefix}_apps SET latest_sequence_id" if after else None
        inserting = (last or f"INSERT INTO {prefix}_steps") in sql and kills == 0
        if inserting and not after:
            kills += 1
            kill(persister)
        rows = await execute(sql, params)
        if inserting and after:
            kills += 1
            kill(persister)
        return rows

    persister.connection.execute = cutting
    return lambda: kills


def a_save_cut_in_the_middle_is_not_replayed_and_the_next_save_reconnects(
    persister: Any, prefix: str, kill: Kill
) -> str:
    """Returns the error's message."""
    persister.save("user", "app", 0, "count", State({"count": 0}), "completed")
    cut = cut_transactions(persister, prefix, kill, after=False)
    with pytest.raises(PersistenceError, match="middle of a transaction") as info:
        save(persister, 1, 1)
    assert "was not applied" in str(info.value)
    assert cut() == 1
    assert counts(persister, 1) == [0, None]
    save(persister, 1, 1)
    save(persister, 2, 2)
    assert counts(persister, 2) == [0, 1, 2]
    return str(info.value)


def a_connection_lost_while_committing_says_the_save_may_have_been_applied(
    persister: Any, prefix: str, kill: Kill
) -> None:
    persister.save("user", "app", 0, "count", State({"count": 0}), "completed")
    cut = cut_transactions(persister, prefix, kill, after=True)
    with pytest.raises(PersistenceError, match="while committing") as info:
        save(persister, 1, 1)
    assert cut() == 1
    assert "may or may not have been applied" in str(info.value)
    assert "initialize_from" in str(info.value)
    assert counts(persister, 1) == [0, None]  # the session ended before COMMIT reached it
    save(persister, 1, 1)
    assert counts(persister, 1) == [0, 1]


def an_async_save_cut_in_the_middle_is_not_replayed_and_the_next_save_reconnects(
    open_async: OpenAsync, prefix: str, kill: Kill
) -> None:
    async def main() -> None:
        async with open_async() as persister:
            await persister.save("user", "app", 0, "count", State({"count": 0}), "completed")
            cut = cut_transactions(persister, prefix, kill, after=False)
            with pytest.raises(PersistenceError, match="was not applied"):
                await asave(persister, 1, 1)
            assert cut() == 1
            assert await acounts(persister, 1) == [0, None]
            await asave(persister, 1, 1)
            assert await acounts(persister, 1) == [0, 1]

    asyncio.run(main())


def _pump(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    for end in (source, target):
        with contextlib.suppress(OSError):
            end.shutdown(socket.SHUT_RDWR)


class Relay:
    """A TCP relay in front of a database server, which the test takes down (every relayed
    connection is cut and new ones are refused, as in a network outage or a server restart)
    and brings back on the same port."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()

    def __enter__(self) -> Relay:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _address = listener.accept()
            except OSError:  # stop() shut the listener
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._open += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, target), daemon=True).start()

    def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
            self._listener.close()
            self._listener = None
        with self._lock:
            relayed, self._open = self._open, []
        for end in relayed:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()


def a_persister_whose_server_is_gone_says_so_and_recovers_when_it_is_back(
    persister: Any, relay: Relay, unreachable: str
) -> None:
    """``persister`` connects through ``relay``; ``unreachable`` is the start of its error."""
    persister.save("user", "app", 0, "count", State({"count": 0}), "completed")
    relay.stop()
    attempts: list[Callable[[], object]] = [
        lambda: persister.load("user", "app"),
        lambda: save(persister, 1, 1),
    ]
    for attempt in attempts:
        with pytest.raises(PersistenceError, match=unreachable) as info:
            attempt()
        assert "Start the server" in str(info.value)
    relay.start()
    save(persister, 1, 1)
    assert counts(persister, 1) == [0, 1]


def an_application_whose_save_is_cut_continues_once_rebuilt(
    persister: Any, prefix: str, kill: Kill
) -> None:
    """The step whose save was cut fails with the ``PersistenceError``; the application rebuilt
    from the persister continues from the last saved step, and the history ends up whole."""
    app = checks.builder(persister, "app").build()
    app.step()
    app.step()
    cut = cut_transactions(persister, prefix, kill, after=False)
    with pytest.raises(PersistenceError, match="was not applied"):
        app.step()
    assert cut() == 1
    resumed = checks.builder(persister, "app").build()
    assert (resumed.sequence_id, resumed.state["count"]) == (1, 2)
    resumed.run(halt_after=["done"])
    assert counts(persister, 5) == [1, 2, 3, 4, 5, 5]


def an_async_persister_whose_server_is_gone_says_so_and_recovers_when_it_is_back(
    open_async: OpenAsync, relay: Relay, unreachable: str
) -> None:
    """``a_persister_whose_server_is_gone_says_so_and_recovers_when_it_is_back``, async."""

    async def main() -> None:
        async with open_async() as persister:
            await persister.save("user", "app", 0, "count", State({"count": 0}), "completed")
            relay.stop()
            with pytest.raises(PersistenceError, match=unreachable):
                await persister.load("user", "app")
            with pytest.raises(PersistenceError, match=unreachable):
                await asave(persister, 1, 1)
            relay.start()
            await asave(persister, 1, 1)
            assert await acounts(persister, 1) == [0, 1]

    asyncio.run(main())


class ReconnectTests:
    """The lost-connection tests both SQL backends run, written once: a ``Test...`` subclass in
    each backend's test module provides the persister classes, ``database`` (its messages' name),
    ``source`` (connection arguments of the test server), its ``host`` and ``port``,
    ``relayed(port)`` (``source`` through a ``Relay`` on ``port``), ``connected()`` and
    ``aconnected()`` (a connection the caller opens, sync and async), what the error about such
    a connection names, and an ``end`` fixture (``end(connection)`` ends its server session, as
    an administrator or a restart would, and waits until it has ended)."""

    Persister: Any
    AsyncPersister: Any
    database = ""
    source: Any = None
    host = ""
    port = 0
    given = ""  # the pattern of the error about a dropped connection the caller passed
    given_fixes: tuple[str, ...] = ()  # what that error names instead
    given_async = ""
    given_async_fix = ""

    def relayed(self, port: int) -> Any:
        raise NotImplementedError

    def connected(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def aconnected(self) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError

    @pytest.fixture
    def kill(self, end: End) -> Kill:
        """Ends the session of the connection a persister opened, whichever it is by then."""
        return lambda persister: end(persister.connection.owned)

    def test_an_application_keeps_saving_when_the_server_drops_the_connection_before_each_step(
        self, prefix: str, kill: Kill
    ) -> None:
        with self.Persister(self.source, prefix, snapshot_every=3) as persister:
            an_application_keeps_saving_when_its_connection_is_dropped_before_each_step(
                persister, kill
            )

    def test_an_async_application_keeps_saving_when_the_server_drops_the_connection_before_each_step(  # noqa: E501
        self, prefix: str, kill: Kill
    ) -> None:
        an_async_application_keeps_saving_when_its_connection_is_dropped_before_each_step(
            lambda: self.AsyncPersister(self.source, prefix, snapshot_every=3), kill
        )

    def test_a_save_cut_in_the_middle_is_not_replayed_and_the_next_save_reconnects(
        self, prefix: str, kill: Kill
    ) -> None:
        with self.Persister(self.source, prefix) as persister:
            message = a_save_cut_in_the_middle_is_not_replayed_and_the_next_save_reconnects(
                persister, prefix, kill
            )
        assert f"{self.database} at {self.host}:{self.port}" in message
        assert "reconnects on its next call" in message

    def test_an_application_whose_save_is_cut_continues_once_rebuilt_from_the_persister(
        self, prefix: str, kill: Kill
    ) -> None:
        with self.Persister(self.source, prefix) as persister:
            an_application_whose_save_is_cut_continues_once_rebuilt(persister, prefix, kill)

    def test_a_connection_lost_while_committing_says_the_save_may_have_been_applied(
        self, prefix: str, kill: Kill
    ) -> None:
        with self.Persister(self.source, prefix) as persister:
            a_connection_lost_while_committing_says_the_save_may_have_been_applied(
                persister, prefix, kill
            )

    def test_an_async_save_cut_in_the_middle_is_not_replayed_and_the_next_save_reconnects(
        self, prefix: str, kill: Kill
    ) -> None:
        an_async_save_cut_in_the_middle_is_not_replayed_and_the_next_save_reconnects(
            lambda: self.AsyncPersister(self.source, prefix), prefix, kill
        )

    def test_a_persister_whose_server_is_gone_says_it_cannot_reconnect_and_recovers_when_it_is_back(
        self, prefix: str
    ) -> None:
        with (
            Relay(self.host, self.port) as relay,
            self.Persister(self.relayed(relay.port), prefix) as persister,
        ):
            a_persister_whose_server_is_gone_says_so_and_recovers_when_it_is_back(
                persister, relay, f"cannot connect to {self.database} at 127.0.0.1:{relay.port}"
            )

    def test_an_async_persister_whose_server_is_gone_says_it_cannot_reconnect_and_recovers(
        self, prefix: str
    ) -> None:
        with Relay(self.host, self.port) as relay:
            an_async_persister_whose_server_is_gone_says_so_and_recovers_when_it_is_back(
                lambda: self.AsyncPersister(self.relayed(relay.port), prefix),
                relay,
                f"cannot connect to {self.database} at 127.0.0.1:{relay.port}",
            )

    def test_a_dropped_connection_the_caller_passed_fails_with_an_error_naming_the_fix(
        self, prefix: str, end: End
    ) -> None:
        with self.connected() as connection:
            persister = self.Persister(connection, prefix)
            persister.save("user", "app", 0, "count", State({"count": 0}), "completed")
            end(connection)
            attempts: list[Callable[[], object]] = [
                lambda: persister.load("user", "app"),
                lambda: save(persister, 1, 1),
            ]
            for attempt in attempts:
                with pytest.raises(PersistenceError, match=self.given) as info:
                    attempt()
                assert "does not reopen a connection it was given" in str(info.value)
                for fix in self.given_fixes:
                    assert fix in str(info.value)
        with self.Persister(self.source, prefix) as fresh:
            assert counts(fresh, 0) == [0]

    def test_a_dropped_async_connection_the_caller_passed_fails_with_an_error_naming_the_fix(
        self, prefix: str, end: End
    ) -> None:
        async def main() -> None:
            async with self.aconnected() as connection:
                persister = self.AsyncPersister(connection, prefix)
                await persister.save("user", "app", 0, "count", State({"count": 0}), "completed")
                end(connection)
                with pytest.raises(PersistenceError, match=self.given_async) as info:
                    await persister.load("user", "app")
                assert self.given_async_fix in str(info.value)

        asyncio.run(main())
