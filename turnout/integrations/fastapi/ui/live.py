"""Live mode: Server-Sent Events that bring an open application page its new steps.

The page's steps table listens (htmx's SSE extension) to ``…/live?after=SEQ``. The server
reads what was appended to the application's records and, when something changed, sends a
``step`` event (the rows of the new steps, which the table puts on top, and the rows of steps
whose status changed, swapped in place by id) and a ``summary`` event (the application's
summary line). Between two reads it waits on the store's change signal when the store pushes
its changes (PostgreSQL's LISTEN/NOTIFY: a step arrives as soon as it is committed, and
nothing is queried while nothing is notified), else it sleeps ``poll`` seconds (files). The
stream ends when the browser goes away.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio.to_thread
from anyio import CapacityLimiter
from fastapi import Request
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from turnout.integrations.fastapi.ui import queries
from turnout.integrations.fastapi.ui._source import AppLog, Reader, Step

__all__ = ["live_response", "render_changes"]

WATCHED = 200  # the newest steps whose status changes are sent
PUSH_WAIT = 1.0  # seconds a wait for the store's signal lasts before the client is checked
LIVE_WAITERS = 256  # live pages waiting on the store's signal at once, at most
# Waits for the store's signal hold a thread each: they get a limit of their own, so open live
# pages never take the threads the other requests are served on. One limiter per event loop
# (a limiter belongs to the loop it was made in).
_WAITERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)


def _waiters() -> CapacityLimiter:
    loop = asyncio.get_running_loop()
    limiter = _WAITERS.get(loop)
    if limiter is None:
        limiter = _WAITERS[loop] = CapacityLimiter(LIVE_WAITERS)
    return limiter


def _key(step: Step) -> tuple[Any, ...]:
    return (step.status, step.attempts, step.end)


def _changes(
    source: Reader, log: AppLog, known: dict[int, tuple[Any, ...]], last: int
) -> tuple[list[Step], list[Step]]:
    source.refresh(log)
    steps = log.step_list()
    new = [s for s in steps if s.seq > last]
    changed = [
        s for s in steps[-WATCHED:] if s.seq <= last and known.get(s.seq, _key(s)) != _key(s)
    ]
    return new, changed


def render_changes(
    env: Any,
    source: Reader,
    log: AppLog,
    *,
    project: str,
    app_id: str,
    new: Sequence[Step],
    changed: Sequence[Step] = (),
) -> tuple[str, str]:
    """The HTML of one live update: the rows (new steps newest first, then changed steps
    marked for an in-place swap) and the application's summary line."""
    rows = env.get_template("_live.html").render(
        project=project,
        app_id=app_id,
        new=[queries.step_row(log, s) for s in reversed(new)],
        changed=[queries.step_row(log, s) for s in changed],
        selected=None,
        top=None,
        live=True,
    )
    app = queries.app_detail(source, project, app_id)
    summary = env.get_template("_summary.html").render(project=project, app=app)
    return rows, summary


async def _events(
    request: Request, log: AppLog, *, project: str, app_id: str, after: int
) -> AsyncIterator[dict[str, str]]:
    source: Reader = request.app.state.source
    env = request.app.state.templates.env
    poll: float = request.app.state.live_poll
    known = {s.seq: _key(s) for s in log.step_list()[-WATCHED:] if s.seq <= after}
    last = after
    while not await request.is_disconnected():
        seen = source.changes()  # before reading: a change during the read ends the next wait
        new, changed = await run_in_threadpool(_changes, source, log, known, last)
        if new or changed:
            rows, summary = await run_in_threadpool(
                functools.partial(
                    render_changes, env, source, log, project=project, app_id=app_id, new=new,
                    changed=changed,
                )
            )  # fmt: skip
            for step in [*new, *changed]:
                known[step.seq] = _key(step)
            if new:
                last = new[-1].seq
            yield {"event": "step", "data": rows}
            yield {"event": "summary", "data": summary}
        if source.pushes:
            await anyio.to_thread.run_sync(
                source.wait, seen, PUSH_WAIT, abandon_on_cancel=True, limiter=_waiters()
            )
        else:
            await asyncio.sleep(poll)


def live_response(
    request: Request, log: AppLog, *, project: str, app_id: str, after: int
) -> EventSourceResponse:
    return EventSourceResponse(
        _events(request, log, project=project, app_id=app_id, after=after), ping=15
    )
