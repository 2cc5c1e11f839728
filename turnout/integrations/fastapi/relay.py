"""Following a run from any worker: the ``Relay`` a served router publishes its runs' events
to, and ``LocalRelay``, the one for a single worker (or a store without publish/subscribe).

A run's events go to its application's ``EventBus`` in the worker running it; a relay is told
about every bus (``attach``) and carries its events to other workers, where ``follow`` turns
them into a stream. ``GET /apps/{id}/stream`` in the worker running the app reads the bus
itself; in any other worker it reads ``relay.follow``.

What each relay gives a follower in another worker:

* ``LocalRelay`` (the default): nothing crosses workers; the follower gets the committed state
  (``state``) and the stream ends.
* ``PostgresRelay`` (``turnout.integrations.fastapi.pgrelay``): every event (step begin and
  end, streamed items, the final state, errors) through PostgreSQL ``NOTIFY``, and an event
  ``worker_lost`` when the worker running the app dies before the run ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import Any, Protocol

from turnout.integrations.fastapi.streaming import EventBus, sse_message

__all__ = ["Committed", "LocalRelay", "Relay"]

Committed = Callable[[], Awaitable[dict[str, Any]]]
"""Reads the application's committed view (``AppView`` data) from the persister."""


class Relay(Protocol):
    """Carries a worker's run events to the streams of other workers.

    ``key`` is ``(partition_key, app_id)``.
    """

    def attach(self, bus: EventBus, key: Hashable) -> None:
        """Publish ``bus``'s events (until it closes) for followers of application ``key``;
        called once per bus, before its run starts (again for the same bus: nothing)."""

    async def ready(self, bus: EventBus) -> None:
        """Return once a follower in another worker would see ``bus``'s run as going on (an
        answer that tells the client to follow it waits for this)."""

    def follow(self, key: Hashable, committed: Committed) -> AsyncIterator[dict[str, str]]:
        """The SSE messages of application ``key`` as a worker that is not running it sees
        them; ends when the run ends (or at once, with the committed state, if none goes on)."""

    async def aclose(self) -> None:
        """Release connections; the relay is not used afterwards."""


class LocalRelay:
    """No relay: runs are followed only in the worker running them. A follower elsewhere gets
    the committed state (``state``) and the stream ends."""

    def attach(self, bus: EventBus, key: Hashable) -> None:
        return None

    async def ready(self, bus: EventBus) -> None:
        return None

    async def follow(self, key: Hashable, committed: Committed) -> AsyncIterator[dict[str, str]]:
        yield sse_message("state", await committed())

    async def aclose(self) -> None:
        return None
