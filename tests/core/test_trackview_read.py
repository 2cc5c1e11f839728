"""The tracking readers over real logs: applications run with a ``LocalTracker`` into
``tmp_path``, then read back through ``turnout.core.trackfiles.TrackingIndex`` and
``turnout.core.trackview.AppLog`` (what the tracking UI shows: projects, applications, steps,
states, spans, tokens, retries, children)."""

from __future__ import annotations

import json
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from turnout import (
    ApplicationBuilder,
    RetryPolicy,
    State,
    TracerFactory,
    action,
    default,
    expr,
    streaming_action,
)
from turnout.core import trackview
from turnout.core.trackfiles import InvalidParameterError, TrackingIndex
from turnout.core.tracking import LocalTracker
from turnout.core.tracklog import LogChunk, dump_line
from turnout.core.trackview import diff_states


@action(reads=["count", "items"], writes=["count", "items"])
def grow(state: State, __tracer: TracerFactory) -> State:
    with __tracer("outer") as outer:
        outer.log_attributes(**{"gen_ai.usage.input_tokens": 10})
        with __tracer("inner") as inner:
            inner.log_attributes(**{"gen_ai.usage.output_tokens": 4})
    return state.update(count=state["count"] + 1).append(items=state["count"])


@action(reads=["count"], writes=["scratch"])
def scribble(state: State) -> State:
    return state.update(scratch=state["count"])


@action(reads=["scratch"], writes=["scratch", "done"])
def tidy(state: State) -> State:
    return state.update(scratch=None, done=True)


@action(reads=["count"], writes=[])
def explode(state: State) -> State:
    raise RuntimeError("boom <b>")


def _grower(tracker: LocalTracker, app_id: str, limit: int, **ids: Any) -> Any:
    return (
        ApplicationBuilder()
        .with_actions(grow, scribble, tidy)
        .with_transitions(
            ("grow", "grow", expr(f"count < {limit}")), ("grow", "scribble"), ("scribble", "tidy")
        )
        .with_state(count=0, items=[])
        .with_entrypoint("grow")
        .with_tracker(tracker)
        .with_identifiers(app_id=app_id, **ids)
        .build()
    )


def _failing(tracker: LocalTracker, app_id: str) -> Any:
    return (
        ApplicationBuilder()
        .with_actions(grow, explode)
        .with_transitions(("grow", "explode", default))
        .with_state(count=0, items=[])
        .with_entrypoint("grow")
        .with_tracker(tracker)
        .with_identifiers(app_id=app_id)
        .build()
    )


@pytest.fixture
def tracker(tmp_path: Path) -> Generator[LocalTracker, None, None]:
    tracker = LocalTracker("proj", storage_dir=tmp_path, snapshot_every=3)
    yield tracker
    tracker.close()


def _encoded(state: State) -> dict[str, Any]:
    encoded: dict[str, Any] = json.loads(json.dumps(state.get_all()))
    return encoded


def test_projects_list_app_counts_and_last_activity(tmp_path: Path, tracker: LocalTracker) -> None:
    _grower(tracker, "a", 2).run(halt_after=["tidy"])
    _grower(tracker, "b", 2).run(halt_after=["tidy"])
    other = LocalTracker("other", storage_dir=tmp_path)
    _grower(other, "c", 1).run(halt_after=["tidy"])
    other.close()
    (tmp_path / "empty-project").mkdir()
    (tmp_path / "proj" / "annotations.jsonl").write_text("{}\n")  # a file is not an app
    projects = {p.name: p for p in TrackingIndex(tmp_path).projects()}
    assert set(projects) == {"proj", "other"}
    assert projects["proj"].app_count == 2
    assert projects["other"].app_count == 1
    assert projects["proj"].last_activity is not None


def test_apps_have_partition_status_steps_times_and_links(
    tmp_path: Path, tracker: LocalTracker
) -> None:
    _grower(tracker, "done", 3, partition_key="user-1").run(halt_after=["tidy"])
    with pytest.raises(RuntimeError):
        _failing(tracker, "broken").run(halt_after=["explode"])
    fork = (
        ApplicationBuilder()
        .with_actions(grow, scribble, tidy)
        .with_transitions(("grow", "grow", expr("count < 5")), ("grow", "scribble"))
        .with_transitions(("scribble", "tidy"))
        .initialize_from(
            tracker,
            default_entrypoint="grow",
            default_state={"count": 0, "items": []},
            fork_from_app_id="done",
            fork_from_partition_key="user-1",
            fork_from_sequence_id=1,
        )
        .with_tracker(tracker)
        .with_identifiers(app_id="forked")
        .build()
    )
    fork.run(halt_after=["tidy"])
    apps = {a.app_id: a for a in TrackingIndex(tmp_path).apps("proj")}
    assert apps["done"].partition_key == "user-1"
    assert (apps["done"].status, apps["done"].step_count, apps["done"].error_count) == (
        "completed",
        5,
        0,
    )
    assert (apps["broken"].status, apps["broken"].error_count) == ("failed", 1)
    assert apps["forked"].parent is not None
    assert (apps["forked"].parent.app_id, apps["forked"].parent.sequence_id) == ("done", 1)
    assert [c.app_id for c in apps["done"].children] == ["forked"]
    first, last = apps["done"].first_time, apps["done"].last_time
    assert first is not None
    assert last is not None
    assert first <= last


def test_an_open_begin_line_means_running(tmp_path: Path, tracker: LocalTracker) -> None:
    _grower(tracker, "live", 2).run(halt_after=["grow"])
    log = tracker.log_path("live")
    with log.open("a") as handle:
        handle.write(dump_line({"t": "begin", "seq": 2, "action": "grow", "time": 1.0}).decode())
    (summary,) = TrackingIndex(tmp_path).apps("proj")
    assert summary.status == "running"


def test_refresh_reads_only_the_appended_lines(
    tmp_path: Path, tracker: LocalTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _grower(tracker, "inc", 10)
    app.step()
    app.step()
    index = TrackingIndex(tmp_path)
    log = index.app("proj", "inc")
    assert log is not None
    path = tracker.log_path("inc")
    assert log.offset == path.stat().st_size
    lines_before, offset_before = log.records_read, log.offset
    assert lines_before == len(path.read_bytes().splitlines())

    reads: list[int] = []
    real = trackview._read_lines

    def counting_read(path: Path, offset: int, version: int | None = None) -> LogChunk:
        reads.append(offset)
        return real(path, offset, version)

    monkeypatch.setattr(trackview, "_read_lines", counting_read)
    assert index.app("proj", "inc") is log
    assert reads == []  # nothing appended: not even opened
    app.step()
    appended = path.read_bytes()[offset_before:].splitlines()
    assert index.app("proj", "inc") is log
    assert reads == [offset_before]
    assert log.records_read - lines_before == len(appended)
    assert log.offset == path.stat().st_size
    assert [s.seq for s in log.step_list()] == [0, 1, 2]


def test_a_torn_last_line_waits_for_its_end(tmp_path: Path, tracker: LocalTracker) -> None:
    _grower(tracker, "torn", 1).run(halt_after=["tidy"])
    path = tracker.log_path("torn")
    index = TrackingIndex(tmp_path)
    log = index.app("proj", "torn")
    assert log is not None
    steps = len(log.step_list())
    line = dump_line(
        {"t": "begin", "seq": 99, "action": "grow", "time": 2.0, "inputs": {}}
    ).decode()
    with path.open("a") as handle:
        handle.write("{not json}\n")  # damaged mid-file: skipped
        handle.write(line[:10])  # torn: a writer is mid-line
    log.refresh()
    assert len(log.step_list()) == steps
    assert log.bad_lines == 1
    assert log.offset < path.stat().st_size
    with path.open("a") as handle:
        handle.write(line[10:])
    log.refresh()
    assert log.step_list()[-1].seq == 99
    assert log.offset == path.stat().st_size


def test_state_after_and_before_every_step_match_the_tracker(
    tmp_path: Path, tracker: LocalTracker
) -> None:
    _grower(tracker, "states", 8).run(halt_after=["tidy"])
    log = TrackingIndex(tmp_path).app("proj", "states")
    assert log is not None
    steps = log.step_list()
    assert any(s.snapshot is not None for s in steps)
    assert any(s.snapshot is None for s in steps)
    assert log.state_before(steps[0].seq) == {"count": 0, "items": []}
    for previous, step in zip([None, *steps], steps, strict=False):
        loaded = tracker.load(None, "states", step.seq)
        assert loaded is not None
        assert log.state_after(step.seq) == _encoded(loaded.state), step.seq
        if previous is not None:
            assert log.state_before(step.seq) == log.state_after(previous.seq)
    assert log.state_after(steps[-1].seq)["scratch"] is None


def test_a_cached_state_is_not_replayed_again(
    tmp_path: Path, tracker: LocalTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    _grower(tracker, "cache", 20).run(halt_after=["tidy"])
    log = TrackingIndex(tmp_path).app("proj", "cache")
    assert log is not None
    applied: list[int] = []
    real = trackview._apply

    def counting_apply(state: dict[str, Any], changes: Any) -> dict[str, Any]:
        applied.append(1)
        return real(state, changes)

    monkeypatch.setattr(trackview, "_apply", counting_apply)
    first = log.state_after(17)
    assert 0 < len(applied) <= tracker.snapshot_every  # from the nearest snapshot, not step 0
    applied.clear()
    assert log.state_after(17) == first
    assert log.state_before(18) == first
    assert applied == []


def test_diff_of_two_states_lists_added_removed_and_changed_keys() -> None:
    diff = diff_states({"a": 1, "b": [1], "gone": 0}, {"a": 1, "b": [1, 2], "new": "x"})
    assert diff.added == {"new": "x"}
    assert diff.removed == {"gone": 0}
    assert diff.changed == {"b": ([1], [1, 2])}
    assert not diff_states({"a": 1}, {"a": 1})


def test_summary_and_token_totals_follow_appended_steps(
    tmp_path: Path, tracker: LocalTracker
) -> None:
    """They are kept between page reruns, but never past a refresh that read new steps."""
    app = _grower(tracker, "memo", 10)
    app.step()
    index = TrackingIndex(tmp_path)
    log = index.app("proj", "memo")
    assert log is not None
    summary = log.summary("proj")
    assert summary.step_count == 1
    assert log.summary("proj") is summary  # nothing new: the same answer
    assert log.token_totals() == {"gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 4}
    app.step()
    assert index.app("proj", "memo") is log
    assert log.summary("proj").step_count == 2
    assert log.token_totals() == {"gen_ai.usage.input_tokens": 20, "gen_ai.usage.output_tokens": 8}


def test_steps_carry_spans_attributes_and_token_totals(
    tmp_path: Path, tracker: LocalTracker
) -> None:
    _grower(tracker, "spans", 2).run(halt_after=["tidy"])
    log = TrackingIndex(tmp_path).app("proj", "spans")
    assert log is not None
    first = log.step_list()[0]
    spans = sorted(first.spans.values(), key=lambda s: s.span_id)
    assert [(s.name, s.depth) for s in spans] == [("outer", 0), ("inner", 1)]
    assert spans[1].parent == spans[0].span_id
    assert all(s.start is not None and s.end is not None and s.start <= s.end for s in spans)
    assert first.attributes == {"gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 4}
    assert trackview.step_token_totals(first) == first.attributes
    assert log.token_totals() == {"gen_ai.usage.input_tokens": 20, "gen_ai.usage.output_tokens": 8}
    assert first.duration is not None
    assert first.duration >= 0


def test_run_counts_and_the_logged_graph_with_its_conditions(
    tmp_path: Path, tracker: LocalTracker
) -> None:
    _grower(tracker, "graph", 3).run(halt_after=["tidy"])
    log = TrackingIndex(tmp_path).app("proj", "graph")
    assert log is not None
    assert log.run_counts() == {"grow": 3, "scribble": 1, "tidy": 1}
    assert log.graph is not None
    assert {(t["from"], t["to"], t.get("condition")) for t in log.graph["transitions"]} >= {
        ("grow", "grow", "count < 3"),
        ("scribble", "tidy", "default"),
    }


@streaming_action(reads=[], writes=["text"])
def talk(state: State) -> Generator[Any, None, None]:
    for word in ("a", "b", "c"):
        yield {"delta": word}
    yield {"text": "abc"}, state.update(text="abc")


def test_a_streaming_step_records_its_first_item_and_count(
    tmp_path: Path, tracker: LocalTracker
) -> None:
    app = (
        ApplicationBuilder()
        .with_actions(talk)
        .with_transitions(("talk", "talk"))
        .with_state(text="")
        .with_entrypoint("talk")
        .with_tracker(tracker)
        .with_identifiers(app_id="stream")
        .build()
    )
    _action, container = app.stream_result(halt_after=["talk"])
    assert [item["delta"] for item in container] == ["a", "b", "c"]
    container.get()
    log = TrackingIndex(tmp_path).app("proj", "stream")
    assert log is not None
    (step,) = log.step_list()
    assert step.stream_items == 3
    assert step.time_to_first_item is not None
    assert step.time_to_first_item >= 0


class Flaky:
    def __init__(self) -> None:
        self.calls = 0


@action(reads=[], writes=["ok"], retry=RetryPolicy(max_attempts=3, initial_delay=0.0))
def flaky(state: State, service: Flaky) -> State:
    service.calls += 1
    if service.calls < 3:
        raise ConnectionError(f"down ({service.calls})")
    return state.update(ok=True)


def test_retries_fold_into_one_step_with_their_errors(
    tmp_path: Path, tracker: LocalTracker
) -> None:
    app = (
        ApplicationBuilder()
        .with_actions(flaky.bind(service=Flaky()))
        .with_transitions(("flaky", "flaky"))
        .with_entrypoint("flaky")
        .with_tracker(tracker)
        .with_identifiers(app_id="retry")
        .build()
    )
    app.step()
    log = TrackingIndex(tmp_path).app("proj", "retry")
    assert log is not None
    (step,) = log.step_list()
    assert (step.status, step.attempts, step.error) == ("completed", 3, None)
    assert [e.strip().splitlines()[-1] for e in step.attempt_errors] == [
        "ConnectionError: down (1)",
        "ConnectionError: down (2)",
    ]
    assert log.state_after(0) == {"ok": True}


def test_a_failed_step_keeps_its_traceback_summary(tmp_path: Path, tracker: LocalTracker) -> None:
    with pytest.raises(RuntimeError):
        _failing(tracker, "fails").run(halt_after=["explode"])
    log = TrackingIndex(tmp_path).app("proj", "fails")
    assert log is not None
    failed = log.step_list()[-1]
    assert failed.status == "failed"
    assert failed.error_summary == "RuntimeError: boom <b>"
    assert "Traceback" in (failed.error or "")


def test_unknown_app_ids_give_none_and_unsafe_ones_are_refused(
    tmp_path: Path, tracker: LocalTracker
) -> None:
    _grower(tracker, "x", 1).run(halt_after=["tidy"])
    index = TrackingIndex(tmp_path)
    assert index.app("proj", "nope") is None
    assert index.apps("no-such-project") == []
    assert index.app("proj", "../proj/x") is None  # an id, not a path: no such application
    with pytest.raises(InvalidParameterError, match=r"is not an application id"):
        index.app("proj", "x\x00")
    with pytest.raises(InvalidParameterError, match=r"project '\.\.' is not a tracked project"):
        index.app("..", "x")


@action(reads=["n"], writes=["n"])
def tick(state: State) -> State:
    return state.update(n=state["n"] + 1)


def test_a_resumed_app_continues_from_the_state_its_new_app_line_gives(
    tmp_path: Path, tracker: LocalTracker
) -> None:
    def build(**initialize: Any) -> Any:
        return (
            ApplicationBuilder()
            .with_actions(tick)
            .with_transitions(("tick", "tick"))
            .initialize_from(
                tracker,
                default_entrypoint="tick",
                default_state={"n": 0, "label": "a"},
                **initialize,
            )
            .with_tracker(tracker)
            .with_identifiers(app_id="resumed")
            .build()
        )

    first = build()
    first.step()
    first.step()
    index = TrackingIndex(tmp_path)
    log = index.app("proj", "resumed")
    assert log is not None
    assert log.state_after(1) == {"n": 2, "label": "a"}
    second = build(override_state_values={"label": "b"})
    second.step()
    assert index.app("proj", "resumed") is log
    assert [s.seq for s in log.step_list()] == [0, 1, 2]
    assert log.state_before(2) == {"n": 2, "label": "b"}
    assert log.state_after(2) == _encoded(second.state) == {"n": 3, "label": "b"}
    assert log.state_after(1) == {"n": 2, "label": "a"}


def _spawned(tracker: LocalTracker, parent: str, sequence_id: int, child: str) -> None:
    (
        ApplicationBuilder()
        .with_actions(scribble)
        .with_state(count=sequence_id)
        .with_entrypoint("scribble")
        .with_identifiers(app_id=child)
        .with_spawning_parent(parent, sequence_id)
        .with_tracker(tracker)
        .build()
        .step()
    )


def test_a_spawned_child_links_to_its_step_and_the_step_lists_it_once(
    tmp_path: Path, tracker: LocalTracker
) -> None:
    _grower(tracker, "parent", 2).run(halt_after=["tidy"])
    _spawned(tracker, "parent", 1, "kid-b")
    _spawned(tracker, "parent", 1, "kid-a")
    _spawned(tracker, "parent", 1, "kid-a")  # resumed: its spawn line is written again
    _spawned(tracker, "parent", 0, "kid-c")
    index = TrackingIndex(tmp_path)
    parent = index.app("proj", "parent")
    assert parent is not None
    assert [c.app_id for c in parent.children_of(1)] == ["kid-a", "kid-b"]
    assert [c.app_id for c in parent.children_of(0)] == ["kid-c"]
    assert len(parent.summary("proj").children) == 3
    child = index.app("proj", "kid-a")
    assert child is not None
    link = child.summary("proj").parent
    assert link is not None
    assert (link.app_id, link.sequence_id, link.kind) == ("parent", 1, "spawn")
