"""Lifecycle hooks: which hooks fire, with which keyword payload and in which order, for every
driver in both sync and async modes; sync and async hook variants; payloads that cannot alter the
run; and the error policy of ``turnout.core.hooks``."""

from __future__ import annotations

import asyncio
import gc
import inspect
from collections.abc import Callable
from typing import Any

import pytest

from turnout import ApplicationBuilder, State, StreamingAction, action, lifecycle, streaming_action
from turnout.core import hooks as core_hooks
from turnout.core.application import Application
from turnout.core.errors import AsyncRequiredError, HookError
from turnout.core.hooks import HOOK_NAMES
from turnout.core.state import Change
from turnout.core.tracing import ActionSpan, TracerFactory

# -- drivers: the same call in sync and async mode -----------------------------------------------


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    """Run the test with the sync drivers (``step``, ...) and with the async ones (``astep``)."""
    return str(request.param)


def method_name(mode: str, name: str) -> str:
    """The ``method`` the execute-call hooks report: ``step`` or ``astep``."""
    return name if mode == "sync" else f"a{name}"


def do_step(app: Application, mode: str, inputs: dict[str, Any] | None = None) -> Any:
    if mode == "sync":
        return app.step(inputs)
    return asyncio.run(app.astep(inputs))


def do_run(app: Application, mode: str, **kwargs: Any) -> Any:
    if mode == "sync":
        return app.run(**kwargs)
    return asyncio.run(app.arun(**kwargs))


def do_iterate(app: Application, mode: str, **kwargs: Any) -> list[Any]:
    if mode == "sync":
        return list(app.iterate(**kwargs))

    async def go() -> list[Any]:
        return [out async for out in app.aiterate(**kwargs)]

    return asyncio.run(go())


def do_stream(app: Application, mode: str, halt_after: list[str], **kwargs: Any) -> Any:
    """``stream_result``: ``(action, items, (result, state))`` after draining the container."""
    if mode == "sync":
        act, container = app.stream_result(halt_after, **kwargs)
        items = list(container)
        return act, items, container.get()

    async def go() -> Any:
        act, container = await app.astream_result(halt_after, **kwargs)
        items = [item async for item in container]
        return act, items, await container.get()

    return asyncio.run(go())


def do_stream_iterate(app: Application, mode: str, **kwargs: Any) -> list[Any]:
    """``stream_iterate``: ``[(action name, items, (result, state)), ...]``."""
    if mode == "sync":
        out = []
        for act, container in app.stream_iterate(**kwargs):
            out.append((act.name, list(container), container.get()))
        return out

    async def go() -> list[Any]:
        out = []
        async for act, container in app.astream_iterate(**kwargs):
            out.append((act.name, [item async for item in container], await container.get()))
        return out

    return asyncio.run(go())


DRIVERS: dict[str, Callable[[Application, str], Any]] = {
    "step": lambda app, mode: do_step(app, mode, {"by": 2}),
    "run": lambda app, mode: do_run(app, mode, halt_after=["talk"], inputs={"by": 2}),
    "iterate": lambda app, mode: do_iterate(app, mode, halt_after=["talk"], inputs={"by": 2}),
    "stream_result": lambda app, mode: do_stream(app, mode, ["talk"], inputs={"by": 2}),
    "stream_iterate": lambda app, mode: do_stream_iterate(
        app, mode, halt_after=["talk"], inputs={"by": 2}
    ),
}


# -- hooks used by the tests ---------------------------------------------------------------------


class Recorder:
    """A duck-typed hook (no base class) with every hook method: records ``(name, payload)``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def names(self) -> list[str]:
        return [name for name, _payload in self.calls]

    def of(self, name: str) -> list[dict[str, Any]]:
        return [payload for called, payload in self.calls if called == name]


def _recording(name: str) -> Callable[..., None]:
    def method(self: Recorder, **payload: Any) -> None:
        self.calls.append((name, payload))

    method.__name__ = name
    return method


for _name in HOOK_NAMES:
    setattr(Recorder, _name, _recording(_name))


class Failing:
    """A hook whose ``method`` raises ``error`` (while ``armed``)."""

    def __init__(self, method: str, error: Exception | None = None) -> None:
        self.error = error if error is not None else RuntimeError(f"{method} failed")
        self.armed = True
        setattr(self, method, self._raise)

    def _raise(self, **payload: Any) -> None:
        if self.armed:
            raise self.error


# -- the application every test drives -----------------------------------------------------------


def _app(*hooks: Any, counter: list[str] | None = None, **builder_kwargs: Any) -> Application:
    """``count`` (input ``by``, a span and attributes) -> ``talk`` (streams two items)."""
    ran = counter if counter is not None else []

    @action(reads=["n"], writes=["n"])
    def count(state: State, by: int, __tracer: TracerFactory) -> tuple[dict[str, Any], State]:
        ran.append("count")
        with __tracer("work") as span:
            span.log_attributes(inside=True)
        __tracer.log_attribute("step_level", 1)
        return {"by": by}, state.increment(n=by)

    @streaming_action(reads=["n"], writes=["said"])
    def talk(state: State):
        ran.append("talk")
        yield {"delta": "a"}
        yield {"delta": "b"}, None
        yield {"said": "ab"}, state.update(said="ab")

    builder = (
        ApplicationBuilder()
        .with_actions(count, talk)
        .with_transitions(("count", "talk"))
        .with_state(n=0, said="")
        .with_entrypoint("count")
        .with_identifiers(app_id="app-1", partition_key="user-1")
        .with_hooks(*hooks)
    )
    return builder.build(**builder_kwargs)


def _single(fn: Any, *hooks: Any, **state: Any) -> Application:
    """An application of one action looping on itself."""
    name = fn.__name__
    return (
        ApplicationBuilder()
        .with_actions(fn)
        .with_transitions((name, name))
        .with_state(**state)
        .with_entrypoint(name)
        .with_hooks(*hooks)
        .build()
    )


def _documented_keys(name: str) -> set[str]:
    """The keyword-only parameters of the hook method in its (sync) base class."""
    for base in vars(core_hooks).values():
        if inspect.isclass(base) and not base.__name__.endswith("Async") and name in vars(base):
            params = inspect.signature(getattr(base, name)).parameters.values()
            return {p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
    raise AssertionError(f"no base class documents {name}")


# -- every hook, its payload and its order -------------------------------------------------------


def test_every_hook_fires_with_its_documented_keywords(mode):
    """Every documented keyword is passed; more may be (``**future_kwargs``)."""
    recorder = Recorder()
    app = _app(recorder)
    do_stream_iterate(app, mode, halt_after=["talk"], inputs={"by": 2})
    assert set(recorder.names()) == set(HOOK_NAMES)
    for name, payload in recorder.calls:
        assert _documented_keys(name) <= set(payload), name


def test_post_application_create_fires_once_at_build_with_the_application(mode):
    recorder = Recorder()
    builder = (
        ApplicationBuilder()
        .with_actions(count=_increment)
        .with_state(n=5)
        .with_entrypoint("count")
        .with_identifiers(app_id="app-1", partition_key="user-1")
        .with_hooks(recorder)
    )
    app = builder.build() if mode == "sync" else asyncio.run(builder.abuild())
    assert recorder.names() == ["post_application_create"]
    (payload,) = recorder.of("post_application_create")
    assert payload["app_id"] == "app-1"
    assert payload["partition_key"] == "user-1"
    assert payload["state"] == {"n": 5}
    assert payload["application_graph"] is app.graph
    do_step(app, mode)
    assert recorder.names().count("post_application_create") == 1


@action(reads=["n"], writes=["n"])
def _increment(state: State) -> State:
    return state.increment(n=1)


def test_a_step_fires_its_hooks_in_order(mode):
    recorder = Recorder()
    app = _app(recorder)
    do_step(app, mode, {"by": 2})
    assert recorder.names() == [
        "post_application_create",
        "pre_run_execute_call",
        "pre_run_step",
        "pre_start_span",
        "do_log_attributes",
        "post_end_span",
        "do_log_attributes",
        "post_run_step",
        "post_run_execute_call",
    ]


def test_a_streamed_step_ends_before_its_stream_as_on_burr(mode):
    recorder = Recorder()
    app = _app(recorder)
    do_step(app, mode, {"by": 2})
    recorder.calls.clear()
    do_stream(app, mode, ["talk"])
    # stream_result's call returns the container: the stream runs after it, as it is consumed
    assert recorder.names() == [
        "pre_run_execute_call",
        "post_run_execute_call",
        "pre_run_step",
        "pre_start_stream",
        "post_stream_item",
        "post_stream_item",
        "post_run_step",
        "post_end_stream",
    ]


def test_a_streaming_action_run_as_a_plain_step_fires_no_stream_hooks(mode):
    """As in Burr: its items reach no caller, so there is no stream to announce."""
    recorder = Recorder()
    app = _app(recorder)
    do_step(app, mode, {"by": 2})
    recorder.calls.clear()
    do_step(app, mode)
    assert app.prior_action == "talk"
    assert not [name for name in recorder.names() if "stream" in name]


@pytest.mark.parametrize("driver", list(DRIVERS), ids=list(DRIVERS))
def test_execute_call_hooks_fire_once_per_outermost_call_with_its_method_name(mode, driver):
    recorder = Recorder()
    app = _app(recorder)
    DRIVERS[driver](app, mode)
    calls = [(n, p["method"]) for n, p in recorder.calls if n.endswith("_execute_call")]
    expected = method_name(mode, driver)
    assert calls == [("pre_run_execute_call", expected), ("post_run_execute_call", expected)]
    names = recorder.names()
    assert names[1] == "pre_run_execute_call"  # right after post_application_create
    assert names.index("pre_run_execute_call") < names.index("pre_run_step")


@pytest.mark.parametrize("driver", ["iterate", "stream_iterate"], ids=str)
def test_async_iterations_fire_post_run_execute_call_when_the_iteration_ends(driver):
    recorder = Recorder()
    app = _app(recorder)

    async def go() -> list[str]:
        if driver == "iterate":
            async for _out in app.aiterate(halt_after=["talk"], inputs={"by": 2}):
                pass
        else:
            async for _act, container in app.astream_iterate(halt_after=["talk"], inputs={"by": 2}):
                await container.get()
        return recorder.names()

    names_when_done = asyncio.run(go())
    assert names_when_done[-1] == "post_run_execute_call"
    assert recorder.of("post_run_execute_call")[0]["method"] == f"a{driver}"


def _chain(*hooks: Any) -> Application:
    """``a -> b -> c``, each incrementing ``n``."""
    return (
        ApplicationBuilder()
        .with_actions(a=_increment, b=_increment, c=_increment)
        .with_transitions(("a", "b"), ("b", "c"))
        .with_state(n=0)
        .with_entrypoint("a")
        .with_hooks(*hooks)
        .build()
    )


@pytest.mark.parametrize("driver", ["run", "iterate"], ids=["run", "iterate"])
def test_a_run_of_many_steps_fires_the_execute_call_hooks_once(mode, driver):
    recorder = Recorder()
    app = _chain(recorder)
    if driver == "run":
        do_run(app, mode, halt_after=["c"])
    else:
        do_iterate(app, mode, halt_after=["c"])
    names = recorder.names()[1:]  # after post_application_create
    assert names.count("pre_run_step") == names.count("post_run_step") == 3
    assert names.count("pre_run_execute_call") == names.count("post_run_execute_call") == 1
    assert names[0] == "pre_run_execute_call"
    assert names[-1] == "post_run_execute_call"


def test_each_call_fires_its_own_execute_call_hooks(mode):
    recorder = Recorder()
    app = _chain(recorder)
    do_step(app, mode)
    do_run(app, mode, halt_after=["c"])
    methods = [p["method"] for p in recorder.of("pre_run_execute_call")]
    assert methods == [method_name(mode, "step"), method_name(mode, "run")]
    assert len(recorder.of("post_run_execute_call")) == 2


def test_execute_call_hooks_receive_the_state_before_and_after_the_call(mode):
    recorder = Recorder()
    app = _app(recorder)
    do_run(app, mode, halt_after=["talk"], inputs={"by": 2})
    (pre,) = recorder.of("pre_run_execute_call")
    (post,) = recorder.of("post_run_execute_call")
    assert pre["state"] == {"n": 0, "said": ""}
    assert post["state"] == {"n": 2, "said": "ab"}
    assert post["exception"] is None
    assert (pre["app_id"], pre["partition_key"]) == ("app-1", "user-1")


def test_post_run_execute_call_receives_the_exception_the_call_raised(mode):
    @action(reads=[], writes=[])
    def broken(state: State) -> State:
        raise ValueError("broken")

    recorder = Recorder()
    app = _single(broken, recorder)
    with pytest.raises(ValueError, match="broken"):
        do_step(app, mode)
    (post,) = recorder.of("post_run_execute_call")
    assert isinstance(post["exception"], ValueError)
    assert post["method"] == method_name(mode, "step")


def test_run_step_hooks_receive_the_step(mode):
    recorder = Recorder()
    app = _app(recorder)
    _act, result, state = do_step(app, mode, {"by": 2, "ignored": 1})
    (pre,) = recorder.of("pre_run_step")
    (post,) = recorder.of("post_run_step")
    assert pre["action"] is post["action"] is app.graph.get_action("count")
    assert pre["sequence_id"] == post["sequence_id"] == 0
    assert pre["state"] == {"n": 0, "said": ""}
    assert {k: v for k, v in pre["inputs"].items() if k != "__tracer"} == {"by": 2}
    assert pre["attempt"] == post["attempt"] == 1
    assert post["state"] is state
    assert post["result"] == result == {"by": 2}
    assert post["exception"] is None
    assert post["changes"] == (Change("increment", "n", 2),)
    assert post["will_retry"] is False
    assert (post["app_id"], post["partition_key"]) == ("app-1", "user-1")


def test_post_run_step_reports_a_failed_step_with_the_unchanged_state(mode):
    @action(reads=["n"], writes=["n"])
    def broken(state: State) -> State:
        raise ValueError("broken")

    recorder = Recorder()
    app = _single(broken, recorder, n=1)
    with pytest.raises(ValueError, match="broken"):
        do_step(app, mode)
    (post,) = recorder.of("post_run_step")
    assert isinstance(post["exception"], ValueError)
    assert post["result"] is None
    assert post["state"] == {"n": 1}
    assert post["changes"] == ()
    assert post["will_retry"] is False


def test_stream_hooks_receive_the_items_and_their_timing(mode):
    recorder = Recorder()
    app = _app(recorder)
    do_step(app, mode, {"by": 2})
    _act, items, (result, _state) = do_stream(app, mode, ["talk"])
    assert items == [{"delta": "a"}, {"delta": "b"}]
    assert result == {"said": "ab"}
    (start,) = recorder.of("pre_start_stream")
    assert start == {
        "action": "talk",
        "sequence_id": 1,
        "app_id": "app-1",
        "partition_key": "user-1",
    }
    streamed = recorder.of("post_stream_item")
    assert [(p["item"], p["item_index"]) for p in streamed] == [
        ({"delta": "a"}, 0),
        ({"delta": "b"}, 1),
    ]
    for payload in streamed:
        assert payload["stream_initialize_time"] <= payload["first_stream_item_start_time"]
        assert (payload["action"], payload["sequence_id"]) == ("talk", 1)
    (end,) = recorder.of("post_end_stream")
    assert end["items_streamed"] == 2
    assert end["exception"] is None


def test_post_end_stream_receives_the_exception_that_ended_the_stream(mode):
    @streaming_action(reads=[], writes=["said"])
    def stutter(state: State):
        yield {"delta": "a"}
        raise ValueError("lost")

    recorder = Recorder()
    app = _single(stutter, recorder, said="")
    with pytest.raises(ValueError, match="lost"):
        do_stream(app, mode, ["stutter"])
    (end,) = recorder.of("post_end_stream")
    assert end["items_streamed"] == 1
    assert isinstance(end["exception"], ValueError)
    assert [isinstance(p["exception"], ValueError) for p in recorder.of("post_run_step")] == [True]
    assert app.state == {"said": ""}


def test_span_and_attribute_hooks_describe_the_span(mode):
    recorder = Recorder()
    app = _app(recorder)
    do_step(app, mode, {"by": 2})
    (start,) = recorder.of("pre_start_span")
    (end,) = recorder.of("post_end_span")
    span = start["span"]
    assert isinstance(span, ActionSpan)
    assert end["span"] is span
    assert (span.name, span.uid, span.action, span.sequence_id) == ("work", "0:0", "count", 0)
    assert (start["action"], start["action_sequence_id"]) == ("count", 0)
    assert start["span_dependencies"] == []
    assert end["exception"] is None
    assert end["end_time"] >= span.start_time
    on_span, on_step = recorder.of("do_log_attributes")
    assert (on_span["attributes"], on_span["span"]) == ({"inside": True}, span)
    assert (on_step["attributes"], on_step["span"]) == ({"step_level": 1}, None)
    assert on_step["tags"] == {}


# -- base classes, duck typing and future keywords -----------------------------------------------


class AllSyncHooks(
    lifecycle.PostApplicationCreateHook,
    lifecycle.PreApplicationExecuteCallHook,
    lifecycle.PostApplicationExecuteCallHook,
    lifecycle.PreRunStepHook,
    lifecycle.PostRunStepHook,
    lifecycle.PreStartSpanHook,
    lifecycle.PostEndSpanHook,
    lifecycle.DoLogAttributeHook,
    lifecycle.PreStartStreamHook,
    lifecycle.PostStreamItemHook,
    lifecycle.PostEndStreamHook,
):
    """Every sync base class, each method spelling out its documented keywords."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def post_application_create(
        self, *, app_id, partition_key, state, application_graph, **future_kwargs
    ):
        self.seen.append("post_application_create")

    def pre_run_execute_call(self, *, app_id, partition_key, state, method, **future_kwargs):
        self.seen.append("pre_run_execute_call")

    def post_run_execute_call(
        self, *, app_id, partition_key, state, method, exception, **future_kwargs
    ):
        self.seen.append("post_run_execute_call")

    def pre_run_step(
        self, *, app_id, partition_key, sequence_id, state, action, inputs, attempt,
        **future_kwargs,
    ):  # fmt: skip
        self.seen.append("pre_run_step")

    def post_run_step(
        self, *, app_id, partition_key, sequence_id, state, action, inputs, result, exception,
        changes, attempt, will_retry, **future_kwargs,
    ):  # fmt: skip
        self.seen.append("post_run_step")

    def pre_start_span(
        self, *, action, action_sequence_id, span, span_dependencies, app_id, partition_key,
        **future_kwargs,
    ):  # fmt: skip
        self.seen.append("pre_start_span")

    def post_end_span(
        self, *, action, action_sequence_id, span, span_dependencies, app_id, partition_key,
        exception, end_time, **future_kwargs,
    ):  # fmt: skip
        self.seen.append("post_end_span")

    def do_log_attributes(
        self, *, attributes, action, action_sequence_id, span, tags, app_id, partition_key,
        **future_kwargs,
    ):  # fmt: skip
        self.seen.append("do_log_attributes")

    def pre_start_stream(self, *, action, sequence_id, app_id, partition_key, **future_kwargs):
        self.seen.append("pre_start_stream")

    def post_stream_item(
        self, *, item, item_index, stream_initialize_time, first_stream_item_start_time, action,
        sequence_id, app_id, partition_key, **future_kwargs,
    ):  # fmt: skip
        self.seen.append("post_stream_item")

    def post_end_stream(
        self, *, action, sequence_id, app_id, partition_key, items_streamed, exception,
        **future_kwargs,
    ):  # fmt: skip
        self.seen.append("post_end_stream")


def test_subclasses_of_the_base_classes_receive_every_hook(mode):
    hook = AllSyncHooks()
    app = _app(hook)
    do_stream_iterate(app, mode, halt_after=["talk"], inputs={"by": 2})
    assert set(hook.seen) == set(HOOK_NAMES)


def test_duck_typed_hooks_without_a_base_class_are_called(mode):
    class OnlyPostStep:
        def __init__(self) -> None:
            self.sequence_ids: list[int] = []

        def post_run_step(self, *, sequence_id: int, **future_kwargs: Any) -> None:
            self.sequence_ids.append(sequence_id)

    hook = OnlyPostStep()
    app = _single(_increment, hook, n=0)
    do_step(app, mode)
    do_step(app, mode)
    assert hook.sequence_ids == [0, 1]


@pytest.mark.parametrize(
    "name",
    [n for n in lifecycle.__all__ if n.endswith(("Hook", "Async")) and n != "SlowDownHook"],
    ids=str,
)
def test_lifecycle_reexports_the_core_hook_classes(name):
    assert getattr(lifecycle, name) is getattr(core_hooks, name)


def test_hooks_are_called_with_keywords_only_so_extra_keywords_reach_them(mode):
    """A hook method must accept ``**future_kwargs``: every payload field is passed by keyword,
    including those it does not name; one that does not accept them fails with ``TypeError``."""

    class Strict:
        def post_run_step(self, *, sequence_id: int) -> None:  # no **future_kwargs
            raise AssertionError("not reached: the call itself fails")

    recorder = Recorder()
    app = _single(_increment, recorder, Strict(), n=0)
    with pytest.raises(HookError) as info:
        do_step(app, mode)
    assert isinstance(info.value.__cause__, TypeError)
    assert "unexpected keyword argument" in str(info.value.__cause__)
    (payload,) = recorder.of("post_run_step")
    assert {"sequence_id", "action", "state", "changes"} < set(payload)


# -- async hook variants -------------------------------------------------------------------------

ASYNC_BASES = [
    (lifecycle.PreApplicationExecuteCallHookAsync, "pre_run_execute_call"),
    (lifecycle.PostApplicationExecuteCallHookAsync, "post_run_execute_call"),
    (lifecycle.PreRunStepHookAsync, "pre_run_step"),
    (lifecycle.PostRunStepHookAsync, "post_run_step"),
    (lifecycle.PreStartSpanHookAsync, "pre_start_span"),
    (lifecycle.PostEndSpanHookAsync, "post_end_span"),
    (lifecycle.DoLogAttributeHookAsync, "do_log_attributes"),
    (lifecycle.PreStartStreamHookAsync, "pre_start_stream"),
    (lifecycle.PostStreamItemHookAsync, "post_stream_item"),
    (lifecycle.PostEndStreamHookAsync, "post_end_stream"),
]
ASYNC_IDS = [base.__name__ for base, _method in ASYNC_BASES]


def _async_hook(base: type, method: str) -> Any:
    """An instance of a subclass of ``base`` whose async ``method`` suspends, then records."""

    async def hook_method(self: Any, **payload: Any) -> None:
        await asyncio.sleep(0)  # really suspends: only an awaiting driver completes it
        self.seen.append((method, payload))

    cls = type(f"My{base.__name__}", (base,), {method: hook_method})
    hook = cls()
    hook.seen = []
    return hook


@pytest.mark.parametrize(("base", "method"), ASYNC_BASES, ids=ASYNC_IDS)
def test_async_hook_variants_are_awaited_by_the_async_drivers(base, method):
    hook = _async_hook(base, method)
    recorder = Recorder()
    app = _app(hook, recorder)
    do_stream_iterate(app, "async", halt_after=["talk"], inputs={"by": 2})
    assert hook.seen
    assert [p for _m, p in hook.seen] == recorder.of(method)


@pytest.mark.parametrize(("base", "method"), ASYNC_BASES, ids=ASYNC_IDS)
@pytest.mark.parametrize("driver", list(DRIVERS), ids=list(DRIVERS))
def test_async_hook_variants_make_the_sync_drivers_raise_before_anything_runs(base, method, driver):
    ran: list[str] = []
    recorder = Recorder()
    app = _app(_async_hook(base, method), recorder, counter=ran)
    with pytest.raises(AsyncRequiredError, match=f"a{driver}"):
        DRIVERS[driver](app, "sync")
    assert ran == []
    assert recorder.names() == ["post_application_create"]
    assert app.state == {"n": 0, "said": ""}
    assert app.sequence_id is None


# -- payloads cannot alter the run ---------------------------------------------------------------


@action(reads=[], writes=["words"])
def echo(state: State, word: str) -> tuple[dict[str, Any], State]:
    return {"word": word}, state.append(words=word)


class Meddler:
    """Mutates every dict it is handed."""

    def __init__(self) -> None:
        self.inputs_seen: list[dict[str, Any]] = []

    def pre_run_step(self, *, inputs: dict[str, Any], **future_kwargs: Any) -> None:
        self.inputs_seen.append(dict(inputs))
        inputs["word"] = "meddled"
        inputs["extra"] = True

    def post_run_step(
        self, *, inputs: dict[str, Any], result: dict[str, Any] | None, **future_kwargs: Any
    ) -> None:
        inputs["word"] = "meddled"
        if result is not None:
            result["word"] = "meddled"
            result["extra"] = True


def test_mutating_the_inputs_and_result_a_hook_receives_does_not_alter_the_run(mode):
    meddler = Meddler()
    app = _single(echo, meddler, words=[])
    first = do_step(app, mode, {"word": "hi"})
    second = do_step(app, mode, {"word": "hi"})
    assert first[1] == second[1] == {"word": "hi"}
    assert app.state == {"words": ["hi", "hi"]}
    assert meddler.inputs_seen == [{"word": "hi"}, {"word": "hi"}]


def test_mutating_the_inputs_a_hook_receives_does_not_reach_the_next_step_of_a_run(mode):
    meddler = Meddler()
    app = (
        ApplicationBuilder()
        .with_actions(first=echo, second=echo)
        .with_transitions(("first", "second"))
        .with_state(words=[])
        .with_entrypoint("first")
        .with_hooks(meddler)
        .build()
    )
    steps = do_iterate(app, mode, halt_after=["second"], inputs={"word": "hi"})
    assert [result for _act, result, _state in steps] == [{"word": "hi"}, {"word": "hi"}]
    assert app.state == {"words": ["hi", "hi"]}
    assert meddler.inputs_seen == [{"word": "hi"}, {"word": "hi"}]


def test_mutating_a_streamed_item_in_a_hook_does_not_alter_the_step_result(mode):
    class Count(StreamingAction):
        @property
        def reads(self) -> list[str]:
            return []

        @property
        def writes(self) -> list[str]:
            return ["n"]

        def stream_run(self, state: State, **run_kwargs: Any):
            yield {"n": 1}
            yield {"n": 2}

        def update(self, result: dict[str, Any], state: State) -> State:
            return state.update(n=result["n"])

    class ItemMeddler:
        def post_stream_item(self, *, item: dict[str, Any], **future_kwargs: Any) -> None:
            item["n"] = 99

    app = (
        ApplicationBuilder()
        .with_actions(count=Count())
        .with_state(n=0)
        .with_entrypoint("count")
        .with_hooks(ItemMeddler())
        .build()
    )
    _act, _items, (result, state) = do_stream(app, mode, ["count"])
    assert result == {"n": 2}
    assert state == {"n": 2}


# -- changes -------------------------------------------------------------------------------------

CHANGES = {
    "set": (lambda s: s.update(a=1), (Change("set", "a", 1),)),
    "append": (lambda s: s.append(items="x"), (Change("append", "items", "x"),)),
    "extend": (lambda s: s.extend(items=["x", "y"]), (Change("extend", "items", ("x", "y")),)),
    "increment": (lambda s: s.increment(n=2), (Change("increment", "n", 2),)),
    "delete": (
        lambda s: s.wipe(delete=["a"]).update(a=None),
        (Change("delete", "a", None), Change("set", "a", None)),
    ),
    "mixed": (
        lambda s: s.update(a=2).append(items="x").increment(n=1),
        (Change("set", "a", 2), Change("append", "items", "x"), Change("increment", "n", 1)),
    ),
}


@pytest.mark.parametrize(("operate", "expected"), CHANGES.values(), ids=list(CHANGES))
def test_post_run_step_changes_are_the_step_delta(mode, operate, expected):
    @action(reads=[], writes=["a", "items", "n"])
    def change(state: State) -> State:
        return operate(state)

    recorder = Recorder()
    app = _single(change, recorder, a=0, items=["old"], n=0)
    do_step(app, mode)
    (post,) = recorder.of("post_run_step")
    assert post["changes"] == expected
    assert all(type(c) is Change for c in post["changes"])
    assert app.last_changes == expected


# -- error policy --------------------------------------------------------------------------------


def _counted(n: int = 0) -> tuple[Any, list[int]]:
    calls: list[int] = []

    @action(reads=["n"], writes=["n"])
    def bump(state: State) -> State:
        calls.append(state["n"])
        return state.increment(n=1)

    return bump, calls


def test_a_failing_pre_run_step_stops_the_step_before_the_action_runs(mode):
    bump, calls = _counted()
    failing = Failing("pre_run_step")
    recorder = Recorder()
    app = _single(bump, failing, recorder, n=0)
    with pytest.raises(HookError) as info:
        do_step(app, mode)
    assert info.value.__cause__ is failing.error
    assert info.value.hook is failing
    assert info.value.method == "pre_run_step"
    assert calls == []
    assert app.state == {"n": 0}
    assert app.sequence_id is None
    assert app.prior_action is None
    assert recorder.of("post_run_step") == []
    failing.armed = False
    _act, _result, state = do_step(app, mode)
    assert state == {"n": 1}
    assert app.sequence_id == 0  # the failed attempt did not use it


def test_a_failing_pre_run_step_on_a_later_step_leaves_the_previous_one_intact(mode):
    bump, calls = _counted()
    failing = Failing("pre_run_step")
    failing.armed = False
    app = _single(bump, failing, n=0)
    do_step(app, mode)
    failing.armed = True
    with pytest.raises(HookError):
        do_step(app, mode)
    assert calls == [0]
    assert (app.state, app.sequence_id, app.prior_action) == ({"n": 1}, 0, "bump")


def test_a_failing_post_run_step_raises_after_the_step_was_committed(mode):
    bump, calls = _counted()
    failing = Failing("post_run_step")
    app = _single(bump, failing, n=0)
    with pytest.raises(HookError) as info:
        do_step(app, mode)
    assert info.value.__cause__ is failing.error
    assert info.value.method == "post_run_step"
    assert calls == [0]
    assert (app.state, app.sequence_id, app.prior_action) == ({"n": 1}, 0, "bump")
    failing.armed = False
    _act, _result, state = do_step(app, mode)
    assert state == {"n": 2}
    assert app.sequence_id == 1


@pytest.mark.parametrize(
    "method",
    ["pre_run_execute_call", "pre_run_step", "post_run_step", "post_run_execute_call"],
    ids=str,
)
@pytest.mark.parametrize("failing_first", [True, False], ids=["failing-first", "failing-last"])
# A failing pre_run_execute_call leaves the call's coroutine un-awaited (a RuntimeWarning at
# collection); that is pinned by test_a_failing_pre_run_execute_call_runs_no_step, not here.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_every_hook_is_still_called_when_another_raises(mode, method, failing_first):
    bump, _calls = _counted()
    failing = Failing(method)
    recorder = Recorder()
    hooks = (failing, recorder) if failing_first else (recorder, failing)
    app = _single(bump, *hooks, n=0)
    with pytest.raises(HookError):
        do_step(app, mode)
    assert len(recorder.of(method)) == 1
    gc.collect()  # a warning about what the failed call left behind belongs to this test


def test_two_failing_hooks_raise_the_first_ones_error_and_mention_the_other(mode):
    bump, _calls = _counted()
    first = Failing("post_run_step", KeyError("first"))
    second = Failing("post_run_step", ValueError("second"))
    app = _single(bump, first, second, n=0)
    with pytest.raises(HookError) as info:
        do_step(app, mode)
    assert info.value.hook is first
    assert info.value.__cause__ is first.error
    assert "1 more" in str(info.value)


def test_an_async_hook_that_raises_is_reported_as_hook_error_too():
    bump, calls = _counted()

    class AsyncFailing(lifecycle.PreRunStepHookAsync):
        async def pre_run_step(self, **future_kwargs: Any) -> None:
            await asyncio.sleep(0)
            raise LookupError("async hook")

    app = _single(bump, AsyncFailing(), n=0)
    with pytest.raises(HookError) as info:
        do_step(app, "async")
    assert isinstance(info.value.__cause__, LookupError)
    assert calls == []
    assert app.sequence_id is None


@pytest.mark.parametrize(
    "method", ["post_run_step", "post_run_execute_call"], ids=["post_run_step", "post_call"]
)
def test_when_the_action_failed_its_exception_propagates_not_the_hook_error(mode, method):
    @action(reads=["n"], writes=["n"])
    def broken(state: State) -> State:
        raise ValueError("the action failed")

    app = _single(broken, Failing(method), n=0)
    with pytest.raises(ValueError, match="the action failed"):
        do_step(app, mode)
    assert app.state == {"n": 0}


def test_when_a_stream_failed_its_exception_propagates_not_the_end_stream_hook_error(mode):
    @streaming_action(reads=[], writes=["said"])
    def stutter(state: State):
        yield {"delta": "a"}
        raise ValueError("the stream failed")

    app = _single(stutter, Failing("post_end_stream"), Failing("post_run_step"), said="")
    with pytest.raises(ValueError, match="the stream failed"):
        do_stream(app, mode, ["stutter"])
    assert app.state == {"said": ""}


def test_a_failing_post_end_stream_raises_after_the_step_was_committed(mode):
    recorder = Recorder()
    failing = Failing("post_end_stream")
    app = _app(failing, recorder)
    do_step(app, mode, {"by": 2})
    with pytest.raises(HookError) as info:
        do_stream(app, mode, ["talk"])
    assert info.value.__cause__ is failing.error
    assert app.state == {"n": 2, "said": "ab"}
    assert (app.sequence_id, app.prior_action) == (1, "talk")
    assert len(recorder.of("post_run_step")) == 2


def test_a_failing_pre_run_execute_call_runs_no_step(mode):
    bump, calls = _counted()
    app = _single(bump, Failing("pre_run_execute_call"), n=0)
    with pytest.raises(HookError):
        do_run(app, mode, halt_after=["bump"])
    assert calls == []
    assert (app.state, app.sequence_id) == ({"n": 0}, None)
    gc.collect()  # "coroutine ... was never awaited" would surface here


def test_a_hook_error_in_a_run_stops_it_with_a_consistent_application(mode):
    bump, calls = _counted()
    failing = Failing("post_run_step")
    failing.armed = False

    class ArmOnSecond:
        def pre_run_step(self, *, sequence_id: int, **future_kwargs: Any) -> None:
            failing.armed = sequence_id == 1

    app = _single(bump, ArmOnSecond(), failing, n=0)
    with pytest.raises(HookError):
        do_run(app, mode, halt_after=[])
    assert calls == [0, 1]
    assert (app.state, app.sequence_id, app.prior_action) == ({"n": 2}, 1, "bump")
    assert app.get_next_action().name == "bump"
