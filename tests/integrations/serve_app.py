"""The application the serving tests drive: a chat-like loop with a typed input, a streaming
reply, a failing action, a suspension answered over HTTP and a step the test can hold open.

``factory`` is what ``serve()`` and ``turnout serve tests.integrations.serve_app:factory``
take. ``GATES`` lets an in-process test hold the ``slow`` action until it says go.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from turnout import ApplicationContext, State, action, default, streaming_action, when
from turnout.integrations.fastapi import ServedBuilder

GATES: dict[str, asyncio.Event] = {}
ENTERED: dict[str, asyncio.Event] = {}


@action(reads=["history"], writes=["history", "turns", "last"])
def ask(state: State, message: str, shout: bool = False) -> State:
    text = message.upper() if shout else message
    return state.append(history=f"user: {text}").increment(turns=1).update(last=message)


@streaming_action(reads=["history"], writes=["history"])
async def reply(state: State) -> AsyncGenerator[tuple[dict[str, Any], State | None], None]:
    last = state["history"][-1].removeprefix("user: ")
    words = [f"you said {last}"] + ["!"] * 2
    for word in words:
        yield {"delta": word}, None
    text = "".join(words)
    yield {"reply": text}, state.append(history=f"bot: {text}")


@action(reads=["history"], writes=["history"])
def approve(state: State, __context: ApplicationContext) -> State:
    answer = __context.suspend(
        "approval",
        schema={
            "type": "object",
            "properties": {"approved": {"type": "boolean"}},
            "required": ["approved"],
        },
        metadata={"question": "send it?"},
    )
    return state.append(history=f"approved: {answer['approved']}")


@action(reads=["history"], writes=["history"])
def explode(state: State, fix: bool = False) -> State:
    if not fix:
        raise ValueError("the model is down")
    return state.append(history="fixed")


@action(reads=["history"], writes=["history"])
async def slow(state: State, __context: ApplicationContext) -> State:
    app_id = __context.app_id
    ENTERED.setdefault(app_id, asyncio.Event()).set()
    await GATES.setdefault(app_id, asyncio.Event()).wait()
    GATES.pop(app_id, None)
    ENTERED.pop(app_id, None)
    return state.append(history="slow done")


def factory(builder: ServedBuilder) -> ServedBuilder:
    """ask -> reply -> ask ...; a message 'approve' goes through approval, 'explode' fails,
    'slow' waits for its gate."""
    return (
        builder.with_actions(ask, reply, approve, explode, slow)
        .with_transitions(
            ("ask", "approve", when(last="approve")),
            ("ask", "explode", when(last="explode")),
            ("ask", "slow", when(last="slow")),
            ("ask", "reply", default),
            (["reply", "approve", "explode", "slow"], "ask", default),
        )
        .with_entrypoint("ask")
        .with_state(history=[], turns=0, last="")
    )
