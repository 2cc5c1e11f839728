"""Any LangChain ``Runnable`` as an action: ``RunnableAction`` and ``StreamingRunnableAction``.

The input spec says what the runnable receives, the output spec where its output goes (the
vocabulary of ``turnout.integrations._mapping``); the step's run configuration comes from
``step_config``, so the runnable's runs become child spans of the step.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, TypeAlias

from langchain_core.messages import BaseMessageChunk, message_chunk_to_message
from langchain_core.output_parsers.transform import BaseCumulativeTransformOutputParser
from langchain_core.outputs import GenerationChunk
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig, RunnableSequence

from turnout.core.action import Action
from turnout.core.errors import ActionDefinitionError
from turnout.core.retry import RetryPolicy
from turnout.core.state import State
from turnout.core.streaming import StreamingAction
from turnout.integrations._mapping import (
    InputSpec,
    OutputSpec,
    declared_names,
    input_reader,
    output_writer,
)
from turnout.integrations._notes import add_note
from turnout.integrations.langchain._config import _step_config
from turnout.integrations.langchain._tracing import SpanCallbackHandler

__all__ = ["Aggregate", "RunnableAction", "StreamingRunnableAction", "runnable_action"]

Aggregate: TypeAlias = "Literal['auto', 'add', 'last'] | Callable[[list[Any]], Any]"


class _RunnableBase(Action):
    """What both runnable actions share: the specs, the config, reads/writes, ``update``."""

    def __init__(
        self,
        runnable: Runnable[Any, Any],
        input: InputSpec,
        output: OutputSpec,
        *,
        reads: Sequence[str] | None = None,
        writes: Sequence[str] | None = None,
        inputs: Sequence[str] = (),
        name: str | None = None,
        config: RunnableConfig | None = None,
        is_async: bool = False,
        tags: Sequence[str] = (),
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__()
        owner = f"{type(self).__name__}({name or _label(runnable)})"
        if not isinstance(runnable, Runnable):
            raise TypeError(
                f"{owner}: expected a LangChain Runnable, got {type(runnable).__name__}: "
                f"{runnable!r}; wrap a plain function with RunnableLambda(fn)"
            )
        if config is not None and not isinstance(config, dict):
            raise TypeError(
                f"{owner}: config must be a RunnableConfig dict (callbacks, tags, metadata, "
                f"run_name, ...), got {type(config).__name__}: {config!r}"
            )
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ActionDefinitionError(
                f"{owner}: retry= takes a RetryPolicy(max_attempts=..., ...), got {retry!r}"
            )
        if isinstance(inputs, str):
            raise TypeError(f"{owner}: inputs must be a list of names; write inputs=[{inputs!r}]")
        tags = declared_names(tags, "tags", owner) or []
        self.runnable = runnable
        self._read, self._reads = input_reader(input, reads=reads, owner=owner)
        self._write, self._writes = output_writer(output, writes=writes, owner=owner)
        self._inputs = list(inputs)
        self._config = config
        self._async = bool(is_async)
        self._tags = list(tags)
        self._owner = owner
        self.retry = retry
        if name is not None:
            self._name = name

    @property
    def reads(self) -> list[str]:
        return list(self._reads)

    @property
    def writes(self) -> list[str]:
        return list(self._writes)

    @property
    def inputs(self) -> list[str]:
        return list(self._inputs)

    @property
    def tags(self) -> list[str]:
        return list(self._tags)

    def is_async(self) -> bool:
        return self._async

    def update(self, result: dict[str, Any], state: State) -> State:
        """Write ``result["output"]`` (the runnable's output) with the output spec."""
        return self._write(result["output"], state)

    def _value(self, state: State, inputs: dict[str, Any]) -> Any:
        value = self._read(state)
        if not inputs:
            return value
        if not isinstance(value, dict):
            raise TypeError(
                f"{self._owner}: the inputs {sorted(inputs)} can only be added to a dict input, "
                f"but the input spec gave {type(value).__name__}; use a list or mapping spec"
            )
        return {**value, **inputs}

    @contextmanager
    def _running(self) -> Iterator[RunnableConfig]:
        """The step's run configuration; ends the spans left open and notes errors."""
        config, handler = _step_config(self._config, run_name=None, tags=self._tags)
        try:
            yield config
        except BaseException as exc:
            _end_all(handler, exc)
            self._note(exc)
            raise
        _end_all(handler, None)

    def _unnamed_label(self) -> str:
        return _label(self.runnable)

    def _note(self, error: BaseException) -> None:
        if isinstance(error, Exception):  # not KeyboardInterrupt, GeneratorExit, ...
            name = self.name if self.has_name else self._owner
            add_note(error, f"raised by the runnable of action {name!r}")


class RunnableAction(_RunnableBase):
    """A LangChain ``Runnable`` (chain, prompt, model, parser, tool, retriever...) as an action.

    Args:
        runnable: what to run: ``invoke`` (or ``ainvoke`` with ``is_async=True``).
        input: what the runnable receives: a state key, a list of keys (a dict of them), a
            mapping of input names to keys / ``from_state`` / ``from_value``, or a function of
            the state (then pass ``reads``).
        output: where its output goes: a key (replaced), ``update_state`` / ``append_state`` /
            ``extend_state``, a mapping of output fields (dict keys or attributes) to those, or
            a function ``(output, state) -> state`` (then pass ``writes``).
        reads: state keys read, added to those the input spec names.
        writes: state keys written, added to those the output spec names.
        inputs: names of application inputs (``app.run(inputs={...})``) added to a dict input.
        name: the action's name (else given by ``with_actions(name=...)``).
        config: a ``RunnableConfig`` (callbacks, tags, metadata, ...) merged into each step's.
        is_async: run with ``ainvoke``; the action must then run with ``app.arun`` / ``astep``.
        tags: action tags (``halt_after=["@tag:x"]``), also passed to LangChain as tags.
        retry: a ``RetryPolicy`` for failed steps.

    The step's result is ``{"output": <the runnable's output>}``.
    """

    def run(self, state: State, **inputs: Any) -> Any:
        """``{"output": runnable.invoke(...)}``, or a coroutine of it when async."""
        if self._async:
            return self._arun(state, inputs)
        value = self._value(state, inputs)
        with self._running() as config:
            output = self.runnable.invoke(value, config=config)
        return {"output": output}

    async def _arun(self, state: State, inputs: dict[str, Any]) -> dict[str, Any]:
        value = self._value(state, inputs)
        with self._running() as config:
            output = await self.runnable.ainvoke(value, config=config)
        return {"output": output}


class StreamingRunnableAction(_RunnableBase, StreamingAction):
    """A ``Runnable`` streamed token by token: a streaming action.

    Takes ``RunnableAction``'s arguments, and ``aggregate``. Each chunk of ``stream``
    (``astream`` with ``is_async=True``) is yielded as ``{"delta": <its text, "" if none>,
    "chunk": <chunk>}``; the last item, which is also the step's result, is ``{"output": ...}``,
    what ``invoke`` would return, made from the chunks by ``aggregate``:

    - ``"add"``: the chunks added up as LangChain adds them: chat model chunks summed and made
      the message ``invoke`` returns (an ``AIMessage``), strings joined, lists concatenated,
      dicts merged key by key;
    - ``"last"``: the last chunk, for runnables whose every chunk is the whole output so far
      (``JsonOutputParser``, ``PydanticOutputParser`` and the other cumulative parsers);
    - ``"auto"`` (the default): ``"last"`` when the runnable, or the last step of a
      ``RunnableSequence``, is a cumulative parser without ``diff=True``, else ``"add"``;
    - a function of the list of chunks returning the output.
    """

    streams_result = True  # the final {"output": ...} is an item too (see StreamingAction)

    def __init__(
        self,
        runnable: Runnable[Any, Any],
        input: InputSpec,
        output: OutputSpec,
        *,
        aggregate: Aggregate = "auto",
        **options: Any,
    ) -> None:
        super().__init__(runnable, input, output, **options)
        if not callable(aggregate) and aggregate not in ("auto", "add", "last"):
            raise ActionDefinitionError(
                f"{self._owner}: aggregate is {aggregate!r}; give 'auto', 'add', 'last' or a "
                f"function of the list of chunks"
            )
        if aggregate == "auto":
            aggregate = "last" if _is_cumulative(runnable) else "add"
        self.aggregate: Literal["add", "last"] | Callable[[list[Any]], Any] = aggregate

    def stream_run(self, state: State, **inputs: Any) -> Any:
        """The stream's items (an async generator when async)."""
        if self._async:
            return self._astream(state, inputs)
        return self._stream(state, inputs)

    def _stream(self, state: State, inputs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        value = self._value(state, inputs)
        total = _Total(self.aggregate)
        # The runnable's stream is held here, not by the loop alone: left early, the spans end
        # (innermost first, marked cancelled) before LangChain hears of it and ends its runs.
        chunks: Any = None
        try:
            with self._running() as config:
                chunks = self.runnable.stream(value, config=config)
                for chunk in chunks:
                    total.add(chunk)
                    yield {"delta": _text(chunk), "chunk": chunk}
        finally:
            if chunks is not None:
                chunks.close()
        yield {"output": total.value()}

    async def _astream(self, state: State, inputs: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        value = self._value(state, inputs)
        total = _Total(self.aggregate)
        chunks: Any = None  # held here: see _stream
        try:
            with self._running() as config:
                chunks = self.runnable.astream(value, config=config)
                async for chunk in chunks:
                    total.add(chunk)
                    yield {"delta": _text(chunk), "chunk": chunk}
        finally:
            if chunks is not None:
                await chunks.aclose()
        yield {"output": total.value()}


def _is_cumulative(runnable: Any) -> bool:
    """Whether each chunk ``runnable`` streams is its whole output so far."""
    while True:
        if isinstance(runnable, RunnableSequence):
            runnable = runnable.last
        elif isinstance(runnable, RunnableBinding):  # .with_config(), .bind(), ...
            runnable = runnable.bound
        else:
            break
    return isinstance(runnable, BaseCumulativeTransformOutputParser) and not runnable.diff


def runnable_action(
    runnable: Runnable[Any, Any],
    input: InputSpec,
    output: OutputSpec,
    *,
    stream: bool = False,
    **options: Any,
) -> RunnableAction | StreamingRunnableAction:
    """``StreamingRunnableAction(...)`` if ``stream`` else ``RunnableAction(...)``; the other
    arguments are theirs."""
    cls = StreamingRunnableAction if stream else RunnableAction
    return cls(runnable, input, output, **options)


def _end_all(handler: SpanCallbackHandler | None, exception: BaseException | None) -> None:
    if handler is not None:
        handler.end_all(exception)


def _label(runnable: Any) -> str:
    get_name = getattr(runnable, "get_name", None)
    return str(get_name()) if callable(get_name) else type(runnable).__name__


def _text(chunk: Any) -> str:
    if isinstance(chunk, str):
        return chunk
    if isinstance(chunk, BaseMessageChunk | GenerationChunk):
        return str(chunk.text)
    return ""


class _Total:
    """The output made of the chunks: added up as LangChain adds them (``+``, dicts merged key
    by key), the last one, or what a function of all of them returns."""

    __slots__ = ("_chunks", "_how", "_value")

    def __init__(self, how: Literal["add", "last"] | Callable[[list[Any]], Any]) -> None:
        self._how = how
        self._value: Any = None
        self._chunks: list[Any] = []

    def add(self, chunk: Any) -> None:
        if self._how == "add":
            self._value = chunk if self._value is None else _add(self._value, chunk)
        elif self._how == "last":
            self._value = chunk
        else:
            self._chunks.append(chunk)

    def value(self) -> Any:
        if callable(self._how):
            return self._how(self._chunks)
        if isinstance(self._value, BaseMessageChunk):
            return message_chunk_to_message(self._value)
        return self._value


def _add(left: Any, right: Any) -> Any:
    if isinstance(left, dict) and isinstance(right, dict):
        merged = dict(left)
        for key, value in right.items():
            merged[key] = _add(merged[key], value) if key in merged else value
        return merged
    try:
        return left + right
    except TypeError:  # chunks that do not add up (e.g. objects): the last one is the output
        return right
