"""Burr programs keep Burr's semantics on turnout (issue 13, "Semantics that differ today").

Each test is a small Burr-style program, written from Burr's documentation and importing only
Burr's module paths under ``turnout.``, that pins what Burr does with it: undeclared writes and
deletions applied (warned, or an error in strict mode), ``__context`` in a class action's ``run``,
``state["__SEQUENCE_ID"]`` read in an action. The parallel and smaller differences are in
``test_burr_semantics_parallel.py`` and ``test_burr_semantics_details.py``.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from turnout.core import ApplicationBuilder, State, action, default
from turnout.core.action import Action, SingleStepAction
from turnout.core.application import ApplicationContext
from turnout.core.errors import (
    MissingWriteError,
    UndeclaredWriteError,
    UndeclaredWriteWarning,
)
from turnout.core.streaming import SingleStepStreamingAction, StreamingAction

# -- 1. undeclared writes and deletions ----------------------------------------------------------


@action(reads=[], writes=["chat_history", "prompt"])
def process_prompt(state: State, prompt: str) -> State:
    """The chatbot examples' first action: start each turn from a wiped state."""
    return (
        state.wipe(keep=["prompt", "chat_history"])
        .append(chat_history={"role": "user", "content": prompt})
        .update(prompt=prompt)
    )


@action(reads=["prompt"], writes=["response", "mode"])
def respond(state: State) -> State:
    return state.update(response=f"echo: {state['prompt']}", mode="text", scratch=len("x"))


def _chatbot(*, strict: bool = False) -> Any:
    return (
        ApplicationBuilder()
        .with_actions(process_prompt, respond)
        .with_transitions(("process_prompt", "respond"), ("respond", "process_prompt", default))
        .with_state(chat_history=[])
        .with_entrypoint("process_prompt")
        .build(strict=strict)
    )


def test_a_chatbot_that_wipes_undeclared_keys_runs_as_on_burr_with_one_warning_per_key():
    app = _chatbot()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for prompt in ("hi", "again", "third"):
            app.run(halt_after=["respond"], inputs={"prompt": prompt})
    # Burr's result: the wipe dropped last turn's response/mode/scratch before they were rewritten.
    assert app.state == {
        "chat_history": [
            {"role": "user", "content": "hi"},
            {"role": "user", "content": "again"},
            {"role": "user", "content": "third"},
        ],
        "prompt": "third",
        "response": "echo: third",
        "mode": "text",
        "scratch": 1,
    }
    messages = sorted(str(w.message) for w in caught)
    assert all(w.category is UndeclaredWriteWarning for w in caught)
    assert len(messages) == 2  # (process_prompt: the wiped keys), (respond: scratch), once each
    wiped, scratch = messages
    assert wiped.startswith("action 'process_prompt' changed 'response', 'mode', 'scratch'")
    assert "(delete 'response', delete 'mode', delete 'scratch')" in wiped
    assert "writes=['chat_history', 'mode', 'prompt', 'response', 'scratch']" in wiped
    assert scratch.startswith("action 'respond' changed 'scratch' (set 'scratch')")
    assert "writes=['mode', 'response', 'scratch']" in scratch


def test_strict_mode_keeps_the_undeclared_write_error_and_commits_nothing():
    app = _chatbot(strict=True)
    app.step(inputs={"prompt": "hi"})
    before = app.state
    with pytest.raises(UndeclaredWriteError, match=r"action 'respond' changed 'scratch'"):
        app.step()
    assert app.state == before


def test_an_undeclared_write_error_is_still_a_value_error_as_burrs_was():
    app = _chatbot(strict=True)
    app.step(inputs={"prompt": "hi"})
    with pytest.raises(ValueError, match="scratch"):
        app.step()


@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
def test_deleting_a_declared_write_is_not_a_missing_write(strict):
    @action(reads=["draft"], writes=["draft", "sent"])
    def send(state: State) -> State:
        return state.update(sent=state["draft"]).wipe(delete=["draft"])

    app = (
        ApplicationBuilder()
        .with_actions(send)
        .with_state(draft="hello")
        .with_entrypoint("send")
        .build(strict=strict)
    )
    _act, _result, state = app.step()
    assert state == {"sent": "hello"}


def test_a_declared_write_never_written_is_still_a_missing_write():
    @action(reads=[], writes=["answer"])
    def forgetful(state: State) -> State:
        return state

    app = ApplicationBuilder().with_actions(forgetful).with_entrypoint("forgetful").build()
    with pytest.raises(MissingWriteError, match=r"\['answer'\] is not in the state"):
        app.step()


def test_an_undeclared_write_of_an_async_action_is_applied_and_warned():
    @action(reads=[], writes=["a"])
    async def sloppy(state: State) -> State:
        return state.update(a=1, b=2)

    app = ApplicationBuilder().with_actions(sloppy).with_entrypoint("sloppy").build()
    with pytest.warns(UndeclaredWriteWarning, match=r"action 'sloppy' changed 'b'"):
        asyncio.run(app.astep())
    assert app.state == {"a": 1, "b": 2}


# -- 2. ``__context`` in a class action's run (Python mangles it to ``_Cls__context``) -----------


class CountWithContext(Action):
    @property
    def reads(self) -> list[str]:
        return ["count"]

    @property
    def writes(self) -> list[str]:
        return ["count", "seen"]

    @property
    def inputs(self) -> list[str]:
        return ["__context"]

    def run(self, state: State, __context: ApplicationContext) -> dict[str, Any]:
        return {"count": state["count"] + 1, "seen": (__context.app_id, __context.sequence_id)}

    def update(self, result: dict[str, Any], state: State) -> State:
        return state.update(**result)


class CountWithContextUndeclared(CountWithContext):
    """The same, without listing ``__context`` in ``inputs`` (Burr would fail here)."""

    @property
    def inputs(self) -> list[str]:
        return []


class OneStepWithContext(SingleStepAction):
    @property
    def reads(self) -> list[str]:
        return ["count"]

    @property
    def writes(self) -> list[str]:
        return ["count", "seen"]

    @property
    def inputs(self) -> tuple[list[str], list[str]]:
        return ["__context"], ["step"]

    def run_and_update(
        self, state: State, __context: ApplicationContext, step: int = 1
    ) -> tuple[dict[str, Any], State]:
        seen = (__context.app_id, __context.sequence_id)
        return {}, state.update(count=state["count"] + step, seen=seen)


class AsyncWithContext(CountWithContext):
    async def run(  # type: ignore[override]
        self, state: State, __context: ApplicationContext
    ) -> dict[str, Any]:
        return {"count": state["count"] + 1, "seen": (__context.app_id, __context.sequence_id)}


class StreamWithContext(StreamingAction):
    @property
    def reads(self) -> list[str]:
        return ["count"]

    @property
    def writes(self) -> list[str]:
        return ["count", "seen"]

    @property
    def inputs(self) -> list[str]:
        return ["__context", "__tracer"]

    def stream_run(  # type: ignore[override]
        self, state: State, __context: ApplicationContext, __tracer: Any
    ) -> Iterator[dict[str, Any]]:
        with __tracer("counting"):
            yield {"partial": True}
        yield {"count": state["count"] + 1, "seen": (__context.app_id, __context.sequence_id)}

    def update(self, result: dict[str, Any], state: State) -> State:
        return state.update(count=result["count"], seen=result["seen"])


def _counting(act: Action) -> Any:
    return (
        ApplicationBuilder()
        .with_actions(count=act)
        .with_transitions(("count", "count"))
        .with_state(count=0)
        .with_identifiers(app_id="ctx-app")
        .with_entrypoint("count")
        .build()
    )


@pytest.mark.parametrize(
    "act",
    [CountWithContext(), CountWithContextUndeclared(), OneStepWithContext()],
    ids=["action", "action-inputs-not-listed", "single-step"],
)
def test_a_class_action_receives_dunder_context_despite_name_mangling(act):
    app = _counting(act)
    app.step()
    _act, _result, state = app.step()
    assert state["count"] == 2
    assert state["seen"] == ("ctx-app", 1)


def test_an_async_class_action_receives_dunder_context_despite_name_mangling():
    app = _counting(AsyncWithContext())
    asyncio.run(app.astep())
    assert app.state["seen"] == ("ctx-app", 0)


def test_a_streaming_class_action_receives_dunder_context_and_tracer_despite_name_mangling():
    app = _counting(StreamWithContext())
    _act, container = app.stream_result(halt_after=["count"])
    items = list(container)
    _result, state = container.get()
    assert items[0] == {"partial": True}
    assert state["seen"] == ("ctx-app", 0)


class OneStepStreamWithContext(SingleStepStreamingAction):
    @property
    def reads(self) -> list[str]:
        return ["count"]

    @property
    def writes(self) -> list[str]:
        return ["count", "seen"]

    def stream_run_and_update(  # type: ignore[override]
        self, state: State, __context: ApplicationContext
    ) -> Iterator[Any]:
        yield {"partial": True}, None
        seen = (__context.app_id, __context.sequence_id)
        yield {"done": True}, state.update(count=state["count"] + 1, seen=seen)


def test_a_single_step_streaming_class_action_receives_dunder_context_despite_name_mangling():
    app = _counting(OneStepStreamWithContext())
    _act, container = app.stream_result(halt_after=["count"])
    items = list(container)
    _result, state = container.get()
    assert items[0] == {"partial": True}
    assert state["seen"] == ("ctx-app", 0)


# -- 5. ``__SEQUENCE_ID`` / ``__PRIOR_STEP``: computed on read inside a step, never stored -------


@action(reads=["__SEQUENCE_ID", "__PRIOR_STEP"], writes=["seen"])
def where_a(state: State) -> State:
    return state.update(seen=(state.get("__SEQUENCE_ID"), state.get("__PRIOR_STEP")))


@action(reads=["seen", "__SEQUENCE_ID", "__PRIOR_STEP"], writes=["seen"])
def where_b(state: State) -> State:
    return state.update(seen=(state["__SEQUENCE_ID"], state["__PRIOR_STEP"]))


class WhereClass(Action):
    @property
    def reads(self) -> list[str]:
        return ["__SEQUENCE_ID", "__PRIOR_STEP"]

    @property
    def writes(self) -> list[str]:
        return ["seen"]

    def run(self, state: State, **run_kwargs: Any) -> dict[str, Any]:
        return {"seen": (state["__SEQUENCE_ID"], state["__PRIOR_STEP"])}

    def update(self, result: dict[str, Any], state: State) -> State:
        return state.update(seen=result["seen"])


def test_actions_read_sequence_id_and_prior_step_from_state_as_in_burr():
    app = (
        ApplicationBuilder()
        .with_actions(a=where_a, b=where_b, c=WhereClass())
        .with_transitions(("a", "b"), ("b", "c"), ("c", "a"))
        .with_entrypoint("a")
        .build(strict=True)  # reading them is no suspicious read
    )
    seen = [app.step()[2]["seen"] for _ in range(4)]
    # What Burr 0.43 gives the same program.
    assert seen == [(0, None), (1, "a"), (2, "b"), (3, "c")]
    assert app.state.get_all() == {"seen": (3, "c")}  # never stored
    assert "__SEQUENCE_ID" not in app.state


def test_an_async_action_reads_the_sequence_id_from_state():
    @action(reads=["__SEQUENCE_ID"], writes=["seen"])
    async def where(state: State) -> State:
        return state.update(seen=state["__SEQUENCE_ID"])

    app = (
        ApplicationBuilder()
        .with_actions(where)
        .with_transitions(("where", "where"))
        .with_entrypoint("where")
        .build()
    )
    asyncio.run(app.astep())
    assert asyncio.run(app.astep())[2]["seen"] == 1


def test_outside_a_step_the_control_keys_are_absent_and_the_error_names_the_replacement():
    app = (
        ApplicationBuilder()
        .with_actions(a=where_a)
        .with_transitions(("a", "a"))
        .with_entrypoint("a")
        .build()
    )
    app.step()
    assert app.state.get("__SEQUENCE_ID") is None
    with pytest.raises(KeyError, match=r"app\.sequence_id / app\.prior_action"):
        app.state["__SEQUENCE_ID"]
    assert app.state["seen"] == (0, None)  # the first step has no prior step
