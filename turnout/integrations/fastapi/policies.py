"""One worker's serialisation of the requests on one application, and what a new run does while
another is going (``OnBusy``).

Within a worker, the requests that drive an application take its turn one at a time (an
``asyncio.Lock`` per app, dropped when nobody holds or waits for it). Across workers and hosts
nothing is shared here: the persister's conditional save is the lock, and a request that lost
the race answers ``409``.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from turnout.integrations.fastapi.errors import ServeError
from turnout.integrations.fastapi.streaming import EventBus

__all__ = ["AppSlot", "OnBusy", "Runs", "Ticket"]


class OnBusy(enum.StrEnum):
    """What a request driving an application does while another one drives it in this worker.

    ``REJECT``: answer ``409`` at once. ``ENQUEUE``: wait, then run. ``INTERRUPT``: ask the run
    going on to stop at its next step boundary (``request_stop``: the step in progress
    completes and is saved), then run.
    """

    REJECT = "reject"
    ENQUEUE = "enqueue"
    INTERRUPT = "interrupt"


@dataclass(kw_only=True, slots=True)
class AppSlot:
    """What a worker holds for an application while requests drive it."""

    def drive(self, app: Any) -> None:
        """Make ``app`` the driven application (an interrupt already asked stops it)."""
        self.app = app
        if self.stop_requested:
            self.stop()

    def stop(self) -> bool:
        """Ask the driven application to stop at its next step boundary; whether one is
        driven. An application asked to stop is not kept for the next request (its pending
        stop would end that request's run)."""
        if self.app is None:
            return False
        self.stop_sent = True
        self.app.request_stop()
        return True

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    bus: EventBus = field(default_factory=EventBus)
    app: Any = None  # the application being driven, for request_stop
    stop_requested: bool = False  # an interrupt came before the driven app was built
    stop_sent: bool = False  # the driven application was asked to stop in this turn
    users: int = 0  # tickets taken and not yet given back


class Ticket:
    """A place in an application's queue; ``async with ticket:`` waits for and holds its turn.
    Leaving it (or failing to get the turn) gives the place back."""

    def __init__(self, runs: Runs, key: Hashable, slot: AppSlot) -> None:
        self._runs = runs
        self._key = key
        self.slot = slot

    async def __aenter__(self) -> AppSlot:
        try:
            await self.slot.lock.acquire()
        except BaseException:
            self._give_back()
            raise
        self.slot.stop_requested = False  # meant for the run before this one
        self.slot.stop_sent = False
        return self.slot

    async def __aexit__(self, *exc: object) -> None:
        self.slot.app = None
        self.slot.lock.release()
        self._give_back()

    def _give_back(self) -> None:
        self.slot.users -= 1
        if self.slot.users == 0:
            self.slot.bus.close()
            self._runs._drop(self._key, self.slot)


class Runs:
    """The application slots of one worker."""

    def __init__(self, on_busy: OnBusy) -> None:
        self.on_busy = on_busy
        self._slots: dict[Hashable, AppSlot] = {}

    def slot(self, key: Hashable) -> AppSlot | None:
        """The slot of an application driven now in this worker, if any."""
        return self._slots.get(key)

    def enter(
        self, key: Hashable, *, on_busy: OnBusy | None = None, sequence_id: int | None = None
    ) -> Ticket:
        """A ticket for the application's turn, after applying the busy policy: ``REJECT``
        raises (409) when the app is driven now; ``INTERRUPT`` asks that run to stop."""
        policy = on_busy or self.on_busy
        slot = self._slots.get(key)
        if slot is not None and slot.users > 0:
            if policy is OnBusy.REJECT:
                raise ServeError(
                    409,
                    "busy",
                    "the application is running a request; retry when it is done, or send "
                    "on_busy='enqueue' (wait) or 'interrupt' (stop it at its next step)",
                    sequence_id=sequence_id,
                )
            if policy is OnBusy.INTERRUPT:
                slot.stop_requested = True
                slot.stop()
        if slot is None:
            slot = self._slots[key] = AppSlot()
        slot.users += 1
        return Ticket(self, key, slot)

    def _drop(self, key: Hashable, slot: AppSlot) -> None:
        if self._slots.get(key) is slot:
            del self._slots[key]
