"""The applications of one ``serve()`` router in one worker: built from the factory, loaded from
the persister, and kept in memory between requests (a bounded LRU, ``serve(cache_size=...)``).

A kept application is only a shortcut. Before a request uses one, it reads the app's row
(``persister.app_row``: one small query, no state) and uses the kept application only if the
row is the one it was built from (same ``created_at``: not deleted and created again, or forked
over) and its latest sequence id is the one the application is at. Anything else (another
worker or host advanced it, deleted it, re-created it; a row that cannot tell) builds the
application from the persister as if nothing were kept. Between that check and the save, the
persister's conditional save still refuses a second writer (``409``, as without the cache).

A request takes the application out of the cache while it drives it and puts it back only after
a turn that ended cleanly with no stop asked of it: a failed step (``424``), a lost race
(``409``), an interrupt or any other error drops it, so the next request loads the committed
state. Persisters without ``app_row`` (third-party ones) keep nothing.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from turnout.integrations.fastapi.builder import Factory, ServedBuilder
from turnout.integrations.fastapi.errors import ServeError
from turnout.integrations.fastapi.streaming import EventBus, EventHook

__all__ = ["AppCache", "Applications", "Kept", "filled", "not_found"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Kept:
    """A built application, the event hook it was built with (pointed at each request's event
    bus in turn) and the creation time of the app row it was loaded under."""

    app: Any
    hook: EventHook
    created_at: Any = None


class AppCache:
    """At most ``size`` applications, the least recently used dropped first (``size=0``: none)."""

    def __init__(self, size: int) -> None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(
                f"serve(cache_size={size!r}) takes the number of applications a worker keeps "
                f"in memory: an int >= 0 (0 keeps none), e.g. cache_size=1024"
            )
        self.size = size
        self._kept: OrderedDict[Hashable, Kept] = OrderedDict()

    def __len__(self) -> int:
        return len(self._kept)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._kept

    def take(self, key: Hashable) -> Kept | None:
        """Remove and return the application kept for ``key``: the caller owns it now."""
        return self._kept.pop(key, None)

    def peek(self, key: Hashable) -> Kept | None:
        return self._kept.get(key)

    def put(self, key: Hashable, kept: Kept) -> None:
        """Keep ``kept`` as the most recently used (replacing what ``key`` had)."""
        if self.size == 0:
            return
        self._kept[key] = kept
        self._kept.move_to_end(key)
        while len(self._kept) > self.size:
            self._kept.popitem(last=False)

    def discard(self, key: Hashable) -> None:
        self._kept.pop(key, None)


class Applications:
    """Builds, loads and keeps the applications ``factory`` describes, stored in ``persister``.

    Args:
        factory: the ``serve()`` factory.
        persister: where the applications live.
        cache_size: how many built applications to keep (0: build every request's anew).
    """

    def __init__(self, factory: Factory, persister: Any, cache_size: int) -> None:
        self.factory = factory
        self.persister = persister
        self.cache = AppCache(cache_size)  # checks cache_size, whatever the persister
        self._row = getattr(persister, "app_row", None)
        if self._row is None:  # no cheap check of a kept app: keep none
            self.cache = AppCache(0)

    async def build(
        self, app_id: str, pk: str | None, hook: Any = None, initial_state: Any = None
    ) -> Any:
        """A new application object, loaded from the persister (a new app: the factory's
        initial state updated by ``initial_state``)."""
        builder = filled(
            self.factory, ServedBuilder(app_id=app_id, partition_key=pk, persister=self.persister)
        )
        if hook is not None:
            builder.with_hooks(hook)
        return await builder.finish(initial_state=initial_state).abuild()

    async def existing(
        self, app_id: str, pk: str | None, *, keep: bool = False, row: Any = None
    ) -> Kept:
        """The stored application built anew (``404`` if none); ``keep``: cache it. ``row``:
        the app row the caller just read (else it is read here)."""
        # The row before the state: an app re-created in between then fails the next check
        # (an older created_at), where the other order could pass it with the new state.
        if row is None and self.cache.size:
            row = await self.row(app_id, pk)
        hook = EventHook(EventBus())
        app = await self.build(app_id, pk, hook)
        if app.sequence_id is None:
            raise not_found(app_id)
        kept = Kept(app=app, hook=hook, created_at=None if row is None else row.created_at)
        if keep and row is not None:
            self.cache.put((pk, app_id), kept)
        return kept

    async def row(self, app_id: str, pk: str | None) -> Any:
        """The app's stored row (``AppRow``), or ``None`` (no such app, or no way to tell)."""
        if self._row is None:
            return None
        value = self._row(pk, app_id)
        return await value if inspect.isawaitable(value) else value

    async def latest_sequence_id(self, app_id: str, pk: str | None) -> int | None:
        """The sequence id of the app's latest stored record (``None``: none known)."""
        row = await self.row(app_id, pk)
        return None if row is None else row.latest_sequence_id

    async def checkout(self, app_id: str, pk: str | None, bus: EventBus) -> Kept:
        """The application a driving request acts on, publishing to ``bus``: the kept one if
        the app's row says it is the stored application as it stands, else one built from the
        persister. The caller holds the app's turn (``Runs``) and gives it back with
        ``checkin``."""
        kept = self.cache.take((pk, app_id))
        row = None if kept is None else await self.row(app_id, pk)
        if kept is not None and _matches(row, kept):
            kept.hook.bus = bus
            kept.hook.failed = None
            kept.hook.sequence_id = None
            return kept
        kept = await self.existing(app_id, pk, row=row)
        kept.hook.bus = bus
        return kept

    def checkin(self, app_id: str, pk: str | None, kept: Kept) -> None:
        """Keep the application of a turn that ended cleanly (no error, no stop asked)."""
        self.cache.put((pk, app_id), kept)

    async def current(self, app_id: str, pk: str | None, *, idle: bool) -> Any:
        """The application as stored, for reading: the kept one if current, else built anew
        (and kept, when ``idle``: no request drives it in this worker)."""
        row = await self.row(app_id, pk)
        kept = self.cache.peek((pk, app_id))  # no await from here to the caller's read
        if kept is not None and _matches(row, kept):
            return kept.app
        return (await self.existing(app_id, pk, keep=idle, row=row)).app

    def forget(self, app_id: str, pk: str | None) -> None:
        self.cache.discard((pk, app_id))


def _matches(row: Any, kept: Kept) -> bool:
    return (
        row is not None
        and kept.created_at is not None
        and row.created_at == kept.created_at
        and row.latest_sequence_id == kept.app.sequence_id
    )


def filled(factory: Factory, builder: ServedBuilder) -> ServedBuilder:
    """``builder`` filled in by ``factory`` (which must return it, or ``None``)."""
    out = factory(builder)
    if out is not None and out is not builder:
        raise TypeError(
            f"the served application's factory must fill in the ServedBuilder it gets and "
            f"return it (or None), not {type(out).__name__}: {out!r}"
        )
    return builder


def not_found(app_id: str, sequence_id: int | None = None) -> ServeError:
    at = "" if sequence_id is None else f" at sequence id {sequence_id}"
    return ServeError(404, "not_found", f"no application {app_id!r}{at} (in this partition)")
