"""``ToolCallsAction``: run the tool calls of the last AI message, append the tool messages."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from langchain_core.messages import AIMessage, ToolCall, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool

from turnout.core.action import Action
from turnout.core.condition import Condition
from turnout.core.state import State
from turnout.integrations.langchain._config import _step_config

__all__ = ["ToolCallsAction", "has_tool_calls"]


class ToolCallsAction(Action):
    """Run every tool call of the last message in ``state[messages]`` and append one
    ``ToolMessage`` per call: the tool half of a tool-calling agent loop.

    Args:
        tools: the tools the model may call (``@tool`` functions, ``BaseTool`` instances).
        messages: the state key of the conversation (a list of LangChain messages).
        is_async: run the tools with ``ainvoke`` (the action then needs ``app.arun``).
        handle_errors: turn a tool's exception (and a call of an unknown tool) into a
            ``ToolMessage`` with ``status="error"`` the model can react to; ``False`` lets the
            exception fail the step.
        name: the action's name (else given by ``with_actions(name=...)``).
        config: a ``RunnableConfig`` merged into each tool run's.
        max_concurrency: async only: how many tool calls run at once (the model's parallel
            calls run concurrently, at most this many; the messages keep the calls' order).

    Each tool run is a child span of the step. The step's result is
    ``{"tool_messages": [...]}``; a last message without tool calls adds nothing.
    """

    def __init__(
        self,
        tools: Sequence[BaseTool],
        *,
        messages: str = "messages",
        is_async: bool = False,
        handle_errors: bool = True,
        name: str | None = None,
        config: RunnableConfig | None = None,
        max_concurrency: int = 8,
    ) -> None:
        super().__init__()
        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError(
                f"ToolCallsAction: max_concurrency= is how many tool calls run at once, a "
                f"positive int; got {max_concurrency!r}"
            )
        self._limit = max_concurrency
        bad = [t for t in tools if not isinstance(t, BaseTool)]
        if bad or isinstance(tools, BaseTool):
            raise TypeError(
                f"ToolCallsAction: tools must be a list of LangChain tools (decorate functions "
                f"with @tool), got {bad or tools!r}"
            )
        self.tools = {tool.name: tool for tool in tools}
        self._key = messages
        self._async = bool(is_async)
        self._handle_errors = handle_errors
        self._config = config
        if name is not None:
            self._name = name

    @property
    def reads(self) -> list[str]:
        return [self._key]

    @property
    def writes(self) -> list[str]:
        return [self._key]

    def is_async(self) -> bool:
        return self._async

    def run(self, state: State, **inputs: Any) -> Any:
        """``{"tool_messages": [...]}``, or a coroutine of it when async."""
        calls = self._calls(state)
        if self._async:
            return self._arun(calls)
        replies: list[ToolMessage] = []
        with self._running() as config:
            for call in calls:
                with self._replying(call, replies):
                    replies.append(_as_message(self._tool(call).invoke(call, config=config), call))
        return {"tool_messages": replies}

    async def _arun(self, calls: list[ToolCall]) -> dict[str, Any]:
        """The calls run concurrently (at most ``max_concurrency`` at once); the replies keep
        the calls' order. Without ``handle_errors`` the first failing call (in the calls'
        order) fails the step once every call has finished."""
        gate = asyncio.Semaphore(self._limit)

        async def one(call: ToolCall, config: RunnableConfig) -> list[ToolMessage]:
            reply: list[ToolMessage] = []
            async with gate:
                with self._replying(call, reply):
                    output = await self._tool(call).ainvoke(call, config=config)
                    reply.append(_as_message(output, call))
            return reply

        with self._running() as config:
            done = await asyncio.gather(
                *(one(call, config) for call in calls), return_exceptions=True
            )
        replies: list[ToolMessage] = []
        for outcome in done:
            if isinstance(outcome, BaseException):
                raise outcome
            replies.extend(outcome)
        return {"tool_messages": replies}

    @contextmanager
    def _running(self) -> Iterator[RunnableConfig]:
        config, handler = _step_config(self._config, run_name=None, tags=(), name_run=False)
        try:
            yield config
        finally:
            if handler is not None:
                handler.end_all()

    @contextmanager
    def _replying(self, call: ToolCall, replies: list[ToolMessage]) -> Iterator[None]:
        """A failed call (or a call of an unknown tool) replies with the error, unless
        ``handle_errors=False``."""
        try:
            yield
        except Exception as exc:
            if not self._handle_errors:
                raise
            replies.append(_error_message(call, exc))

    def update(self, result: dict[str, Any], state: State) -> State:
        """Append the tool messages to the conversation."""
        replies = result["tool_messages"]
        return state.extend(**{self._key: replies}) if replies else state

    def _calls(self, state: State) -> list[ToolCall]:
        history = state[self._key]
        last = history[-1] if history else None
        if not isinstance(last, AIMessage):
            return []
        return [ToolCall(**{**call, "type": "tool_call"}) for call in last.tool_calls]

    def _tool(self, call: ToolCall) -> BaseTool:
        tool = self.tools.get(call["name"])
        if tool is None:
            raise KeyError(
                f"the model called the unknown tool {call['name']!r}; the tools are "
                f"{sorted(self.tools)}"
            )
        return tool


def _as_message(output: Any, call: ToolCall) -> ToolMessage:
    if isinstance(output, ToolMessage):
        return output
    # Tools that return content and artifact, or a value LangChain did not wrap.
    return ToolMessage(content=str(output), tool_call_id=call["id"] or "", name=call["name"])


def _error_message(call: ToolCall, error: BaseException) -> ToolMessage:
    return ToolMessage(
        content=f"Error: {type(error).__name__}: {error}",
        tool_call_id=call["id"] or "",
        name=call["name"],
        status="error",
    )


def has_tool_calls(messages: str = "messages") -> Condition:
    """A transition condition: the last message in ``state[messages]`` is an AI message that
    asks for tools. ``~has_tool_calls()`` is its negation (the model answered)::

        .with_transitions(("agent", "tools", has_tool_calls()), ("agent", "done", default))
    """

    def resolver(state: State) -> bool:
        history = state[messages]
        last = history[-1] if history else None
        return isinstance(last, AIMessage) and bool(last.tool_calls)

    return Condition([messages], resolver, name="has_tool_calls")
