"""Actions around LlamaIndex objects: ``query_action``, ``chat_action``, ``retrieve_action``,
and ``ingest_action`` (``workflow_action`` is in ``_workflow``).

Each factory returns a turnout action (a streaming one with ``stream=True``) that reads the
object's input from state with an input spec, calls the object inside ``trace_llamaindex()`` (so
its LlamaIndex spans become child spans of the step) and writes its output, made plain data, with
an output spec. ``is_async=True`` calls the object's async method (``aquery``, ``achat``,
``astream_chat``, ``aretrieve``, ``arun``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Protocol, runtime_checkable

from turnout.core.action import Action, _check_retry
from turnout.core.retry import RetryPolicy
from turnout.core.state import State
from turnout.core.streaming import StreamingAction
from turnout.integrations._inputs import input_names, reads_besides, with_inputs
from turnout.integrations._mapping import declared_names, input_reader, output_writer
from turnout.integrations._notes import add_note
from turnout.integrations.llamaindex._convert import (
    node_to_dict,
    response_to_dict,
    to_chat_message,
    to_document,
    to_query,
)
from turnout.integrations.llamaindex._loop import closing_leaked_loop
from turnout.integrations.llamaindex._tracing import trace_llamaindex

__all__ = [
    "ChatEngineLike",
    "IngestionPipelineLike",
    "QueryEngineLike",
    "RetrieverLike",
    "chat_action",
    "ingest_action",
    "query_action",
    "retrieve_action",
]


@runtime_checkable
class QueryEngineLike(Protocol):
    """A query engine (``index.as_query_engine()``, any ``BaseQueryEngine``)."""

    def query(self, str_or_query_bundle: Any) -> Any: ...
    async def aquery(self, str_or_query_bundle: Any) -> Any: ...


@runtime_checkable
class ChatEngineLike(Protocol):
    """A chat engine (``index.as_chat_engine()``, ``SimpleChatEngine``, ...)."""

    def chat(self, message: str, chat_history: Any = None) -> Any: ...
    async def achat(self, message: str, chat_history: Any = None) -> Any: ...
    def stream_chat(self, message: str, chat_history: Any = None) -> Any: ...
    async def astream_chat(self, message: str, chat_history: Any = None) -> Any: ...


@runtime_checkable
class RetrieverLike(Protocol):
    """A retriever (``index.as_retriever()``, any ``BaseRetriever``)."""

    def retrieve(self, str_or_query_bundle: Any) -> Any: ...
    async def aretrieve(self, str_or_query_bundle: Any) -> Any: ...


@runtime_checkable
class IngestionPipelineLike(Protocol):
    """An ``IngestionPipeline``."""

    def run(self, *args: Any, **kwargs: Any) -> Any: ...
    async def arun(self, *args: Any, **kwargs: Any) -> Any: ...


Call = Callable[[Any], Any]


class _Spec:
    """What both action classes share: the object's calls and the input and output specs."""

    def __init__(
        self,
        *,
        owner: str,
        call: Call,
        input: Any,
        output: Any,
        unwrap: Callable[[dict[str, Any]], Any],
        reads: Sequence[str] | None,
        writes: Sequence[str] | None,
        history: str | None = None,
        inputs: Sequence[str] = (),
    ) -> None:
        self.owner = owner
        self.call = call
        self.inputs = input_names(inputs, owner)
        self.read, self.spec_keys = input_reader(input, reads=reads, owner=owner)
        self.reads = reads_besides(self.spec_keys, self.inputs)
        self.write, self.writes = output_writer(output, writes=writes, owner=owner)
        self.unwrap = unwrap
        self.history = history
        if history is not None:
            self.reads = [*self.reads, *([history] if history not in self.reads else [])]
            self.writes = [*self.writes, *([history] if history not in self.writes else [])]

    def update(self, result: dict[str, Any], state: State) -> State:
        if self.history is None:
            return self.write(self.unwrap(result), state)
        # The message is read again from the state the step started from, before any write
        # (or, when it came from an input, the result carries it).
        message = result["message"] if "message" in result else self.read(state)
        exchange = [
            to_chat_message({"role": "user", "content": message}),
            to_chat_message({"role": "assistant", "content": result["response"]}),
        ]
        state = self.write(self.unwrap(result), state)
        return state.extend(**{self.history: exchange})


class _Common:
    """What both action classes share: the spec, sync or async, tags, and ``update``."""

    def __init__(
        self,
        spec: _Spec,
        *,
        is_async: bool,
        tags: Sequence[str],
        name: str | None,
        retry: RetryPolicy | None,
    ) -> None:
        super().__init__()
        self._spec = spec
        self._async = is_async
        self._tags = declared_names(tags, "tags", spec.owner) or []
        self.retry = _check_retry(retry, spec.owner)
        if name is not None:
            self._name: str | None = name

    @property
    def reads(self) -> list[str]:
        return list(self._spec.reads)

    @property
    def writes(self) -> list[str]:
        return list(self._spec.writes)

    @property
    def inputs(self) -> list[str] | tuple[list[str], list[str]]:
        return list(self._spec.inputs)

    @property
    def tags(self) -> list[str]:
        return list(self._tags)

    def is_async(self) -> bool:
        return self._async

    def _input(self, state: State, given: dict[str, Any]) -> Any:
        spec = self._spec
        value = with_inputs(
            spec.read, state, given, spec.inputs, spec_keys=spec.spec_keys, owner=spec.owner
        )
        if spec.history is None:
            return value
        past = state[spec.history]
        return value, [to_chat_message(m, owner=spec.owner) for m in past]

    def _noted(self, value: Any, result: Any) -> Any:
        """A chat result carries the user's message when it came from an input (``update``
        appends it to the history and cannot read it from state)."""
        if self._spec.history is None or not self._spec.inputs or not isinstance(result, dict):
            return result
        if "response" not in result:
            return result
        return {**result, "message": value[0]}

    def update(self, result: dict[str, Any], state: State) -> State:
        return self._spec.update(result, state)

    def _unnamed_label(self) -> str:
        return self._spec.owner

    @contextmanager
    def _calling(self, loop: AbstractContextManager[None]) -> Iterator[None]:
        """Trace the object's call and note the action on its errors (``loop``:
        ``closing_leaked_loop()`` around a sync call)."""
        try:
            with trace_llamaindex(), loop:
                yield
        except Exception as error:
            name = self.name if self.has_name else self._spec.owner  # type: ignore[attr-defined]
            add_note(error, f"raised by the LlamaIndex object of action {name!r}")
            raise


class _LlamaIndexAction(_Common, Action):
    """A non-streaming LlamaIndex action (built by the factories of this module)."""

    def run(self, state: State, **run_kwargs: Any) -> Any:
        """The object's output as a result dict (a coroutine producing it when async)."""
        if self._async:
            return self._arun(state, run_kwargs)
        with self._calling(closing_leaked_loop()):
            value = self._input(state, run_kwargs)
            result: dict[str, Any] = self._spec.call(value)
        return self._noted(value, result)

    async def _arun(self, state: State, given: dict[str, Any]) -> dict[str, Any]:
        with self._calling(nullcontext()):
            value = self._input(state, given)
            result: dict[str, Any] = await self._spec.call(value)
        return self._noted(value, result)  # type: ignore[no-any-return]


class _LlamaIndexStreamingAction(_Common, StreamingAction):
    """A streaming LlamaIndex action: ``{"delta": ...}`` items, then the result dict."""

    streams_result = True  # the result dict is an item too (see StreamingAction)

    def stream_run(self, state: State, **run_kwargs: Any) -> Any:
        value = self._input(state, run_kwargs)
        return self._astream(value) if self._async else self._stream(value)

    def _stream(self, value: Any) -> Iterator[dict[str, Any]]:
        with self._calling(closing_leaked_loop()):
            for item in self._spec.call(value):
                yield self._noted(value, item)

    async def _astream(self, value: Any) -> AsyncIterator[dict[str, Any]]:
        with self._calling(nullcontext()):
            async for item in self._spec.call(value):
                yield self._noted(value, item)


def _build(
    spec: _Spec,
    *,
    stream: bool,
    is_async: bool,
    tags: Sequence[str],
    name: str | None = None,
    retry: RetryPolicy | None = None,
) -> Action:
    cls = _LlamaIndexStreamingAction if stream else _LlamaIndexAction
    return cls(spec, is_async=is_async, tags=tags, name=name, retry=retry)


def _check(obj: Any, protocol: type, owner: str, what: str) -> None:
    if not isinstance(obj, protocol):
        raise TypeError(f"{owner}: {obj!r} is not {what}")


def _same(result: dict[str, Any]) -> Any:
    return result


def _nodes(nodes: Any) -> dict[str, Any]:
    return {"nodes": [node_to_dict(n) for n in nodes]}


def _field(name: str) -> Callable[[dict[str, Any]], Any]:
    return lambda result: result[name]


# -- query engines ---------------------------------------------------------------------------------


def query_action(
    engine: QueryEngineLike,
    *,
    input: Any = "query",
    output: Any = "answer",
    stream: bool = False,
    is_async: bool = False,
    reads: Sequence[str] | None = None,
    writes: Sequence[str] | None = None,
    tags: Sequence[str] = (),
    name: str | None = None,
    retry: RetryPolicy | None = None,
    inputs: Sequence[str] = (),
) -> Action:
    """An action that asks ``engine`` a question from state.

    Its output is ``{"response": text, "source_nodes": [{"text", "score", "id", "metadata"}]}``.

    Args:
        engine: a query engine; for ``stream=True`` build it with ``streaming=True``.
        input: input spec giving the question (a str), e.g. the state key ``"question"``.
        output: output spec for the response dict, e.g. ``"answer"`` or
            ``{"response": "answer", "source_nodes": "sources"}``.
        stream: a streaming action yielding ``{"delta": token}`` items (from ``response_gen``
            or ``async_response_gen()``), then the response dict.
        is_async: call ``aquery`` (run the app with ``arun``/``astream_result``).
        reads: extra state keys (required for a function input spec).
        writes: extra state keys (required for a function output spec).
        tags: the action's tags.
        name: the action's name (else given by ``with_actions(name=...)``).
        retry: a ``RetryPolicy`` for failed steps.
        inputs: names of application inputs the action takes (``app.step(inputs={...})``):
            the input spec reads an input like a state key (it shadows a state key of its
            name), and a mapping input gets the inputs it does not name added.
    """
    owner = f"query_action({type(engine).__name__})"
    _check(engine, QueryEngineLike, owner, "a query engine; build one with index.as_query_engine()")

    def query(value: Any) -> Any:
        return response_to_dict(engine.query(to_query(value, owner=owner)))

    async def aquery(value: Any) -> Any:
        return response_to_dict(await engine.aquery(to_query(value, owner=owner)))

    def stream_query(value: Any) -> Iterator[dict[str, Any]]:
        return _sync_tokens(engine.query(to_query(value, owner=owner)), owner, _QUERY_FIX)

    async def astream_query(value: Any) -> AsyncIterator[dict[str, Any]]:
        response = await engine.aquery(to_query(value, owner=owner))
        async for item in _async_tokens(response, owner, _QUERY_FIX):
            yield item

    calls = {(False, False): query, (False, True): aquery}
    calls |= {(True, False): stream_query, (True, True): astream_query}
    spec = _Spec(
        owner=owner, call=calls[(stream, is_async)], input=input, output=output,
        unwrap=_same, reads=reads, writes=writes, inputs=inputs,
    )  # fmt: skip
    return _build(spec, stream=stream, is_async=is_async, tags=tags, name=name, retry=retry)


_QUERY_FIX = "build the engine with index.as_query_engine(streaming=True)"
_CHAT_FIX = "call a chat engine's stream_chat/astream_chat (stream=True does)"


def _sync_tokens(response: Any, owner: str, fix: str) -> Iterator[dict[str, Any]]:
    tokens = getattr(response, "response_gen", None)
    if tokens is None:
        raise TypeError(f"{owner}: the response ({type(response).__name__}) does not stream; {fix}")
    text = ""
    for delta in tokens:
        text += delta
        yield {"delta": delta}
    yield _streamed(response, text)


async def _async_tokens(response: Any, owner: str, fix: str) -> AsyncIterator[dict[str, Any]]:
    tokens = getattr(response, "async_response_gen", None)
    if tokens is None:
        for item in _sync_tokens(response, owner, fix):
            yield item
        return
    text = ""
    async for delta in tokens():
        text += delta
        yield {"delta": delta}
    yield _streamed(response, text)


def _streamed(response: Any, text: str) -> dict[str, Any]:
    return {
        "response": text,
        "source_nodes": [node_to_dict(n) for n in getattr(response, "source_nodes", None) or []],
    }


# -- chat engines ----------------------------------------------------------------------------------


def chat_action(
    engine: ChatEngineLike,
    *,
    input: Any = "message",
    output: Any = "answer",
    history: str | None = None,
    stream: bool = False,
    is_async: bool = False,
    reads: Sequence[str] | None = None,
    writes: Sequence[str] | None = None,
    tags: Sequence[str] = (),
    name: str | None = None,
    retry: RetryPolicy | None = None,
    inputs: Sequence[str] = (),
) -> Action:
    """An action that sends a message from state to ``engine``.

    Its output is ``{"response": text, "source_nodes": [...]}`` like ``query_action``'s.

    Args:
        engine: a chat engine.
        input: input spec giving the user's message (a str).
        output: output spec for the response dict.
        history: a state key holding the conversation (a list of ``ChatMessage`` or
            ``{"role", "content"}`` dicts). It is passed as ``chat_history=``, so state, not the
            engine's memory, is the conversation; the user message and the reply are appended
            to it as ``ChatMessage``. ``None``: the engine keeps its own memory.
        stream: a streaming action over ``stream_chat``/``astream_chat``: ``{"delta": token}``
            items, then the response dict.
        is_async: call ``achat``/``astream_chat``.
        reads: extra state keys (required for a function input spec).
        writes: extra state keys (required for a function output spec).
        tags: the action's tags.
        name: the action's name (else given by ``with_actions(name=...)``).
        retry: a ``RetryPolicy`` for failed steps.
        inputs: names of application inputs the action takes (``app.step(inputs={...})``):
            the input spec reads an input like a state key (it shadows a state key of its
            name), and a mapping input gets the inputs it does not name added.
    """
    owner = f"chat_action({type(engine).__name__})"
    _check(engine, ChatEngineLike, owner, "a chat engine; build one with index.as_chat_engine()")

    def args(value: Any) -> tuple[str, dict[str, Any]]:
        message, past = value if history is not None else (value, None)
        if not isinstance(message, str):
            raise TypeError(
                f"{owner}: the message is {message!r}; point input= at a state key holding a str"
            )
        return message, ({} if past is None else {"chat_history": past})

    def chat(value: Any) -> Any:
        message, kwargs = args(value)
        return response_to_dict(engine.chat(message, **kwargs))

    async def achat(value: Any) -> Any:
        message, kwargs = args(value)
        return response_to_dict(await engine.achat(message, **kwargs))

    def stream_chat(value: Any) -> Iterator[dict[str, Any]]:
        message, kwargs = args(value)
        return _sync_tokens(engine.stream_chat(message, **kwargs), owner, _CHAT_FIX)

    async def astream_chat(value: Any) -> AsyncIterator[dict[str, Any]]:
        message, kwargs = args(value)
        response = await engine.astream_chat(message, **kwargs)
        async for item in _async_tokens(response, owner, _CHAT_FIX):
            yield item

    calls = {(False, False): chat, (False, True): achat}
    calls |= {(True, False): stream_chat, (True, True): astream_chat}
    spec = _Spec(
        owner=owner, call=calls[(stream, is_async)], input=input, output=output,
        unwrap=_same, reads=reads, writes=writes, inputs=inputs, history=history,
    )  # fmt: skip
    return _build(spec, stream=stream, is_async=is_async, tags=tags, name=name, retry=retry)


# -- retrievers and ingestion pipelines ------------------------------------------------------------


def retrieve_action(
    retriever: RetrieverLike,
    *,
    input: Any = "query",
    output: Any = "nodes",
    is_async: bool = False,
    reads: Sequence[str] | None = None,
    writes: Sequence[str] | None = None,
    tags: Sequence[str] = (),
    name: str | None = None,
    retry: RetryPolicy | None = None,
    inputs: Sequence[str] = (),
) -> Action:
    """An action that retrieves nodes for a query from state.

    Its output is a list of ``{"text", "score", "id", "metadata"}``; the result is
    ``{"nodes": [...]}``.

    Args:
        retriever: a retriever, e.g. ``index.as_retriever(similarity_top_k=2)``.
        input: input spec giving the query (a str).
        output: output spec for the list of nodes, e.g. ``"nodes"`` or
            ``extend_state("context")``.
        is_async: call ``aretrieve``.
        reads: extra state keys (required for a function input spec).
        writes: extra state keys (required for a function output spec).
        tags: the action's tags.
        name: the action's name (else given by ``with_actions(name=...)``).
        retry: a ``RetryPolicy`` for failed steps.
        inputs: names of application inputs the action takes (``app.step(inputs={...})``):
            the input spec reads an input like a state key (it shadows a state key of its
            name), and a mapping input gets the inputs it does not name added.
    """
    owner = f"retrieve_action({type(retriever).__name__})"
    _check(retriever, RetrieverLike, owner, "a retriever; build one with index.as_retriever()")

    def retrieve(value: Any) -> Any:
        return _nodes(retriever.retrieve(to_query(value, owner=owner)))

    async def aretrieve(value: Any) -> Any:
        return _nodes(await retriever.aretrieve(to_query(value, owner=owner)))

    spec = _Spec(
        owner=owner, call=aretrieve if is_async else retrieve, input=input, output=output,
        unwrap=_field("nodes"), reads=reads, writes=writes, inputs=inputs,
    )  # fmt: skip
    return _build(spec, stream=False, is_async=is_async, tags=tags, name=name, retry=retry)


def ingest_action(
    pipeline: IngestionPipelineLike,
    *,
    input: Any = "documents",
    output: Any = "nodes",
    is_async: bool = False,
    reads: Sequence[str] | None = None,
    writes: Sequence[str] | None = None,
    tags: Sequence[str] = (),
    name: str | None = None,
    retry: RetryPolicy | None = None,
    inputs: Sequence[str] = (),
    node_objects: bool = False,
) -> Action:
    """An action that runs an ingestion pipeline over documents from state.

    The documents may be ``Document`` objects, strings, or ``{"text", "metadata", "id"}``
    dicts. Its output is the list of resulting nodes as ``{"text", "score": None, "id",
    "metadata"}`` (embeddings stay in the pipeline's vector store), or with
    ``node_objects=True`` the nodes themselves (``TextNode``, embeddings included), ready for
    ``VectorStoreIndex(nodes=...)`` (turnout's serde stores them as JSON); the result is
    ``{"nodes": [...]}``.

    Args:
        pipeline: an ``IngestionPipeline``.
        input: input spec giving the list of documents.
        output: output spec for the list of nodes.
        is_async: call ``arun``.
        reads: extra state keys (required for a function input spec).
        writes: extra state keys (required for a function output spec).
        tags: the action's tags.
        name: the action's name (else given by ``with_actions(name=...)``).
        retry: a ``RetryPolicy`` for failed steps.
        inputs: names of application inputs the action takes (``app.step(inputs={...})``):
            the input spec reads an input like a state key (it shadows a state key of its
            name), and a mapping input gets the inputs it does not name added.
    """
    owner = f"ingest_action({type(pipeline).__name__})"
    _check(pipeline, IngestionPipelineLike, owner, "an IngestionPipeline")

    def documents(value: Any) -> list[Any]:
        if isinstance(value, str | Mapping) or not isinstance(value, Sequence):
            raise TypeError(
                f"{owner}: the input is {value!r}; give a list of documents (Document objects, "
                f"strings or {{'text': ...}} dicts)"
            )
        return [to_document(item, owner=owner) for item in value]

    def made(nodes: Any) -> dict[str, Any]:
        return {"nodes": list(nodes)} if node_objects else _nodes(nodes)

    def run(value: Any) -> Any:
        return made(pipeline.run(documents=documents(value)))

    async def arun(value: Any) -> Any:
        return made(await pipeline.arun(documents=documents(value)))

    spec = _Spec(
        owner=owner, call=arun if is_async else run, input=input, output=output,
        unwrap=_field("nodes"), reads=reads, writes=writes, inputs=inputs,
    )  # fmt: skip
    return _build(spec, stream=False, is_async=is_async, tags=tags, name=name, retry=retry)
