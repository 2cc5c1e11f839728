"""A tool-calling agent on the OpenAI adapter: the model asks for tools until it can answer.

The graph: ``user_input`` -> ``ask`` (the model, with the tools' schemas); when the model asks
for tools (``tool_calls_requested()``), ``run_tools`` runs them and appends their results, and
``ask`` runs again; otherwise the turn ends and the next is ``user_input``. The tools' JSON
schemas come from the functions' signatures, type hints and docstrings (``function_tool``).

Offline by default: without ``OPENAI_API_KEY`` the client talks to a local
``turnout.testing.FakeOpenAIServer`` whose scripted "model" asks for the weather of the city
named last in the question, then answers from the tool's result. With the key set, it uses the
real API (``OPENAI_MODEL``, default ``gpt-4.1-mini``).

Run it: ``python examples/openai_agent/application.py "What is the weather in Oslo?"``
(``--responses`` for the Responses API, ``--async`` for ``AsyncOpenAI``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
from typing import Any, Literal

from turnout import Application, ApplicationBuilder, State, action
from turnout.integrations.openai import (
    chat_action,
    function_tool,
    responses_action,
    tool_action,
    tool_calls_requested,
)
from turnout.testing import FakeRequest, FakeToolCall, openai_client

_FORECASTS = {"oslo": (-3, "snow"), "paris": (12, "rain"), "lisbon": (19, "sun")}


def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> dict[str, Any]:
    """Get today's weather for a city.

    Args:
        city: the city, e.g. "Paris".
        unit: the temperature unit.
    """
    celsius, sky = _FORECASTS.get(city.lower(), (15, "clouds"))
    temperature = celsius if unit == "celsius" else round(celsius * 9 / 5 + 32)
    return {"city": city, "temperature": temperature, "unit": unit, "sky": sky}


def convert_temperature(value: float, to: Literal["celsius", "fahrenheit"]) -> float:
    """Convert a temperature to the other unit.

    Args:
        value: the temperature in the other unit.
        to: the unit to convert to.
    """
    return round((value - 32) * 5 / 9 if to == "celsius" else value * 9 / 5 + 32, 1)


TOOLS = [function_tool(get_weather), function_tool(convert_temperature)]


def scripted_model(request: FakeRequest) -> str | FakeToolCall:
    """The offline stand-in: ask for the weather of the last capitalised word, then answer."""
    last = request.conversation()[-1]
    result = last.get("content") if last.get("role") == "tool" else last.get("output")
    if result is not None:  # a tool result (chat: role "tool"; Responses: function_call_output)
        weather = json.loads(result)
        return (
            f"In {weather['city']} it is {weather['temperature']} degrees {weather['unit']} "
            f"with {weather['sky']}."
        )
    cities = re.findall(r"\b[A-Z][a-z]+\b", request.user_text())
    return FakeToolCall(name="get_weather", arguments={"city": cities[-1] if cities else "Paris"})


def model_client(use_async: bool = False) -> contextlib.AbstractContextManager[tuple[Any, str]]:
    """``(client, model)``: the real API if ``OPENAI_API_KEY`` is set, else the local fake."""
    return openai_client(scripted_model, fake_model="fake-agent", use_async=use_async)


@action(reads=[], writes=["messages"])
def user_input(state: State, prompt: str) -> State:
    """Append the user's question to the conversation."""
    return state.append(messages={"role": "user", "content": prompt})


def application(client: Any, model: str, *, responses: bool = False) -> Application:
    """The agent; ``responses=True`` uses the Responses API instead of chat completions."""
    make = responses_action if responses else chat_action
    ask = make(client, model=model, tools=TOOLS, system="Use the tools to answer.")
    return (
        ApplicationBuilder()
        .with_actions(user_input=user_input, ask=ask, run_tools=tool_action(TOOLS))
        .with_transitions(
            ("user_input", "ask"),
            ("ask", "run_tools", tool_calls_requested()),
            ("run_tools", "ask"),
            ("ask", "user_input"),
        )
        .with_state(messages=[])
        .with_entrypoint("user_input")
        .build()
    )


def ask(app: Application, question: str) -> str:
    """One turn: the question, then model and tools until the model answers."""
    app.step(inputs={"prompt": question})
    _action, _result, state = app.run(halt_before=["user_input"])
    return str(state["messages"][-1]["content"])


async def aask(app: Application, question: str) -> str:
    """One turn with the async driver."""
    await app.astep(inputs={"prompt": question})
    _action, _result, state = await app.arun(halt_before=["user_input"])
    return str(state["messages"][-1]["content"])


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("questions", nargs="*", default=["What is the weather in Oslo?"])
    parser.add_argument("--responses", action="store_true", help="use the Responses API")
    parser.add_argument("--async", dest="use_async", action="store_true")
    args = parser.parse_args(argv)
    with model_client(args.use_async) as (client, model):
        app = application(client, model, responses=args.responses)

        async def turns() -> list[str]:
            async with client:  # closes the async client inside this event loop
                return [await aask(app, q) for q in args.questions]

        answers = asyncio.run(turns()) if args.use_async else [ask(app, q) for q in args.questions]
    for question, answer in zip(args.questions, answers, strict=True):
        print(f"user:  {question}\nagent: {answer}")
    tools = [m for m in app.state["messages"] if m["role"] == "tool"]
    steps = (app.sequence_id or 0) + 1
    print(f"({len(tools)} tool call(s), {steps} steps)")
    return answers


if __name__ == "__main__":
    main()
