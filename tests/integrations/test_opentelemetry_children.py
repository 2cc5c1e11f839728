"""The OpenTelemetry hook with parallel children and with streams read in turns."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

from turnout import (
    ApplicationBuilder,
    ApplicationContext,
    MapStates,
    State,
    action,
    streaming_action,
)
from turnout.integrations.opentelemetry import OpenTelemetryHook

LIBRARY = {"provider": None}


@action(reads=["item"], writes=["out"])
def double(state: State) -> State:
    provider = LIBRARY["provider"]
    assert isinstance(provider, TracerProvider)
    with provider.get_tracer("a-library").start_as_current_span("library call"):
        pass
    return state.update(out=state["item"] * 2)


class DoubleAll(MapStates):
    @property
    def reads(self) -> list[str]:
        return ["items"]

    @property
    def writes(self) -> list[str]:
        return ["outs"]

    def action(self, state: State, inputs: dict[str, Any]) -> Any:
        return double

    def states(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> Iterable[State]:
        for item in state["items"]:
            yield State({"item": item})

    def reduce(self, state: State, states: Any) -> State:
        return state.update(outs=[child["out"] for child in states])


def _parent_of(span: ReadableSpan, spans: list[ReadableSpan]) -> ReadableSpan | None:
    parent_id = span.parent.span_id if span.parent is not None else None
    return next((s for s in spans if s.context.span_id == parent_id), None)


def _ancestors(span: ReadableSpan, spans: list[ReadableSpan]) -> list[str]:
    names = []
    parent = _parent_of(span, spans)
    while parent is not None:
        names.append(parent.name)
        parent = _parent_of(parent, spans)
    return names


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_parallel_children_and_their_libraries_nest_under_the_parent_step(otel, mode):
    provider, exporter = otel
    LIBRARY["provider"] = provider
    app = (
        ApplicationBuilder()
        .with_actions(fan=DoubleAll())
        .with_transitions(("fan", "fan"))
        .with_state(items=[1, 2, 3])
        .with_entrypoint("fan")
        .with_hooks(OpenTelemetryHook(provider))
        .build()
    )
    if mode == "sync":
        app.step()
    else:
        asyncio.run(app.astep())
    assert app.state["outs"] == [2, 4, 6]
    spans = list(exporter.get_finished_spans())
    assert len({span.context.trace_id for span in spans}) == 1  # one trace, not one per child
    library_calls = [span for span in spans if span.name == "library call"]
    assert len(library_calls) == 3
    for call in library_calls:
        ancestors = _ancestors(call, spans)
        assert ancestors[0] == "double"  # the child's step
        assert ancestors[-2:] == ["fan", f"turnout.{'step' if mode == 'sync' else 'astep'}"]


@streaming_action(reads=[], writes=["text"])
def speak(state: State, words: list[str]) -> Any:
    for word in words:
        yield {"delta": word}
    yield {"text": " ".join(words)}, state.update(text=" ".join(words))


def _speaker(provider: TracerProvider, app_id: str) -> Any:
    return (
        ApplicationBuilder()
        .with_actions(speak)
        .with_transitions(("speak", "speak"))
        .with_state(text="")
        .with_entrypoint("speak")
        .with_identifiers(app_id=app_id)
        .with_hooks(OpenTelemetryHook(provider))
        .build()
    )


def test_two_streams_read_in_turns_leave_no_step_span_current(otel):
    provider, _ = otel
    first = _speaker(provider, "a").stream_result(
        halt_after=["speak"], inputs={"words": ["x", "y"]}
    )
    second = _speaker(provider, "b").stream_result(halt_after=["speak"], inputs={"words": ["z"]})
    _, one = first
    _, two = second
    items_one, items_two = iter(one), iter(two)
    next(items_one)
    next(items_two)
    list(items_one)  # the first stream ends while the second's step span is on top
    list(items_two)
    assert not trace.get_current_span().get_span_context().is_valid


def test_two_async_streams_read_in_turns_leave_no_step_span_current(otel):
    provider, _ = otel

    async def main() -> bool:
        first = await _speaker(provider, "a").astream_result(
            halt_after=["speak"], inputs={"words": ["x", "y"]}
        )
        second = await _speaker(provider, "b").astream_result(
            halt_after=["speak"], inputs={"words": ["z"]}
        )
        one, two = first[1], second[1]
        items_one, items_two = one.__aiter__(), two.__aiter__()
        await items_one.__anext__()
        await items_two.__anext__()
        async for _ in items_one:
            pass
        async for _ in items_two:
            pass
        return bool(trace.get_current_span().get_span_context().is_valid)

    assert asyncio.run(main()) is False
