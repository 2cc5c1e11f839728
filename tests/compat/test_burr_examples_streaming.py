"""The pattern of Burr's ``streaming-overview`` example (sync and async), run on turnout.

Burr's example (``application.py`` and ``async_application.py``) ran on turnout with only
``burr`` replaced by ``turnout`` in its imports, against a fake OpenAI server, and gave Burr's
items, results and sequence ids. This program of our own keeps what it depends on: every turn
starts by wiping the state down to what it keeps, a router picks a terminal action, one terminal
streams (a bound ``@streaming_action``) and the others do not, and each turn is read with
``stream_result(halt_after=[...terminals])``. The values asserted are the ones Burr 0.43 gives
for the same program.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncGenerator, Generator
from pathlib import Path
from typing import Any

import pytest

from turnout.core import ApplicationBuilder, State, action, default, when
from turnout.core.action import streaming_action
from turnout.core.errors import UndeclaredWriteWarning
from turnout.core.graph import GraphBuilder
from turnout.core.tracking import read_log
from turnout.tracking.client import LocalTrackingClient

TERMINALS = ["explain", "refuse", "ask_again"]
QUESTIONS = ["where is my money", "reset my password", "hello there", "more money please"]


def _topic(question: str) -> str:
    if "money" in question:
        return "refund"
    return "blocked" if "password" in question else "other"


@action(reads=[], writes=["transcript", "question"])
def take_question(state: State, question: str) -> tuple[dict[str, Any], State]:
    line = {"role": "user", "text": question}
    kept = state.wipe(keep=["question", "transcript"])  # drops last turn's topic and reply
    return {"line": line}, kept.append(transcript=line).update(question=question)


@action(reads=["question"], writes=["topic"])
def triage(state: State) -> tuple[dict[str, Any], State]:
    topic = _topic(state["question"])
    return {"topic": topic}, state.update(topic=topic)


@streaming_action(reads=["question", "topic"], writes=["reply"])
def explain(state: State, tone: str) -> Generator[tuple[dict[str, Any], State | None], None, None]:
    words = f"{tone}: refunds take {len(state['question'])} days".split()
    for word in words:
        yield {"word": word}, None
    reply = {"role": "agent", "text": " ".join(words)}
    # The reply also goes to the transcript, which is not declared, as in Burr's example.
    yield {"reply": reply}, state.update(reply=reply).append(transcript=reply)


@action(reads=["question"], writes=["reply"])
def refuse(state: State) -> tuple[dict[str, Any], State]:
    reply = {"role": "agent", "text": "I cannot help with that"}
    return {"reply": reply}, state.update(reply=reply).append(transcript=reply)


@action(reads=["question"], writes=["reply"])
def ask_again(state: State) -> tuple[dict[str, Any], State]:
    reply = {"role": "agent", "text": "could you say more?"}
    return {"reply": reply}, state.update(reply=reply).append(transcript=reply)


@action(reads=["question"], writes=["topic"])
async def atriage(state: State) -> tuple[dict[str, Any], State]:
    await asyncio.sleep(0)
    topic = _topic(state["question"])
    return {"topic": topic}, state.update(topic=topic)


@streaming_action(reads=["question", "topic"], writes=["reply"])
async def aexplain(
    state: State, tone: str
) -> AsyncGenerator[tuple[dict[str, Any], State | None], None]:
    words = f"{tone}: refunds take {len(state['question'])} days".split()
    for word in words:
        await asyncio.sleep(0)
        yield {"word": word}, None
    reply = {"role": "agent", "text": " ".join(words)}
    yield {"reply": reply}, state.update(reply=reply).append(transcript=reply)


def _desk(triage_action: Any, explain_action: Any) -> Any:
    return (
        GraphBuilder()
        .with_actions(
            take_question=take_question,
            triage=triage_action,
            explain=explain_action.bind(tone="calm"),
            refuse=refuse,
            ask_again=ask_again,
        )
        .with_transitions(
            ("take_question", "triage", default),
            ("triage", "explain", when(topic="refund")),
            ("triage", "refuse", when(topic="blocked")),
            ("triage", "ask_again", default),
            (TERMINALS, "take_question"),
        )
        .build()
    )


def _app(graph: Any, tracker: Any = None) -> Any:
    builder = (
        ApplicationBuilder()
        .with_graph(graph)
        .with_state(transcript=[])
        .with_entrypoint("take_question")
        .with_identifiers(app_id="desk")
    )
    if tracker is not None:
        builder = builder.with_tracker(tracker)
    return builder.build()


# What Burr 0.43 gives for each turn: the terminal action, the items streamed, the result, the
# sequence id after the turn, and whether the wiped "topic" came back.
EXPECTED = [
    ("explain", ["calm:", "refunds", "take", "17", "days"], "calm: refunds take 17 days", 2, True),
    ("refuse", [], "I cannot help with that", 5, True),
    ("ask_again", [], "could you say more?", 8, True),
    ("explain", ["calm:", "refunds", "take", "17", "days"], "calm: refunds take 17 days", 11, True),
]


def _turn(act: Any, items: list[dict[str, Any]], result: Any, app: Any) -> tuple[Any, ...]:
    words = [item["word"] for item in items]
    return act.name, words, result["reply"]["text"], app.sequence_id, "topic" in app.state


def test_the_sync_streaming_overview_turns_give_burrs_items_results_and_sequence_ids() -> None:
    app = _app(_desk(triage, explain))
    turns = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndeclaredWriteWarning)  # the example's undeclared keys
        for question in QUESTIONS:
            act, container = app.stream_result(halt_after=TERMINALS, inputs={"question": question})
            items = list(container)
            result, state = container.get()
            assert state is app.state or state.get_all() == app.state.get_all()
            turns.append(_turn(act, items, result, app))
    assert turns == EXPECTED
    assert [line["text"] for line in app.state["transcript"]][-2:] == [
        "more money please",
        "calm: refunds take 17 days",
    ]
    assert len(app.state["transcript"]) == 8


def test_the_async_streaming_overview_turns_give_burrs_items_results_and_sequence_ids() -> None:
    app = _app(_desk(atriage, aexplain))

    async def main() -> list[tuple[Any, ...]]:
        turns = []
        for question in QUESTIONS:
            act, container = await app.astream_result(
                halt_after=TERMINALS, inputs={"question": question}
            )
            items = [item async for item in container]
            result, _ = await container.get()
            turns.append(_turn(act, items, result, app))
        return turns

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndeclaredWriteWarning)
        turns = asyncio.run(main())
    assert turns == EXPECTED
    assert len(app.state["transcript"]) == 8


def test_the_examples_undeclared_writes_each_warn_once_and_are_applied() -> None:
    app = _app(_desk(triage, explain))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for question in QUESTIONS:
            _, container = app.stream_result(halt_after=TERMINALS, inputs={"question": question})
            container.get()
    warned = sorted(str(w.message).split(" changed ")[0] for w in caught)
    assert warned == [
        "action 'ask_again'",
        "action 'explain'",
        "action 'refuse'",
        "action 'take_question'",  # the wipe of 'topic' and 'reply', from the second turn
    ]
    assert all(w.category is UndeclaredWriteWarning for w in caught)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_tracked_streaming_turn_keeps_its_stream_lines_inside_the_step(
    tmp_path: Path, mode: str
) -> None:
    tracker = LocalTrackingClient("streaming-overview", tmp_path)
    app = _app(_desk(triage, explain) if mode == "sync" else _desk(atriage, aexplain), tracker)

    async def turn() -> None:
        _, container = await app.astream_result(halt_after=TERMINALS, inputs={"question": "money"})
        async for _item in container:
            pass

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndeclaredWriteWarning)
        if mode == "sync":
            _, container = app.stream_result(halt_after=TERMINALS, inputs={"question": "money"})
            list(container)
        else:
            asyncio.run(turn())
    kinds = [r["t"] for r in read_log(tracker.log_path("desk")) if r.get("seq") == 2]
    assert kinds == ["begin", "stream_start", "stream_first", "stream_end", "end"]
    (end,) = [r for r in read_log(tracker.log_path("desk")) if r["t"] == "stream_end"]
    assert end["items"] == 5
