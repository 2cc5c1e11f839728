"""Spans inside a step: the injected ``__tracer`` (function and class actions), span uids and
nesting, ``with`` and ``async with``, attributes, ``@trace``, exceptions leaving a span, and async
span hooks, in both sync and async modes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

import turnout
from turnout import Action, ApplicationBuilder, State, action, visibility
from turnout.core import tracing
from turnout.core.application import Application
from turnout.core.errors import AsyncRequiredError, HookError
from turnout.core.tracing import ActionSpan, TracerFactory, trace

# -- drivers and hooks ---------------------------------------------------------------------------


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    """Run the test with ``step`` and with ``astep``."""
    return str(request.param)


def do_step(app: Application, mode: str, inputs: dict[str, Any] | None = None) -> Any:
    if mode == "sync":
        return app.step(inputs)
    return asyncio.run(app.astep(inputs))


class SpanLog:
    """Records span, attribute and step events as short tuples, in the order they happen."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.spans: list[ActionSpan] = []
        self.payloads: list[tuple[str, dict[str, Any]]] = []

    def pre_start_span(self, *, span: ActionSpan, **future_kwargs: Any) -> None:
        self.spans.append(span)
        self.payloads.append(("pre_start_span", {"span": span, **future_kwargs}))
        parent = span.parent.uid if span.parent is not None else None
        self.events.append(("start", span.name, span.uid, parent))

    def post_end_span(
        self, *, span: ActionSpan, exception: BaseException | None, **future_kwargs: Any
    ) -> None:
        self.payloads.append(("post_end_span", {"span": span, **future_kwargs}))
        self.events.append(("end", span.name, span.uid, exception))

    def do_log_attributes(
        self, *, attributes: dict[str, Any], span: ActionSpan | None, **future_kwargs: Any
    ) -> None:
        self.payloads.append(("do_log_attributes", {"span": span, **future_kwargs}))
        self.events.append(("attrs", span.uid if span is not None else None, attributes))

    def post_run_step(
        self, *, sequence_id: int, exception: BaseException | None, **future_kwargs: Any
    ) -> None:
        self.events.append(("step", sequence_id, exception))

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [event for event in self.events if event[0] == kind]


class AsyncSpanLog:
    """Async span hooks that really suspend before recording into ``events``."""

    def __init__(self, events: list[tuple[Any, ...]]) -> None:
        self.events = events

    async def pre_start_span(self, *, span: ActionSpan, **future_kwargs: Any) -> None:
        await asyncio.sleep(0)
        self.events.append(("start", span.name, span.uid))

    async def post_end_span(self, *, span: ActionSpan, **future_kwargs: Any) -> None:
        await asyncio.sleep(0)
        self.events.append(("end", span.name, span.uid))

    async def do_log_attributes(
        self, *, attributes: dict[str, Any], span: ActionSpan | None, **future_kwargs: Any
    ) -> None:
        await asyncio.sleep(0)
        self.events.append(("attrs", span.uid if span is not None else None, attributes))


def _single(act: Any, *hooks: Any, name: str | None = None, **state: Any) -> Application:
    """An application of one action looping on itself."""
    name = name or act.__name__
    return (
        ApplicationBuilder()
        .with_actions(**{name: act})
        .with_transitions((name, name))
        .with_state(**state)
        .with_entrypoint(name)
        .with_hooks(*hooks)
        .build()
    )


# -- injection -----------------------------------------------------------------------------------


def test_an_action_declaring_tracer_receives_a_tracer_factory(mode):
    @action(reads=[], writes=[])
    def traced(state: State, __tracer: TracerFactory) -> tuple[dict[str, Any], State]:
        return {"tracer": __tracer}, state

    _act, result, _state = do_step(_single(traced), mode)
    assert isinstance(result["tracer"], TracerFactory)


def test_tracer_is_not_an_input_the_caller_passes():
    @action(reads=[], writes=[])
    def traced(state: State, __tracer: TracerFactory) -> State:
        return state

    assert traced.action_function.required_inputs == ()
    assert traced.action_function.optional_inputs == ()


class SpanUid(Action):
    """A class action taking the tracer through its name-mangled parameter."""

    @property
    def reads(self) -> list[str]:
        return []

    @property
    def writes(self) -> list[str]:
        return []

    @property
    def inputs(self) -> list[str]:
        return ["_SpanUid__tracer"]  # what `__tracer` in run's signature is mangled to

    def run(self, state: State, __tracer: TracerFactory) -> dict[str, Any]:
        with __tracer("in-class") as span:
            return {"uid": span.span.uid, "tracer": __tracer}

    def update(self, result: dict[str, Any], state: State) -> State:
        return state


class Holder:
    """An ``@action`` function written in a class body: its ``__tracer`` is mangled too."""

    @staticmethod
    @action(reads=[], writes=[])
    def traced(state: State, __tracer: TracerFactory) -> tuple[dict[str, Any], State]:
        with __tracer("in-body") as span:
            return {"uid": span.span.uid, "tracer": __tracer}, state


@pytest.mark.parametrize(
    "make", [SpanUid, lambda: Holder.traced], ids=["class-action", "function-in-class-body"]
)
def test_a_name_mangled_tracer_parameter_is_injected(mode, make):
    log = SpanLog()
    app = _single(make(), log, name="act")
    _act, result, _state = do_step(app, mode)
    assert isinstance(result["tracer"], TracerFactory)
    assert result["uid"] == "0:0"
    assert [event[:3] for event in log.of("start")] == [("start", log.spans[0].name, "0:0")]


# -- span uids and nesting -----------------------------------------------------------------------


def _nesting_action(kind: str) -> Any:
    """Spans: outer{inner-1, inner-2{deep}}, second; written with ``with`` or ``async with``."""
    if kind == "sync-with":

        @action(reads=[], writes=[])
        def nest(state: State, __tracer: TracerFactory) -> State:
            with __tracer("outer"):
                with __tracer("inner-1"):
                    pass
                with __tracer("inner-2"), __tracer("deep"):
                    pass
            with __tracer("second"):
                pass
            return state

        return nest
    if kind == "async-action-with":

        @action(reads=[], writes=[])
        async def nest_async(state: State, __tracer: TracerFactory) -> State:
            with __tracer("outer"):
                with __tracer("inner-1"):
                    await asyncio.sleep(0)
                with __tracer("inner-2"), __tracer("deep"):
                    await asyncio.sleep(0)
            with __tracer("second"):
                pass
            return state

        return nest_async

    @action(reads=[], writes=[])
    async def nest_async_with(state: State, __tracer: TracerFactory) -> State:
        async with __tracer("outer"):
            async with __tracer("inner-1"):
                await asyncio.sleep(0)
            async with __tracer("inner-2"), __tracer("deep"):
                await asyncio.sleep(0)
        async with __tracer("second"):
            pass
        return state

    return nest_async_with


NESTING = [
    ("sync", "sync-with"),
    ("async", "sync-with"),
    ("async", "async-action-with"),
    ("async", "async-action-async-with"),
]


@pytest.mark.parametrize(("run_mode", "kind"), NESTING, ids=[f"{m}-{k}" for m, k in NESTING])
def test_spans_nest_with_uids_per_step_and_position(run_mode, kind):
    log = SpanLog()
    app = _single(_nesting_action(kind), log, name="nest")
    do_step(app, run_mode)
    do_step(app, run_mode)
    assert log.events == [*_nested_events(0), *_nested_events(1)]


def _nested_events(seq: int) -> list[tuple[Any, ...]]:
    """What ``_nesting_action`` records in step ``seq``."""
    return [
        ("start", "outer", f"{seq}:0", None),
        ("start", "inner-1", f"{seq}:0.0", f"{seq}:0"),
        ("end", "inner-1", f"{seq}:0.0", None),
        ("start", "inner-2", f"{seq}:0.1", f"{seq}:0"),
        ("start", "deep", f"{seq}:0.1.0", f"{seq}:0.1"),
        ("end", "deep", f"{seq}:0.1.0", None),
        ("end", "inner-2", f"{seq}:0.1", None),
        ("end", "outer", f"{seq}:0", None),
        ("start", "second", f"{seq}:1", None),
        ("end", "second", f"{seq}:1", None),
        ("step", seq, None),
    ]


def test_a_span_describes_its_step(mode):
    log = SpanLog()

    @action(reads=[], writes=[])
    def work(state: State, __tracer: TracerFactory) -> State:
        with __tracer("fetch", span_dependencies=["cache"]):
            pass
        return state

    app = (
        ApplicationBuilder()
        .with_actions(work)
        .with_transitions(("work", "work"))
        .with_entrypoint("work")
        .with_identifiers(app_id="app-7", partition_key="user-7")
        .with_hooks(log)
        .build()
    )
    do_step(app, mode)
    (span,) = log.spans
    assert (span.name, span.uid, span.parent, span.sequence_id, span.action) == (
        "fetch",
        "0:0",
        None,
        0,
        "work",
    )
    assert span.dependencies == ("cache",)
    (start_name, start), (end_name, end) = log.payloads
    assert (start_name, end_name) == ("pre_start_span", "post_end_span")
    for payload in (start, end):
        assert payload["action"] == "work"
        assert payload["action_sequence_id"] == 0
        assert payload["span_dependencies"] == ["cache"]
        assert (payload["app_id"], payload["partition_key"]) == ("app-7", "user-7")
    assert end["end_time"] >= span.start_time


def test_spans_work_without_any_hooks(mode):
    @action(reads=[], writes=[])
    def work(state: State, __tracer: TracerFactory) -> tuple[dict[str, Any], State]:
        with __tracer("a") as a, __tracer("b") as b:
            b.log_attribute("ignored", True)
        __tracer.log_attributes(ignored=True)
        return {"uids": [a.span.uid, b.span.uid]}, state

    _act, result, _state = do_step(_single(work), mode)
    assert result == {"uids": ["0:0", "0:0.0"]}


# -- attributes ----------------------------------------------------------------------------------


def test_attributes_go_to_their_span_or_to_the_step(mode):
    log = SpanLog()

    @action(reads=[], writes=[])
    def work(state: State, __tracer: TracerFactory) -> State:
        __tracer.log_attribute("model", "m-1")
        with __tracer("call") as span:
            span.log_attribute("tokens", 12)
            span.log_attributes(latency=0.5, cached=False)
            with __tracer("inner"):
                span.log_attributes(outer_span=True)  # a span's own, even with another open
                __tracer.log_attributes(innermost=True)  # the innermost open span, as on Burr
            __tracer.log_step_attribute("step", 1)
            __tracer.log_step_attributes(also_step=True)
        __tracer.log_attributes(after=True)
        return state

    do_step(_single(work, log), mode)
    assert log.of("attrs") == [
        ("attrs", None, {"model": "m-1"}),
        ("attrs", "0:0", {"tokens": 12}),
        ("attrs", "0:0", {"latency": 0.5, "cached": False}),
        ("attrs", "0:0", {"outer_span": True}),
        ("attrs", "0:0.0", {"innermost": True}),
        ("attrs", None, {"step": 1}),
        ("attrs", None, {"also_step": True}),
        ("attrs", None, {"after": True}),
    ]
    for name, payload in log.payloads:
        if name == "do_log_attributes":
            assert (payload["action"], payload["action_sequence_id"]) == ("work", 0)
            assert payload["tags"] == {}


def test_attribute_payload_is_a_copy(mode):
    class Meddler:
        def do_log_attributes(self, *, attributes: dict[str, Any], **future_kwargs: Any) -> None:
            attributes["meddled"] = True

    logged = {"k": 1}

    @action(reads=[], writes=[])
    def work(state: State, __tracer: TracerFactory) -> State:
        __tracer.log_attributes(**logged)
        return state

    do_step(_single(work, Meddler()), mode)
    assert logged == {"k": 1}


# -- @trace --------------------------------------------------------------------------------------


@trace()
def add(a: int, b: int = 10) -> int:
    return a + b


@trace(span_name="login-call", input_filterlist=["secret"])
def login(user: str, secret: str) -> str:
    return f"welcome {user}"


@trace(capture_inputs=False, capture_outputs=False)
def quiet(value: int) -> int:
    return value


@trace
def bare(value: int) -> int:
    return value * 2


@trace()
async def fetch(value: int) -> int:
    await asyncio.sleep(0)
    return value + 1


@trace()
def outer_traced(value: int) -> int:
    return add(value, 1)


def _calling(fn: Callable[[], Any]) -> Any:
    @action(reads=[], writes=[])
    def calls(state: State) -> tuple[dict[str, Any], State]:
        return {"value": fn()}, state

    return calls


def _span_attributes(log: SpanLog, uid: str) -> list[dict[str, Any]]:
    return [attrs for _kind, span_uid, attrs in log.of("attrs") if span_uid == uid]


def test_trace_wraps_a_call_inside_a_step_in_a_span_named_after_the_function(mode):
    log = SpanLog()
    _act, result, _state = do_step(_single(_calling(lambda: add(1, b=2)), log, name="c"), mode)
    assert result == {"value": 3}
    assert log.of("start") == [("start", add.__qualname__, "0:0", None)]
    assert log.of("end") == [("end", add.__qualname__, "0:0", None)]
    inputs, outputs = _span_attributes(log, "0:0")
    assert inputs["turnout.function"] == add.__qualname__
    assert len(inputs["turnout.function_hash"]) == 64
    assert {k: v for k, v in inputs.items() if not k.startswith("turnout.")} == {"a": 1, "b": 2}
    assert outputs == {"return": 3}


def test_trace_records_only_the_arguments_passed():
    log = SpanLog()
    do_step(_single(_calling(lambda: add(5)), log, name="c"), "sync")
    inputs, _outputs = _span_attributes(log, "0:0")
    assert {k: v for k, v in inputs.items() if not k.startswith("turnout.")} == {"a": 5}


def test_trace_uses_span_name_and_drops_filtered_inputs(mode):
    log = SpanLog()
    do_step(_single(_calling(lambda: login("ann", secret="hunter2")), log, name="c"), mode)
    assert log.of("start") == [("start", "login-call", "0:0", None)]
    inputs, outputs = _span_attributes(log, "0:0")
    assert inputs["user"] == "ann"
    assert "secret" not in inputs
    assert "hunter2" not in repr(log.of("attrs"))
    assert outputs == {"return": "welcome ann"}


def test_trace_without_capture_logs_only_the_function_identity(mode):
    log = SpanLog()
    do_step(_single(_calling(lambda: quiet(7)), log, name="c"), mode)
    (only,) = _span_attributes(log, "0:0")
    assert set(only) == {"turnout.function", "turnout.function_hash"}


def test_trace_without_parentheses_works(mode):
    log = SpanLog()
    _act, result, _state = do_step(_single(_calling(lambda: bare(4)), log, name="c"), mode)
    assert result == {"value": 8}
    assert log.of("start") == [("start", bare.__qualname__, "0:0", None)]
    assert _span_attributes(log, "0:0")[-1] == {"return": 8}


def test_trace_keeps_the_function_metadata():
    assert (add.__name__, bare.__name__, fetch.__name__) == ("add", "bare", "fetch")
    assert asyncio.iscoroutinefunction(fetch)


def test_traced_calls_nest_under_the_open_span_and_each_other(mode):
    log = SpanLog()

    @action(reads=[], writes=[])
    def calls(state: State, __tracer: TracerFactory) -> State:
        with __tracer("batch"):
            outer_traced(1)
        add(2)
        return state

    do_step(_single(calls, log), mode)
    assert log.of("start") == [
        ("start", "batch", "0:0", None),
        ("start", outer_traced.__qualname__, "0:0.0", "0:0"),
        ("start", add.__qualname__, "0:0.0.0", "0:0.0"),
        ("start", add.__qualname__, "0:1", None),
    ]


def test_trace_on_an_async_function_inside_an_async_action():
    log = SpanLog()

    @action(reads=[], writes=[])
    async def calls(state: State) -> tuple[dict[str, Any], State]:
        return {"value": await fetch(1)}, state

    _act, result, _state = do_step(_single(calls, log), "async")
    assert result == {"value": 2}
    assert log.of("start") == [("start", fetch.__qualname__, "0:0", None)]
    inputs, outputs = _span_attributes(log, "0:0")
    assert inputs["value"] == 1
    assert outputs == {"return": 2}


def test_outside_a_step_a_traced_function_is_a_plain_call():
    log = SpanLog()
    app = _single(_calling(lambda: 0), log, name="c")
    assert add(1, 2) == 3
    assert login("ann", "pw") == "welcome ann"
    assert asyncio.run(fetch(1)) == 2
    assert log.events == []
    assert app.sequence_id is None


# -- exceptions ----------------------------------------------------------------------------------


@trace()
def explode() -> None:
    raise ValueError("inside traced")


def test_an_exception_leaving_a_span_reaches_post_end_span_and_propagates(mode):
    log = SpanLog()

    @action(reads=[], writes=[])
    def fails(state: State, __tracer: TracerFactory) -> State:
        with __tracer("outer"), __tracer("inner"):
            raise KeyError("inside span")

    with pytest.raises(KeyError, match="inside span") as info:
        do_step(_single(fails, log), mode)
    ends = log.of("end")
    assert [(name, exc) for _e, name, _uid, exc in ends] == [
        ("inner", info.value),
        ("outer", info.value),
    ]
    assert log.events[-1] == ("step", 0, info.value)


def test_an_exception_leaving_an_async_with_span_reaches_post_end_span_and_propagates():
    log = SpanLog()

    @action(reads=[], writes=[])
    async def fails(state: State, __tracer: TracerFactory) -> State:
        async with __tracer("outer"):
            raise KeyError("inside span")

    with pytest.raises(KeyError, match="inside span") as info:
        do_step(_single(fails, log), "async")
    assert log.of("end") == [("end", "outer", "0:0", info.value)]


def test_an_exception_leaving_a_traced_function_reaches_post_end_span_and_propagates(mode):
    log = SpanLog()
    with pytest.raises(ValueError, match="inside traced") as info:
        do_step(_single(_calling(explode), log, name="c"), mode)
    assert log.of("end") == [("end", explode.__qualname__, "0:0", info.value)]
    assert all("return" not in attrs for attrs in _span_attributes(log, "0:0"))


# -- async span hooks ----------------------------------------------------------------------------


def _sync_spans() -> Any:
    @action(reads=[], writes=[])
    def spans(state: State, __tracer: TracerFactory) -> State:
        with __tracer("a") as span:
            span.log_attribute("k", 1)
        __tracer.log_attribute("s", 2)
        return state

    return spans


def _async_spans_with_sync_with() -> Any:
    @action(reads=[], writes=[])
    async def spans(state: State, __tracer: TracerFactory) -> State:
        with __tracer("a") as span:
            span.log_attribute("k", 1)
        __tracer.log_attribute("s", 2)
        return state

    return spans


def _async_spans_with_async_with() -> Any:
    @action(reads=[], writes=[])
    async def spans(state: State, __tracer: TracerFactory) -> State:
        async with __tracer("a") as span:
            span.log_attribute("k", 1)
        __tracer.log_attribute("s", 2)
        return state

    return spans


SPAN_ACTIONS = {
    "sync-action-with": _sync_spans,
    "async-action-with": _async_spans_with_sync_with,
    "async-action-async-with": _async_spans_with_async_with,
}


@pytest.mark.parametrize("make", SPAN_ACTIONS.values(), ids=list(SPAN_ACTIONS))
def test_async_span_hooks_complete_before_post_run_step(make):
    events: list[tuple[Any, ...]] = []

    class StepEnd:
        def post_run_step(self, *, sequence_id: int, **future_kwargs: Any) -> None:
            events.append(("step", sequence_id))

    app = _single(make(), AsyncSpanLog(events), StepEnd(), name="spans")
    do_step(app, "async")
    assert events == [
        ("start", "a", "0:0"),
        ("attrs", "0:0", {"k": 1}),
        ("end", "a", "0:0"),
        ("attrs", None, {"s": 2}),
        ("step", 0),
    ]


def test_async_span_hooks_make_the_sync_drivers_raise():
    app = _single(_sync_spans(), AsyncSpanLog([]), name="spans")
    with pytest.raises(AsyncRequiredError):
        app.step()
    assert app.sequence_id is None


@pytest.mark.parametrize("variant", ["sync-hook", "async-hook"], ids=str)
def test_a_failing_span_hook_is_reported_as_hook_error(variant):
    problem = RuntimeError("span hook failed")
    steps: list[BaseException | None] = []

    class SyncFailing:
        def post_end_span(self, **future_kwargs: Any) -> None:
            raise problem

    class AsyncFailing:
        async def post_end_span(self, **future_kwargs: Any) -> None:
            await asyncio.sleep(0)
            raise problem

    class StepEnd:
        def post_run_step(self, *, exception: BaseException | None, **future_kwargs: Any) -> None:
            steps.append(exception)

    failing = SyncFailing() if variant == "sync-hook" else AsyncFailing()
    app = _single(_sync_spans(), failing, StepEnd(), name="spans")
    with pytest.raises(HookError) as info:
        do_step(app, "async")
    assert info.value.__cause__ is problem
    assert info.value.method == "post_end_span"
    assert len(steps) == 1


# -- public names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["TracerFactory", "trace", "ActionSpan", "SpanContext", "OpenSpan"], ids=str
)
def test_visibility_reexports_the_tracing_names(name):
    assert getattr(visibility, name) is getattr(tracing, name)


def test_turnout_exports_tracer_factory_and_trace():
    assert turnout.TracerFactory is TracerFactory
    assert turnout.trace is trace


# -- spans opened and closed by separate calls (adapters' callbacks) -----------------------------


def test_start_span_opens_now_and_end_closes_it_later(mode):
    log = SpanLog()

    @action(reads=[], writes=[])
    def callbacks(state: State, __tracer: TracerFactory) -> State:
        outer = __tracer.start_span("chain")
        inner = __tracer.start_span("model", parent=outer)
        inner.log_attributes(tokens=3)
        inner.end()
        outer.end(ValueError("parser failed"))
        return state

    do_step(_single(callbacks, log), mode)
    starts, ends = log.of("start"), log.of("end")
    assert starts == [("start", "chain", "0:0", None), ("start", "model", "0:0.0", "0:0")]
    assert [(name, uid) for _, name, uid, _ in ends] == [("model", "0:0.0"), ("chain", "0:0")]
    assert ends[0][3] is None
    assert isinstance(ends[1][3], ValueError)
    assert log.of("attrs") == [("attrs", "0:0.0", {"tokens": 3})]


def test_end_twice_reports_the_span_once(mode):
    log = SpanLog()

    @action(reads=[], writes=[])
    def twice(state: State, __tracer: TracerFactory) -> State:
        span = __tracer.start_span("once")
        span.end()
        span.end(RuntimeError("late"))
        assert span.ended
        return state

    do_step(_single(twice, log), mode)
    assert [(name, exc) for _, name, _, exc in log.of("end")] == [("once", None)]


def test_start_span_nests_under_the_open_with_span_but_does_not_become_current(mode):
    log = SpanLog()

    @action(reads=[], writes=[])
    def mixed(state: State, __tracer: TracerFactory) -> State:
        with __tracer("outer"):
            manual = __tracer.start_span("manual")
            with __tracer("sibling"):
                pass
            manual.end()
        return state

    do_step(_single(mixed, log), mode)
    assert log.of("start") == [
        ("start", "outer", "0:0", None),
        ("start", "manual", "0:0.0", "0:0"),
        ("start", "sibling", "0:0.1", "0:0"),
    ]


def test_start_span_accepts_a_with_span_or_an_action_span_as_parent(mode):
    log = SpanLog()

    @action(reads=[], writes=[])
    def parents(state: State, __tracer: TracerFactory) -> State:
        with __tracer("outer") as outer:
            assert outer.span is not None
            by_context = __tracer.start_span("a", parent=outer)
            by_span = __tracer.start_span("b", parent=outer.span)
        by_context.end()
        by_span.end()
        return state

    do_step(_single(parents, log), mode)
    assert log.of("start")[1:] == [("start", "a", "0:0.0", "0:0"), ("start", "b", "0:0.1", "0:0")]


def test_tracer_current_is_the_running_steps_tracer_and_none_outside(mode):
    log = SpanLog()

    def library_callback() -> None:
        tracer = TracerFactory.current()
        assert tracer is not None
        tracer.start_span("from a callback").end()

    @action(reads=[], writes=[])
    def calls_library(state: State) -> State:
        library_callback()
        return state

    assert TracerFactory.current() is None
    do_step(_single(calls_library, log), mode)
    assert log.of("start") == [("start", "from a callback", "0:0", None)]


def test_async_hooks_see_spans_started_and_ended_by_calls():
    events: list[tuple[Any, ...]] = []

    @action(reads=[], writes=[])
    async def manual(state: State, __tracer: TracerFactory) -> State:
        span = __tracer.start_span("manual")
        await asyncio.sleep(0)
        span.end()
        return state

    app = _single(manual, AsyncSpanLog(events))
    asyncio.run(app.astep())
    assert events == [("start", "manual", "0:0"), ("end", "manual", "0:0")]


def test_spans_started_from_threads_get_distinct_uids(mode):
    from concurrent.futures import ThreadPoolExecutor

    log = SpanLog()

    @action(reads=[], writes=[])
    def fan_out(state: State, __tracer: TracerFactory) -> State:
        with ThreadPoolExecutor(4) as pool:
            spans = list(pool.map(lambda i: __tracer.start_span(f"t{i}"), range(40)))
        for span in spans:
            span.end()
        return state

    do_step(_single(fan_out, log), mode)
    uids = [uid for _, _, uid, _ in log.of("start")]
    assert sorted(uids) == sorted(f"0:{i}" for i in range(40))


def test_async_hooks_see_spans_started_from_worker_threads_of_an_async_step():
    from concurrent.futures import ThreadPoolExecutor

    events: list[tuple[Any, ...]] = []

    @action(reads=[], writes=[])
    def threads(state: State, __tracer: TracerFactory) -> State:
        def work(i: int) -> None:  # a library's worker thread opening and closing a span
            __tracer.start_span(f"t{i}").end()

        with ThreadPoolExecutor(2) as pool:
            list(pool.map(work, range(4)))
        return state

    app = _single(threads, AsyncSpanLog(events))
    asyncio.run(app.astep())
    starts = [event for event in events if event[0] == "start"]
    ends = [event for event in events if event[0] == "end"]
    assert sorted(name for _, name, _ in starts) == ["t0", "t1", "t2", "t3"]
    assert sorted(uid for _, _, uid in starts) == ["0:0", "0:1", "0:2", "0:3"]
    assert sorted(ends) == sorted(("end", name, uid) for _, name, uid in starts)


def test_current_span_is_the_innermost_with_span_never_a_started_one(mode):
    seen: list[Any] = []

    @action(reads=[], writes=[])
    def spans(state: State, __tracer: TracerFactory) -> State:
        seen.append(TracerFactory.current_span())
        with __tracer("outer") as outer:
            started = __tracer.start_span("started")
            seen.append((TracerFactory.current_span(), outer.span))
            started.end()
        seen.append(TracerFactory.current_span())
        return state

    do_step(_single(spans), mode)
    assert seen[0] is None
    assert seen[1][0] is seen[1][1]
    assert seen[2] is None


def test_a_child_application_run_inside_a_span_does_not_adopt_the_parents_span():
    child_log = SpanLog()

    @action(reads=[], writes=[])
    def work(state: State, __tracer: TracerFactory) -> State:
        with __tracer("inner"):
            pass
        return state

    @action(reads=[], writes=[])
    def parent(state: State, __tracer: TracerFactory) -> State:
        with __tracer("outer"):  # current while the child runs, same sequence id (0)
            child = _single(work, child_log)
            child.step()
        return state

    _single(parent).step()
    assert child_log.of("start") == [("start", "inner", "0:0", None)]
