"""Demo runs for a first ``turnout ui``: real applications, run offline into a ``demo`` project.

``generate(storage_dir)`` runs small applications with a ``LocalTracker`` so a newcomer has
something to click: a counter with spans, a chatbot on a stand-in model (token usage logged), a
streaming chatbot, the approval flow (a publish that fails and is retried, one whose failures are
routed to ``notify_failure``, and one that fails outright), a parent app with a child forked
from one of its steps, and a dice simulation whose rounds fan out to child applications
(``MapStates``), listed under the step that spawned them. These apps are defined here, not
imported from ``examples/``, so they need nothing but the core. Small sleeps give the timelines
something to show.

``run_gallery`` runs every example of the gallery (``turnout demo``: the chatbot, the RAG
chatbot, the adventure game, the email assistant, the multi-agent team, ...) whose extra is
installed, offline, as ``gallery-<name>``; then the app ``gallery`` lists each example with what
became of it (run, or skipped with the install command that would add it). The examples' imports
take seconds (openai, LlamaIndex), so ``turnout ui``'s first start runs the built-in apps, then
``start_gallery``: the gallery in a background process, its apps appearing in the UI as they
finish. ``generate(..., gallery=True)`` runs it all in this process instead.
"""

from __future__ import annotations

import contextlib
import random
import re
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from turnout import (
    ApplicationBuilder,
    ApplicationContext,
    MapStates,
    RetryPolicy,
    State,
    TracerFactory,
    action,
    default,
    expr,
    on_exception,
    streaming_action,
    when,
)
from turnout.core.tracking import LocalTracker
from turnout.tracking._gallery_demo import GALLERY_APP, run_gallery, start_gallery

__all__ = [
    "DEMO_APPS",
    "DEMO_PROJECT",
    "GALLERY_APP",
    "generate",
    "is_empty",
    "run_gallery",
    "start_gallery",
]

DEMO_PROJECT = "demo"
DEMO_APPS = (
    "counter",
    "chatbot",
    "streaming-chatbot",
    "approval-retried",
    "approval-routed-failure",
    "approval-invalid-decision",
    "parent",
    "parent-fork",
    "simulation",
    *(f"simulation-round{r}-seed{i}" for r in (0, 1) for i in range(3)),
)
_PAUSE = 0.004


def is_empty(storage_dir: str | Path) -> bool:
    """Whether ``storage_dir`` holds no tracked application yet."""
    root = Path(storage_dir)
    return not root.is_dir() or next(root.glob("*/*/log.jsonl"), None) is None


# -- counter ---------------------------------------------------------------------------------------


@action(reads=["count"], writes=["count"])
def increment(state: State, __tracer: TracerFactory) -> State:
    """Add one to the counter, inside a span that logs the previous value."""
    with __tracer("increment") as span:
        span.log_attributes(previous=state["count"])
        time.sleep(_PAUSE)
        count = state["count"] + 1
    return state.update(count=count)


@action(reads=["count", "limit"], writes=[])
def report(state: State) -> tuple[dict[str, str], State]:
    """Say how far we counted."""
    return {"message": f"counted to {state['count']} (limit {state['limit']})"}, state


def _counter(tracker: LocalTracker, app_id: str, limit: int) -> ApplicationBuilder:
    return (
        ApplicationBuilder()
        .with_actions(increment, report)
        .with_transitions(
            ("increment", "increment", expr("count < limit")), ("increment", "report", default)
        )
        .with_tracker(tracker)
        .with_identifiers(app_id=app_id)
    )


# -- chatbots --------------------------------------------------------------------------------------


def _reply(history: list[dict[str, str]]) -> str:
    turns = sum(1 for message in history if message["role"] == "user")
    return f"(turn {turns}) You said {history[-1]['content']!r}. I am a stand-in model."


def _usage(history: list[dict[str, str]], answer: str) -> dict[str, Any]:
    return {
        "gen_ai.request.model": "stand-in-1",
        "gen_ai.usage.input_tokens": sum(len(m["content"].split()) for m in history),
        "gen_ai.usage.output_tokens": len(answer.split()),
    }


@action(reads=[], writes=["chat_history"])
def user_input(state: State, prompt: str) -> State:
    """Append the user's message to the conversation."""
    return state.append(chat_history={"role": "user", "content": prompt})


@action(reads=["chat_history"], writes=["chat_history"])
def respond(state: State, __tracer: TracerFactory) -> tuple[dict[str, str], State]:
    """Ask the stand-in model for an answer, in a span that logs token usage."""
    history = state["chat_history"]
    with __tracer("prepare_prompt"):
        time.sleep(_PAUSE)
    with __tracer("call_model") as span:
        time.sleep(_PAUSE * 3)
        answer = _reply(history)
        span.log_attributes(**_usage(history, answer))
    return {"answer": answer}, state.append(chat_history={"role": "assistant", "content": answer})


@streaming_action(reads=["chat_history"], writes=["chat_history"])
def stream_respond(
    state: State, __tracer: TracerFactory
) -> Generator[dict[str, Any] | tuple[dict[str, Any], State], None, None]:
    """Stream the stand-in model's answer word by word, then append it."""
    history = state["chat_history"]
    time.sleep(_PAUSE * 2)  # the model "thinks" before the first token
    tokens = []
    for token in re.findall(r"\S+\s*", _reply(history)):
        time.sleep(_PAUSE / 2)
        tokens.append(token)
        yield {"delta": token}
    answer = "".join(tokens).strip()
    __tracer.log_attributes(**_usage(history, answer))
    yield {"answer": answer}, state.append(chat_history={"role": "assistant", "content": answer})


def _chat(tracker: LocalTracker, app_id: str, respond_action: Any) -> ApplicationBuilder:
    return (
        ApplicationBuilder()
        .with_actions(user_input=user_input, respond=respond_action)
        .with_transitions(("user_input", "respond"), ("respond", "user_input"))
        .with_state(chat_history=[])
        .with_entrypoint("user_input")
        .with_tracker(tracker)
        .with_identifiers(app_id=app_id, partition_key="alice")
    )


# -- approval --------------------------------------------------------------------------------------


class PublishError(ConnectionError):
    """The stand-in publishing service could not be reached."""


class _Publisher:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def publish(self, text: str) -> str:
        self.calls += 1
        time.sleep(_PAUSE)
        if self.calls <= self.failures:
            raise PublishError(f"service unavailable (call {self.calls})")
        return f"https://example.invalid/posts/{self.calls}"


@action(reads=[], writes=["topic", "draft", "revision", "reviews"])
def draft(state: State, topic: str) -> State:
    """Write the first draft."""
    return state.update(topic=topic, draft=f"{topic}: first draft.", revision=1, reviews=[])


@action(reads=["draft"], writes=["needs_approval"])
def assess(state: State, __context: ApplicationContext) -> State:
    """Public posts need a human: hand control back to the caller."""
    __context.request_halt()
    return state.update(needs_approval=True)


@action(reads=["revision"], writes=["approved", "reviews"])
def review(state: State, decision: str, feedback: str = "") -> State:
    """Record the human's decision on the current revision."""
    if decision not in ("approve", "reject"):
        raise ValueError(f"decision must be 'approve' or 'reject', got {decision!r}")
    return state.update(approved=decision == "approve").append(
        reviews={"revision": state["revision"], "decision": decision, "feedback": feedback}
    )


@action(reads=["topic", "revision", "reviews"], writes=["draft", "revision"])
def revise(state: State) -> State:
    """Write the next revision, answering the last review."""
    revision = state["revision"] + 1
    feedback = state["reviews"][-1]["feedback"] or "no feedback given"
    return state.update(
        draft=f"{state['topic']}: revision {revision} ({feedback}).", revision=revision
    )


@action(
    reads=["draft"],
    writes=["status", "url"],
    retry=RetryPolicy(max_attempts=3, retry_on=(PublishError,), initial_delay=0.0),
)
def publish(state: State, publisher: _Publisher) -> State:
    """Send the approved draft to the (flaky) publishing service."""
    return state.update(status="published", url=publisher.publish(state["draft"]))


@action(reads=["error"], writes=["status", "notification"])
def notify_failure(state: State) -> State:
    """Every publish attempt failed: tell a human instead of crashing."""
    error = state["error"]
    return state.update(status="failed", notification=f"could not publish: {error['message']}")


def _approval(tracker: LocalTracker, app_id: str, failures: int) -> Any:
    return (
        ApplicationBuilder()
        .with_actions(
            draft,
            assess,
            review,
            revise,
            publish.bind(publisher=_Publisher(failures)),
            notify_failure,
        )
        .with_transitions(
            ("draft", "assess"),
            ("assess", "review"),
            ("review", "publish", when(approved=True)),
            ("review", "revise"),
            ("revise", "review"),
            ("publish", "notify_failure", on_exception(PublishError)),
        )
        .with_state(status="draft")
        .with_entrypoint("draft")
        .with_tracker(tracker)
        .with_identifiers(app_id=app_id, partition_key="editor")
        .build()
    )


def _run_approval(app: Any, decisions: list[str]) -> None:
    app.run(halt_after=["notify_failure"], inputs={"topic": "Quarterly update"})
    for number, decision in enumerate(decisions, 1):
        feedback = f"make it shorter (#{number})" if decision == "reject" else ""
        app.run(
            halt_before=["review"],
            halt_after=["notify_failure"],
            inputs={"decision": decision, "feedback": feedback},
        )


# -- generate --------------------------------------------------------------------------------------


@action(reads=["seed", "rolls"], writes=["mean"])
def roll_dice(state: State) -> State:
    dice = random.Random(state["seed"])
    rolls = [dice.randint(1, 6) for _ in range(state["rolls"])]
    time.sleep(_PAUSE)
    return state.update(mean=sum(rolls) / len(rolls))


class SimulateRound(MapStates):
    """One round of the dice simulation: a child application per seed, averaged."""

    @property
    def reads(self) -> list[str]:
        return ["seeds", "rolls", "rounds_done"]

    @property
    def writes(self) -> list[str]:
        return ["estimates", "rounds_done"]

    def action(self, state: State, inputs: dict[str, Any]) -> Any:
        return roll_dice

    def states(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> Generator[State, None, None]:
        for seed in state["seeds"]:
            yield State({"seed": seed + 100 * state["rounds_done"], "rolls": state["rolls"]})

    def child_app_id(self, context: ApplicationContext, index: int) -> str:
        return f"{context.app_id}-round{context.sequence_id}-seed{index}"

    def reduce(self, state: State, states: Any) -> State:
        means = [child["mean"] for child in states]
        return state.append(estimates=sum(means) / len(means)).update(
            rounds_done=state["rounds_done"] + 1
        )


@action(reads=["estimates"], writes=["estimate"])
def summarize(state: State) -> State:
    return state.update(estimate=sum(state["estimates"]) / len(state["estimates"]))


def _simulation(tracker: LocalTracker) -> Any:
    return (
        ApplicationBuilder()
        .with_actions(summarize, simulate=SimulateRound())
        .with_transitions(
            ("simulate", "simulate", expr("rounds_done < 2")), ("simulate", "summarize")
        )
        .with_state(seeds=[1, 2, 3], rolls=200, rounds_done=0, estimates=[])
        .with_entrypoint("simulate")
        .with_identifiers(app_id="simulation")
        .with_tracker(tracker)
        .build()
    )


def generate(
    storage_dir: str | Path,
    project: str = DEMO_PROJECT,
    *,
    gallery: bool = False,
    progress: Callable[[str, str], None] | None = None,
) -> list[str]:
    """Run every demo application into ``project`` under ``storage_dir``; the app ids run.
    ``gallery``: the installed gallery examples too (``run_gallery``, which calls
    ``progress``)."""
    tracker = LocalTracker(project, storage_dir=storage_dir, snapshot_every=5)
    ran = list(DEMO_APPS)
    try:
        _counter(tracker, "counter", 5).with_state(count=0, limit=5).with_entrypoint(
            "increment"
        ).build().run(halt_after=["report"])

        chat = _chat(tracker, "chatbot", respond).build()
        for prompt in ("hello", "what can you do?", "thanks!"):
            chat.run(halt_after=["respond"], inputs={"prompt": prompt})

        streaming = _chat(tracker, "streaming-chatbot", stream_respond).build()
        for prompt in ("hello", "stream me a longer answer, please"):
            _action, container = streaming.stream_result(
                halt_after=["respond"], inputs={"prompt": prompt}
            )
            for _item in container:
                pass
            container.get()

        _run_approval(_approval(tracker, "approval-retried", failures=1), ["reject", "approve"])
        _run_approval(_approval(tracker, "approval-routed-failure", failures=3), ["approve"])
        with contextlib.suppress(ValueError):  # on purpose: a failed app for the UI to show
            _run_approval(_approval(tracker, "approval-invalid-decision", 0), ["maybe"])

        _counter(tracker, "parent", 3).with_state(count=0, limit=3).with_entrypoint(
            "increment"
        ).build().run(halt_after=["report"])
        fork = (
            _counter(tracker, "parent-fork", 6)
            .initialize_from(
                tracker,
                resume_at_next_action=True,
                default_state={"count": 0, "limit": 6},
                default_entrypoint="increment",
                fork_from_app_id="parent",
                fork_from_sequence_id=1,
                override_state_values={"limit": 6},
            )
            .build()
        )
        fork.run(halt_after=["report"])

        _simulation(tracker).run(halt_after=["summarize"])
        if gallery:
            rows = run_gallery(tracker, progress=progress)
            ran += [row["app_id"] for row in rows if row["status"] == "ran"] + [GALLERY_APP]
    finally:
        tracker.close()
    return ran
