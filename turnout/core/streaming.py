"""Streaming actions: actions that yield items (tokens, partial answers) before their result.

A function streaming action is a generator (sync or async) that yields intermediate items as
``dict`` (or ``(dict, None)``) and, last, ``(result, new_state)``::

    @streaming_action(reads=["prompt"], writes=["reply"])
    def reply(state: State) -> Generator[dict | tuple[dict, State], None, None]:
        text = ""
        for token in model(state["prompt"]):
            text += token
            yield {"delta": token}
        yield {"reply": text}, state.update(reply=text)

A class streaming action implements ``stream_run`` (yielding dicts; the last one is also the
result) and ``update``. ``Application.stream_result`` returns a container to iterate over the
items; its ``get()`` returns ``(result, state)`` once the stream is done.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

from turnout.core.action import (
    Action,
    FunctionBasedAction,
    SingleStepAction,
    _attach,
    _check_retry,
    _check_timeout,
    _names,
)
from turnout.core.errors import ActionDefinitionError, InvalidActionReturnError
from turnout.core.retry import RetryPolicy
from turnout.core.state import State

if TYPE_CHECKING:
    from turnout.core.engine import StepTuple

__all__ = [
    "AsyncStreamingResultContainer",
    "FunctionBasedStreamingAction",
    "SingleStepStreamingAction",
    "StreamingAction",
    "StreamingResultContainer",
    "streaming_action",
]


class StreamingAction(Action):
    """A class streaming action: ``stream_run`` yields dicts, the last of which is the result
    handed to ``update``. ``stream_run`` may be a generator or an async generator; like
    ``Action.run`` it receives only the keys in ``reads``."""

    streaming = True
    streams_result: bool = False
    """Hand the last dict (the result) out as an item too. Off by default, as in Burr, where the
    caller gets every dict but the last; turnout's LLM adapters turn it on so that a stream's
    consumer sees the final output."""

    @abc.abstractmethod
    def stream_run(
        self, state: State, **run_kwargs: Any
    ) -> Generator[dict[str, Any], None, None] | AsyncGenerator[dict[str, Any], None]:
        """Yield items; the last one is the result."""

    def run(self, state: State, **run_kwargs: Any) -> dict[str, Any]:
        raise ActionDefinitionError(
            f"{type(self).__name__} is a StreamingAction: the engine calls stream_run(), not run()."
        )

    def is_async(self) -> bool:
        return inspect.isasyncgenfunction(self.stream_run)


class SingleStepStreamingAction(SingleStepAction):
    """A class streaming action in one method, like a ``@streaming_action`` function:
    ``stream_run_and_update`` yields items as ``dict`` (or ``(dict, None)``), then
    ``(result, new_state)`` last. It may be a generator or an async generator and receives the
    whole state."""

    streaming = True

    @abc.abstractmethod
    def stream_run_and_update(
        self, state: State, **run_kwargs: Any
    ) -> Generator[Any, None, None] | AsyncGenerator[Any, None]:
        """Yield items, then ``(result, new_state)``."""

    def run_and_update(self, state: State, **run_kwargs: Any) -> tuple[dict[str, Any], State]:
        raise ActionDefinitionError(
            f"{type(self).__name__} is a SingleStepStreamingAction: the engine calls "
            f"stream_run_and_update(), not run_and_update()."
        )

    def is_async(self) -> bool:
        return inspect.isasyncgenfunction(self.stream_run_and_update)


class FunctionBasedStreamingAction(FunctionBasedAction):
    """The action behind a ``@streaming_action``-decorated generator function."""

    streaming = True

    def is_async(self) -> bool:
        return inspect.isasyncgenfunction(self.fn)


class streaming_action:  # a decorator class, lower-case like Burr's
    """Turn a generator function (sync or async) into a streaming action.

    It yields intermediate items as ``dict`` or ``(dict, None)``, then ``(result, state)`` last.
    The arguments are those of ``@action``.
    """

    def __init__(
        self,
        reads: list[str],
        writes: list[str],
        tags: list[str] | None = None,
        *,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> None:
        owner = "@streaming_action(...)"
        self.reads = list(_names(reads, "reads", owner))
        self.writes = list(_names(writes, "writes", owner))
        self.tags = list(_names(tags or (), "tags", owner))
        self.retry = _check_retry(retry, owner)
        self.timeout = _check_timeout(timeout, owner)

    def __call__(self, fn: Callable[..., Any]) -> Any:
        if not (inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)):
            raise ActionDefinitionError(
                f"@streaming_action on {getattr(fn, '__qualname__', fn)!r}: the function must be "
                f"a generator (use `yield`); for a plain function use @action(...)."
            )
        spec = FunctionBasedStreamingAction(
            fn, self.reads, self.writes, tags=self.tags, retry=self.retry, timeout=self.timeout
        )
        _attach(fn, spec)
        return fn


def open_stream(act: Action, base: State, kwargs: dict[str, Any], reads: tuple[str, ...]) -> Any:
    """Start a streaming action: the (async) generator of its raw yields."""
    if isinstance(act, FunctionBasedStreamingAction):
        return act.fn(base, **act.bound_params, **kwargs)
    if isinstance(act, SingleStepStreamingAction):
        return act.stream_run_and_update(base, **kwargs)
    assert isinstance(act, StreamingAction)
    return act.stream_run(base.subset(*reads), **kwargs)


class StreamReader:
    """Sorts a streaming action's raw yields into items and its final ``(result, state)``."""

    __slots__ = ("_class_based", "_hold_last", "_name", "final", "last_item")

    def __init__(self, act: Action, name: str) -> None:
        self._class_based = not isinstance(act, FunctionBasedStreamingAction)
        # A StreamingAction's last dict is its result, not an item: as in Burr, each item is
        # handed on when the next one arrives, and the last one never is. (Parallel actions,
        # single-step, yield their result as their last item.)
        self._hold_last = (
            self._class_based and not act.single_step and not getattr(act, "streams_result", False)
        )
        self._name = name
        self.final: tuple[dict[str, Any], State] | None = None
        self.last_item: dict[str, Any] | None = None
        if isinstance(act, SingleStepStreamingAction):  # yields like a @streaming_action function
            self._class_based = False

    def item(self, raw: Any) -> dict[str, Any] | None:
        """The item to hand to the caller, or ``None`` when there is none to hand on yet (the
        final yield, or the first dict of a ``StreamingAction``)."""
        if self.final is not None:
            raise InvalidActionReturnError(
                f"streaming action {self._name!r} yielded {raw!r} after its final "
                f"(result, state); the final yield must be the last one."
            )
        if isinstance(raw, dict):
            previous, self.last_item = self.last_item, raw
            return previous if self._hold_last else raw
        if not self._class_based and isinstance(raw, tuple) and len(raw) == 2:
            first, second = raw
            if second is None and isinstance(first, dict):
                self.last_item = first
                return first
            if isinstance(second, State):
                self.final = (first, second)
                return None
        expected = (
            "a dict" if self._class_based else "a dict, (dict, None), or finally (result, state)"
        )
        raise InvalidActionReturnError(
            f"streaming action {self._name!r} yielded {type(raw).__name__}: {raw!r} (it "
            f"returned a non-dict result); it must yield {expected}."
        )

    def salvages(self) -> bool:
        """Whether a stream that raised already produced its outcome, so the step completes
        with it (as in Burr): a final ``(result, state)``, or for a ``StreamingAction`` a last
        dict to hand to ``update`` (a generator's ``finally`` may yield it while an error
        propagates)."""
        if not self._class_based:
            return self.final is not None
        # Only Burr's kind of StreamingAction: a parallel action's or an adapter's stream
        # (``streams_result``) that fails has no outcome to salvage.
        return self._hold_last and self.last_item is not None

    def returned(self, act: Action, base: State) -> Any:
        """What ``finish`` checks: ``(result, state)`` once the stream is exhausted."""
        if not self._class_based:
            if self.final is None:
                raise InvalidActionReturnError(
                    f"streaming action {self._name!r} ended without yielding (result, state) "
                    f"last; finish with `yield {{...}}, state.update(...)`."
                )
            return self.final
        result = self.last_item if self.last_item is not None else {}
        return result, act.update(result, base)


class StreamDone:
    """The last value a step's stream produces: the finished step (``None`` if none ran)."""

    __slots__ = ("step",)

    def __init__(self, step: StepTuple | None) -> None:
        self.step = step


class _Finished:
    """The outcome of a step that did not stream (or of a halt before any step)."""

    __slots__ = ("result", "state")

    def __init__(self, result: dict[str, Any] | None, state: State) -> None:
        self.result = result
        self.state = state


class _ContainerBase:
    __slots__ = ("_app", "_done", "_error_delivered", "_result", "_source", "_state")

    def __init__(self, app: Any, source: Any) -> None:
        self._app = app
        self._source = source
        self._done = isinstance(source, _Finished)
        self._result: dict[str, Any] | None = source.result if self._done else None
        self._state: State = source.state if self._done else app.state
        self._error_delivered = False

    def _absorb(self, value: Any) -> dict[str, Any] | None:
        """An item to hand out, or ``None`` after recording the final step."""
        if isinstance(value, StreamDone):
            self._done = True
            if value.step is not None:
                self._result, self._state = value.step[1], value.step[2]
            else:
                self._state = self._app.state
            return None
        item: dict[str, Any] = value
        return item

    @property
    def failed(self) -> bool:
        """Whether the stream raised (the exception already reached the caller)."""
        return self._error_delivered

    def _failed(self) -> None:
        self._done = True
        self._error_delivered = True
        self._result, self._state = None, self._app.state


class StreamingResultContainer(_ContainerBase):
    """Iterate over a streaming step's items; ``get()`` returns ``(result, state)``.

    The step is committed (and its hooks fire) when the stream ends. An exception inside the
    stream is raised once, from whichever of iteration or ``get()`` meets it first; ``get()``
    afterwards returns ``(None, state)`` with the application's state after the failure.
    """

    __slots__ = ("_iterator",)

    def __init__(self, app: Any, source: Any, iterator: Iterator[Any] | None) -> None:
        super().__init__(app, source)
        self._iterator = iterator

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while not self._done:
            assert self._iterator is not None
            try:
                value = next(self._iterator)
            except StopIteration:
                self._done = True
                return
            except BaseException:
                self._failed()
                raise
            item = self._absorb(value)
            if item is not None:
                yield item

    def get(self) -> tuple[dict[str, Any] | None, State]:
        """Drain the stream if needed and return ``(result, state)``."""
        for _ in self:
            pass
        return self._result, self._state


class AsyncStreamingResultContainer(_ContainerBase):
    """The async form of ``StreamingResultContainer``: ``async for`` and ``await get()``."""

    __slots__ = ()

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        while not self._done:
            try:
                value = await self._source.__anext__()
            except StopAsyncIteration:
                self._done = True
                return
            except BaseException:
                self._failed()
                raise
            item = self._absorb(value)
            if item is not None:
                yield item

    async def get(self) -> tuple[dict[str, Any] | None, State]:
        """Drain the stream if needed and return ``(result, state)``."""
        async for _ in self:
            pass
        return self._result, self._state
