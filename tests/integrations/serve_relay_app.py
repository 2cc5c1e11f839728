"""The serving chat with a step held open across processes (``serve_gated_app.gated``) before
a streaming step whose first item is larger than ``NOTIFY``'s payload limit: a run the relay
tests follow from another server.

``ask`` with the message ``gate`` leads to ``gated`` (its ``key`` input names the advisory
lock the test holds), then to ``talk``, which streams ``BIG`` and ``"!"``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from tests.integrations.serve_app import ask, reply
from tests.integrations.serve_gated_app import gated
from turnout import State, default, streaming_action, when
from turnout.integrations.fastapi import ServedBuilder

BIG = "é" + "talk " * 3000


@streaming_action(reads=["history"], writes=["history"])
async def talk(state: State) -> AsyncGenerator[tuple[dict[str, Any], State | None], None]:
    yield {"delta": BIG}, None
    yield {"delta": "!"}, None
    yield {"reply": "talked"}, state.append(history="talked")


def factory(builder: ServedBuilder) -> ServedBuilder:
    """ask -> reply -> ask ...; the message 'gate' goes ask -> gated -> talk -> ask."""
    return (
        builder.with_actions(ask, reply, gated, talk)
        .with_transitions(
            ("ask", "gated", when(last="gate")),
            ("ask", "reply", default),
            ("gated", "talk"),
            (["reply", "talk"], "ask", default),
        )
        .with_entrypoint("ask")
        .with_state(history=[], turns=0, last="")
    )
