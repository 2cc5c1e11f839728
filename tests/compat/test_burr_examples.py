"""The patterns of Burr's own examples, run on turnout (issue 13, "Burr's examples").

Burr's wheel ships examples (a multi-modal chatbot, an email assistant, a streaming FastAPI chatbot,
a deep researcher). Each was run outside this repository on turnout with only ``burr`` replaced by
``turnout`` in its imports, and on Burr, against the same fake OpenAI server, and the outputs
compared. These tests keep what those runs depend on, written here as small programs of our own
(no LLM: a plain function stands in for the model): the turn loop of a chatbot that wipes its
state, a halt-before loop resumed from the tracker, async streaming actions behind
``astream_result``, and a research loop re-opened by id. The sequence ids and results asserted are
the ones Burr gives for the same programs.

The first sections pin the changes the runs led to: an ``UndeclaredWriteWarning`` points at the
action's own code, where the ``writes=[...]`` to fix is, not at turnout's internals; and
``with_tracker(..., use_otel_tracing=True)`` (the streaming FastAPI server's) works without
importing turnout's OpenTelemetry adapter, as it does on Burr.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import textwrap
import warnings
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest

from turnout.core import ApplicationBuilder, State, action, default, expr, when
from turnout.core.action import SingleStepAction, streaming_action
from turnout.core.builder import register_otel_loader
from turnout.core.errors import GraphSetupError, UndeclaredWriteWarning
from turnout.core.graph import GraphBuilder
from turnout.tracking import LocalTrackingClient

# -- the warning points at the user's action -----------------------------------------------------


@action(reads=[], writes=["prompt"])
def new_turn(state: State, prompt: str) -> State:
    return state.wipe(keep=["prompt", "history"]).update(prompt=prompt)


@action(reads=["prompt"], writes=["answer"])
def answer(state: State) -> State:
    return state.update(answer=state["prompt"].upper()).append(history=state["prompt"])


class Tally(SingleStepAction):
    """A class action with an undeclared write, as Burr lets one have."""

    @property
    def reads(self) -> list[str]:
        return []

    @property
    def writes(self) -> list[str]:
        return ["count"]

    def run_and_update(self, state: State, **run_kwargs: Any) -> tuple[dict[str, Any], State]:
        count = state.get("count", 0) + 1
        return {"count": count}, state.update(count=count, last_seen=count)


def _turns(**actions: Any) -> Any:
    names = list(actions)
    return (
        ApplicationBuilder()
        .with_actions(**actions)
        .with_transitions(*[(a, b) for a, b in zip(names, names[1:] + names[:1], strict=True)])
        .with_state(history=[])
        .with_entrypoint(names[0])
        .build()
    )


def _lines_of(fn: Any) -> range:
    code = fn.__code__
    return range(code.co_firstlineno - 2, code.co_firstlineno + 8)


def test_an_undeclared_write_warning_points_at_the_action_function() -> None:
    app = _turns(new_turn=new_turn, answer=answer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        app.run(halt_after=["answer"], inputs={"prompt": "hi"})
    assert [w.category for w in caught] == [UndeclaredWriteWarning]
    assert caught[0].filename == __file__, caught[0].filename
    assert caught[0].lineno in _lines_of(answer), caught[0].lineno
    assert "action 'answer' changed 'history'" in str(caught[0].message)


def test_an_undeclared_write_warning_points_at_a_class_actions_method() -> None:
    app = _turns(tally=Tally())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        app.step()
    assert [w.category for w in caught] == [UndeclaredWriteWarning]
    assert caught[0].filename == __file__, caught[0].filename
    assert caught[0].lineno in _lines_of(Tally.run_and_update), caught[0].lineno


def test_a_bound_actions_warning_points_at_the_function_it_binds() -> None:
    @action(reads=[], writes=["prompt"])
    def greet(state: State, prompt: str, greeting: str) -> State:
        return state.update(prompt=f"{greeting} {prompt}", extra=True)

    app = _turns(greet=greet.bind(greeting="hello"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        app.step(inputs={"prompt": "you"})
    assert [(w.category, w.filename) for w in caught] == [(UndeclaredWriteWarning, __file__)]
    assert app.state["prompt"] == "hello you"


def test_the_warning_can_be_silenced_for_the_users_own_module() -> None:
    app = _turns(new_turn=new_turn, answer=answer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings(
            "ignore", category=UndeclaredWriteWarning, module=re.escape(__name__)
        )
        app.run(halt_after=["answer"], inputs={"prompt": "hi"})
    assert caught == []
    assert app.state["history"] == ["hi"]  # still applied


def test_a_server_building_an_app_per_request_shows_each_warning_once() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for prompt in ["a", "b", "c"]:
            _turns(new_turn=new_turn, answer=answer).run(
                halt_after=["answer"], inputs={"prompt": prompt}
            )
    assert len(caught) == 1, [str(w.message) for w in caught]


# -- use_otel_tracing=True without importing the adapter -------------------------------------------

_OTEL_PROGRAM = textwrap.dedent(
    """
    import sys

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    from turnout.core import ApplicationBuilder, State, action
    from turnout.tracking import LocalTrackingClient

    assert "turnout.integrations.opentelemetry" not in sys.modules

    @action(reads=[], writes=["n"])
    def bump(state: State) -> State:
        return state.update(n=1)

    tracker = LocalTrackingClient(project="otel-switch", storage_dir=sys.argv[1])
    app = (
        ApplicationBuilder()
        .with_actions(bump)
        .with_entrypoint("bump")
        .with_tracker(tracker, use_otel_tracing=True)
        .build()
    )
    app.step()
    print(sorted(span.name for span in exporter.get_finished_spans()))
    """
)


def test_use_otel_tracing_works_without_importing_the_adapter(tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.sdk")
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", _OTEL_PROGRAM, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "'bump'" in done.stdout, done.stdout  # the step went to OpenTelemetry


def test_use_otel_tracing_without_opentelemetry_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import turnout.core.builder as builder

    def not_installed() -> object:
        raise ImportError("no module named 'opentelemetry'")

    monkeypatch.setattr(builder, "_OTEL_TRACING", None)
    monkeypatch.setattr(builder, "_OTEL_LOADER", None)
    register_otel_loader(not_installed)
    with pytest.raises(GraphSetupError, match=r"turnout\[opentelemetry\]") as caught:
        ApplicationBuilder().with_actions(answer).with_entrypoint("answer").with_tracker(
            LocalTrackingClient(project="otel-missing", storage_dir="unused"),
            use_otel_tracing=True,
        ).build()
    assert "no module named 'opentelemetry'" in str(caught.value)


# -- the examples' patterns -----------------------------------------------------------------------


def _model(prompt: str) -> str:
    """Stands in for the LLM: the mode for a routing prompt, else an answer."""
    for word, mode in [("code", "generate_code"), ("capital", "answer_question")]:
        if word in prompt:
            return mode
    return "unknown"


@action(reads=[], writes=["chat_history", "prompt"])
def take_prompt(state: State, prompt: str) -> State:
    return (
        state.wipe(keep=["prompt", "chat_history"])
        .append(chat_history={"role": "user", "content": prompt})
        .update(prompt=prompt)
    )


@action(reads=["prompt"], writes=["safe"])
def check_safety(state: State) -> State:
    return state.update(safe="unsafe" not in state["prompt"])


@action(reads=["prompt"], writes=["mode"])
def decide_mode(state: State) -> State:
    return state.update(mode=_model(state["prompt"]))


@action(reads=["prompt", "mode"], writes=["response"])
def reply(state: State, prefix: str) -> State:
    return state.update(response={"role": "assistant", "content": f"{prefix}: {state['prompt']}"})


@action(reads=["safe"], writes=["response"])
def refuse(state: State) -> State:
    return state.update(response={"role": "assistant", "content": "no"})


@action(reads=["response"], writes=["chat_history"])
def respond(state: State) -> State:
    return state.append(chat_history=state["response"])


CHAT = (
    GraphBuilder()
    .with_actions(
        prompt=take_prompt,
        check_safety=check_safety,
        decide_mode=decide_mode,
        generate_code=reply.bind(prefix="code"),
        answer_question=reply.bind(prefix="answer"),
        refuse=refuse,
        response=respond,
    )
    .with_transitions(
        ("prompt", "check_safety", default),
        ("check_safety", "decide_mode", when(safe=True)),
        ("check_safety", "refuse", default),
        ("decide_mode", "generate_code", when(mode="generate_code")),
        ("decide_mode", "answer_question", when(mode="answer_question")),
        ("decide_mode", "refuse", default),
        (["generate_code", "answer_question", "refuse"], "response"),
        ("response", "prompt", default),
    )
    .build()
)


def _chat_app(storage: Path, app_id: str) -> Any:
    tracker = LocalTrackingClient(project="examples_chat", storage_dir=str(storage))
    return (
        ApplicationBuilder()
        .with_graph(CHAT)
        .initialize_from(
            tracker,
            resume_at_next_action=False,
            default_state={"chat_history": []},
            default_entrypoint="prompt",
        )
        .with_tracker(tracker)
        .with_identifiers(app_id=app_id)
        .build()
    )


def test_a_chatbot_turn_loop_with_wipes_resumes_from_the_tracker(tmp_path: Path) -> None:
    app = _chat_app(tmp_path, "chat-loop")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndeclaredWriteWarning)  # the wipe, warned above
        halts = []
        for prompt in ["the capital of France?", "write code", "unsafe thing", "hmm"]:
            act, result, state = app.run(halt_after=["response"], inputs={"prompt": prompt})
            halts.append((act.name, result, state["chat_history"][-1]["content"], "mode" in state))
        assert halts == [
            ("response", {}, "answer: the capital of France?", True),
            ("response", {}, "code: write code", True),
            ("response", {}, "no", False),  # refused before choosing: the wipe dropped "mode"
            ("response", {}, "no", True),
        ]
        assert app.sequence_id == 18  # as on Burr: 5 + 5 + 4 + 5 steps, numbered from 0
        again = _chat_app(tmp_path, "chat-loop")
        assert len(again.state["chat_history"]) == 8
        assert again.get_next_action().name == "prompt"  # resume_at_next_action=False
        assert again.sequence_id == 18
        act, _, state = again.run(halt_after=["response"], inputs={"prompt": "the capital?"})
    assert state["chat_history"][-1]["content"] == "answer: the capital?"
    assert again.sequence_id == 23


@action(reads=[], writes=["email", "instructions"])
def receive(state: State, email: str, instructions: str) -> State:
    return state.update(email=email, instructions=instructions)


@action(reads=["email"], writes=["questions"])
def ask(state: State) -> State:
    return state.update(questions=["meet?", "price?"] if "?" in state["email"] else [])


@action(reads=["questions"], writes=["answers"])
def clarify(state: State, answers: list[str]) -> State:
    return state.update(answers=list(answers))


@action(reads=["email", "draft_history", "feedback"], writes=["draft", "draft_history"])
def draft(state: State) -> tuple[dict[str, Any], State]:
    text = f"draft {len(state['draft_history'])}"
    return {"draft": text}, state.update(draft=text).append(draft_history=text)


@action(reads=[], writes=["feedback", "feedback_history"])
def get_feedback(state: State, feedback: str) -> tuple[dict[str, Any], State]:
    return {"feedback": feedback}, state.update(feedback=feedback).append(feedback_history=feedback)


@action(reads=["draft"], writes=["final_draft"])
def finish(state: State) -> tuple[dict[str, Any], State]:
    return {"final_draft": state["draft"]}, state.update(final_draft=state["draft"])


MAIL = (
    GraphBuilder()
    .with_actions(receive, ask, clarify, draft, get_feedback, finish)
    .with_transitions(
        ("receive", "ask"),
        ("ask", "clarify", expr("len(questions) > 0")),
        ("ask", "draft"),
        ("clarify", "draft"),
        ("draft", "get_feedback"),
        ("get_feedback", "draft", expr("len(feedback) > 0")),
        ("get_feedback", "finish"),
    )
    .build()
)


def _mail_app(storage: Path, app_id: str) -> Any:
    tracker = LocalTrackingClient(project="examples_mail", storage_dir=str(storage))
    return (
        ApplicationBuilder()
        .with_graph(MAIL)
        .with_tracker(tracker)
        .with_identifiers(app_id=app_id, partition_key=None)
        .initialize_from(
            tracker,
            resume_at_next_action=True,
            default_state={"draft_history": []},
            default_entrypoint="receive",
        )
        .build()
    )


def test_a_halt_before_loop_reopened_midway_continues_where_it_stopped(tmp_path: Path) -> None:
    app = _mail_app(tmp_path, "mail-loop")
    inputs: dict[str, Any] = {"email": "buy ads?", "instructions": "decline"}
    feedback = ["shorter", ""]
    halts = []
    while True:
        act, result, _ = app.run(
            halt_before=["clarify", "get_feedback"], halt_after=["finish"], inputs=inputs
        )
        halts.append((act.name, result, app.sequence_id))
        if act.name == "clarify":
            inputs = {"answers": ["no", "no"]}
        elif act.name == "get_feedback":
            if len(feedback) == 2:  # a server restarted here: re-open the app by its id
                app = _mail_app(tmp_path, "mail-loop")
                assert app.get_next_action().name == "get_feedback"
            inputs = {"feedback": feedback.pop(0)}
        else:
            break
    assert halts == [
        ("clarify", None, 1),
        ("get_feedback", None, 3),
        ("get_feedback", None, 5),
        ("finish", {"final_draft": "draft 1"}, 7),
    ]
    assert app.state["draft_history"] == ["draft 0", "draft 1"]
    assert app.state["feedback_history"] == ["shorter", ""]


@action(reads=[], writes=["chat_history", "prompt"])
def stream_prompt(state: State, prompt: str) -> tuple[dict[str, Any], State]:
    item = {"role": "user", "content": prompt}
    return {"chat_item": item}, state.wipe(keep=["prompt", "chat_history"]).append(
        chat_history=item
    ).update(prompt=prompt)


@action(reads=["prompt"], writes=["mode"])
async def choose(state: State) -> tuple[dict[str, Any], State]:
    await asyncio.sleep(0)
    mode = _model(state["prompt"])
    return {"mode": mode}, state.update(mode=mode)


@streaming_action(reads=["prompt", "chat_history"], writes=["response"])
async def stream_reply(
    state: State, prefix: str
) -> AsyncGenerator[tuple[dict[str, Any], State | None], None]:
    words = f"{prefix} {state['prompt']}".split()
    for word in words:
        await asyncio.sleep(0)
        yield {"delta": word + " "}, None
    response = {"role": "assistant", "content": " ".join(words)}
    result = {"response": response}
    yield result, state.update(**result).append(chat_history=response)


STREAMING = (
    GraphBuilder()
    .with_actions(
        prompt=stream_prompt,
        decide_mode=choose,
        generate_code=stream_reply.bind(prefix="code:"),
        prompt_for_more=stream_reply.bind(prefix="clarify?"),
    )
    .with_transitions(
        ("prompt", "decide_mode", default),
        ("decide_mode", "generate_code", when(mode="generate_code")),
        ("decide_mode", "prompt_for_more", default),
        (["generate_code", "prompt_for_more"], "prompt"),
    )
    .build()
)


def test_async_streaming_actions_behind_astream_result_as_a_fastapi_route_uses_them() -> None:
    async def route(app: Any, prompt: str) -> tuple[str, list[str], Any, int]:
        act, container = await app.astream_result(
            halt_after=["generate_code", "prompt_for_more"], inputs={"prompt": prompt}
        )
        deltas = [item["delta"] async for item in container]
        result, _ = await container.get()
        return act.name, deltas, result, len(app.state["chat_history"])

    async def main() -> list[tuple[str, list[str], Any, int]]:
        app = (
            ApplicationBuilder()
            .with_entrypoint("prompt")
            .with_state(chat_history=[])
            .with_graph(STREAMING)
            .build()
        )
        return [await route(app, "some code"), await route(app, "hmm")]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndeclaredWriteWarning)  # the examples' undeclared keys
        first, second = asyncio.run(main())
    assert first[:2] == ("generate_code", ["code: ", "some ", "code "])
    assert first[2] == {"response": {"role": "assistant", "content": "code: some code"}}
    assert first[3] == 2
    assert second[:2] == ("prompt_for_more", ["clarify? ", "hmm "])
    assert second[3] == 4


@action(reads=[], writes=["topic", "loops", "sources"])
def start_research(state: State, topic: str) -> State:
    return state.update(topic=topic, loops=0, sources=[])


@action(reads=["loops", "sources", "topic"], writes=["loops", "sources"])
def search(state: State) -> State:
    found = f"{state['topic']} #{state['loops']}"
    return state.update(loops=state["loops"] + 1, sources=[*state["sources"], found])


@action(reads=["sources"], writes=["summary", "loops"])
def summarize(state: State) -> State:
    return state.update(summary="; ".join(state["sources"]), loops=0)


RESEARCH = (
    GraphBuilder()
    .with_actions(start_research, search, summarize)
    .with_transitions(
        ("start_research", "search"),
        ("search", "summarize", when(loops=2)),
        ("search", "search", expr("loops<2")),
        ("summarize", "start_research"),
    )
    .build()
)


def _research_app(storage: Path) -> Any:
    tracker = LocalTrackingClient(project="examples_research", storage_dir=str(storage))
    return (
        ApplicationBuilder()
        .with_graph(RESEARCH)
        .with_tracker(tracker)
        .with_identifiers(app_id="research", partition_key=None)
        .initialize_from(
            tracker,
            resume_at_next_action=True,
            default_state={"loops": 0},
            default_entrypoint="start_research",
        )
        .build()
    )


def test_a_research_loop_reopened_by_id_starts_the_next_topic(tmp_path: Path) -> None:
    app = _research_app(tmp_path)
    act, _, state = app.run(halt_after=["summarize"], inputs={"topic": "graphs"})
    assert (act.name, state["summary"], app.sequence_id) == ("summarize", "graphs #0; graphs #1", 3)
    again = _research_app(tmp_path)
    assert (again.get_next_action().name, again.sequence_id) == ("start_research", 3)
    act, _, state = again.run(halt_after=["summarize"], inputs={"topic": "trees"})
    assert (state["summary"], again.sequence_id) == ("trees #0; trees #1", 7)
