"""A tool-calling agent: a chat model with tools bound, an action that runs its tool calls, and a
loop until the model answers.

The model is a scripted fake (``ScriptedToolModel``) so the example runs offline; swap in any
LangChain chat model that supports ``bind_tools`` (``ChatOpenAI``, ``ChatAnthropic``, ...).

Run it: ``python examples/langchain_agent/application.py "What is 3 * 4 + 5?"``
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

# The adapter first: without its library it raises MissingExtraError naming the extra.
import turnout.integrations.langchain  # noqa: F401

# isort: split
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool, tool
from langchain_core.utils.function_calling import convert_to_openai_tool

from turnout import Application, ApplicationBuilder, State, action, default
from turnout.integrations.langchain import (
    RunnableAction,
    ToolCallsAction,
    append_state,
    has_tool_calls,
)


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


TOOLS: list[BaseTool] = [add, multiply]


class ScriptedToolModel(GenericFakeChatModel):
    """A fake chat model that replies with scripted messages (tool calls included) and accepts
    ``bind_tools``, which langchain-core's own fakes do not."""

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)


def scripted_model() -> ScriptedToolModel:
    """The replies a real model would give to "What is 3 * 4 + 5?": two tool calls, an answer."""
    script = [
        AIMessage("", tool_calls=[{"name": "multiply", "args": {"a": 3, "b": 4}, "id": "call-1"}]),
        AIMessage("", tool_calls=[{"name": "add", "args": {"a": 12, "b": 5}, "id": "call-2"}]),
        AIMessage("3 * 4 + 5 = 17."),
    ]
    return ScriptedToolModel(messages=iter(script))


PROMPT = ChatPromptTemplate.from_messages(
    [
        SystemMessage("You are a careful calculator. Use the tools for every operation."),
        MessagesPlaceholder("messages"),
    ]
)


@action(reads=[], writes=["messages"])
def human(state: State, question: str) -> State:
    """Append the user's question to the conversation."""
    return state.append(messages=HumanMessage(question))


def application(model: Any = None, app_id: str | None = None) -> Application:
    """``human`` -> ``agent`` -> (``tools`` -> ``agent``)* -> ``human`` ..."""
    chain = PROMPT | (model or scripted_model()).bind_tools(TOOLS)
    return (
        ApplicationBuilder()
        .with_actions(
            human=human,
            agent=RunnableAction(chain, input=["messages"], output=append_state("messages")),
            tools=ToolCallsAction(TOOLS, messages="messages"),
        )
        .with_transitions(
            ("human", "agent"),
            ("agent", "tools", has_tool_calls("messages")),
            ("tools", "agent"),
            ("agent", "human", default),
        )
        .with_state(messages=[])
        .with_entrypoint("human")
        .with_identifiers(app_id=app_id)
        .build()
    )


def ask(app: Application, question: str) -> list[BaseMessage]:
    """One turn: the question, then the agent loop until the model answers. Returns the
    messages this turn added."""
    before = len(app.state["messages"])
    app.step(inputs={"question": question})
    app.run(halt_before=["human"])
    messages: list[BaseMessage] = app.state["messages"]
    return messages[before:]


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("question", nargs="?", default="What is 3 * 4 + 5?")
    args = parser.parse_args(argv)
    app = application()
    for message in ask(app, args.question):
        calls = getattr(message, "tool_calls", None)
        text = ", ".join(f"{c['name']}({c['args']})" for c in calls) if calls else message.text
        print(f"{message.type:>5}: {text}")
    answer = app.state["messages"][-1]
    return str(answer.text)


if __name__ == "__main__":
    main()
