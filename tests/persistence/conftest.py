"""Fixtures running the same tests against every persistence backend.

``persister`` is parametrised over every backend (ids below); ``async_persister`` over the async
ones, ``sql_persister`` over the SQL ones, ``process_backend`` over the sync backends another
process can open. Each gives a ``Harness``: the persister under test (``.persister``) plus helpers
that call its methods, build and step applications, and read its store, the same way whether the
persister is sync or async, so that every test body is written once.

A harness owns one event loop for the whole test: async drivers bind their connections to the
loop they were opened in, so every coroutine of a test (the persister's, the application's) runs
on it. Every test gets a fresh table prefix / key prefix, and teardown closes every persister it
opened and drops its tables / deletes its keys.

Backends in ``turnout.integrations`` that are not written yet skip ("backend module not
available yet"); once the module exists, failing to import it fails the test. A server that does
not answer skips the test, except with ``CI=true``, where it fails.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.persistence import backends
from turnout.core.application import Application
from turnout.core.builder import ApplicationBuilder
from turnout.core.persistence import PersistedStateData, StepRecord

ALL_IDS = [
    "memory",
    "memory-async",
    "sqlite",
    "sqlite-async",
    "postgres",
    "postgres-async",
    "mysql",
    "mysql-async",
    "redis",
    "redis-async",
]
ASYNC_IDS = [i for i in ALL_IDS if i.endswith("-async")]
SQL_IDS = [i for i in ALL_IDS if i.split("-")[0] in backends.SQL_KINDS]
SERVICE_IDS = [i for i in ALL_IDS if i.split("-")[0] in backends.SERVICE_KINDS]
PROCESS_IDS = ["sqlite", "postgres", "mysql", "redis"]
# Small, so that every multi-step test crosses snapshot boundaries.
SNAPSHOT_EVERY = 7


def require_backend(kind: str) -> None:
    """Skip (or, under CI, fail) when the backend of ``kind`` cannot be used here."""
    if kind not in backends.SERVICES:
        return
    service = backends.SERVICES[kind]
    if not backends.integration_module_exists(kind):
        pytest.skip(f"backend module not available yet: turnout.integrations.{service.module}")
    if not backends.reachable(kind):
        message = (
            f"{service.name} is not reachable at {service.host}:{service.port}; "
            f"start it with: {service.start}"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


class Harness:
    """One backend under test, with helpers that hide whether it is sync or async."""

    def __init__(self, backend_id: str, workdir: Path, *, snapshot_every: int = 100) -> None:
        self.id = backend_id
        self.kind = backend_id.split("-")[0]
        self.is_async = backend_id.endswith("-async")
        self.prefix = f"t{uuid.uuid4().hex[:12]}"
        self.location = backends.location_for(self.kind, workdir)
        self.snapshot_every = snapshot_every
        self.loop = asyncio.new_event_loop()
        self._opened: list[Any] = []
        self.persister: Any = None

    # -- persisters ------------------------------------------------------------------------------

    def open(self, *, snapshot_every: int | None = None, serde: Any = None) -> Any:
        """Another persister over this test's tables (closed at teardown); the first one opened
        is ``self.persister``."""
        options: dict[str, Any] = {
            "snapshot_every": snapshot_every or self.snapshot_every,
            "serde": serde,
            "shared_with": self.persister,
        }
        if self.is_async:
            made = self.run(backends.open_async(self.kind, self.location, self.prefix, **options))
        else:
            made = backends.open_sync(self.kind, self.location, self.prefix, **options)
        self._opened.append(made)
        if self.persister is None:
            self.persister = made
        return made

    def spec(self, **extra: Any) -> dict[str, Any]:
        """What a child process needs to open this backend's sync persister."""
        return {
            "kind": self.kind,
            "location": self.location,
            "prefix": self.prefix,
            "snapshot_every": self.snapshot_every,
            **extra,
        }

    def close(self) -> None:
        try:
            for made in reversed(self._opened):
                self.run(backends.aclose(made))
            self._opened.clear()
        finally:
            try:
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
                self.loop.run_until_complete(self.loop.shutdown_default_executor())
            finally:
                self.loop.close()
            backends.clean(self.kind, self.location, self.prefix)

    # -- calling sync or async code --------------------------------------------------------------

    def run(self, value: Any) -> Any:
        """``value`` itself, or what it gives when awaited on this test's event loop."""
        if inspect.isawaitable(value):
            return self.loop.run_until_complete(value)
        return value

    def load(
        self,
        partition_key: str | None,
        app_id: str,
        sequence_id: int | None = None,
        *,
        persister: Any = None,
    ) -> PersistedStateData | None:
        target = persister or self.persister
        loaded: PersistedStateData | None = self.run(
            target.load(partition_key, app_id, sequence_id)
        )
        return loaded

    def save(
        self,
        partition_key: str | None,
        app_id: str,
        sequence_id: int,
        position: str | None,
        state: Any,
        status: str = "completed",
        **kwargs: Any,
    ) -> None:
        self.run(
            self.persister.save(
                partition_key, app_id, sequence_id, position, state, status, **kwargs
            )
        )

    def list_app_ids(self, partition_key: str | None) -> list[str]:
        ids: list[str] = self.run(self.persister.list_app_ids(partition_key))
        return ids

    def delete(self, app_id: str, partition_key: str | None = None) -> int:
        removed: int = self.run(self.persister.delete(app_id, partition_key))
        return removed

    def prune(self, **kwargs: Any) -> int:
        removed: int = self.run(self.persister.prune(**kwargs))
        return removed

    def records(self, partition_key: str | None, app_id: str) -> list[StepRecord]:
        """Every stored record of an app, read through the persister's store."""
        store = self.persister.core.store
        found: list[StepRecord] = self.run(store.records(partition_key or "", app_id))
        return found

    def rewrite(self, record: StepRecord) -> None:
        self.run(self.persister.core.store.rewrite(record))

    # -- applications ----------------------------------------------------------------------------

    def build(self, builder: ApplicationBuilder) -> Application:
        """``abuild()`` for an async backend, else ``build()``."""
        if self.is_async:
            app: Application = self.run(builder.abuild())
            return app
        return builder.build()

    def step(self, app: Application, inputs: dict[str, Any] | None = None) -> Any:
        """One step, with ``astep`` for an async backend."""
        if self.is_async:
            return self.run(app.astep(inputs))
        return app.step(inputs)

    def race(self, *apps: Application) -> list[BaseException | None]:
        """Step every app at once (threads for a sync backend, tasks for an async one); the
        exception each step raised, or ``None``."""
        if self.is_async:

            async def together() -> list[Any]:
                return await asyncio.gather(*(a.astep() for a in apps), return_exceptions=True)

            return [o if isinstance(o, BaseException) else None for o in self.run(together())]
        outcomes: list[BaseException | None] = [None] * len(apps)
        barrier = threading.Barrier(len(apps))

        def go(index: int) -> None:
            barrier.wait()
            try:
                apps[index].step()
            except BaseException as exc:
                outcomes[index] = exc

        threads = [threading.Thread(target=go, args=(i,)) for i in range(len(apps))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return outcomes


def _harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    backend_id: str = request.param
    require_backend(backend_id.split("-")[0])
    harness = Harness(backend_id, tmp_path, snapshot_every=SNAPSHOT_EVERY)
    try:
        harness.open()
        yield harness
    finally:
        harness.close()


@pytest.fixture(params=ALL_IDS)
def persister(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    """Every backend, sync and async."""
    yield from _harness(request, tmp_path)


@pytest.fixture(params=ASYNC_IDS)
def async_persister(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    """Every async backend."""
    yield from _harness(request, tmp_path)


@pytest.fixture(params=SQL_IDS)
def sql_persister(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    """Every SQL backend (SQLite, PostgreSQL, MySQL), sync and async."""
    yield from _harness(request, tmp_path)


@pytest.fixture(params=PROCESS_IDS)
def process_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    """Every sync backend that several processes can share."""
    yield from _harness(request, tmp_path)


@pytest.fixture(params=SERVICE_IDS)
def service_persister(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    """Every backend that talks to a server (PostgreSQL, MySQL, Redis), sync and async."""
    yield from _harness(request, tmp_path)


@pytest.fixture(params=SQL_IDS + [i for i in SERVICE_IDS if i.startswith("redis")])
def named_persister(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    """Every backend whose tables or keys are named from a prefix."""
    yield from _harness(request, tmp_path)
