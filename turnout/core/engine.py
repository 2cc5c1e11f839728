"""The one step algorithm, and the run loops, shared by the sync and async drivers.

Every step runs through ``StepEngine._step`` (or ``_stream`` for a streaming action), written as
``async`` code. The async drivers (``astep``, ``arun``, ...) await it. The sync drivers run the
very same coroutine with ``drive``: one ``send(None)``, which completes at once because in sync
mode nothing in it suspends (sync actions are called directly, sync hooks too, and retry delays
use ``time.sleep``). Anything that would suspend — an async action or hook — is refused before the
step starts, with ``AsyncRequiredError`` naming the async method to use instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Generator
from typing import TYPE_CHECKING, Any, TypeVar

from turnout.core.action import Action
from turnout.core.context import _CURRENT, StepScope
from turnout.core.errors import ActionTimeoutError, AsyncRequiredError
from turnout.core.hooks import HookSet, hook_error
from turnout.core.retry import describe_exception
from turnout.core.state import RawChange, State, as_changes
from turnout.core.step import ActionSpec, finish, prepare, run_action
from turnout.core.streaming import StreamDone, StreamReader, open_stream
from turnout.core.suspension import SuspensionRecord, _Suspended, journal_of, record_of, save_record

if TYPE_CHECKING:
    from turnout.core.graph import ApplicationGraph

__all__ = ["StepEngine", "StepTuple", "drive", "drive_iteration"]

logger = logging.getLogger("turnout")

StepTuple = tuple[Action, "dict[str, Any] | None", State]
Final = StepTuple | tuple[None, None, State]
T = TypeVar("T")
UNKNOWN: Any = object()
_NO_KWARGS: dict[str, Any] = {}  # shared by steps without inputs; never mutated
_RETRY: Any = object()
_NO_HOOKS = HookSet(())


def drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that does not suspend to its end, synchronously."""
    try:
        coro.send(None)
    except StopIteration as stop:
        value: T = stop.value
        return value
    coro.close()
    raise AsyncRequiredError(
        "a synchronous call awaited something asynchronous; use the async method "
        "(astep, arun, aiterate, astream_result) instead"
    )


def drive_iteration(steps: AsyncGenerator[Any, None]) -> Generator[Any, None, Any]:
    """Iterate an async generator that does not suspend, synchronously. A ``StreamDone`` it
    yields ends the iteration and becomes the generator's return value."""
    try:
        while True:
            try:
                steps.__anext__().send(None)
            except StopIteration as stop:
                value = stop.value
            except StopAsyncIteration:
                return None
            else:
                raise AsyncRequiredError(
                    "a synchronous iteration awaited something asynchronous; use the async "
                    "method (aiterate, astream_result, astream_iterate) instead"
                )
            if isinstance(value, _Final):
                return value.value
            yield value
    finally:
        _close(steps)


def _close(steps: AsyncGenerator[Any, None]) -> None:
    with contextlib.suppress(StopIteration, StopAsyncIteration, RuntimeError):
        steps.aclose().send(None)


class _Final:
    """Marks the last value of an iteration: what ``run`` would return."""

    __slots__ = ("value",)

    def __init__(self, value: Final) -> None:
        self.value = value


def async_required(spec: ActionSpec, call: str) -> AsyncRequiredError:
    """The error for a sync call that reached an async action."""
    return AsyncRequiredError(
        f"action {spec.name!r} is async; run it with an async method: "
        f"{call.replace('app.', 'await app.a', 1)}...)"
    )


class StepEngine:
    """The run-time half of ``Application``: position, state and the step algorithm."""

    _graph: ApplicationGraph
    _entrypoint: str
    _specs: dict[str, ActionSpec]
    _spec_of: dict[int, ActionSpec]
    _fixed_next: dict[str, Action]
    _state: State
    _app_id: str
    _partition_key: str | None
    _sequence_id: int | None
    _prior: str | None
    _next: Any
    _route: Action | None
    _last_changes: tuple[RawChange, ...]
    _hooks: HookSet
    _has_hooks: bool
    _halt_requested: bool
    _stop_requested: bool
    _suspension: SuspensionRecord | None = None  # the step waiting for resume(), if any
    _answers: tuple[dict[str, Any], ...] = ()  # the answers the next step's suspend calls get
    _journal_carry: int | None = None

    @property
    def app_id(self) -> str:
        return self._app_id

    @property
    def partition_key(self) -> str | None:
        return self._partition_key

    @property
    def state(self) -> State:
        """The current state."""
        return self._state

    def get_next_action(self) -> Action | None:
        """The action the next step would run, or ``None`` when the run is over."""
        if self._next is UNKNOWN:
            if self._route is not None:
                self._next = self._route
            else:
                self._next = self._graph.next_action(self._prior, self._state, self._entrypoint)
        nxt: Action | None = self._next
        return nxt

    # -- one step --------------------------------------------------------------------------------

    def _begin(
        self, spec: ActionSpec, action: Action, inputs: dict[str, Any], call: str, sync: bool
    ) -> StepScope:
        if sync and spec.is_async:
            raise async_required(spec, call)
        sequence_id = 0 if self._sequence_id is None else self._sequence_id + 1
        step = StepScope(self, sequence_id, spec)
        if not sync:
            # Async hook methods fired from a library's worker threads run on this loop.
            step.loop = asyncio.get_running_loop()
        step.base = self._state._tracking_from_here()
        if self._answers:
            step.answers, self._answers = self._answers, ()
        step.kwargs = prepare(spec, inputs, step, call) if spec.takes_inputs else _NO_KWARGS
        return step

    async def _step(self, inputs: dict[str, Any], call: str, sync: bool) -> StepTuple | None:
        """Run the next step; ``None`` when there is no next action."""
        if self._suspension is not None:
            return self._waiting()
        action = self._next
        if action is UNKNOWN:
            action = self.get_next_action()
        if action is None:
            return None
        spec = self._spec_of[id(action)]
        if spec.streaming:
            done = None
            # Run as a plain step, its items reach no caller: no stream hooks fire (as in Burr).
            async for value in self._stream(spec, action, inputs, call, sync, announce=False):
                done = value
            assert isinstance(done, StreamDone)
            return done.step
        step = self._begin(spec, action, inputs, call, sync)
        while True:
            if self._has_hooks:
                await self._pre_step(step)
            self._sequence_id = step.sequence_id
            token = _CURRENT.set(step)
            try:
                if spec.prepare is not None:
                    await spec.prepare(step)
                if spec.fn is not None:  # a plain @action function: call it directly
                    kwargs = step.kwargs
                    returned = spec.fn(step.base, **kwargs) if kwargs else spec.fn(step.base)
                else:
                    returned = run_action(spec, step.base, step.kwargs)
                if spec.is_async:
                    returned = await _within_timeout(spec, returned)
                result, state, changes = finish(spec, step.base, returned)
            except BaseException as exc:
                _CURRENT.reset(token)
                if type(exc) is _Suspended:
                    return await self._suspended(step, exc, None)
                outcome = await self._failed(step, exc, sync, retryable=True)
                if outcome is _RETRY:
                    continue
                return outcome
            _CURRENT.reset(token)
            if self._has_hooks or step._pending:
                return await self._succeeded(step, result, state, changes, None)
            return self._commit(step, result, state, changes)

    async def _stream(
        self, spec: ActionSpec, action: Action, inputs: dict[str, Any], call: str, sync: bool,
        *, announce: bool = True,
    ) -> AsyncIterator[Any]:  # fmt: skip
        """Run the next step, a streaming action: yield its items, then a ``StreamDone``.
        ``announce``: fire the stream hooks (``pre_start_stream``, ...), for a streamed step."""
        step = self._begin(spec, action, inputs, call, sync)
        hooks = self._hooks if announce else _NO_HOOKS
        while True:
            if self._has_hooks:
                await self._pre_step(step)
            self._sequence_id = step.sequence_id
            stream_payload = {
                "action": spec.name,
                "sequence_id": step.sequence_id,
                "app_id": self._app_id,
                "partition_key": self._partition_key,
            }
            if hooks.implements("pre_start_stream"):
                await hooks.fire("pre_start_stream", **stream_payload)
            reader = StreamReader(spec.action, spec.name)
            count = 0
            started = time.time()
            first_item_time = 0.0
            deadline = None if spec.timeout is None else time.monotonic() + spec.timeout
            token = _CURRENT.set(step)
            raw_items = None
            try:
                if spec.prepare is not None:
                    await spec.prepare(step)
                raw_items = open_stream(spec.action, step.base, step.kwargs, spec.reads)
                while True:
                    try:
                        if spec.is_async:
                            raw = await _next_within(spec, raw_items, deadline)
                        else:
                            raw = next(raw_items)
                    except (StopIteration, StopAsyncIteration):
                        break
                    except Exception as exc:
                        if not reader.salvages():
                            raise
                        _log_salvaged(spec, exc, count)
                        break
                    item = reader.item(raw)
                    if item is None:
                        continue
                    if count == 0:
                        first_item_time = time.time()
                    count += 1
                    # Before the caller gets the item, as on Burr: a caller that stops reading
                    # after n items has had n post_stream_item calls (items_streamed says n).
                    if hooks.implements("post_stream_item"):
                        await hooks.fire(
                            "post_stream_item",
                            item=dict(item) if isinstance(item, dict) else item,
                            item_index=count - 1,
                            stream_initialize_time=started,
                            first_stream_item_start_time=first_item_time,
                            **stream_payload,
                        )
                    _CURRENT.reset(token)  # the caller's code between items is not in the step
                    yield item
                    token = _CURRENT.set(step)
                result, state, changes = finish(
                    spec, step.base, reader.returned(spec.action, step.base)
                )
            except BaseException as exc:
                _reset_quietly(token)
                # The caller closed the stream (or a hook failed): close the action's stream
                # now, so its cleanup (and its spans) ends before the step does.
                await _close_stream(raw_items)
                end = {**stream_payload, "items_streamed": count, "exception": exc}
                if type(exc) is _Suspended:
                    end["exception"] = None
                    yield StreamDone(await self._suspended(step, exc, end if announce else None))
                    return
                outcome = await self._failed(step, exc, sync, retryable=count == 0, stream_end=end)
                if outcome is _RETRY:
                    continue
                yield StreamDone(outcome)
                return
            _CURRENT.reset(token)
            done_end = (
                {**stream_payload, "items_streamed": count, "exception": None} if announce else None
            )
            yield StreamDone(await self._succeeded(step, result, state, changes, done_end))
            return

    async def _pre_step(self, step: StepScope) -> None:
        await self._hooks.fire(
            "pre_run_step",
            app_id=self._app_id,
            partition_key=self._partition_key,
            sequence_id=step.sequence_id,
            state=self._state,
            action=step.action,
            inputs=dict(step.kwargs),
            attempt=step.attempt,
        )

    def _post_payload(
        self, step: StepScope, result: dict[str, Any] | None, state: State,
        changes: tuple[RawChange, ...], exception: BaseException | None, will_retry: bool,
    ) -> dict[str, Any]:  # fmt: skip
        return {
            "app_id": self._app_id,
            "partition_key": self._partition_key,
            "sequence_id": step.sequence_id,
            "state": state,
            "action": step.action,
            "inputs": dict(step.kwargs),
            "result": dict(result) if isinstance(result, dict) else result,
            "exception": exception,
            "changes": as_changes(changes),
            "attempt": step.attempt,
            "will_retry": will_retry,
        }

    def _commit(
        self, step: StepScope, result: dict[str, Any], state: State, changes: tuple[RawChange, ...]
    ) -> StepTuple:
        name = step.spec.name
        self._state = state
        self._prior = name
        self._route = None
        self._next = self._fixed_next.get(name, UNKNOWN)
        self._last_changes = changes
        if step.halt_requested:
            self._halt_requested = True
        return step.spec.action, result, state

    async def _succeeded(
        self, step: StepScope, result: dict[str, Any], state: State,
        changes: tuple[RawChange, ...], stream_end: dict[str, Any] | None,
    ) -> StepTuple:  # fmt: skip
        """Commit the step, then fire its post hooks; hook errors are raised after all ran.
        A streamed step's ``post_run_step`` comes before its ``post_end_stream``, as on Burr."""
        await step.flush()
        out = self._commit(step, result, state, changes)
        errors = list(step.hook_errors)
        if self._hooks.implements("post_run_step"):
            payload = self._post_payload(step, result, state, changes, None, False)
            errors += await self._hooks.collect("post_run_step", **payload)
        if stream_end is not None and self._hooks.implements("post_end_stream"):
            errors += await self._hooks.collect("post_end_stream", **stream_end)
        if errors:
            raise hook_error(errors)
        return out

    def _waiting(self) -> StepTuple:
        """What a step of a suspended application returns without running: the suspension."""
        pending = self._suspension
        assert pending is not None
        action = self._graph.get_action(pending.action)
        assert action is not None
        return action, pending, self._state  # type: ignore[return-value]

    async def _suspended(
        self, step: StepScope, signal: _Suspended, stream_end: dict[str, Any] | None
    ) -> StepTuple:
        """End the step as suspended (``turnout.core.suspension``): the state stays the entry
        state, the suspension is journaled, then the hooks (the persister's among them) run."""
        await step.flush()
        record = record_of(step, signal)
        access = journal_of(getattr(self, "_persister", None))
        if access is not None:
            await save_record(access, record)
        self._suspension = record
        self._route = step.action  # the same action runs again on resume()
        self._next = UNKNOWN
        self._last_changes = ()
        self._journal_carry = step.sequence_id  # its durable calls replay on the rerun
        errors = list(step.hook_errors)
        if self._hooks.implements("post_run_step"):
            payload = self._post_payload(step, None, self._state, (), None, False)
            errors += await self._hooks.collect("post_run_step", **payload, suspension=record)
        if stream_end is not None and self._hooks.implements("post_end_stream"):
            errors += await self._hooks.collect("post_end_stream", **stream_end)
        if errors:
            raise hook_error(errors)
        return self._waiting()

    async def _failed(
        self, step: StepScope, exc: BaseException, sync: bool, *, retryable: bool,
        stream_end: dict[str, Any] | None = None,
    ) -> StepTuple | Any:  # fmt: skip
        """Decide what a failed attempt leads to: another attempt (``_RETRY``), a routed step
        (its tuple), or the exception raised again. ``stream_end``: the ``post_end_stream``
        payload of a streamed step, fired after its ``post_run_step``."""
        await step.flush()  # their errors are dropped: the step's own failure is what matters
        step.hook_errors = ()
        spec = step.spec
        policy = spec.retry
        will_retry = bool(
            retryable
            and policy is not None
            and isinstance(exc, Exception)
            and policy.should_retry(exc, step.attempt)
        )
        route = None
        if not will_retry and isinstance(exc, Exception):
            route = self._graph.route_exception(spec.name, exc)
        state = self._state
        changes: tuple[RawChange, ...] = ()
        if route is not None:
            condition, target = route
            error = describe_exception(
                exc, action=spec.name, sequence_id=step.sequence_id, attempts=step.attempt
            )
            state = state.update(**{condition.state_key: error})
            changes = (("set", condition.state_key, error),)
            self._state = state
            self._prior = spec.name
            self._route = target
            self._next = target
            self._last_changes = changes
        if self._has_hooks:
            payload = self._post_payload(step, None, state, changes, exc, will_retry)
            await _fire_after_failure(self._hooks, "post_run_step", payload)
        if stream_end is not None and self._hooks.implements("post_end_stream"):
            await _fire_after_failure(self._hooks, "post_end_stream", stream_end)
        if will_retry:
            assert policy is not None
            delay = policy.delay(step.attempt)
            step.attempt += 1
            step.halt_requested = False  # the scope carries on: span ids stay unique
            if delay > 0:
                if sync:
                    time.sleep(delay)
                else:
                    await asyncio.sleep(delay)
            return _RETRY
        if route is not None:
            return step.action, None, state
        if isinstance(exc, Exception):  # as Burr does: the log names the action that failed
            logger.error(
                "action %r failed at sequence id %d of application %r: %s: %s",
                spec.name, step.sequence_id, self._app_id, type(exc).__name__, exc,
            )  # fmt: skip
        raise exc

    # -- runs ------------------------------------------------------------------------------------

    def _halt(self, out: StepTuple, before: frozenset[str], after: frozenset[str]) -> Final | None:
        """What a run returns if it must stop after the step ``out``; ``None`` to go on.

        An action's ``request_halt()`` counts as ``halt_after``; ``halt_before`` is checked
        first: the next action is returned, not run.
        """
        if self._halt_requested or self._suspension is not None:
            self._halt_requested = False
            return out
        if before:
            nxt = self.get_next_action()
            if nxt is not None and nxt.name in before:
                return nxt, None, self._state
        if self._prior in after:
            return out
        return None

    def _stop_now(self) -> bool:
        if self._stop_requested:
            self._stop_requested = False
            return True
        return False

    async def _run(
        self, before: frozenset[str], after: frozenset[str], inputs: dict[str, Any], call: str,
        sync: bool,
    ) -> Final:  # fmt: skip
        last: Final = (None, None, self._state)
        self._halt_requested = False
        while not self._stop_now():
            out = await self._step(inputs, call, sync)
            if out is None:
                break
            last = out
            halt = self._halt(out, before, after)
            if halt is not None:
                return halt
        return last

    async def _iterate(
        self, before: frozenset[str], after: frozenset[str], inputs: dict[str, Any], call: str,
        sync: bool,
    ) -> AsyncGenerator[Any, None]:  # fmt: skip
        """Yield each step's tuple, then a ``_Final`` with what ``run`` would return."""
        last: Final = (None, None, self._state)
        self._halt_requested = False
        while not self._stop_now():
            out = await self._step(inputs, call, sync)
            if out is None:
                break
            yield out
            last = out
            halt = self._halt(out, before, after)
            if halt is not None:
                yield _Final(halt)
                return
        yield _Final(last)


async def _within_timeout(spec: ActionSpec, awaitable: Any) -> Any:
    if spec.timeout is None:
        return await awaitable
    deadline = time.monotonic() + spec.timeout
    try:
        return await asyncio.wait_for(awaitable, spec.timeout)
    except TimeoutError as exc:
        if time.monotonic() < deadline:
            raise  # the action's own TimeoutError, before the limit
        raise _timed_out(spec) from exc


async def _close_stream(stream: Any) -> None:
    """Close a streaming action's (async) generator now (its ``finally`` blocks run), not at
    garbage collection; a failure to close is logged: the stream's own error is what matters."""
    try:
        if hasattr(stream, "aclose"):
            await stream.aclose()
        elif hasattr(stream, "close"):
            stream.close()
    except Exception:
        logger.warning("closing a streaming action failed", exc_info=True)


async def _next_within(spec: ActionSpec, items: Any, deadline: float | None) -> Any:
    if deadline is None:
        return await items.__anext__()
    remaining = deadline - time.monotonic()
    try:
        return await asyncio.wait_for(items.__anext__(), max(remaining, 0))
    except TimeoutError as exc:
        if time.monotonic() < deadline:
            raise  # the action's own TimeoutError, before the limit
        raise _timed_out(spec) from exc


def _timed_out(spec: ActionSpec) -> ActionTimeoutError:
    assert spec.timeout is not None
    return ActionTimeoutError(spec.name, spec.timeout)


def _log_salvaged(spec: ActionSpec, exc: Exception, count: int) -> None:
    logger.warning(
        "streaming action %r raised %s after %d item(s) and its outcome; the step completes "
        "with that outcome, as in Burr: %s",
        spec.name,
        type(exc).__name__,
        count,
        exc,
        exc_info=exc,
    )


def _reset_quietly(token: Any) -> None:
    # The token may already be reset, or belong to another context (a stream resumed elsewhere).
    with contextlib.suppress(RuntimeError, ValueError):
        _CURRENT.reset(token)


async def _fire_after_failure(
    hooks: HookSet, name: str, payload: dict[str, Any], **extra: Any
) -> None:
    """Fire hooks about a failure: the failure, not a hook's error, is what propagates."""
    try:
        await hooks.fire(name, **payload, **extra)
    except Exception:
        logger.exception("hook %s failed while reporting a failed step", name)
