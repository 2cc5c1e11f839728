"""Async execution: async function and class actions, the async drivers (``astep``, ``arun``,
``aiterate``, ``abuild``) and their equivalence with the sync ones, ``AsyncRequiredError``,
cancellation, cooperative stop (``request_stop``), per-action timeouts, ``ApplicationContext``
inside async actions and ``request_halt``.

Async code runs with ``asyncio.run()`` inside ordinary test functions: the core suite needs
nothing but pytest. Coordination uses events, never sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from turnout import (
    Action,
    ApplicationBuilder,
    ApplicationContext,
    SingleStepAction,
    State,
    action,
    expr,
    on_exception,
    streaming_action,
)
from turnout.core.application import Application
from turnout.core.errors import (
    ActionTimeoutError,
    AsyncRequiredError,
    GraphSetupError,
    InvalidActionReturnError,
    MissingInputsError,
    UndeclaredWriteError,
    UndeclaredWriteWarning,
)

# -- helpers -------------------------------------------------------------------------------------

HOOK_METHODS = (
    "pre_run_execute_call",
    "post_run_execute_call",
    "pre_run_step",
    "post_run_step",
    "pre_start_stream",
    "post_stream_item",
    "post_end_stream",
)
STEP_HOOKS = ("pre_run_step", "post_run_step", "pre_start_stream", "post_end_stream")


class Recorder:
    """Implements the run-time hooks synchronously; records ``(hook name, payload)``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def named(self, *names: str) -> list[dict[str, Any]]:
        return [payload for name, payload in self.calls if name in names]

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


class AsyncRecorder(Recorder):
    """The same hooks, as ``async def`` methods that really suspend."""


def _sync_hook(name: str) -> Callable[..., None]:
    def hook(self: Recorder, **payload: Any) -> None:
        self.calls.append((name, payload))

    return hook


def _async_hook(name: str) -> Callable[..., Any]:
    async def hook(self: Recorder, **payload: Any) -> None:
        await asyncio.sleep(0)  # a real suspension, not a timing device
        self.calls.append((name, payload))

    return hook


for _name in HOOK_METHODS:
    setattr(Recorder, _name, _sync_hook(_name))
    setattr(AsyncRecorder, _name, _async_hook(_name))


def _recorder_action(flavour: str, name: str, tags: tuple[str, ...] = ()) -> Any:
    """An action of the given flavour that appends ``name`` to ``trail`` and returns
    ``{"ran": name}``."""
    if flavour == "sync-function":

        @action(reads=["trail"], writes=["trail"], tags=list(tags))
        def record(state: State) -> tuple[dict[str, Any], State]:
            return {"ran": name}, state.append(trail=name)

        return record
    if flavour == "async-function":

        @action(reads=["trail"], writes=["trail"], tags=list(tags))
        async def arecord(state: State) -> tuple[dict[str, Any], State]:
            await asyncio.sleep(0)
            return {"ran": name}, state.append(trail=name)

        return arecord
    if flavour == "async-class":

        class Record(Action):
            @property
            def reads(self) -> list[str]:
                return ["trail"]

            @property
            def writes(self) -> list[str]:
                return ["trail"]

            @property
            def tags(self) -> list[str]:
                return list(tags)

            async def run(self, state: State, **inputs: Any) -> dict[str, Any]:  # type: ignore[override]
                await asyncio.sleep(0)
                return {"ran": name}

            def update(self, result: dict[str, Any], state: State) -> State:
                return state.append(trail=result["ran"])

        return Record()
    assert flavour == "async-single-step"

    class RecordOnce(SingleStepAction):
        @property
        def reads(self) -> list[str]:
            return ["trail"]

        @property
        def writes(self) -> list[str]:
            return ["trail"]

        @property
        def tags(self) -> list[str]:
            return list(tags)

        async def run_and_update(  # type: ignore[override]
            self, state: State, **inputs: Any
        ) -> tuple[dict[str, Any], State]:
            await asyncio.sleep(0)
            return {"ran": name}, state.append(trail=name)

    return RecordOnce()


def _chain(flavour: str = "sync-function", *hooks: Any) -> Application:
    """a -> b -> c, then the run ends; a and c carry the tag ``odd``."""
    return (
        ApplicationBuilder()
        .with_actions(
            a=_recorder_action(flavour, "a", ("odd",)),
            b=_recorder_action(flavour, "b"),
            c=_recorder_action(flavour, "c", ("odd",)),
        )
        .with_transitions(("a", "b"), ("b", "c"))
        .with_state(trail=[])
        .with_hooks(*hooks)
        .with_entrypoint("a")
        .build()
    )


async def _drain_into(container: Any, items: list[dict[str, Any]]) -> None:
    async for item in container:
        items.append(item)


async def _collect(steps: Any) -> list[Any]:
    async with contextlib.aclosing(steps) as iterator:
        return [step async for step in iterator]


class Driver:
    """Runs an application with the sync methods or with their async twins."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def step(self, app: Application, **kwargs: Any) -> Any:
        if self.mode == "sync":
            return app.step(**kwargs)
        return asyncio.run(app.astep(**kwargs))

    def run(self, app: Application, **kwargs: Any) -> Any:
        if self.mode == "sync":
            return app.run(**kwargs)
        return asyncio.run(app.arun(**kwargs))

    def iterate(self, app: Application, **kwargs: Any) -> list[Any]:
        if self.mode == "sync":
            return list(app.iterate(**kwargs))
        return asyncio.run(_collect(app.aiterate(**kwargs)))

    def call_text(self, method: str) -> str:
        return f"app.{method}(" if self.mode == "sync" else f"app.a{method}("


@pytest.fixture(params=["sync", "async"], ids=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> Driver:
    return Driver(request.param)


# Which actions each driver can run: sync drivers only sync actions; async drivers every kind.
CASES = [
    ("sync-function", "sync"),
    ("sync-function", "async"),
    ("async-function", "async"),
    ("async-class", "async"),
    ("async-single-step", "async"),
]
CASE_IDS = [f"{flavour}/{driver}-driver" for flavour, driver in CASES]
ASYNC_FLAVOURS = ["async-function", "async-class", "async-single-step"]


def _next_name(app: Application) -> str | None:
    nxt = app.get_next_action()
    return None if nxt is None else nxt.name


def _ran(out: Any) -> Any:
    """A step tuple, checked to be one (not ``None``)."""
    assert out is not None
    return out


def _summary(out: Any) -> tuple[Any, ...]:
    act, result, state = out
    return (act.name if act is not None else None, result, state)


# -- equivalence of the sync and async drivers ---------------------------------------------------


@pytest.mark.parametrize(("flavour", "driver"), CASES, ids=CASE_IDS)
def test_step_runs_one_action_and_returns_its_tuple(flavour, driver):
    app = _chain(flavour)
    drive = Driver(driver)
    assert _summary(drive.step(app)) == ("a", {"ran": "a"}, {"trail": ["a"]})
    assert _summary(drive.step(app)) == ("b", {"ran": "b"}, {"trail": ["a", "b"]})
    assert app.sequence_id == 1
    assert app.prior_action == "b"
    assert _next_name(app) == "c"


@pytest.mark.parametrize(("flavour", "driver"), CASES, ids=CASE_IDS)
def test_step_returns_none_at_the_end_of_the_graph(flavour, driver):
    app = _chain(flavour)
    drive = Driver(driver)
    for _ in range(3):
        drive.step(app)
    assert drive.step(app) is None
    assert app.sequence_id == 2


@pytest.mark.parametrize(
    ("halts", "expected", "sequence_id"),
    [
        ({"halt_after": ["b"]}, ("b", {"ran": "b"}, {"trail": ["a", "b"]}), 1),
        ({"halt_before": ["c"]}, ("c", None, {"trail": ["a", "b"]}), 1),
        ({"halt_before": ["c"], "halt_after": ["b"]}, ("c", None, {"trail": ["a", "b"]}), 1),
        ({"halt_after": ["@tag:odd"]}, ("a", {"ran": "a"}, {"trail": ["a"]}), 0),
        ({"halt_before": ["@tag:odd"]}, ("c", None, {"trail": ["a", "b"]}), 1),
        ({"halt_before": ["a"]}, ("c", {"ran": "c"}, {"trail": ["a", "b", "c"]}), 2),
    ],
    ids=["halt-after", "halt-before", "before-wins", "tag-after", "tag-before", "graph-end"],
)
@pytest.mark.parametrize(("flavour", "driver"), CASES, ids=CASE_IDS)
def test_run_halts_the_same_way_with_every_driver_and_action_kind(
    flavour, driver, halts, expected, sequence_id
):
    app = _chain(flavour)
    assert _summary(Driver(driver).run(app, **halts)) == expected
    assert app.sequence_id == sequence_id


@pytest.mark.parametrize(
    ("halts", "ran"),
    [
        ({"halt_after": ["b"]}, ["a", "b"]),
        ({"halt_before": ["c"]}, ["a", "b"]),
        ({"halt_after": ["@tag:odd"]}, ["a"]),
        ({"halt_after": ["c"]}, ["a", "b", "c"]),
    ],
    ids=["halt-after", "halt-before", "tag", "end"],
)
@pytest.mark.parametrize(("flavour", "driver"), CASES, ids=CASE_IDS)
def test_iterate_yields_each_step_the_same_way_with_every_driver(flavour, driver, halts, ran):
    app = _chain(flavour)
    steps = Driver(driver).iterate(app, **halts)
    assert [_summary(step)[:2] for step in steps] == [(name, {"ran": name}) for name in ran]
    assert [state["trail"] for *_, state in steps] == [ran[: i + 1] for i in range(len(ran))]
    assert app.sequence_id == len(ran) - 1


def test_a_second_run_continues_where_the_first_halted(mode):
    app = _chain()
    mode.run(app, halt_after=["a"])
    assert _summary(mode.run(app, halt_after=["c"])) == (
        "c",
        {"ran": "c"},
        {"trail": ["a", "b", "c"]},
    )
    assert mode.run(app, halt_after=["c"]) == (None, None, app.state)
    assert mode.iterate(app, halt_after=["c"]) == []


@action(reads=["count"], writes=["count"])
def bump(state: State, by: int, extra: int = 0) -> State:
    return state.update(count=state["count"] + by + extra)


@action(reads=["count"], writes=["count"])
async def abump(state: State, by: int, extra: int = 0) -> State:
    await asyncio.sleep(0)
    return state.update(count=state["count"] + by + extra)


def _counter(fn: Any) -> Application:
    return (
        ApplicationBuilder()
        .with_actions(bump=fn)
        .with_transitions(("bump", "bump", expr("count < 10")))
        .with_state(count=0)
        .with_entrypoint("bump")
        .build()
    )


@pytest.mark.parametrize(
    ("fn", "driver"),
    [(bump, "sync"), (bump, "async"), (abump, "async")],
    ids=["sync-action/sync-driver", "sync-action/async-driver", "async-action/async-driver"],
)
def test_inputs_reach_every_step_and_optional_ones_default(fn, driver):
    app = _counter(fn)
    drive = Driver(driver)
    assert drive.step(app, inputs={"by": 1})[2] == {"count": 1}
    assert drive.step(app, inputs={"by": 1, "extra": 2, "unused": 0})[2] == {"count": 4}
    _act, _result, state = drive.run(app, inputs={"by": 3})
    assert state == {"count": 10}
    assert app.sequence_id == 3


@pytest.mark.parametrize("method", ["step", "run", "iterate"], ids=["step", "run", "iterate"])
@pytest.mark.parametrize(
    ("fn", "driver"),
    [(bump, "sync"), (bump, "async"), (abump, "async")],
    ids=["sync-action/sync-driver", "sync-action/async-driver", "async-action/async-driver"],
)
def test_missing_inputs_raise_naming_the_call_made_and_change_nothing(fn, driver, method):
    app = _counter(fn)
    drive = Driver(driver)
    kwargs = {} if method == "step" else {"halt_after": ["bump"]}
    with pytest.raises(MissingInputsError) as info:
        getattr(drive, method)(app, **kwargs)
    message = str(info.value)
    halts = "" if method == "step" else "halt_after=['bump'], "
    assert f'{drive.call_text(method)}{halts}inputs={{"by": ...}})' in message
    assert "action 'bump' needs the input 'by'" in message
    assert app.state == {"count": 0}
    assert app.sequence_id is None


def test_the_step_hooks_see_the_same_sequence_of_calls_from_both_drivers(mode):
    recorder = Recorder()
    app = _chain("sync-function", recorder)
    mode.run(app, halt_after=["b"])
    method = "run" if mode.mode == "sync" else "arun"
    assert recorder.names() == [
        "pre_run_execute_call",
        "pre_run_step",
        "post_run_step",
        "pre_run_step",
        "post_run_step",
        "post_run_execute_call",
    ]
    assert [p["method"] for p in recorder.named("pre_run_execute_call")] == [method]
    assert [p["sequence_id"] for p in recorder.named("post_run_step")] == [0, 1]


# -- async actions specifics ---------------------------------------------------------------------


def test_an_async_class_action_run_receives_only_its_reads():
    seen: list[dict[str, Any]] = []

    class Peek(Action):
        @property
        def reads(self) -> list[str]:
            return ["visible"]

        @property
        def writes(self) -> list[str]:
            return ["out"]

        async def run(self, state: State, **inputs: Any) -> dict[str, Any]:  # type: ignore[override]
            seen.append(dict(state))
            return {"out": state["visible"] * 2}

        def update(self, result: dict[str, Any], state: State) -> State:
            return state.update(out=(result["out"], state["hidden"]))

    app = (
        ApplicationBuilder()
        .with_actions(peek=Peek())
        .with_state(visible=2, hidden="h")
        .with_entrypoint("peek")
        .build()
    )
    _act, result, state = _ran(asyncio.run(app.astep()))
    assert seen == [{"visible": 2}]
    assert result == {"out": 4}
    assert state["out"] == (4, "h")


class _SneakyUpdate(Action):
    @property
    def reads(self) -> list[str]:
        return []

    @property
    def writes(self) -> list[str]:
        return ["trail"]

    async def run(self, state: State, **inputs: Any) -> dict[str, Any]:  # type: ignore[override]
        return {}

    def update(self, result: dict[str, Any], state: State) -> State:
        return state.update(trail=[], undeclared=1)


@action(reads=[], writes=["trail"])
async def _sneaky(state: State) -> State:
    return state.update(trail=[], undeclared=1)


@pytest.mark.parametrize(
    "sneaky", [_sneaky, _SneakyUpdate()], ids=["async-function", "async-class"]
)
def test_async_actions_writing_undeclared_keys_fail_and_change_nothing_in_strict_mode(sneaky):
    builder = ApplicationBuilder().with_actions(sneaky=sneaky).with_entrypoint("sneaky")
    app = builder.build(strict=True)
    with pytest.raises(UndeclaredWriteError, match="action 'sneaky' changed 'undeclared'"):
        asyncio.run(app.astep())
    assert app.state == {}
    assert app.prior_action is None
    assert app.sequence_id == 0


@pytest.mark.parametrize(
    "sneaky", [_sneaky, _SneakyUpdate()], ids=["async-function", "async-class"]
)
def test_async_actions_writing_undeclared_keys_apply_them_with_a_warning(sneaky):
    app = ApplicationBuilder().with_actions(sneaky=sneaky).with_entrypoint("sneaky").build()
    with pytest.warns(UndeclaredWriteWarning, match="action 'sneaky' changed 'undeclared'"):
        asyncio.run(app.astep())
    assert app.state == {"trail": [], "undeclared": 1}
    assert app.sequence_id == 0


def test_an_async_two_step_action_returning_a_non_dict_fails_naming_it():
    class Bad(Action):
        @property
        def reads(self) -> list[str]:
            return []

        @property
        def writes(self) -> list[str]:
            return []

        async def run(self, state: State, **inputs: Any) -> Any:  # type: ignore[override]
            return ["not", "a", "dict"]

        def update(self, result: dict[str, Any], state: State) -> State:
            return state

    app = ApplicationBuilder().with_actions(bad=Bad()).with_entrypoint("bad").build()
    with pytest.raises(InvalidActionReturnError, match=r"action 'bad': run\(\) must return a dict"):
        asyncio.run(app.astep())


def test_sync_actions_run_inline_on_the_event_loop_thread():
    where: list[tuple[int, bool, str | None]] = []

    @action(reads=[], writes=[])
    def sync_step(state: State) -> State:
        loop = asyncio.get_running_loop()  # raises if not on the loop's thread
        ctx = ApplicationContext.get()
        where.append((threading.get_ident(), loop.is_running(), ctx.action_name if ctx else None))
        return state

    app = ApplicationBuilder().with_actions(sync_step).with_entrypoint("sync_step").build()

    async def main() -> int:
        await app.arun(halt_after=["sync_step"])
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert where == [(loop_thread, True, "sync_step")]


def test_sync_and_async_actions_mix_in_one_async_run():
    app = (
        ApplicationBuilder()
        .with_actions(
            a=_recorder_action("sync-function", "a"),
            b=_recorder_action("async-function", "b"),
            c=_recorder_action("async-class", "c"),
            d=_recorder_action("async-single-step", "d"),
        )
        .with_transitions(("a", "b"), ("b", "c"), ("c", "d"))
        .with_state(trail=[])
        .with_entrypoint("a")
        .build()
    )
    out = asyncio.run(app.arun(halt_after=["d"]))
    assert _summary(out) == ("d", {"ran": "d"}, State({"trail": ["a", "b", "c", "d"]}))
    assert app.sequence_id == 3


def test_async_hooks_are_awaited_by_the_async_drivers():
    recorder = AsyncRecorder()
    app = _chain("async-function", recorder)
    asyncio.run(app.arun(halt_after=["b"]))
    assert recorder.names() == [
        "pre_run_execute_call",
        "pre_run_step",
        "post_run_step",
        "pre_run_step",
        "post_run_step",
        "post_run_execute_call",
    ]


# -- abuild --------------------------------------------------------------------------------------


def _abuilt() -> Application:
    builder = (
        ApplicationBuilder()
        .with_actions(a=_recorder_action("sync-function", "a"))
        .with_transitions(("a", "a"))
        .with_state(trail=[])
        .with_identifiers(app_id="built-async")
        .with_entrypoint("a")
    )
    return asyncio.run(builder.abuild())


@pytest.mark.parametrize(
    ("call", "method"),
    [
        (lambda app: app.step(), "step"),
        (lambda app: app.run(halt_after=["a"]), "run"),
        (lambda app: app.iterate(halt_after=["a"]), "iterate"),
        (lambda app: app.stream_result(halt_after=["a"]), "stream_result"),
        (lambda app: app.stream_iterate(halt_after=["a"]), "stream_iterate"),
    ],
    ids=["step", "run", "iterate", "stream_result", "stream_iterate"],
)
def test_an_abuilt_application_refuses_sync_methods_naming_the_async_one(call, method):
    app = _abuilt()
    with pytest.raises(AsyncRequiredError) as info:
        call(app)
    message = str(info.value)
    assert f"await app.a{method}(...)" in message
    assert "abuild()" in message
    assert isinstance(info.value, RuntimeError)
    assert app.sequence_id is None
    assert app.state == {"trail": []}


def test_an_abuilt_application_runs_with_the_async_methods():
    app = _abuilt()

    async def main() -> list[Any]:
        first = await app.astep()
        ran = await app.arun(halt_after=["a"])
        steps = await _collect(app.aiterate(halt_after=["a"]))
        return [first, ran, *steps]

    outs = asyncio.run(main())
    assert [out[2]["trail"] for out in outs] == [["a"], ["a", "a"], ["a", "a", "a"]]
    assert app.sequence_id == 2


def test_abuild_reports_problems_like_build():
    builder = ApplicationBuilder().with_actions(a=_recorder_action("sync-function", "a"))
    with pytest.raises(GraphSetupError, match="no entrypoint"):
        asyncio.run(builder.abuild())


# -- AsyncRequiredError from the sync drivers ----------------------------------------------------


def _async_streamer() -> Any:
    @streaming_action(reads=["trail"], writes=["trail"])
    async def astream(state: State) -> Any:
        yield {"item": 1}
        yield {"ran": "a"}, state.append(trail="a")

    return astream


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda app: app.step(), "await app.astep(...)"),
        (lambda app: app.run(halt_after=["a"]), "await app.arun(halt_after=['a'], ...)"),
        (lambda app: next(app.iterate(halt_after=["a"])), "await app.aiterate(halt_after=['a'], "),
    ],
    ids=["step", "run", "iterate"],
)
@pytest.mark.parametrize(
    "flavour", [*ASYNC_FLAVOURS, "async-streaming"], ids=[*ASYNC_FLAVOURS, "async-streaming"]
)
def test_a_sync_method_reaching_an_async_action_raises_before_the_step_starts(
    flavour, call, expected
):
    recorder = Recorder()
    first = _async_streamer() if flavour == "async-streaming" else _recorder_action(flavour, "a")
    app = (
        ApplicationBuilder()
        .with_actions(a=first)
        .with_state(trail=[])
        .with_hooks(recorder)
        .with_entrypoint("a")
        .build()
    )
    with pytest.raises(AsyncRequiredError) as info:
        call(app)
    message = str(info.value)
    assert "action 'a' is async" in message
    assert expected in message
    assert [n for n in recorder.names() if n in STEP_HOOKS] == []
    assert app.state == {"trail": []}
    assert app.sequence_id is None
    assert app.prior_action is None
    assert _next_name(app) == "a"


@pytest.mark.parametrize("method", ["run", "iterate"], ids=["run", "iterate"])
def test_a_run_meeting_an_async_action_keeps_the_steps_before_it(method):
    recorder = Recorder()
    app = (
        ApplicationBuilder()
        .with_actions(
            a=_recorder_action("sync-function", "a"), b=_recorder_action("async-function", "b")
        )
        .with_transitions(("a", "b"))
        .with_state(trail=[])
        .with_hooks(recorder)
        .with_entrypoint("a")
        .build()
    )
    with pytest.raises(AsyncRequiredError, match=f"await app.a{method}"):
        list(app.iterate(halt_after=["b"])) if method == "iterate" else app.run(halt_after=["b"])
    assert app.state == {"trail": ["a"]}
    assert app.sequence_id == 0
    assert [p["sequence_id"] for p in recorder.named("pre_run_step")] == [0]
    assert _next_name(app) == "b"
    # and the async driver picks up from there
    assert _summary(asyncio.run(app.arun(halt_after=["b"]))) == (
        "b",
        {"ran": "b"},
        {"trail": ["a", "b"]},
    )
    assert app.sequence_id == 1


@pytest.mark.parametrize(
    ("call", "method"),
    [
        (lambda app: app.step(), "step"),
        (lambda app: app.run(halt_after=["a"]), "run"),
        (lambda app: app.iterate(halt_after=["a"]), "iterate"),
        (lambda app: app.stream_result(halt_after=["a"]), "stream_result"),
    ],
    ids=["step", "run", "iterate", "stream_result"],
)
def test_an_application_with_async_hooks_refuses_sync_methods(call, method):
    recorder = AsyncRecorder()
    app = _chain("sync-function", recorder)
    with pytest.raises(AsyncRequiredError) as info:
        call(app)
    message = str(info.value)
    assert "async hooks" in message
    assert "AsyncRecorder.pre_run_step" in message
    assert f"await app.a{method}(...)" in message
    assert recorder.calls == []
    assert app.state == {"trail": []}
    assert app.sequence_id is None


# -- cancellation --------------------------------------------------------------------------------


class _Blocker:
    """An async action that signals it started, then waits for ``release`` (set only when a
    test lets it finish); it records whether it was interrupted."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.interrupted: list[BaseException] = []
        self.runs = 0

    def action(self) -> Any:
        blocker = self

        @action(reads=["trail"], writes=["trail"])
        async def wait(state: State) -> tuple[dict[str, Any], State]:
            blocker.runs += 1
            blocker.started.set()
            try:
                await blocker.release.wait()
            except asyncio.CancelledError as exc:
                blocker.interrupted.append(exc)
                raise
            return {"ran": "wait"}, state.append(trail="wait")

        return wait


def _with_blocker(blocker: _Blocker, recorder: Recorder) -> Application:
    return (
        ApplicationBuilder()
        .with_actions(a=_recorder_action("sync-function", "a"), wait=blocker.action())
        .with_transitions(("a", "wait"), ("wait", "a"))
        .with_state(trail=[])
        .with_hooks(recorder)
        .with_entrypoint("a")
        .build()
    )


CANCELLED_CALLS: dict[str, Callable[[Application], Coroutine[Any, Any, Any]]] = {
    "arun": lambda app: app.arun(halt_after=["wait"]),
    "aiterate": lambda app: _collect(app.aiterate(halt_after=["wait"])),
    "astep": lambda app: _step_twice(app),
}


async def _step_twice(app: Application) -> Any:
    await app.astep()
    return await app.astep()


@pytest.mark.parametrize("method", list(CANCELLED_CALLS), ids=list(CANCELLED_CALLS))
def test_cancelling_the_task_interrupts_the_action_and_commits_nothing(method):
    recorder = Recorder()

    async def main() -> None:
        blocker = _Blocker()
        app = _with_blocker(blocker, recorder)
        task: asyncio.Task[Any] = asyncio.create_task(CANCELLED_CALLS[method](app))
        await blocker.started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(blocker.interrupted) == 1
        assert app.state == {"trail": ["a"]}
        assert app.prior_action == "a"
        assert _next_name(app) == "wait"
        assert app.sequence_id == 1  # the cancelled step's id is used up
        failed = recorder.named("post_run_step")[-1]
        assert isinstance(failed["exception"], asyncio.CancelledError)
        assert failed["sequence_id"] == 1
        assert failed["action"].name == "wait"
        assert failed["state"] == {"trail": ["a"]}
        assert failed["changes"] == ()

        recorder.calls.clear()
        blocker.release.set()
        out = await app.arun(halt_after=["wait"])
        assert _summary(out) == ("wait", {"ran": "wait"}, State({"trail": ["a", "wait"]}))
        assert blocker.runs == 2
        assert app.sequence_id == 2
        assert [p["sequence_id"] for p in recorder.named("pre_run_step")] == [2]

    asyncio.run(main())


def test_cancellation_reaches_the_execute_call_hook_of_arun():
    recorder = Recorder()

    async def main() -> None:
        blocker = _Blocker()
        app = _with_blocker(blocker, recorder)
        task = asyncio.create_task(app.arun(halt_after=["wait"]))
        await blocker.started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    (post,) = recorder.named("post_run_execute_call")
    assert post["method"] == "arun"
    assert isinstance(post["exception"], asyncio.CancelledError)


def test_cancelling_a_streaming_async_action_mid_stream_commits_nothing():
    recorder = Recorder()

    async def main() -> None:
        release = asyncio.Event()
        received = asyncio.Event()
        interrupted: list[BaseException] = []

        @streaming_action(reads=["n"], writes=["n"])
        async def talk(state: State) -> Any:
            yield {"token": "hello"}
            try:
                await release.wait()
            except asyncio.CancelledError as exc:
                interrupted.append(exc)
                raise
            yield {"token": "world"}
            yield {"said": 2}, state.update(n=state["n"] + 1)

        app = (
            ApplicationBuilder()
            .with_actions(talk)
            .with_transitions(("talk", "talk"))
            .with_state(n=0)
            .with_hooks(recorder)
            .with_entrypoint("talk")
            .build()
        )
        items: list[dict[str, Any]] = []

        async def consume() -> Any:
            _act, container = await app.astream_result(halt_after=["talk"])
            async for item in container:
                items.append(item)
                received.set()
            return await container.get()

        task = asyncio.create_task(consume())
        await received.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert items == [{"token": "hello"}]
        assert len(interrupted) == 1
        assert app.state == {"n": 0}
        assert app.prior_action is None
        assert app.sequence_id == 0
        (end,) = recorder.named("post_end_stream")
        assert end["items_streamed"] == 1
        assert isinstance(end["exception"], asyncio.CancelledError)
        (post,) = recorder.named("post_run_step")
        assert isinstance(post["exception"], asyncio.CancelledError)

        release.set()
        _act, container = await app.astream_result(halt_after=["talk"])
        assert [item async for item in container] == [{"token": "hello"}, {"token": "world"}]
        assert await container.get() == ({"said": 2}, State({"n": 1}))
        assert app.sequence_id == 1

    asyncio.run(main())


def test_cancelling_a_consumer_between_stream_items_leaves_the_application_resumable():
    """The stream is suspended at an item (not inside the action) when the consumer is
    cancelled: nothing is committed and the next call runs the action again."""

    async def main() -> None:
        received = asyncio.Event()

        @streaming_action(reads=["n"], writes=["n"])
        async def talk(state: State) -> Any:
            yield {"token": "hello"}
            yield {"token": "world"}
            yield {}, state.update(n=state["n"] + 1)

        app = (
            ApplicationBuilder()
            .with_actions(talk)
            .with_transitions(("talk", "talk"))
            .with_state(n=0)
            .with_entrypoint("talk")
            .build()
        )

        async def consume() -> None:
            _act, container = await app.astream_result(halt_after=["talk"])
            async for _item in container:
                received.set()
                await asyncio.Event().wait()  # the caller's own work, cancelled here

        task = asyncio.create_task(consume())
        await received.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert app.state == {"n": 0}
        assert app.prior_action is None
        _act, container = await app.astream_result(halt_after=["talk"])
        assert [item async for item in container] == [{"token": "hello"}, {"token": "world"}]
        assert (await container.get())[1] == {"n": 1}
        assert app.prior_action == "talk"

    asyncio.run(main())


# -- request_stop --------------------------------------------------------------------------------


def _stopper(holder: dict[str, Application], stop_at: int) -> Application:
    @action(reads=["count"], writes=["count"])
    def count(state: State) -> tuple[dict[str, Any], State]:
        new = state["count"] + 1
        if new == stop_at:
            holder["app"].request_stop()
        return {"count": new}, state.update(count=new)

    app = (
        ApplicationBuilder()
        .with_actions(count)
        .with_transitions(("count", "count"))
        .with_state(count=0)
        .with_entrypoint("count")
        .build()
    )
    holder["app"] = app
    return app


def test_request_stop_inside_an_action_ends_run_after_that_step(mode):
    holder: dict[str, Application] = {}
    app = _stopper(holder, stop_at=3)
    act, result, state = mode.run(app, halt_after=None)
    assert (act.name, result, state) == ("count", {"count": 3}, {"count": 3})
    assert app.sequence_id == 2
    # the flag was cleared: the next run proceeds (and stops at its own halt)
    assert mode.run(app, halt_before=["count"])[2] == {"count": 4}


def test_request_stop_inside_an_action_ends_iterate_after_that_step(mode):
    holder: dict[str, Application] = {}
    app = _stopper(holder, stop_at=2)
    steps = mode.iterate(app, halt_after=None)
    assert [result for _act, result, _state in steps] == [{"count": 1}, {"count": 2}]


def test_request_stop_from_another_task_ends_arun_at_the_next_step_boundary():
    async def main() -> None:
        started = asyncio.Event()
        release = asyncio.Event()

        @action(reads=["count"], writes=["count"])
        async def count(state: State) -> State:
            if state["count"] == 1:
                started.set()
                await release.wait()
            return state.update(count=state["count"] + 1)

        app = (
            ApplicationBuilder()
            .with_actions(count)
            .with_transitions(("count", "count"))
            .with_state(count=0)
            .with_entrypoint("count")
            .build()
        )

        async def stopper() -> None:
            await started.wait()
            app.request_stop()
            release.set()

        out, _ = await asyncio.gather(app.arun(halt_after=None), stopper())
        assert _summary(out) == ("count", {}, {"count": 2})
        assert app.sequence_id == 1
        assert (await app.arun(halt_before=["count"]))[2] == {"count": 3}

    asyncio.run(main())


def test_request_stop_from_another_thread_ends_a_sync_run_at_the_next_step_boundary():
    started = threading.Event()
    release = threading.Event()

    @action(reads=["count"], writes=["count"])
    def count(state: State) -> State:
        if state["count"] == 1:
            started.set()
            assert release.wait(timeout=10), "the stopping thread never released the action"
        return state.update(count=state["count"] + 1)

    app = (
        ApplicationBuilder()
        .with_actions(count)
        .with_transitions(("count", "count"))
        .with_state(count=0)
        .with_entrypoint("count")
        .build()
    )

    def stopper() -> None:
        assert started.wait(timeout=10)
        app.request_stop()
        release.set()

    thread = threading.Thread(target=stopper)
    thread.start()
    try:
        out = app.run(halt_after=None)
    finally:
        release.set()
        thread.join()
    assert _summary(out) == ("count", {}, {"count": 2})
    assert app.sequence_id == 1


def test_request_stop_before_a_run_stops_it_before_its_first_step_and_is_then_cleared(mode):
    app = _chain()
    app.request_stop()
    assert mode.run(app, halt_after=["c"]) == (None, None, {"trail": []})
    assert app.sequence_id is None
    assert _summary(mode.run(app, halt_after=["a"]))[0] == "a"


# -- timeouts ------------------------------------------------------------------------------------


def test_an_async_action_past_its_timeout_raises_action_timeout_error():
    recorder = Recorder()
    interrupted: list[BaseException] = []

    @action(reads=["n"], writes=["n"], timeout=0.05)
    async def hang(state: State) -> State:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError as exc:
            interrupted.append(exc)
            raise
        return state.update(n=1)

    app = (
        ApplicationBuilder()
        .with_actions(hang)
        .with_state(n=0)
        .with_hooks(recorder)
        .with_entrypoint("hang")
        .build()
    )
    with pytest.raises(ActionTimeoutError) as info:
        asyncio.run(app.astep())
    error = info.value
    assert isinstance(error, TimeoutError)
    assert error.action == "hang"
    assert error.timeout == 0.05
    assert "action 'hang'" in str(error)
    assert "timeout of 0.05 s" in str(error)
    assert len(interrupted) == 1  # the action was cancelled, not left running
    assert app.state == {"n": 0}
    assert app.prior_action is None
    assert app.sequence_id == 0
    (post,) = recorder.named("post_run_step")
    assert post["exception"] is error


def test_a_class_action_timeout_attribute_applies():
    class Hang(SingleStepAction):
        timeout = 0.05

        @property
        def reads(self) -> list[str]:
            return []

        @property
        def writes(self) -> list[str]:
            return []

        async def run_and_update(  # type: ignore[override]
            self, state: State, **inputs: Any
        ) -> tuple[dict[str, Any], State]:
            await asyncio.Event().wait()
            return {}, state

    app = ApplicationBuilder().with_actions(hang=Hang()).with_entrypoint("hang").build()
    with pytest.raises(ActionTimeoutError, match="action 'hang'"):
        asyncio.run(app.arun(halt_after=["hang"]))


def test_a_fast_async_action_with_a_timeout_completes():
    @action(reads=[], writes=["seen"], timeout=10)
    async def quick(state: State) -> State:
        await asyncio.sleep(0)
        ctx = ApplicationContext.get()
        return state.update(seen=(ctx.action_name, ctx.sequence_id) if ctx else None)

    app = ApplicationBuilder().with_actions(quick).with_entrypoint("quick").build()
    _act, _result, state = _ran(asyncio.run(app.astep()))
    assert state == {"seen": ("quick", 0)}


@pytest.mark.parametrize("kind", ["function", "streaming"], ids=str)
def test_an_async_actions_own_timeout_error_is_not_reported_as_its_timeout(kind):
    """An action that raises TimeoutError itself, well within its limit, fails with that error;
    ActionTimeoutError means the limit was reached."""
    if kind == "function":

        @action(reads=[], writes=[], timeout=10)
        async def upstream(state: State) -> State:
            raise TimeoutError("the model server timed out")

        target: Any = upstream
    else:

        @streaming_action(reads=[], writes=[], timeout=10)
        async def upstream_stream(state: State) -> Any:
            yield {"token": 1}
            raise TimeoutError("the model server timed out")
            yield {}, state  # pragma: no cover - the generator's final yield

        target = upstream_stream
    app = ApplicationBuilder().with_actions(upstream=target).with_entrypoint("upstream").build()
    with pytest.raises(TimeoutError) as info:
        asyncio.run(app.astep())
    assert not isinstance(info.value, ActionTimeoutError)
    assert str(info.value) == "the model server timed out"


@pytest.mark.parametrize("kind", ["function", "streaming", "class"], ids=str)
def test_a_timeout_on_a_sync_action_is_a_build_problem(kind):
    if kind == "function":

        @action(reads=[], writes=[], timeout=1)
        def slow(state: State) -> State:
            return state

        target: Any = slow
    elif kind == "streaming":

        @streaming_action(reads=[], writes=[], timeout=1)
        def slow_stream(state: State) -> Any:
            yield {}, state

        target = slow_stream
    else:

        class Slow(SingleStepAction):
            timeout = 1.0

            @property
            def reads(self) -> list[str]:
                return []

            @property
            def writes(self) -> list[str]:
                return []

            def run_and_update(self, state: State, **inputs: Any) -> tuple[dict[str, Any], State]:
                return {}, state

        target = Slow()
    builder = ApplicationBuilder().with_actions(slow=target).with_entrypoint("slow")
    with pytest.raises(GraphSetupError) as info:
        builder.build()
    assert "action 'slow' has timeout=1 but is not async" in str(info.value)
    assert "async def" in str(info.value)


def test_an_action_timeout_routes_through_on_exception_timeout_error():
    @action(reads=[], writes=[], timeout=0.05)
    async def hang(state: State) -> State:
        await asyncio.Event().wait()
        return state

    @action(reads=["error"], writes=["handled"])
    def fallback(state: State) -> State:
        return state.update(handled=state["error"]["type"])

    app = (
        ApplicationBuilder()
        .with_actions(hang, fallback)
        .with_transitions(("hang", "fallback", on_exception(TimeoutError)))
        .with_entrypoint("hang")
        .build()
    )
    _act, _result, state = asyncio.run(app.arun(halt_after=["fallback"]))
    assert state["handled"] == "ActionTimeoutError"
    assert state["error"]["action"] == "hang"


def test_a_slow_async_streaming_action_times_out_mid_stream():
    recorder = Recorder()

    @streaming_action(reads=["n"], writes=["n"], timeout=0.05)
    async def drip(state: State) -> Any:
        yield {"token": "first"}
        await asyncio.Event().wait()
        yield {}, state.update(n=1)

    app = (
        ApplicationBuilder()
        .with_actions(drip)
        .with_state(n=0)
        .with_hooks(recorder)
        .with_entrypoint("drip")
        .build()
    )
    items: list[dict[str, Any]] = []

    async def main() -> Any:
        _act, container = await app.astream_result(halt_after=["drip"])
        with pytest.raises(ActionTimeoutError, match="action 'drip'"):
            await _drain_into(container, items)
        return await container.get()

    assert asyncio.run(main()) == (None, {"n": 0})
    assert items == [{"token": "first"}]
    (end,) = recorder.named("post_end_stream")
    assert isinstance(end["exception"], ActionTimeoutError)
    assert end["items_streamed"] == 1
    assert app.state == {"n": 0}


def test_a_streaming_timeout_limits_the_whole_stream_not_each_item():
    """Every item arrives quickly, but the stream as a whole outlasts its limit."""

    @streaming_action(reads=[], writes=[], timeout=0.05)
    async def endless(state: State) -> Any:
        while True:
            await asyncio.sleep(0)  # each item comes at once; only the total is too long
            yield {"tick": 1}
        yield {}, state

    app = ApplicationBuilder().with_actions(endless).with_entrypoint("endless").build()

    async def main() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        _act, container = await app.astream_result(halt_after=["endless"])
        with pytest.raises(ActionTimeoutError):
            await _drain_into(container, items)
        return items

    items = asyncio.run(main())
    assert items
    assert all(item == {"tick": 1} for item in items)


def test_a_fast_async_streaming_action_with_a_timeout_completes():
    @streaming_action(reads=[], writes=["n"], timeout=10)
    async def quick(state: State) -> Any:
        yield {"token": 1}
        yield {"done": True}, state.update(n=1)

    app = ApplicationBuilder().with_actions(quick).with_entrypoint("quick").build()

    async def main() -> Any:
        _act, container = await app.astream_result(halt_after=["quick"])
        return [item async for item in container], await container.get()

    assert asyncio.run(main()) == ([{"token": 1}], ({"done": True}, {"n": 1}))


# -- ApplicationContext in async actions ---------------------------------------------------------


def test_context_get_inside_an_async_action_describes_the_step():
    seen: list[Any] = []

    @action(reads=[], writes=[])
    async def look(state: State, __context: ApplicationContext) -> State:
        await asyncio.sleep(0)
        seen.append((__context, ApplicationContext.get()))
        return state

    app = (
        ApplicationBuilder()
        .with_actions(look)
        .with_transitions(("look", "look"))
        .with_identifiers(app_id="ctx-app", partition_key="user-1")
        .with_entrypoint("look")
        .build()
    )

    async def main() -> Any:
        await app.astep()
        await app.astep()
        return ApplicationContext.get()

    assert asyncio.run(main()) is None
    expected = [
        ApplicationContext(
            app_id="ctx-app", partition_key="user-1", sequence_id=i, action_name="look"
        )
        for i in (0, 1)
    ]
    assert [injected for injected, _ in seen] == expected
    assert [got for _, got in seen] == expected


def test_concurrent_applications_each_see_their_own_context():
    async def main() -> dict[str, str | None]:
        seen: dict[str, str | None] = {}
        events = {"left": asyncio.Event(), "right": asyncio.Event()}

        def make(name: str, other: str) -> Application:
            @action(reads=[], writes=[])
            async def meet(state: State) -> State:
                events[name].set()
                await events[other].wait()  # both steps are in flight at once here
                ctx = ApplicationContext.get()
                seen[name] = ctx.app_id if ctx else None
                return state

            return (
                ApplicationBuilder()
                .with_actions(meet)
                .with_identifiers(app_id=f"app-{name}")
                .with_entrypoint("meet")
                .build()
            )

        await asyncio.gather(make("left", "right").astep(), make("right", "left").astep())
        return seen

    assert asyncio.run(main()) == {"left": "app-left", "right": "app-right"}


# -- request_halt --------------------------------------------------------------------------------


def _halter(asynchronous: bool, via: str) -> Application:
    def body(state: State, ctx: ApplicationContext) -> State:
        count = state["count"] + 1
        if count == 2:
            current = ctx if via == "injected" else ApplicationContext.get()
            assert current is not None
            current.request_halt()
        return state.update(count=count)

    if asynchronous:

        @action(reads=["count"], writes=["count"])
        async def count(state: State, __context: ApplicationContext) -> State:
            await asyncio.sleep(0)
            return body(state, __context)

    else:

        @action(reads=["count"], writes=["count"])
        def count(state: State, __context: ApplicationContext) -> State:
            return body(state, __context)

    return (
        ApplicationBuilder()
        .with_actions(count)
        .with_transitions(("count", "count"))
        .with_state(count=0)
        .with_entrypoint("count")
        .build()
    )


HALTERS = [
    (False, "sync"),
    (False, "async"),
    (True, "async"),
]
HALTER_IDS = ["sync-action/sync-driver", "sync-action/async-driver", "async-action/async-driver"]


@pytest.mark.parametrize("via", ["injected", "get"], ids=["__context", "ApplicationContext.get"])
@pytest.mark.parametrize(("asynchronous", "driver"), HALTERS, ids=HALTER_IDS)
def test_request_halt_stops_run_after_the_requesting_step(asynchronous, driver, via):
    app = _halter(asynchronous, via)
    drive = Driver(driver)
    act, result, state = drive.run(app, halt_after=None)
    assert (act.name, result, state) == ("count", {}, {"count": 2})
    assert app.sequence_id == 1
    # the request does not outlive its run
    assert drive.run(app, halt_before=["count"])[2] == {"count": 3}


@pytest.mark.parametrize(("asynchronous", "driver"), HALTERS, ids=HALTER_IDS)
def test_request_halt_stops_iterate_after_the_requesting_step(asynchronous, driver):
    app = _halter(asynchronous, "injected")
    steps = Driver(driver).iterate(app, halt_after=None)
    assert [state["count"] for *_, state in steps] == [1, 2]


def test_request_halt_outside_a_step_raises():
    with pytest.raises(RuntimeError, match="only works inside a running step"):
        _chain().context.request_halt()
