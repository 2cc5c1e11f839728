"""``RecordingTracker``: the store-independent tracking hook. A store that supplies only a sink
and a reader (here: records kept in a dict) gets every record kind, copies, links between
children and parents, and ``initialize_from``, exactly as the file tracker writes them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from turnout import ApplicationBuilder, State, action, streaming_action
from turnout.core.errors import HookError, TrackingNameError
from turnout.core.trackbase import RecordingTracker
from turnout.core.trackhistory import Chain, History
from turnout.core.tracking import LocalTracker
from turnout.core.tracklog import FormatRecord, Record, read_records
from turnout.tracking.base import SyncTrackingClient

APP = "kept"


class DictTracker(RecordingTracker):
    """The smallest store: records of each app in a list, shared with its copies."""

    def __init__(self, project: str = "mem", *, shared: dict[str, list[Record]] | None = None,
                 **settings: Any) -> None:  # fmt: skip
        super().__init__(project, **settings)
        self.kept: dict[str, list[Record]] = {} if shared is None else shared
        self.settings = settings

    def _write(self, app_id: str, record: Record) -> None:
        self.kept.setdefault(app_id, []).append(record)

    def _find_chain(self, app_id: str, sequence_id: int | None) -> Chain | None:
        if app_id not in self.kept:
            return None
        history = History(app_id=app_id, path="memory")
        for record in self.kept[app_id]:
            history.add(record)
        return history.chain(sequence_id)

    def _replica(self, tags: dict[str, str]) -> DictTracker:
        return DictTracker(self.project, shared=self.kept, **{**self.settings, "tags": tags})

    def list_app_ids(self, partition_key: str | None = None, **kwargs: Any) -> list[str]:
        return sorted(self.kept)


@action(reads=["n", "items"], writes=["n", "items"])
def traced(state: State, __tracer: Any) -> State:
    __tracer.log_attribute("model", "stand-in")
    with __tracer("retrieve") as outer:
        outer.log_attributes(documents=3)
    return state.increment(n=1).append(items=f"item {state['n']}")


@streaming_action(reads=[], writes=["reply"])
def speak(state: State) -> Iterator[Any]:
    for word in ("a", "b"):
        yield {"token": word}
    yield {"reply": "a b"}, state.update(reply="a b")


def _normalised(records: Any) -> list[dict[str, Any]]:
    out = []
    for record in records:
        if isinstance(record, FormatRecord):
            continue
        data = record.to_json()
        for key in ("time", "run"):
            data.pop(key, None)
        out.append(data)
    return out


def _run(tracker: Any, local: LocalTracker) -> None:
    app = (
        ApplicationBuilder()
        .with_actions(traced=traced, speak=speak)
        .with_transitions(("traced", "speak"), ("speak", "traced"))
        .with_state(n=0, items=[])
        .with_entrypoint("traced")
        .with_identifiers(app_id=APP, partition_key="user")
        .with_tracker(tracker)
        .with_hooks(local)
        .build()
    )
    app.step()
    _, streamed = app.stream_result(halt_after=["speak"])
    list(streamed)
    app.step()
    (
        ApplicationBuilder()
        .with_actions(traced=traced)
        .with_transitions(("traced", "traced"))
        .with_state(n=0, items=[])
        .with_entrypoint("traced")
        .with_spawning_parent(APP, 1, "user")
        .with_identifiers(app_id="child")
        .with_tracker(tracker)
        .with_hooks(local)
        .build()
    )


def test_a_store_with_only_a_sink_gets_the_records_the_file_tracker_writes(
    tmp_path: Path,
) -> None:
    tracker = DictTracker(snapshot_every=2)
    local = LocalTracker("mem", tmp_path, snapshot_every=2)
    _run(tracker, local)
    kinds = {record.KIND for record in tracker.kept[APP]}
    assert kinds == {
        "app", "begin", "end", "span_start", "span_end", "attr", "stream_start",
        "stream_first", "stream_end", "child",
    }  # fmt: skip
    for app_id in (APP, "child"):
        local_records = read_records(local.log_path(app_id)).records
        assert _normalised(tracker.kept[app_id]) == _normalised(local_records)


def test_initialize_from_loads_through_the_stores_reader(tmp_path: Path) -> None:
    tracker = DictTracker(snapshot_every=2)
    _run(tracker, LocalTracker("mem", tmp_path))
    resumed = (
        ApplicationBuilder()
        .with_actions(traced=traced, speak=speak)
        .with_transitions(("traced", "speak"), ("speak", "traced"))
        .initialize_from(
            tracker, resume_at_next_action=True, default_state={}, default_entrypoint="traced"
        )
        .with_identifiers(app_id=APP, partition_key="user")
        .build()
    )
    assert resumed.sequence_id == 2
    assert resumed.state.get_all() == {"n": 2, "items": ["item 0", "item 1"], "reply": "a b"}
    assert tracker.load("someone else", APP) is None  # another partition's app
    assert tracker.load(None, "never-tracked") is None


def test_a_copy_writes_to_the_same_store_with_its_own_tags() -> None:
    tracker = DictTracker(tags={"env": "test"})
    copied = tracker.copy(tags={"role": "child"})
    assert isinstance(copied, DictTracker)
    assert copied.kept is tracker.kept
    assert (copied.tags, tracker.copy().tags) == ({"role": "child"}, {"env": "test"})
    with pytest.raises(TypeError, match=r"DictTracker\(tags=\.\.\.\) takes a dict of strings"):
        tracker.copy(tags={"n": 1})  # type: ignore[dict-item]


def test_a_project_name_that_cannot_name_a_directory_is_refused_by_every_store() -> None:
    with pytest.raises(TrackingNameError, match="cannot name a tracking directory"):
        DictTracker("../elsewhere")


def test_a_store_that_forgot_its_sink_says_which_method_to_define() -> None:
    class NoSink(RecordingTracker):
        pass

    app = (
        ApplicationBuilder()
        .with_actions(traced=traced)
        .with_transitions(("traced", "traced"))
        .with_state(n=0, items=[])
        .with_entrypoint("traced")
    )
    with pytest.raises(HookError, match=r"NoSink must define _write\(app_id, record\)"):
        app.with_tracker(NoSink()).build()
    with pytest.raises(NotImplementedError, match=r"NoSink must define _find_chain"):
        NoSink().load(None, APP)


def test_every_store_counts_as_burrs_tracking_client(tmp_path: Path) -> None:
    for tracker in (DictTracker(), LocalTracker("p", tmp_path)):
        assert isinstance(tracker, RecordingTracker)
        assert isinstance(tracker, SyncTrackingClient)
