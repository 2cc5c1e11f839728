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
import types
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

from turnout.core._action_checks import Declaration
from turnout.core.action import (
    Action,
    FunctionBasedAction,
    SingleStepAction,
    _attach,
)
from turnout.core.errors import ActionDefinitionError, InvalidActionReturnError
from turnout.core.state import State
from turnout.core.typing import (
    load_typing_adapter,
    result_type_of,
    run_input,
    update_input,
    update_output,
)

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

    def run(self, state: State, **run_kwargs: Any) -> Any:
        """Run the stream to its end and return its last dict, the result (Burr's, for using a
        streaming action where a plain one is expected); when ``stream_run`` is async, a
        coroutine to await. Applications call ``stream_run`` and hand out the items."""
        stream = self.stream_run(state, **run_kwargs)
        if isinstance(stream, AsyncGenerator):
            return _last_async(stream)
        last = None
        for last in stream:  # noqa: B007 - the loop keeps the last item
            pass
        return last

    def is_async(self) -> bool:
        return inspect.isasyncgenfunction(self.stream_run)


async def _last_async(stream: AsyncGenerator[Any, None]) -> Any:
    last = None
    async for last in stream:  # noqa: B007 - the loop keeps the last item
        pass
    return last


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

    def run_and_update(self, state: State, **run_kwargs: Any) -> Any:
        """Run the stream to its end and return its final ``(result, state)`` (Burr's, for using
        a streaming action where a plain one is expected); when the stream is async, a
        coroutine to await. Applications call ``stream_run_and_update`` and hand out the items."""
        stream = self.stream_run_and_update(state, **run_kwargs)
        reader = StreamReader(self, self.name or type(self).__name__)
        if isinstance(stream, AsyncGenerator):
            return _read_async(reader, stream, self, state)
        for raw in stream:
            reader.item(raw)
        return reader.returned(self, state)

    def is_async(self) -> bool:
        return inspect.isasyncgenfunction(self.stream_run_and_update)


async def _read_async(
    reader: StreamReader, stream: AsyncGenerator[Any, None], act: Action, state: State
) -> Any:
    async for raw in stream:
        reader.item(raw)
    return reader.returned(act, state)


class FunctionBasedStreamingAction(FunctionBasedAction, SingleStepStreamingAction):
    """The action behind a ``@streaming_action``-decorated generator function (a
    ``SingleStepStreamingAction``, as in Burr)."""

    streaming = True

    def stream_run_and_update(
        self, state: State, **run_kwargs: Any
    ) -> Generator[Any, None, None] | AsyncGenerator[Any, None]:
        stream: Generator[Any, None, None] | AsyncGenerator[Any, None]
        stream = self.fn(state, **self.bound_params, **run_kwargs)
        return stream

    def run_and_update(self, state: State, **run_kwargs: Any) -> Any:
        return SingleStepStreamingAction.run_and_update(self, state, **run_kwargs)

    def is_async(self) -> bool:
        return inspect.isasyncgenfunction(self.fn)


class streaming_action(Declaration):  # a decorator class, lower-case like Burr's
    """Turn a generator function (sync or async) into a streaming action.

    It yields intermediate items as ``dict`` or ``(dict, None)``, then ``(result, state)`` last.
    The arguments are those of ``@action``.
    """

    _owner = "@streaming_action(...)"

    @staticmethod
    def pydantic(
        reads: list[str],
        writes: list[str],
        state_input_type: type[Any],
        state_output_type: type[Any],
        stream_type: Any,
        tags: list[str] | None = None,
    ) -> Callable[[Callable[..., Any]], Any]:
        """A streaming action whose generator takes a pydantic model and yields
        ``(item, None)`` pairs, then ``(item, model)`` last (Burr's decorator; see
        ``turnout.integrations.pydantic.pydantic_streaming_action``, which it calls).
        ``stream_type``: the items' model, a union of models, or ``dict``."""
        adapter = load_typing_adapter("pydantic")
        decorator: Callable[[Callable[..., Any]], Any] = adapter.pydantic_streaming_action(
            reads=reads,
            writes=writes,
            state_input_type=state_input_type,
            state_output_type=state_output_type,
            stream_type=stream_type,
            tags=tags,
        )
        return decorator

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
    return act.stream_run(run_input(act, base.subset(*reads)), **kwargs)


class StreamReader:
    """Sorts a streaming action's raw yields into items and its final ``(result, state)``."""

    __slots__ = ("_class_based", "_hold_last", "_item_type", "_name", "final", "last_item")

    def __init__(self, act: Action, name: str) -> None:
        self._class_based = not isinstance(act, FunctionBasedStreamingAction)
        # What an item may be: a dict, or what the action's schema names (a pydantic model, a
        # union of models: @streaming_action.pydantic's stream_type).
        self._item_type = result_type_of(act.schema)
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
        if isinstance(raw, (dict, self._item_type)) and not isinstance(raw, tuple):
            previous, self.last_item = self.last_item, raw
            return previous if self._hold_last else raw
        if not self._class_based and isinstance(raw, tuple) and len(raw) == 2:
            first, second = raw
            if second is None and isinstance(first, (dict, self._item_type)):
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
        return result, update_output(act, act.update(result, update_input(act, base)), base)


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


class _FixedState:
    """Stands for the application in a container built with Burr's constructor: the state to
    report when the stream ends without a final state."""

    __slots__ = ("state",)

    def __init__(self, state: State) -> None:
        self.state = state


def _burr_stream(
    generator: Iterator[tuple[Any, State | None]],
    process_result: Callable[[dict[str, Any], State], tuple[dict[str, Any], State]],
) -> Generator[Any, None, None]:
    """Burr's container protocol: ``(item, None)`` pairs, then ``(result, state)``, which
    ``process_result`` turns into the final outcome."""
    for item, state in generator:
        if state is not None:
            yield _Finished(*process_result(item, state))
            return
        yield item


async def _aburr_stream(
    generator: AsyncIterator[tuple[Any, State | None]],
    process_result: Callable[[dict[str, Any], State], tuple[dict[str, Any], State]],
) -> AsyncGenerator[Any, None]:
    async for item, state in generator:
        if state is not None:
            yield _Finished(*process_result(item, state))
            return
        yield item


class _ContainerBase:
    __slots__ = (
        "_app",
        "_done",
        "_error_delivered",
        "_on_end",
        "_result",
        "_source",
        "_state",
    )

    def _setup(self, app: Any, source: Any, on_end: Callable[..., Any] | None = None) -> None:
        self._app = app
        self._source = source
        self._done = isinstance(source, _Finished)
        self._result: dict[str, Any] | None = source.result if self._done else None
        self._state: State = source.state if self._done else app.state
        self._error_delivered = False
        self._on_end = on_end  # Burr's callback(result, state, error), called once at the end

    def _absorb(self, value: Any) -> dict[str, Any] | None:
        """An item to hand out, or ``None`` after recording the final step."""
        if isinstance(value, StreamDone):
            self._done = True
            if value.step is not None:
                self._result, self._state = value.step[1], value.step[2]
            else:
                self._state = self._app.state
            return None
        if isinstance(value, _Finished):  # the end of a stream given to Burr's constructor
            self._done = True
            self._result, self._state = value.result, value.state
            return None
        item: dict[str, Any] = value
        return item

    def _ending(self) -> Callable[..., Any] | None:
        """The end callback, if it has not been called yet (it is called once)."""
        on_end, self._on_end = self._on_end, None
        return on_end

    @property
    def failed(self) -> bool:
        """Whether the stream raised (the exception already reached the caller)."""
        return self._error_delivered

    def _closed(self) -> Callable[..., Any] | None:
        """Record a stream stopped by ``close()``; the end callback to call, if not yet."""
        self._done = True
        self._result, self._state = None, self._app.state
        return self._ending()

    def _failed(self) -> None:
        self._done = True
        self._error_delivered = True
        self._result, self._state = None, self._app.state


class StreamingResultContainer(_ContainerBase):
    """Iterate over a streaming step's items; ``get()`` returns ``(result, state)``.

    ``Application.stream_result`` returns one. The step is committed (and its hooks fire) when
    the stream ends. An exception inside the stream is raised once, from whichever of
    iteration or ``get()`` meets it first; ``get()`` afterwards returns ``(None, state)`` with
    the application's state after the failure.

    Built directly, it takes Burr's arguments: a generator of ``(item, None)`` pairs ending
    with ``(result, state)``, the state to report if the stream ends without one,
    ``process_result(result, state) -> (result, state)`` for the final pair, and
    ``callback(result, state, error)``, called once when the iteration ends (``error`` is the
    exception that ended it, if any).
    """

    # Burr's container is generic in state and item types: `StreamingResultContainer[S, I]`.
    __class_getitem__: Any = classmethod(types.GenericAlias)

    __slots__ = ("_iterator", "_walker")

    def __init__(
        self,
        streaming_result_generator: Iterator[tuple[Any, State | None]],
        initial_state: State,
        process_result: Callable[[dict[str, Any], State], tuple[dict[str, Any], State]],
        callback: Callable[[dict[str, Any] | None, State, BaseException | None], Any],
    ) -> None:
        stream = _burr_stream(streaming_result_generator, process_result)
        self._setup(_FixedState(initial_state), stream, callback)
        self._iterator: Iterator[Any] | None = stream
        self._walker: Iterator[dict[str, Any]] | None = None

    @classmethod
    def _of_step(
        cls, app: Any, source: Any, iterator: Iterator[Any] | None
    ) -> StreamingResultContainer:
        """The container of an application's streaming step."""
        container = cls.__new__(cls)
        container._setup(app, source)
        container._iterator = iterator
        container._walker = None
        return container

    @staticmethod
    def pass_through(results: dict[str, Any], final_state: State) -> StreamingResultContainer:
        """A container with no items whose ``get()`` returns ``(results, final_state)``."""
        return StreamingResultContainer._of_step(
            _FixedState(final_state), _Finished(results, final_state), None
        )

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # The end callback is called in the except clause and after the loop, not in a
        # `finally` holding the exception: that would keep this frame, and the stream, alive in
        # a reference cycle after the caller abandons the iteration (which must close it now).
        try:
            while not self._done:
                assert self._iterator is not None
                try:
                    value = next(self._iterator)
                except StopIteration:
                    self._done = True
                    break
                except BaseException:
                    self._failed()
                    raise
                item = self._absorb(value)
                if item is not None:
                    yield item
        except BaseException as error:
            on_end = self._ending()
            if on_end is not None:
                on_end(self._result, self._state, error)
            raise
        on_end = self._ending()
        if on_end is not None:
            on_end(self._result, self._state, None)

    def __next__(self) -> dict[str, Any]:
        """The next item, as Burr's container is an iterator too (``next(container)``)."""
        if self._walker is None:
            self._walker = iter(self)
        return next(self._walker)

    def get(self) -> tuple[dict[str, Any] | None, State]:
        """Drain the stream if needed and return ``(result, state)``."""
        for _ in self:
            pass
        return self._result, self._state

    def close(self) -> None:
        """Stop the stream now, if it has not ended (leaving ``with container:`` calls it): the
        step ends as cancelled (not committed; hooks see ``GeneratorExit``), the action's open
        spans end innermost first, and ``get()`` returns ``(None, state)``."""
        if self._done:
            return
        for stream in (self._walker, self._iterator):
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        self._walker = self._iterator = None
        on_end = self._closed()
        if on_end is not None:
            on_end(self._result, self._state, None)

    def __enter__(self) -> StreamingResultContainer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncStreamingResultContainer(_ContainerBase):
    """The async form of ``StreamingResultContainer``: ``async for`` and ``await get()``.

    Built directly, it takes Burr's arguments (see ``StreamingResultContainer``), with an
    async generator and an async ``callback``.
    """

    # Burr's container is generic in state and item types: `StreamingResultContainer[S, I]`.
    __class_getitem__: Any = classmethod(types.GenericAlias)

    __slots__ = ("_awalker",)

    def __init__(
        self,
        streaming_result_generator: AsyncIterator[tuple[Any, State | None]],
        initial_state: State,
        process_result: Callable[[dict[str, Any], State], tuple[dict[str, Any], State]],
        callback: Callable[[dict[str, Any] | None, State, BaseException | None], Any],
    ) -> None:
        stream = _aburr_stream(streaming_result_generator, process_result)
        self._setup(_FixedState(initial_state), stream, callback)
        self._awalker: AsyncIterator[dict[str, Any]] | None = None

    @classmethod
    def _of_step(cls, app: Any, source: Any) -> AsyncStreamingResultContainer:
        """The container of an application's streaming step."""
        container = cls.__new__(cls)
        container._setup(app, source)
        container._awalker = None
        return container

    @staticmethod
    def pass_through(results: dict[str, Any], final_state: State) -> AsyncStreamingResultContainer:
        """A container with no items whose ``get()`` returns ``(results, final_state)``."""
        return AsyncStreamingResultContainer._of_step(
            _FixedState(final_state), _Finished(results, final_state)
        )

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        # See StreamingResultContainer.__iter__ for why the callback is not in a `finally`.
        try:
            while not self._done:
                try:
                    value = await self._source.__anext__()
                except StopAsyncIteration:
                    self._done = True
                    break
                except BaseException:
                    self._failed()
                    raise
                item = self._absorb(value)
                if item is not None:
                    yield item
        except BaseException as error:
            on_end = self._ending()
            if on_end is not None:
                await on_end(self._result, self._state, error)
            raise
        on_end = self._ending()
        if on_end is not None:
            await on_end(self._result, self._state, None)

    async def __anext__(self) -> dict[str, Any]:
        """The next item (``await anext(container)``), as Burr's container allows."""
        if self._awalker is None:
            self._awalker = aiter(self)
        return await anext(self._awalker)

    async def get(self) -> tuple[dict[str, Any] | None, State]:
        """Drain the stream if needed and return ``(result, state)``."""
        async for _ in self:
            pass
        return self._result, self._state

    async def aclose(self) -> None:
        """Stop the stream now, if it has not ended (see ``StreamingResultContainer.close``);
        leaving ``async with container:`` calls it."""
        if self._done:
            return
        for stream in (self._awalker, self._source):
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        self._awalker = None
        on_end = self._closed()
        if on_end is not None:
            await on_end(self._result, self._state, None)

    close = aclose  # ``await container.close()`` reads like the sync container's

    async def __aenter__(self) -> AsyncStreamingResultContainer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
