"""The local tracker's log format, written by the real engine: every record type (``format``,
``app``, ``begin``/``end``, spans, attributes, stream events, ``child``), values that cannot be
encoded, unwritable directories, torn and damaged lines, reading from an offset, several processes
appending at once, storage defaults and name validation, ``with_tracker``, the tracker as a loader
for ``initialize_from``, ``list_app_ids``, and the same log from the sync and async drivers."""

from __future__ import annotations

import asyncio
import binascii
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import turnout.tracking
from turnout import (
    Action,
    ApplicationBuilder,
    RetryPolicy,
    State,
    TracerFactory,
    action,
    default,
    expr,
    on_exception,
    streaming_action,
)
from turnout.core.application import Application
from turnout.core.errors import GraphSetupError, PersistenceError
from turnout.core.tracking import (
    FORMAT_VERSION,
    LocalTracker,
    TrackingNameError,
    TrackingWarning,
    check_project,
    read_log,
    tracking_home,
)

ROOT = Path(__file__).resolve().parents[2]
APP = "app-1"

# -- drivers and helpers -------------------------------------------------------------------------


@pytest.fixture(params=["sync", "async"], ids=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    """Drive the application with the sync methods, or with the async ones under asyncio.run."""
    return str(request.param)


@pytest.fixture
def tracker(tmp_path: Path) -> Iterator[LocalTracker]:
    """A tracker into ``tmp_path/store``, closed after the test (open logs would leak)."""
    tracker = LocalTracker("proj", tmp_path / "store")
    yield tracker
    tracker.close()


def do_step(app: Application, mode: str, inputs: dict[str, Any] | None = None) -> Any:
    if mode == "sync":
        return app.step(inputs)
    return asyncio.run(app.astep(inputs))


def do_run(app: Application, mode: str, **kwargs: Any) -> Any:
    if mode == "sync":
        return app.run(**kwargs)
    return asyncio.run(app.arun(**kwargs))


def do_stream(
    app: Application, mode: str, halt_after: list[str]
) -> tuple[list[dict[str, Any]], BaseException | None]:
    """Stream the step to its end: the items seen and the exception raised (or ``None``)."""
    items: list[dict[str, Any]] = []
    if mode == "sync":
        _act, container = app.stream_result(halt_after=halt_after)
        try:
            for item in container:
                items.append(item)
            container.get()
        except Exception as exc:
            return items, exc
        return items, None

    async def go() -> BaseException | None:
        _act, container = await app.astream_result(halt_after=halt_after)
        try:
            async for item in container:
                items.append(item)
            await container.get()
        except Exception as exc:
            return exc
        return None

    return items, asyncio.run(go())


def records(tracker: LocalTracker, app_id: str = APP) -> list[dict[str, Any]]:
    tracker.close()  # flushed anyway; closing also proves a later write reopens the log
    return list(read_log(tracker.log_path(app_id)))


def of(lines: list[dict[str, Any]], *kinds: str) -> list[dict[str, Any]]:
    return [r for r in lines if r["t"] in kinds]


def build(
    tracker: LocalTracker,
    *transitions: tuple[Any, ...],
    app_id: str = APP,
    partition_key: str | None = None,
    **actions_and_state: Any,
) -> Application:
    """An application of the given actions (keyword values that are actions) and state (the
    other keywords), entering at the first action, tracked by ``tracker``."""
    actions = {k: v for k, v in actions_and_state.items() if callable(v) or isinstance(v, Action)}
    state = {k: v for k, v in actions_and_state.items() if k not in actions}
    return (
        ApplicationBuilder()
        .with_actions(**actions)
        .with_transitions(*transitions)
        .with_state(**state)
        .with_entrypoint(next(iter(actions)))
        .with_identifiers(app_id=app_id, partition_key=partition_key)
        .with_tracker(tracker)
        .build()
    )


@action(reads=["n"], writes=["n"])
def count(state: State) -> tuple[dict[str, Any], State]:
    return {"n": state["n"] + 1}, state.increment(n=1)


@action(reads=["n"], writes=["n"])
def finish(state: State) -> State:
    return state


# -- format and app lines ------------------------------------------------------------------------


def test_the_log_lives_under_storage_project_and_app_id_and_starts_with_the_format(
    tracker, tmp_path, mode
):
    do_step(build(tracker, ("count", "count"), count=count, n=0), mode)
    path = tmp_path / "store" / "proj" / APP / "log.jsonl"
    assert tracker.log_path(APP) == path
    assert tracker.project_dir == tmp_path / "store" / "proj"
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert first.pop("crc") == binascii.crc32(b'{"t":"format","version":2}')
    assert first == {"t": "format", "version": 2}
    assert FORMAT_VERSION == 2


def test_the_app_line_records_identity_state_and_the_whole_graph(tracker):
    @action(reads=["n", "log"], writes=["n", "log"], tags=["core"])
    def talk(state: State, word: str, loud: bool = False) -> State:
        return state.increment(n=1).append(log=word.upper() if loud else word)

    @action(reads=["error"], writes=["n"])
    def recover(state: State) -> State:
        return state.update(n=0)

    build(
        tracker,
        ("talk", "talk", expr("n < 3")),
        ("talk", "recover", on_exception(ValueError)),
        ("talk", "finish", default),
        ("recover", "finish"),
        partition_key="user-7",
        talk=talk,
        recover=recover,
        finish=finish,
        n=0,
        log=[],
        error=None,
    )
    (app,) = of(records(tracker), "app")
    assert (app["app_id"], app["partition_key"], app["sequence_id"]) == (APP, "user-7", None)
    assert app["state"] == {"n": 0, "log": [], "error": None}
    assert app["parent"] is None
    assert isinstance(app["time"], float)
    graph = app["graph"]
    assert graph["entrypoint"] == "talk"
    actions = {a["name"]: a for a in graph["actions"]}
    assert set(actions) == {"talk", "recover", "finish"}
    talk_record = actions["talk"]
    assert talk_record["reads"] == ["n", "log"]
    assert talk_record["writes"] == ["n", "log"]
    assert talk_record["inputs"] == ["word"]
    assert talk_record["optional_inputs"] == ["loud"]
    assert talk_record["tags"] == ["core"]
    assert (talk_record["streaming"], talk_record["async"]) == (False, False)
    assert "def talk(state: State, word: str, loud: bool = False)" in talk_record["source"]
    assert graph["transitions"] == [
        {"from": "talk", "to": "talk", "condition": "n < 3", "on_exception": False},
        {"from": "talk", "to": "recover", "condition": "on_exception(ValueError)",
         "on_exception": True},
        {"from": "talk", "to": "finish", "condition": "default", "on_exception": False},
        {"from": "recover", "to": "finish", "condition": "default", "on_exception": False},
    ]  # fmt: skip


def test_streaming_and_async_actions_are_flagged_in_the_graph(tracker):
    @streaming_action(reads=[], writes=["out"])
    def speak(state: State) -> Iterator[Any]:
        yield {}, state.update(out=1)

    @action(reads=[], writes=[])
    async def wait(state: State) -> State:
        return state

    build(tracker, ("speak", "wait"), ("wait", "speak"), speak=speak, wait=wait)
    actions = {a["name"]: a for a in of(records(tracker), "app")[0]["graph"]["actions"]}
    assert (actions["speak"]["streaming"], actions["speak"]["async"]) == (True, False)
    assert (actions["wait"]["streaming"], actions["wait"]["async"]) == (False, True)


# -- begin and end -------------------------------------------------------------------------------


def test_begin_records_the_inputs_and_the_attempt_but_not_injected_ones(tracker, mode):
    @action(reads=["n"], writes=["n"])
    def talk(state: State, word: str, __tracer: TracerFactory, times: int = 1) -> State:
        return state.increment(n=times)

    app = build(tracker, ("talk", "talk"), talk=talk, n=0)
    do_step(app, mode, {"word": "hi", "times": 2})
    (begin,) = of(records(tracker), "begin")
    assert begin == {
        "t": "begin",
        "seq": 0,
        "action": "talk",
        "time": begin["time"],
        "attempt": 1,
        "inputs": {"word": "hi", "times": 2},
    }


def test_a_completed_step_ends_with_its_result_and_changes(tracker, mode):
    @action(reads=["n", "log"], writes=["n", "log", "gone", "label"])
    def work(state: State) -> tuple[dict[str, Any], State]:
        new = (
            state.increment(n=2)
            .append(log="a")
            .extend(log=["b", "c"])
            .update(label=(1, 2))
            .wipe(delete=["gone"])
            .update(gone=None)
        )
        return {"answer": 42}, new

    app = build(tracker, ("work", "work"), work=work, n=0, log=[], gone=True)
    do_step(app, mode)
    lines = records(tracker)
    (end,) = of(lines, "end")
    assert end["status"] == "completed"
    assert (end["seq"], end["action"], end["attempt"], end["error"]) == (0, "work", 1, None)
    assert end["result"] == {"answer": 42}
    assert end["changes"] == [
        ["increment", "n", 2],
        ["append", "log", "a"],
        ["extend", "log", ["b", "c"]],
        ["set", "label", {"__turnout__": "tuple", "v": [1, 2]}],
        ["delete", "gone", None],
        ["set", "gone", None],
    ]
    begin = of(lines, "begin")[0]
    assert begin["time"] <= end["time"]


def test_a_failed_step_ends_failed_with_the_traceback_and_no_changes(tracker, mode):
    @action(reads=["n"], writes=["n"])
    def explode(state: State) -> State:
        raise ValueError("boom")

    app = build(tracker, ("explode", "explode"), explode=explode, n=0)
    with pytest.raises(ValueError, match="boom"):
        do_step(app, mode)
    (end,) = of(records(tracker), "end")
    assert (end["status"], end["result"], end["changes"]) == ("failed", None, [])
    assert end["error"].startswith("Traceback (most recent call last):")
    assert "in explode" in end["error"]
    assert end["error"].rstrip().endswith("ValueError: boom")
    assert end["snapshot"] == {"n": 0}  # a failed step 0 is still a snapshot point


def test_retried_attempts_end_retrying_then_completed(tracker, mode):
    failures = [ConnectionError("flaky")]

    def flaky(state: State) -> State:
        if failures:
            raise failures.pop()
        return state.increment(n=1)

    retried = action(reads=["n"], writes=["n"], retry=RetryPolicy(initial_delay=0, jitter=0))(flaky)
    app = build(tracker, ("flaky", "flaky"), flaky=retried, n=0)
    do_step(app, mode)
    steps = [
        (r["t"], r["seq"], r["attempt"], r.get("status"))
        for r in of(records(tracker), "begin", "end")
    ]
    assert steps == [
        ("begin", 0, 1, None),
        ("end", 0, 1, "retrying"),
        ("begin", 0, 2, None),
        ("end", 0, 2, "completed"),
    ]
    retrying = of(records(tracker), "end")[0]
    assert "ConnectionError: flaky" in retrying["error"]
    assert "snapshot" not in retrying  # only final attempts carry the state


def test_a_failure_routed_by_on_exception_ends_failed_with_the_error_as_a_change(tracker, mode):
    @action(reads=["n"], writes=["n"])
    def risky(state: State) -> State:
        raise KeyError("missing")

    @action(reads=["error"], writes=["n"])
    def handler(state: State) -> State:
        return state.update(n=-1)

    app = build(
        tracker,
        ("risky", "handler", on_exception(KeyError)),
        ("risky", "handler"),
        ("handler", "risky"),
        risky=risky,
        handler=handler,
        n=0,
    )
    do_run(app, mode, halt_after=["handler"])
    failed, handled = of(records(tracker), "end")
    assert (failed["action"], failed["status"]) == ("risky", "failed")
    [(op, key, error)] = failed["changes"]
    assert (op, key, error["type"], error["action"]) == ("set", "error", "KeyError", "risky")
    assert "KeyError: 'missing'" in failed["error"]
    assert (handled["action"], handled["seq"], handled["status"]) == ("handler", 1, "completed")


def test_a_cancelled_async_step_ends_cancelled_and_is_not_loadable(tracker):
    events: dict[str, asyncio.Event] = {}

    @action(reads=["n"], writes=["n"])
    async def wait(state: State) -> State:
        events["started"].set()
        await asyncio.Event().wait()  # nobody sets it: only cancelling ends this
        return state

    app = build(tracker, ("count", "wait"), ("wait", "count"), count=count, wait=wait, n=0)

    async def scenario() -> None:
        events["started"] = asyncio.Event()
        await app.astep()
        task = asyncio.ensure_future(app.astep())
        await events["started"].wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    ends = of(records(tracker), "end")
    assert [(e["seq"], e["status"]) for e in ends] == [(0, "completed"), (1, "cancelled")]
    assert "CancelledError" in ends[1]["error"]
    assert "snapshot" not in ends[1]
    loaded = tracker.load(None, APP)
    assert loaded is not None
    assert (loaded.sequence_id, loaded.position) == (0, "count")


def test_the_full_state_is_snapshotted_every_snapshot_every_steps(tmp_path, mode):
    tracker = LocalTracker("proj", tmp_path, snapshot_every=3)
    try:
        app = build(tracker, ("count", "count"), count=count, n=0)
        for _ in range(10):
            do_step(app, mode)
        ends = of(records(tracker), "end")
    finally:
        tracker.close()
    assert [e["seq"] for e in ends if "snapshot" in e] == [0, 3, 6, 9]
    assert [e["snapshot"] for e in ends if "snapshot" in e] == [
        {"n": 1},
        {"n": 4},
        {"n": 7},
        {"n": 10},
    ]


# -- spans and attributes ------------------------------------------------------------------------


@action(reads=["n"], writes=["n"])
def traced(state: State, __tracer: TracerFactory) -> State:
    __tracer.log_attribute("gen_ai.request.model", "stand-in")
    with __tracer("retrieve") as outer:
        outer.log_attributes(documents=3)
        with __tracer("rank"):
            pass
        with __tracer("filter", span_dependencies=["rank"]) as second:
            second.log_attribute("kept", [1, 2])
    return state.increment(n=1)


def test_spans_nest_with_parent_uids_in_order(tracker, mode):
    do_step(build(tracker, ("traced", "traced"), traced=traced, n=0), mode)
    spans = [
        (r["t"], r["span"], r["parent"], r.get("name"))
        for r in of(records(tracker), "span_start", "span_end")
    ]
    assert spans == [
        ("span_start", "0:0", None, "retrieve"),
        ("span_start", "0:0.0", "0:0", "rank"),
        ("span_end", "0:0.0", "0:0", None),
        ("span_start", "0:0.1", "0:0", "filter"),
        ("span_end", "0:0.1", "0:0", None),
        ("span_end", "0:0", None, None),
    ]
    lines = of(records(tracker), "span_start", "span_end")
    assert all(r["seq"] == 0 and r.get("error") is None for r in lines)
    times = [r["time"] for r in lines]
    assert times == sorted(times)


def test_a_span_start_records_its_declared_dependencies_only_when_it_has_some(tracker, mode):
    do_step(build(tracker, ("traced", "traced"), traced=traced, n=0), mode)
    starts = {r["name"]: r for r in of(records(tracker), "span_start")}
    assert starts["filter"]["dependencies"] == ["rank"]
    assert "dependencies" not in starts["rank"]


def test_attributes_belong_to_their_span_or_to_the_step(tracker, mode):
    app = build(tracker, ("traced", "traced"), traced=traced, n=0)
    do_step(app, mode)
    do_step(app, mode)
    attrs = [(r["seq"], r["span"], r["key"], r["value"]) for r in of(records(tracker), "attr")]
    assert attrs[:3] == [
        (0, None, "gen_ai.request.model", "stand-in"),
        (0, "0:0", "documents", 3),
        (0, "0:0.1", "kept", [1, 2]),
    ]
    assert attrs[3:] == [
        (1, None, "gen_ai.request.model", "stand-in"),
        (1, "1:0", "documents", 3),
        (1, "1:0.1", "kept", [1, 2]),
    ]


def test_a_span_left_by_an_exception_records_the_error(tracker, mode):
    @action(reads=["n"], writes=["n"])
    def failing(state: State, __tracer: TracerFactory) -> State:
        with __tracer("outer"), __tracer("inner"):
            raise RuntimeError("deep")
        return state

    with pytest.raises(RuntimeError):
        do_step(build(tracker, ("failing", "failing"), failing=failing, n=0), mode)
    ends = {r["span"]: r["error"] for r in of(records(tracker), "span_end")}
    assert ends == {"0:0.0": "RuntimeError: deep", "0:0": "RuntimeError: deep"}


def test_async_with_spans_in_an_async_action_are_tracked(tracker):
    @action(reads=["n"], writes=["n"])
    async def fetch(state: State, __tracer: TracerFactory) -> State:
        async with __tracer("http") as span:
            await asyncio.sleep(0)
            span.log_attribute("status", 200)
            async with __tracer("decode"):
                await asyncio.sleep(0)
        return state.increment(n=1)

    asyncio.run(build(tracker, ("fetch", "fetch"), fetch=fetch, n=0).astep())
    lines = of(records(tracker), "span_start", "span_end", "attr")
    assert [(r["t"], r["span"], r.get("parent")) for r in lines] == [
        ("span_start", "0:0", None),
        ("attr", "0:0", None),
        ("span_start", "0:0.0", "0:0"),
        ("span_end", "0:0.0", "0:0"),
        ("span_end", "0:0", None),
    ]


# -- streams -------------------------------------------------------------------------------------


def _speaker(mode: str, words: list[str], fail_after: int | None = None) -> Any:
    """A streaming action yielding ``words`` (a sync generator in sync mode, an async one in
    async mode), raising after ``fail_after`` items if given."""

    def body(state: State) -> Iterator[Any]:
        for i, word in enumerate(words):
            if i == fail_after:
                raise OSError("connection lost")
            yield {"token": word}
        yield {"reply": " ".join(words)}, state.update(reply=" ".join(words))

    if mode == "sync":

        def speak(state: State) -> Iterator[Any]:
            yield from body(state)

    else:

        async def speak(state: State) -> Any:  # type: ignore[misc]
            for item in body(state):
                await asyncio.sleep(0)
                yield item

    return streaming_action(reads=[], writes=["reply"])(speak)


def test_a_stream_records_start_first_item_and_end_with_the_item_count(tracker, mode):
    app = build(tracker, ("speak", "speak"), speak=_speaker(mode, ["a", "b", "c"]))
    items, error = do_stream(app, mode, ["speak"])
    assert (len(items), error) == (3, None)
    lines = records(tracker)
    kinds = [r["t"] for r in lines if r["t"] != "format"]
    assert kinds == ["app", "begin", "stream_start", "stream_first", "stream_end", "end"]
    start, first, end = of(lines, "stream_start", "stream_first", "stream_end")
    assert start["seq"] == first["seq"] == end["seq"] == 0
    assert start["time"] <= first["time"] <= end["time"]
    assert (end["items"], end["error"]) == (3, None)
    assert of(lines, "end")[0]["changes"] == [["set", "reply", "a b c"]]


def test_a_failing_stream_records_the_items_so_far_and_the_error(tracker, mode):
    app = build(tracker, ("speak", "speak"), speak=_speaker(mode, ["a", "b", "c"], fail_after=2))
    items, error = do_stream(app, mode, ["speak"])
    assert (len(items), type(error)) == (2, OSError)
    lines = records(tracker)
    (stream_end,) = of(lines, "stream_end")
    assert stream_end["items"] == 2
    assert stream_end["error"].rstrip().endswith("OSError: connection lost")
    (end,) = of(lines, "end")
    assert end["status"] == "failed"
    assert "OSError: connection lost" in end["error"]


def test_an_empty_stream_has_no_first_item_line(tracker, mode):
    app = build(tracker, ("speak", "speak"), speak=_speaker(mode, []))
    assert do_stream(app, mode, ["speak"]) == ([], None)
    lines = records(tracker)
    assert of(lines, "stream_first") == []
    assert of(lines, "stream_end")[0]["items"] == 0


# -- values that cannot be encoded ---------------------------------------------------------------


class Opaque:
    """Nothing in the serde knows this type."""

    def __repr__(self) -> str:
        return "Opaque()"


def test_values_that_cannot_be_encoded_are_logged_as_repr_and_the_app_runs_on(tracker, mode):
    @action(reads=["n"], writes=["n", "thing"])
    def odd(state: State, arg: Any, __tracer: TracerFactory) -> tuple[dict[str, Any], State]:
        __tracer.log_attribute("weird", Opaque())
        return {"made": Opaque()}, state.increment(n=1).update(thing=Opaque())

    app = build(tracker, ("odd", "odd"), odd=odd, n=0)
    with pytest.warns(TrackingWarning, match=r"tracking app 'app-1': the value at \$\.inputs\.arg"):
        do_step(app, mode, {"arg": Opaque()})
    do_step(app, mode, {"arg": 1})  # warned once per application: nothing more
    assert app.state["n"] == 2
    lines = records(tracker)
    begin = of(lines, "begin")[0]
    assert begin["inputs"]["arg"]["__turnout__"] == "repr"
    assert begin["inputs"]["arg"]["v"] == "Opaque()"
    assert "SerdeError" in begin["inputs"]["arg"]["why"]
    end = of(lines, "end")[0]
    assert end["changes"][0] == ["increment", "n", 1]
    assert end["changes"][1][2]["v"] == "Opaque()"
    assert end["result"]["v"] == "{'made': Opaque()}"
    assert of(lines, "attr")[0]["value"]["v"] == "Opaque()"
    assert len(of(lines, "end")) == 2


def test_one_value_that_cannot_be_encoded_spoils_only_its_own_key(tmp_path):
    tracker = LocalTracker("proj", tmp_path, snapshot_every=1)
    try:
        with pytest.warns(TrackingWarning, match=r"\$\.thing"):
            app = build(tracker, ("count", "count"), count=count, n=0, thing=Opaque())
        app.step()
        end = of(records(tracker), "end")[0]
    finally:
        tracker.close()
    assert end["snapshot"]["n"] == 1


class RaisingRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def _cyclic() -> list[Any]:
    items: list[Any] = [1]
    items.append(items)
    return items


def _deep(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


HOSTILE = {
    "huge-int": (lambda: 10**5000, "<int object; its repr raised ValueError>"),
    "raising-repr": (RaisingRepr, "<RaisingRepr object; its repr raised RuntimeError>"),
    "cycle": (_cyclic, "[1, [...]]"),
    "3000-deep": (lambda: _deep(3000), "<list object; its repr raised RecursionError>"),
}


@pytest.mark.parametrize("make", [v[0] for v in HOSTILE.values()], ids=list(HOSTILE))
def test_a_value_nothing_can_log_becomes_a_placeholder_and_step_never_raises(tmp_path, mode, make):
    """Issue 12.6: huge ints, raising reprs, cycles and deep nesting used to make step() raise
    HookError; now the step runs, the log holds a placeholder naming why, and one warning."""
    expected = HOSTILE[next(k for k, v in HOSTILE.items() if v[0] is make)][1]
    tracker = LocalTracker("proj", tmp_path, snapshot_every=1)

    @action(reads=["n"], writes=["n", "v"])
    def put(state: State) -> State:
        return state.increment(n=1).update(v=make())

    app = build(tracker, ("put", "put"), put=put, n=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        do_step(app, mode)
        do_step(app, mode)
    assert [w.category for w in caught] == [TrackingWarning], [str(w.message) for w in caught]
    assert app.state["n"] == 2
    ends = of(records(tracker), "end")
    assert [e["status"] for e in ends] == ["completed", "completed"]
    logged = ends[0]["changes"][1][2]
    assert (logged["__turnout__"], logged["v"]) == ("repr", expected)
    assert logged["why"]
    assert ends[1]["snapshot"]["n"] == 2
    assert ends[1]["snapshot"]["v"]["__turnout__"] == "repr"
    with pytest.raises(PersistenceError, match=r"could not log these state values.*'v'"):
        tracker.load(None, APP)


def test_a_state_with_a_placeholder_is_refused_for_resume_not_resumed_wrong(tmp_path):
    tracker = LocalTracker("proj", tmp_path)

    @action(reads=["n"], writes=["n", "v"])
    def put(state: State) -> State:
        return state.increment(n=1).update(v=Opaque() if state["n"] == 0 else 7)

    app = build(tracker, ("put", "put"), put=put, n=0)
    with pytest.warns(TrackingWarning):
        app.step()
    app.step()  # v is logged again, as a value this time
    assert tracker.load(None, APP, 1).state.get_all() == {"n": 2, "v": 7}  # type: ignore[union-attr]
    with pytest.raises(PersistenceError, match=r"'v' \(logged as 'Opaque\(\)'"):
        tracker.load(None, APP, 0)
    with pytest.raises(PersistenceError, match="fork from a step before"):
        _resumable(tracker, APP, fork_from_app_id=APP, fork_from_sequence_id=0).with_identifiers(
            app_id="fork"
        ).build()


def test_lone_surrogates_in_values_and_keys_are_logged_and_read_back(tmp_path):
    tracker = LocalTracker("proj", tmp_path)

    @action(reads=["n"], writes=["n", "text", "k\udc00"])
    def put(state: State) -> State:
        return state.increment(n=1).update(**{"text": "bad \ud800 text", "k\udc00": 1})

    app = build(tracker, ("put", "put"), put=put, n=0)
    app.step()
    app.step()
    loaded = tracker.load(None, APP)
    assert loaded is not None
    assert loaded.state.get_all() == {"n": 2, "text": "bad \ud800 text", "k\udc00": 1}


# -- unwritable logs -----------------------------------------------------------------------------


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "turnout.tracking" and r.levelno == logging.WARNING
    ]


def test_a_file_where_the_project_directory_should_be_warns_once_and_the_app_runs(
    tmp_path, caplog, mode
):
    (tmp_path / "proj").write_text("not a directory")
    tracker = LocalTracker("proj", tmp_path)
    app = build(tracker, ("count", "count"), count=count, n=0)
    with caplog.at_level(logging.WARNING, logger="turnout.tracking"):
        for _ in range(5):
            do_step(app, mode)
    tracker.close()
    assert app.state["n"] == 5
    (warning,) = _warnings(caplog)
    assert APP in warning.getMessage()
    assert "cannot write its log" in warning.getMessage()
    assert (tmp_path / "proj").read_text() == "not a directory"


def test_a_directory_burr_tracked_is_never_appended_to_and_the_app_runs(tmp_path, caplog, mode):
    """Pointed at Burr's tracking directory, the tracker leaves Burr's log as it was."""
    burr_app = tmp_path / "proj" / APP
    burr_app.mkdir(parents=True)
    burr_log = '{"type": "begin_entry", "action": "count", "sequence_id": 0}\n'
    (burr_app / "log.jsonl").write_text(burr_log)
    (burr_app / "metadata.json").write_text("{}")
    tracker = LocalTracker("proj", tmp_path)
    app = build(tracker, ("count", "count"), count=count, n=0)
    with caplog.at_level(logging.WARNING, logger="turnout.tracking"):
        for _ in range(3):
            do_step(app, mode)
    tracker.close()
    assert app.state["n"] == 3
    assert (burr_app / "log.jsonl").read_text() == burr_log
    (warning,) = _warnings(caplog)
    assert "holds an application Burr tracked (metadata.json)" in warning.getMessage()
    assert "turnout import-burr" in warning.getMessage()


# -- reading: torn lines, damaged lines, offsets -------------------------------------------------


def _tracked_steps(tracker: LocalTracker, steps: int) -> Path:
    app = build(tracker, ("count", "count"), count=count, n=0)
    for _ in range(steps):
        app.step()
    tracker.close()
    return tracker.log_path(APP)


def test_a_torn_last_line_is_ignored_by_read_log_and_load(tracker):
    path = _tracked_steps(tracker, 3)
    whole = list(read_log(path))
    data = path.read_bytes()
    path.write_bytes(data[:-15])  # the process died while writing step 2's end line
    torn = list(read_log(path))
    assert torn == whole[:-1]
    assert torn[-1]["t"] == "begin"
    loaded = tracker.load(None, APP)
    assert loaded is not None
    assert (loaded.sequence_id, dict(loaded.state)) == (1, {"n": 2})
    assert tracker.load(None, APP, 2) is None


def test_a_damaged_middle_line_is_skipped_and_the_rest_is_read(tracker):
    path = _tracked_steps(tracker, 3)
    lines = path.read_bytes().splitlines(keepends=True)
    begin_1 = next(i for i, line in enumerate(lines) if b'"t":"begin","seq":1' in line)
    lines[begin_1] = lines[begin_1][:20] + b"\n"  # cut short, then another line was appended
    lines.insert(1, b"[1, 2]\n")  # valid JSON but not a record
    path.write_bytes(b"".join(lines))
    got = [(r["t"], r.get("seq")) for r in read_log(path)]
    assert ("begin", 1) not in got
    assert got[-2:] == [("begin", 2), ("end", 2)]
    assert len(got) == 1 + 1 + 3 * 2 - 1
    loaded = tracker.load(None, APP)
    assert loaded is not None
    assert (loaded.sequence_id, dict(loaded.state)) == (2, {"n": 3})


def test_read_log_from_an_offset_reads_only_the_lines_appended_since(tracker):
    app = build(tracker, ("count", "count"), count=count, n=0)
    app.step()
    path = tracker.log_path(APP)
    offset = path.stat().st_size
    app.step()
    app.step()
    tracker.close()
    appended = list(read_log(path, offset))
    assert [(r["t"], r["seq"]) for r in appended] == [
        ("begin", 1),
        ("end", 1),
        ("begin", 2),
        ("end", 2),
    ]
    assert list(read_log(path, path.stat().st_size)) == []


def test_a_writer_appending_after_a_torn_line_loses_nothing(tracker, tmp_path):
    path = _tracked_steps(tracker, 3)
    path.write_bytes(path.read_bytes()[:-15])
    again = LocalTracker("proj", tmp_path / "store")
    try:
        app = (
            ApplicationBuilder()
            .with_actions(count=count)
            .with_transitions(("count", "count"))
            .with_identifiers(app_id=APP)
            .initialize_from(again, default_state={"n": 0}, default_entrypoint="count")
            .with_tracker(again)
            .build()
        )
        app.step()
    finally:
        again.close()
    assert len(of(list(read_log(path)), "app")) == 2


# -- several processes ---------------------------------------------------------------------------

_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from turnout import ApplicationBuilder, State, action
    from turnout.core.tracking import LocalTracker

    storage, app_id, steps, size, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(
        sys.argv[4]), Path(sys.argv[5])
    writer = f"{app_id}-{os.getpid()}"

    @action(reads=["n"], writes=["n", "notes"])
    def note(state: State) -> State:
        text = f"{writer}:{state['n']}:" + "x" * size
        return state.increment(n=1).append(notes=text)

    tracker = LocalTracker("shared", storage, snapshot_every=10_000)
    app = (
        ApplicationBuilder()
        .with_actions(note=note)
        .with_transitions(("note", "note"))
        .with_state(n=0, notes=[])
        .with_entrypoint("note")
        .with_identifiers(app_id=app_id)
        .with_tracker(tracker)
        .build()
    )
    (go.parent / f"ready-{writer}").touch()
    deadline = time.monotonic() + 60
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.001)  # start together, so that the appends really interleave
    for _ in range(steps):
        app.step()
    tracker.close()
    """
)


def _writers(storage: Path, app_ids: list[str], steps: int, size: int) -> None:
    """Run one process per app id, all released at once; wait for them and check they ran."""
    go = storage / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(storage), app_id, str(steps), str(size), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for app_id in app_ids
    ]
    deadline = time.monotonic() + 60
    while len(list(storage.glob("ready-*"))) < len(procs) and time.monotonic() < deadline:
        if any(proc.poll() is not None for proc in procs):
            break  # one failed to start; communicate() below shows why
        time.sleep(0.005)
    go.touch()
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        assert not err, err.decode()


def test_processes_tracking_their_own_apps_into_one_project(tmp_path):
    storage = tmp_path / "store"
    storage.mkdir()
    app_ids = ["first", "second", "third"]
    _writers(storage, app_ids, steps=500, size=300)
    tracker = LocalTracker("shared", storage)
    for app_id in app_ids:
        raw = tracker.log_path(app_id).read_bytes().splitlines()
        lines = [json.loads(line) for line in raw]  # every line parses: none torn or mixed
        assert [r["seq"] for r in of(lines, "end")] == list(range(500))
        assert all(r["changes"][1][2].startswith(f"{app_id}-") for r in of(lines, "end"))
        loaded = tracker.load(None, app_id)
        assert loaded is not None
        assert loaded.state["n"] == 500
    assert sorted(tracker.list_app_ids()) == sorted(app_ids)


def test_two_processes_tracking_the_same_app_keep_every_line_whole(tmp_path):
    storage = tmp_path / "store"
    storage.mkdir()
    # Lines of ~20 kB, larger than Python's write buffer: each must still land in one piece.
    _writers(storage, ["same", "same"], steps=300, size=20_000)
    raw = LocalTracker("shared", storage).log_path("same").read_bytes()
    assert raw.endswith(b"\n")
    lines = [json.loads(line) for line in raw.splitlines()]
    assert len(of(lines, "app")) == 2
    assert len(of(lines, "begin")) == len(of(lines, "end")) == 600
    notes = [r["changes"][1][2] for r in of(lines, "end")]
    assert all(len(note) > 20_000 for note in notes)
    writers: dict[str, list[int]] = {}
    for note in notes:
        writer, n, _ = note.split(":", 2)
        writers.setdefault(writer, []).append(int(n))
    assert list(writers.values()) == [list(range(300))] * 2  # each writer's lines in its order


_MANY_APPS = textwrap.dedent(
    """
    import logging, resource, sys
    from turnout import ApplicationBuilder, State, action
    from turnout.core.tracking import LocalTracker

    resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    warnings = []

    class Collect(logging.Handler):
        def emit(self, record):
            warnings.append(record)

    logging.getLogger("turnout.tracking").addHandler(Collect())

    @action(reads=["n"], writes=["n"])
    def count(state: State) -> State:
        return state.increment(n=1)

    tracker = LocalTracker("many", sys.argv[1])
    for i in range(200):  # like a server: one application per request, one tracker
        app = (
            ApplicationBuilder()
            .with_actions(count=count)
            .with_transitions(("count", "count"))
            .with_state(n=0)
            .with_entrypoint("count")
            .with_identifiers(app_id=f"request-{i}")
            .with_tracker(tracker)
            .build()
        )
        app.step()
    tracker.close()
    print(len(warnings))
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="needs the resource module")
def test_tracking_more_apps_than_the_descriptor_limit_keeps_tracking(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _MANY_APPS, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip() == "0"  # warnings: "tracking of app ... stopped"


# -- where logs go, and names --------------------------------------------------------------------


def test_storage_defaults_to_turnout_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TURNOUT_HOME", str(tmp_path / "home"))
    assert tracking_home() == tmp_path / "home"
    tracker = LocalTracker("proj")
    try:
        build(tracker, ("count", "count"), count=count, n=0).step()
    finally:
        tracker.close()
    assert (tmp_path / "home" / "proj" / APP / "log.jsonl").is_file()


def test_storage_defaults_to_dot_turnout_in_the_home_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("TURNOUT_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert LocalTracker().storage_dir == tmp_path / ".turnout"
    assert LocalTracker().project_dir == tmp_path / ".turnout" / "default"
    monkeypatch.setenv("TURNOUT_HOME", "")  # empty counts as unset
    assert tracking_home() == tmp_path / ".turnout"


def test_an_explicit_storage_dir_wins_and_expands_the_user(tmp_path, monkeypatch):
    monkeypatch.setenv("TURNOUT_HOME", str(tmp_path / "ignored"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert LocalTracker("p", "~/runs").storage_dir == tmp_path / "runs"
    assert LocalTracker("p", tmp_path / "x").storage_dir == tmp_path / "x"


BAD_NAMES = ["../x", "..", "a/b", "a\\b", "", ".hidden", "-flag", "a..b", "x" * 201, "a b", "/abs"]
BAD_IDS = ["dotdot", "dotdot-alone", "slash", "backslash", "empty", "hidden", "dash-first",
           "inner-dotdot", "too-long", "space", "absolute"]  # fmt: skip


@pytest.mark.parametrize("name", BAD_NAMES, ids=BAD_IDS)
def test_project_names_that_could_escape_the_storage_dir_are_rejected(tmp_path, name):
    with pytest.raises(ValueError, match="cannot name a tracking directory"):
        LocalTracker(name, tmp_path)


@pytest.mark.parametrize(
    "name", ["proj\n", "a\nb", "p\x00", "p\r"], ids=["nl", "inner-nl", "nul", "cr"]
)
def test_project_names_with_control_characters_are_rejected_not_matched_before_a_newline(
    tmp_path, name
):
    """Issue 12.8: the name check used ``$``, which matched before a trailing newline."""
    with pytest.raises(TrackingNameError, match="cannot name a tracking directory"):
        LocalTracker(name, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_project_name_with_a_colon_is_refused_on_windows_saying_why() -> None:
    assert check_project("team:chat", on_windows=False) == "team:chat"
    with pytest.raises(TrackingNameError, match=r"on Windows: .* 'team-chat'"):
        check_project("team:chat", on_windows=True)


@pytest.mark.parametrize("name", BAD_NAMES, ids=BAD_IDS)
def test_app_ids_that_could_escape_the_project_dir_get_a_safe_directory_inside_it(tracker, name):
    path = tracker.log_path(name)
    assert path.parent.parent == tracker.project_dir
    assert path.parent.name.startswith("~")
    assert "/" not in path.parent.name
    assert ".." not in path.parent.name
    assert len(path.parent.name) < 100
    assert tracker.log_path(name + "x") != path  # distinct ids, distinct directories


@pytest.mark.parametrize(
    "name",
    ["p", "my-project.v2", "user@example.com", "a:b", "x=1+2", "Z_9", "x" * 200],
    ids=["letter", "dots-dashes", "email", "colon", "equals-plus", "underscore", "200-chars"],
)
def test_ordinary_names_are_accepted(tmp_path, name):
    tracker = LocalTracker(name, tmp_path)
    assert tracker.log_path(name) == tmp_path / name / name / "log.jsonl"


UNSAFE_IDS = ["it's", "../escape", "a/b", "a\x00b", "line\nbreak", "x" * 10_000, "ü", ""]


@pytest.mark.parametrize(
    "app_id",
    UNSAFE_IDS,
    ids=["quote", "dotdot", "slash", "nul", "newline", "10kb", "umlaut", "empty"],
)
def test_any_app_id_is_tracked_under_a_safe_encoded_directory_and_loads_back(tmp_path, app_id):
    """Issue 12.6: with_identifiers(app_id="it's") with a tracker made build() raise; now every
    app id is tracked, in a directory of the project named safely, and nothing is lost."""
    tracker = LocalTracker("proj", tmp_path / "store")
    app = build(tracker, ("count", "count"), app_id=app_id, partition_key="a/b\n", count=count, n=0)
    app.step()
    app.step()
    tracker.close()
    (app_dir,) = (tmp_path / "store" / "proj").iterdir()
    assert app_dir.name.startswith("~")
    assert (app_dir / "log.jsonl").is_file()
    assert [p.name for p in (tmp_path / "store").iterdir()] == ["proj"]
    assert tracker.list_app_ids() == [app_id]
    loaded = tracker.load("a/b\n", app_id)
    assert loaded is not None
    assert (loaded.app_id, loaded.sequence_id, dict(loaded.state)) == (app_id, 1, {"n": 2})


# -- with_tracker --------------------------------------------------------------------------------


def _trackers(app: Application) -> list[LocalTracker]:
    # with_tracker("local") builds the tracker itself; the test reaches it to close its files.
    return [h for h in app._hooks.hooks if isinstance(h, LocalTracker)]


def test_with_tracker_local_builds_a_local_tracker_from_project_and_params(tmp_path):
    app = (
        ApplicationBuilder()
        .with_actions(count=count)
        .with_transitions(("count", "count"))
        .with_state(n=0)
        .with_entrypoint("count")
        .with_identifiers(app_id=APP)
        .with_tracker(
            "local", project="demo", params={"storage_dir": tmp_path, "snapshot_every": 2}
        )
        .build()
    )
    app.step()
    (tracker,) = _trackers(app)
    tracker.close()
    assert (tracker.project, tracker.snapshot_every) == ("demo", 2)
    assert (tmp_path / "demo" / APP / "log.jsonl").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("local", "../up", None), "cannot name a tracking directory"),
        (("local", "", None), "cannot name a tracking directory"),
        (("local", "p", {"storage": "x"}), "unexpected keyword argument 'storage'"),
        (("remote", "p", None), "the only named tracker is 'local'"),
    ],
    ids=["traversal", "empty-project", "unknown-param", "unknown-tracker"],
)
def test_with_tracker_problems_are_reported_at_build(args, message):
    builder = (
        ApplicationBuilder()
        .with_actions(count=count)
        .with_transitions(("count", "count"))
        .with_state(n=0)
        .with_entrypoint("count")
        .with_tracker(*args)
    )
    with pytest.raises(GraphSetupError, match=message):
        builder.build()


def test_a_tracker_object_is_used_as_given_and_burr_name_is_an_alias(tracker):
    assert turnout.tracking.LocalTrackingClient is LocalTracker
    app = build(tracker, ("count", "count"), count=count, n=0)
    assert _trackers(app) == [tracker]


# -- loading -------------------------------------------------------------------------------------


@action(reads=["n", "messages"], writes=["n", "messages", "last", "tmp", "shape"])
def chat(state: State) -> State:
    n = state["n"]
    new = state.increment(n=1).append(messages={"role": "user", "text": f"m{n}"})
    if n % 2:
        new = new.extend(messages=[{"role": "bot", "text": "a"}, {"role": "bot", "text": "b"}])
    if n % 3 == 0:
        new = new.update(tmp=n, shape=(n, frozenset({n})))
    else:
        new = new.wipe(delete=["tmp"]).update(tmp=None)
    return new.update(last=f"step {n}")


def test_load_at_every_sequence_id_rebuilds_the_state_exactly(tmp_path):
    tracker = LocalTracker("proj", tmp_path, snapshot_every=3)
    try:
        app = build(tracker, ("chat", "chat"), chat=chat, n=0, messages=[])
        after = []
        for _ in range(10):
            app.step()
            after.append(app.state.get_all())
        for seq, expected in enumerate(after):
            loaded = tracker.load(None, APP, seq)
            assert loaded is not None, seq
            assert loaded.state.get_all() == expected, seq
            assert (loaded.sequence_id, loaded.position) == (seq, "chat"), seq
            assert loaded.status == "completed"
            assert (loaded.app_id, loaded.partition_key) == (APP, None)
        latest = tracker.load(None, APP)
        assert latest is not None
        assert (latest.sequence_id, latest.state.get_all()) == (9, after[-1])
        assert latest["state"] is latest.state
    finally:
        tracker.close()


def test_load_returns_none_for_unknown_apps_steps_and_other_partitions(tracker):
    assert tracker.load(None, "nobody") is None
    app = build(tracker, ("count", "count"), partition_key="alice", count=count, n=0)
    assert tracker.load(None, APP) is None  # tracked, but no step finished yet
    app.step()
    assert tracker.load(None, APP, 5) is None
    assert tracker.load("bob", APP) is None
    loaded = tracker.load("alice", APP)
    assert loaded is not None
    assert (loaded.partition_key, loaded.sequence_id) == ("alice", 0)
    assert tracker.load(None, APP) is not None  # no partition given: any partition


def test_load_after_a_failed_step_returns_it_as_failed(tracker):
    fail = {"now": False}

    @action(reads=["n"], writes=["n"])
    def maybe(state: State) -> State:
        if fail["now"]:
            raise ValueError("no")
        return state.increment(n=1)

    app = build(tracker, ("maybe", "maybe"), maybe=maybe, n=0)
    app.step()
    fail["now"] = True
    with pytest.raises(ValueError, match="no"):
        app.step()
    loaded = tracker.load(None, APP)
    assert loaded is not None
    assert (loaded.sequence_id, loaded.status, dict(loaded.state)) == (1, "failed", {"n": 1})


def _resumable(tracker: LocalTracker, app_id: str = APP, **initialize: Any) -> ApplicationBuilder:
    return (
        ApplicationBuilder()
        .with_actions(count=count, finish=finish)
        .with_transitions(("count", "count", expr("n < 100")), ("count", "finish"))
        .with_identifiers(app_id=app_id)
        .initialize_from(tracker, default_state={"n": 0}, default_entrypoint="count", **initialize)
        .with_tracker(tracker)
    )


def test_initialize_from_the_tracker_resumes_where_the_app_stopped(tmp_path, mode):
    first = LocalTracker("proj", tmp_path)
    app = _resumable(first).build()
    assert app.sequence_id is None
    for _ in range(3):
        do_step(app, mode)
    first.close()

    second = LocalTracker("proj", tmp_path)
    try:
        resumed = _resumable(second).build()
        assert (resumed.sequence_id, dict(resumed.state)) == (2, {"n": 3})
        do_step(resumed, mode)
        lines = records(second)
    finally:
        second.close()
    apps = of(lines, "app")
    assert [(a["sequence_id"], a["state"], a["parent"]) for a in apps] == [
        (None, {"n": 0}, None),
        (2, {"n": 3}, None),
    ]
    assert [e["seq"] for e in of(lines, "end")] == [0, 1, 2, 3]
    loaded = second.load(None, APP)
    assert loaded is not None
    assert (loaded.sequence_id, dict(loaded.state)) == (3, {"n": 4})


def test_initialize_from_the_tracker_forks_and_links_parent_and_child(tracker, mode):
    parent = _resumable(tracker).build()
    for _ in range(4):
        do_step(parent, mode)
    fork = _resumable(tracker, app_id="fork", fork_from_app_id=APP, fork_from_sequence_id=1).build()
    assert (fork.sequence_id, dict(fork.state)) == (1, {"n": 2})
    do_step(fork, mode)
    parent_lines = records(tracker, APP)
    (child,) = of(parent_lines, "child")
    assert child == {
        "t": "child",
        "kind": "fork",
        "child_app_id": "fork",
        "child_partition_key": None,
        "seq": 1,
        "time": child["time"],
    }
    assert parent_lines[-1] == child  # written when the fork was built, after the parent's steps
    fork_lines = records(tracker, "fork")
    (fork_app,) = of(fork_lines, "app")
    assert fork_app["parent"] == {"app_id": APP, "partition_key": None, "sequence_id": 1}
    assert (fork_app["sequence_id"], fork_app["state"]) == (1, {"n": 2})
    assert [e["seq"] for e in of(fork_lines, "end")] == [2]
    loaded = tracker.load(None, "fork")
    assert loaded is not None
    assert (loaded.sequence_id, dict(loaded.state)) == (2, {"n": 3})
    assert tracker.list_app_ids() == ["fork", APP]


def test_resuming_from_an_earlier_step_then_loading_gives_the_new_timeline(tracker):
    app = _resumable(tracker).build()
    for _ in range(5):
        app.step()  # steps 0-4, n = 5
    again = _resumable(tracker).with_identifiers(sequence_id=1).build()
    assert dict(again.state) == {"n": 2}
    again.step()  # step 2 again, n = 3
    loaded = tracker.load(None, APP)
    assert loaded is not None
    assert (loaded.sequence_id, dict(loaded.state)) == (2, {"n": 3})


# -- listing -------------------------------------------------------------------------------------


def test_list_app_ids_is_newest_first_and_filters_by_partition(tracker):
    assert tracker.list_app_ids() == []
    for i, (app_id, partition) in enumerate([("a", "alice"), ("b", "bob"), ("c", "alice")]):
        build(tracker, ("count", "count"), app_id=app_id, partition_key=partition, count=count, n=0)
        tracker.close()
        stamp = 1_700_000_000 + i * 10
        os.utime(tracker.log_path(app_id), (stamp, stamp))
    (tracker.project_dir / "stray").mkdir()  # a directory without a log is not an app
    assert tracker.list_app_ids() == ["c", "b", "a"]
    assert tracker.list_app_ids(partition_key="alice") == ["c", "a"]
    assert tracker.list_app_ids(partition_key="nobody") == []
    app = build(tracker, ("count", "count"), app_id="a", partition_key="alice", count=count, n=0)
    app.step()  # activity makes "a" the newest again
    tracker.close()
    assert tracker.list_app_ids()[0] == "a"


# -- sync and async drivers ----------------------------------------------------------------------


def _shape(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records without their times and run ids."""
    return [{k: v for k, v in r.items() if k not in ("time", "run")} for r in lines]


def test_sync_and_async_drivers_write_the_same_log(tmp_path):
    @action(reads=["n"], writes=["n"])
    def talk(state: State, word: str, __tracer: TracerFactory) -> tuple[dict[str, Any], State]:
        with __tracer("think") as span:
            span.log_attribute("word", word)
        return {"said": word}, state.increment(n=1)

    @streaming_action(reads=["n"], writes=["reply"])
    def speak(state: State) -> Iterator[Any]:
        yield {"token": "x"}
        yield {"token": "y"}
        yield {}, state.update(reply="xy")

    logs: dict[str, list[dict[str, Any]]] = {}
    for mode in ("sync", "async"):
        tracker = LocalTracker("proj", tmp_path / mode, snapshot_every=2)
        try:
            app = build(tracker, ("talk", "speak"), ("speak", "talk"), talk=talk, speak=speak, n=0)
            do_step(app, mode, {"word": "hi"})
            assert do_stream(app, mode, ["speak"])[1] is None
            do_step(app, mode, {"word": "yo"})
            logs[mode] = _shape(records(tracker))
        finally:
            tracker.close()
    assert logs["sync"] == logs["async"]
    assert [r["t"] for r in logs["sync"]] == [
        "format", "app",
        "begin", "span_start", "attr", "span_end", "end",
        "begin", "stream_start", "stream_first", "stream_end", "end",
        "begin", "span_start", "attr", "span_end", "end",
    ]  # fmt: skip


def test_an_app_id_reused_for_a_fresh_run_loads_the_new_run(tmp_path):
    def run(start: int, steps: int) -> None:
        tracker = LocalTracker("proj", tmp_path)
        app = build(tracker, ("count", "count"), count=count, n=start)
        for _ in range(steps):
            app.step()
        tracker.close()

    run(0, 5)
    run(100, 2)
    loaded = LocalTracker("proj", tmp_path).load(None, APP)
    assert loaded is not None
    assert (loaded.sequence_id, loaded.state["n"]) == (1, 102)


# -- tags ----------------------------------------------------------------------------------------


def test_tags_are_written_on_the_app_line_and_absent_without_them(tmp_path: Path):
    tagged = LocalTracker("proj", tmp_path, tags={"env": "staging", "model": "small"})
    plain = tagged.copy(tags={})
    build(tagged, ("traced", "traced"), app_id="tagged", traced=traced, n=0)
    build(plain, ("traced", "traced"), app_id="plain", traced=traced, n=0)
    (app_line,) = of(records(tagged, "tagged"), "app")
    assert app_line["tags"] == {"env": "staging", "model": "small"}
    (plain_line,) = of(records(plain, "plain"), "app")
    assert "tags" not in plain_line


def test_tags_survive_copies_and_pickling(tmp_path: Path):
    import pickle

    tracker = LocalTracker("proj", tmp_path, tags={"env": "dev"})
    assert tracker.copy().tags == {"env": "dev"}
    assert tracker.copy(tags={"env": "prod"}).tags == {"env": "prod"}
    assert pickle.loads(pickle.dumps(tracker)).tags == {"env": "dev"}


@pytest.mark.parametrize("tags", [["env"], {"n": 1}, "env=dev"], ids=["list", "int", "str"])
def test_bad_tags_name_the_expected_shape(tmp_path: Path, tags: Any):
    with pytest.raises(TypeError, match=r"tags=\{\"env\": \"staging\"\}"):
        LocalTracker("proj", tmp_path, tags=tags)
    builder = ApplicationBuilder().with_tracker(
        "local", project="proj", params={"storage_dir": tmp_path, "tags": tags}
    )
    with pytest.raises(GraphSetupError, match="dict of strings to strings"):
        builder.with_actions(traced).with_entrypoint("traced").with_state(n=0).build()
