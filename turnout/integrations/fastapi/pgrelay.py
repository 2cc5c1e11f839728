"""``PostgresRelay``: a served run followed from any worker on any host, through PostgreSQL's
``NOTIFY``/``LISTEN``.

Each worker opens two connections of its own (not from the persister's pool):

* the **writer** sends the events of the runs of this worker (``pg_notify`` on a channel per
  application, in batches, one transaction each, in the order they were published) and holds,
  for each run going on here, a shared advisory lock on the application's key; whatever is
  queued (locks, batches, unlocks) goes in one round trip, in pipeline mode. The lock is
  what "a run is going on" means to other workers; PostgreSQL drops it with the connection, so
  a worker that dies (even by ``SIGKILL``) stops holding it at once.
* the **listener** ``LISTEN``\\ s on the channels the streams of this worker follow.

A message is ``<bus>:<number>:<part>:<parts>:<event>:<JSON>``; the JSON (ASCII) is cut into
parts below ``NOTIFY``'s 8000-byte payload limit and joined again by the follower, so an item or
a state of any size goes through (at the cost of one notification per 7,000 bytes).

A follower ``LISTEN``\\ s first, then looks for the lock: none held means no run goes on (the
committed state, and the end). Otherwise it relays events until the run's end marker. Every
``check_interval`` seconds without an event it looks again; when the lock is gone without an
end marker, it sends itself a marker through the same queue: notifications arrive in commit
order, so once its marker is back, every event of the run that was committed has been seen,
and the stream ends with ``worker_lost`` and the committed state.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Hashable
from dataclasses import dataclass, field
from typing import Any

from turnout.integrations._guard import missing_extra

try:
    import psycopg
    from psycopg import sql
except ImportError as _error:
    raise missing_extra(
        "turnout.integrations.fastapi.pgrelay", 'pip install "turnout[postgres]"', _error
    ) from _error

from turnout.integrations.fastapi.relay import Committed
from turnout.integrations.fastapi.streaming import EventBus, sse_message

__all__ = ["PostgresRelay"]

_PART = 7000  # characters of JSON per notification (ASCII), under the 8000-byte payload limit
_BATCH = 200  # operations per round trip at most
_END, _MARK = "_end", "_mark"  # control events, never shown to a stream
# What a follower passes on. Anyone who can connect to the database can NOTIFY on a channel:
# other names, and data that is not JSON, are dropped.
_EVENTS = frozenset({"step_begin", "item", "step_end", "state", "error"})
_HELD = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND objsubid = 1 AND classid = %s AND objid = %s "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))"
)


@dataclass(kw_only=True, slots=True)
class _Message:
    """A message being joined from its parts."""

    event: str
    parts: list[str] = field(default_factory=list)


class _Publisher:
    """What a relay attaches to a bus: its events become notifications."""

    def __init__(self, relay: PostgresRelay, key: Hashable) -> None:
        self._relay = relay
        self.key = relay.lock_key(key)
        self.channel = relay.channel(key)
        self.name = uuid.uuid4().hex[:12]
        self.number = 0
        loop = asyncio.get_running_loop()
        self.locked: asyncio.Future[None] = loop.create_future()
        self.locked.add_done_callback(_retrieved)  # a failed lock only hides the run
        relay.submit(("lock", self.key, self.locked))

    def publish(self, event: str, data: Any) -> None:
        self.number += 1
        self._relay.notify(self.channel, f"{self.name}:{self.number}", event, json.dumps(data))

    def close(self) -> None:
        self.publish(_END, None)
        self._relay.submit(("unlock", self.key, None))


class PostgresRelay:
    """Carries run events between the workers (and hosts) that share one PostgreSQL database.

    Args:
        conninfo: the database (``postgresql://...``), the persister's.
        namespace: names the channels and locks; servers of different application tables
            should use different ones (``turnout serve`` uses the table prefix).
        check_interval: seconds a follower waits without an event before it checks that the
            worker running the app is alive.
        connect_kwargs: more ``psycopg.AsyncConnection.connect`` arguments.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        namespace: str = "turnout",
        check_interval: float = 1.0,
        connect_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if check_interval <= 0:
            raise ValueError(
                f"PostgresRelay(check_interval={check_interval!r}): give a positive number of "
                f"seconds"
            )
        self._conninfo = conninfo
        self._namespace = namespace
        self.check_interval = check_interval
        self._connect_kwargs = dict(connect_kwargs or {})
        self._queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._followers: dict[str, set[asyncio.Queue[str]]] = {}
        self._changes: list[tuple[str, str, asyncio.Future[None]]] = []
        self._wake = f"turnout_wake_{uuid.uuid4().hex}"
        self._start = asyncio.Lock()
        self._closed = False

    # -- names -------------------------------------------------------------------------------------

    def _digest(self, key: Hashable) -> bytes:
        pk, app_id = key if isinstance(key, tuple) else (None, key)
        text = json.dumps([self._namespace, pk, app_id])
        return hashlib.sha256(text.encode()).digest()

    def channel(self, key: Hashable) -> str:
        """The ``NOTIFY`` channel of application ``key`` (``(partition_key, app_id)``)."""
        return "turnout_" + self._digest(key).hex()[:40]

    def lock_key(self, key: Hashable) -> int:
        """The advisory lock (a signed 64-bit key) held while application ``key`` runs."""
        return int.from_bytes(self._digest(key)[:8], "big", signed=True)

    # -- the Relay protocol ------------------------------------------------------------------------

    def attach(self, bus: EventBus, key: Hashable) -> None:
        if not any(isinstance(s, _Publisher) for s in bus.sinks):
            self._started_writer()
            bus.forward(_Publisher(self, key))

    async def ready(self, bus: EventBus) -> None:
        # Bounded and quiet: with the database away the run goes on, unseen by followers.
        locks = [sink.locked for sink in bus.sinks if isinstance(sink, _Publisher)]
        if locks:
            await asyncio.wait(locks, timeout=max(5.0, self.check_interval))

    async def follow(self, key: Hashable, committed: Committed) -> AsyncIterator[dict[str, str]]:
        channel = self.channel(key)
        queue: asyncio.Queue[str] = asyncio.Queue()
        try:
            await self._subscribe(channel, queue)
            held = await self._held(self.lock_key(key))
        except psycopg.Error as exc:
            self._unsubscribe(channel, queue)
            trouble = {
                "error": "relay_unavailable",
                "message": f"cannot follow runs of other workers ({type(exc).__name__}: "
                f"{exc}); the state that follows is the last committed step",
            }
            yield sse_message("error", trouble)
            yield sse_message("state", await committed())
            return
        try:
            if not held:
                yield sse_message("state", await committed())
                return
            view = await committed()
            yield sse_message(
                "following", {"app_id": view["app_id"], "sequence_id": view["sequence_id"]}
            )
            async for event, data in self._relayed(key, channel, queue):
                if event is None:
                    lost = {
                        "error": "worker_lost",
                        "message": "the worker running this application stopped before the "
                        "run ended; the state that follows is its last committed step, from "
                        "which the next request goes on",
                    }
                    yield sse_message("error", lost)
                    yield sse_message("state", await committed())
                    return
                yield {"event": event, "data": data}
        finally:
            self._unsubscribe(channel, queue)

    async def aclose(self) -> None:
        self._closed = True
        for task in (self._writer, self._listener):
            if task is not None:
                task.cancel()
                # A listener that failed has told its followers already.
                with contextlib.suppress(asyncio.CancelledError, psycopg.Error):
                    await task

    # -- following ---------------------------------------------------------------------------------

    async def _relayed(
        self, key: Hashable, channel: str, queue: asyncio.Queue[str]
    ) -> AsyncIterator[tuple[str | None, str]]:
        """The run's events as ``(event, JSON)``, until its end; ``(None, "")`` when its worker
        is gone."""
        joining: dict[str, _Message] = {}
        mark: str | None = None
        waits = 0
        while True:
            try:
                payload = await asyncio.wait_for(queue.get(), self.check_interval)
            except TimeoutError:
                if mark is None:
                    if not await self._held(self.lock_key(key)):
                        mark = uuid.uuid4().hex
                        self.notify(channel, f"mark:{mark}", _MARK, json.dumps(mark))
                else:
                    waits += 1
                    if waits > 10:  # the marker never came back: the database is gone too
                        yield None, ""
                        return
                continue
            message = _joined(joining, payload)
            if message is None:
                continue
            event, data = message
            if event == _END:
                return
            if event == _MARK:
                if data == json.dumps(mark):
                    yield None, ""
                    return
                continue
            if event in _EVENTS and _is_json(data):
                yield event, data

    async def _held(self, key: int) -> bool:
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._started_writer()
        self.submit(("held", key, answer))
        return await answer

    async def _subscribe(self, channel: str, queue: asyncio.Queue[str]) -> None:
        followers = self._followers.setdefault(channel, set())
        followers.add(queue)
        if len(followers) == 1:
            await self._change("LISTEN", channel)

    def _unsubscribe(self, channel: str, queue: asyncio.Queue[str]) -> None:
        # Not waited for: this runs as a stream closes, maybe cancelled.
        followers = self._followers.get(channel, set())
        followers.discard(queue)
        if not followers and not self._closed:
            self._followers.pop(channel, None)
            self._request("UNLISTEN", channel)

    def _request(self, verb: str, channel: str) -> asyncio.Future[None]:
        """Ask the listener to run ``verb channel``; the future is set once it has."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._changes.append((verb, channel, done))
        # A wake sent before the listener LISTENs to it is lost, but then the listener has
        # not read the changes yet either: it reads them before it first waits.
        self.notify(self._wake, "wake", "wake", "null")
        return done

    async def _change(self, verb: str, channel: str) -> None:
        self._started_writer()
        for attempt in range(2):  # a listener found broken now gets one more try, anew
            async with self._start:
                if self._listener is None or self._listener.done():
                    # A listener whose connection broke lost its channels: listen again.
                    again = [c for c in self._followers if c != channel]
                    self._changes = [("LISTEN", c, _settled()) for c in again]
                    self._listener = asyncio.create_task(self._listen())
                    self._listener.add_done_callback(_retrieved)
                listener = self._listener
            done = self._request(verb, channel)
            await asyncio.wait({done, listener}, return_when=asyncio.FIRST_COMPLETED)
            if done.done():
                await done
                return
            done.cancel()
            error = listener.exception()
            if attempt == 1:
                raise error if error is not None else psycopg.OperationalError("relay closed")

    async def _connect(self, name: str) -> Any:
        options = {"application_name": name, **self._connect_kwargs, "autocommit": True}
        return await psycopg.AsyncConnection.connect(self._conninfo, **options)

    async def _listen(self) -> None:
        conn = await self._connect("turnout-relay-listener")
        async with conn:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._wake)))
            while True:
                changes, self._changes = self._changes, []
                for verb, channel, done in changes:
                    await conn.execute(sql.SQL(verb + " {}").format(sql.Identifier(channel)))
                    if not done.done():
                        done.set_result(None)
                # stop_after=1: the generator ends after the batch it received, never in the
                # middle of one (leaving it there drops the rest of the batch); a wake only
                # brings the loop back here to apply the changes.
                async for note in conn.notifies(stop_after=1):
                    for queue in self._followers.get(note.channel, ()):
                        queue.put_nowait(note.payload)

    # -- writing -----------------------------------------------------------------------------------

    def submit(self, op: tuple[Any, ...]) -> None:
        """Queue ``op`` for the writer connection: ``("notify", channel, payload)``,
        ``("lock" | "unlock" | "held", key, future | None)``."""
        self._queue.put_nowait(op)

    def notify(self, channel: str, name: str, event: str, data: str) -> None:
        """Queue ``data`` (JSON) as message ``name`` on ``channel``, in parts."""
        pieces = [data[i : i + _PART] for i in range(0, len(data), _PART)] or [""]
        for index, piece in enumerate(pieces):
            header = f"{name}:{index}:{len(pieces)}:{event}:"
            self.submit(("notify", channel, header + piece))

    def _started_writer(self) -> None:
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        while True:
            try:
                conn = await self._connect("turnout-relay-writer")
            except psycopg.OperationalError:
                await asyncio.sleep(self.check_interval)  # the database is away: retry
                continue
            async with conn:
                with contextlib.suppress(psycopg.OperationalError):
                    await self._drain(conn)
            # The connection broke, and the locks it held with it: followers elsewhere will
            # see these runs as lost, and the runs go on here (their steps are saved).

    async def _drain(self, conn: Any) -> None:
        while True:
            ops = [await self._queue.get()]
            while not self._queue.empty() and len(ops) < _BATCH:
                ops.append(self._queue.get_nowait())
            await _send(conn, ops)


async def _send(conn: Any, ops: list[tuple[Any, ...]]) -> None:
    """Send ``ops`` in order, in one round trip (psycopg's pipeline mode): each run of
    notifications in one transaction (one commit), each lock, unlock or check after the
    notifications queued before it have committed, so a follower that finds a run's lock gone
    has its last events queued already. Each op's future gets its answer."""
    answers: list[tuple[Any, Any, asyncio.Future[Any] | None]] = []
    try:
        async with conn.pipeline():
            index = 0
            while index < len(ops):
                batch: list[tuple[str, str]] = []
                while index < len(ops) and ops[index][0] == "notify":
                    batch.append((ops[index][1], ops[index][2]))
                    index += 1
                if batch:
                    async with conn.transaction(), conn.cursor() as cur:
                        await cur.executemany("SELECT pg_notify(%s, %s)", batch)
                if index < len(ops):
                    kind, key, answer = ops[index]
                    answers.append((kind, await _run(conn, kind, key), answer))
                    index += 1
    except Exception as exc:
        for kind, _, answer in ops:
            if kind != "notify" and answer is not None and not answer.done():
                answer.set_exception(exc)
        raise
    for kind, cursor, answer in answers:
        if answer is None or answer.done():
            continue
        if kind == "held":
            row = await cursor.fetchone()
            answer.set_result(bool(row and row[0]))
        else:
            answer.set_result(None)


async def _run(conn: Any, kind: str, key: int) -> Any:
    """Queue op ``kind`` in the pipeline; its cursor (a check's answer, read once sent)."""
    if kind == "lock":
        return await conn.execute("SELECT pg_advisory_lock_shared(%s)", (key,))
    if kind == "unlock":
        return await conn.execute("SELECT pg_advisory_unlock_shared(%s)", (key,))
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return await conn.execute(_HELD, (unsigned >> 32, unsigned & 0xFFFFFFFF))


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _settled() -> asyncio.Future[None]:
    return asyncio.get_running_loop().create_future()


def _retrieved(done: asyncio.Future[Any]) -> None:
    """Mark a failure as seen: a listener's (``_change`` reports it to the follower) or a
    run's lock (its followers elsewhere see no run)."""
    if not done.cancelled():
        done.exception()


def _joined(joining: dict[str, _Message], payload: str) -> tuple[str, str] | None:
    """Add one notification to the messages being joined; a whole message once complete."""
    try:
        bus, number, index, count, event, piece = payload.split(":", 5)
        at, total = int(index), int(count)
    except ValueError:
        return None  # not a relay message
    name = f"{bus}:{number}"
    message = joining.setdefault(name, _Message(event=event))
    if at != len(message.parts):
        joining.pop(name, None)  # a part lost (a follower that joined mid-message)
        return None
    message.parts.append(piece)
    if len(message.parts) < total:
        return None
    del joining[name]
    return message.event, "".join(message.parts)
