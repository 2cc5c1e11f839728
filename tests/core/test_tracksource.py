"""``turnout.core.tracksource``: the per-project summary index of the file store (a listing
reads only the logs changed since the last one, trusts a stored summary only while its log is
unchanged, survives a damaged index, bounds its work per call), the query's filters and pages,
and the change counter's wait."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from turnout import ApplicationBuilder, State, action
from turnout.core.trackfiles import TrackingIndex
from turnout.core.tracking import LocalTracker
from turnout.core.tracksource import (
    INDEX_NAME,
    AppQuery,
    AppSummary,
    ChangeCounter,
    SummaryIndex,
    select,
)
from turnout.core.trackview import AppLog


@action(reads=["n"], writes=["n"])
def tick(state: State) -> State:
    return state.update(n=state["n"] + 1)


def _track(root: Path, app_id: str, steps: int, key: str | None = None) -> None:
    tracker = LocalTracker("proj", root)
    app = (
        ApplicationBuilder()
        .with_actions(tick)
        .with_transitions(("tick", "tick"))
        .with_state(n=0)
        .with_entrypoint("tick")
        .with_identifiers(app_id=app_id, partition_key=key)
        .with_tracker(tracker)
        .build()
    )
    for _ in range(steps):
        app.step()
    tracker.close()


class Counting:
    """A summariser that counts the logs it reads."""

    def __init__(self) -> None:
        self.read: list[str] = []

    def __call__(self, path: Path) -> AppSummary:
        self.read.append(path.parent.name)
        log = AppLog(path)
        log.refresh()
        return log.summary("proj")


def test_a_second_listing_reads_only_the_logs_that_changed(tmp_path: Path) -> None:
    for number in range(5):
        _track(tmp_path, f"app-{number}", 2)
    counting = Counting()
    summaries, unreadable, pending = SummaryIndex(tmp_path / "proj", counting).refresh()
    assert (len(summaries), unreadable, pending) == (5, {}, 0)
    assert sorted(counting.read) == [f"app-{n}" for n in range(5)]
    _track(tmp_path, "app-3", 1)  # the same app runs again: its log grows
    counting.read.clear()
    # A new index object (a restarted UI) reads the index file, then only the changed log.
    summaries, _, _ = SummaryIndex(tmp_path / "proj", counting).refresh()
    assert counting.read == ["app-3"]
    assert summaries["app-3"].step_count == 1  # a fresh run of the same id
    counting.read.clear()
    assert SummaryIndex(tmp_path / "proj", counting).refresh()[0] == summaries
    assert counting.read == []


def test_a_damaged_index_is_not_trusted(tmp_path: Path) -> None:
    _track(tmp_path, "a", 3)
    counting = Counting()
    SummaryIndex(tmp_path / "proj", counting).refresh()
    index_file = tmp_path / "proj" / INDEX_NAME
    data = json.loads(index_file.read_text())
    data["apps"]["a"][2]["status"] = "exploded"  # not a status: the entry is dropped
    index_file.write_text(json.dumps(data))
    counting.read.clear()
    summaries, _, _ = SummaryIndex(tmp_path / "proj", counting).refresh()
    assert counting.read == ["a"]
    assert summaries["a"].status == "completed"
    index_file.write_bytes(b"\x00not json")
    counting.read.clear()
    assert SummaryIndex(tmp_path / "proj", counting).refresh()[0] == summaries
    assert counting.read == ["a"]


def test_a_stored_summary_for_another_size_is_read_again(tmp_path: Path) -> None:
    _track(tmp_path, "a", 3)
    counting = Counting()
    SummaryIndex(tmp_path / "proj", counting).refresh()
    index_file = tmp_path / "proj" / INDEX_NAME
    data = json.loads(index_file.read_text())
    data["apps"]["a"][2]["step_count"] = 99
    data["apps"]["a"][0] += 1  # recorded for a log of another size
    index_file.write_text(json.dumps(data))
    counting.read.clear()
    summaries, _, _ = SummaryIndex(tmp_path / "proj", counting).refresh()
    assert counting.read == ["a"]
    assert summaries["a"].step_count == 3


def test_the_work_per_call_is_bounded_and_the_rest_is_pending(tmp_path: Path) -> None:
    for number in range(4):
        _track(tmp_path, f"app-{number}", 1)
    counting = Counting()
    index = SummaryIndex(tmp_path / "proj", counting)
    summaries, _, pending = index.refresh(budget=0.0, first=lambda stale: ["app-2"])
    assert counting.read == ["app-2"]  # the first one asked for is always read
    assert (list(summaries), pending) == (["app-2"], 3)
    summaries, _, pending = index.refresh(budget=None)
    assert (len(summaries), pending) == (4, 0)


def test_every_name_asked_for_first_is_read_whatever_the_budget(tmp_path: Path) -> None:
    for number in range(4):
        _track(tmp_path, f"app-{number}", 1)
    counting = Counting()
    index = SummaryIndex(tmp_path / "proj", counting)
    summaries, _, pending = index.refresh(budget=0.0, first=lambda stale: ["app-3", "app-1"])
    assert counting.read == ["app-3", "app-1"]  # the page's apps, none left pending
    assert (sorted(summaries), pending) == (["app-1", "app-3"], 2)


def test_a_call_leaving_logs_pending_leaves_the_saving_to_catch_up(tmp_path: Path) -> None:
    for number in range(4):
        _track(tmp_path, f"app-{number}", 1)
    index = SummaryIndex(tmp_path / "proj", Counting())
    index.refresh(budget=0.0, first=lambda stale: ["app-1"])
    assert not index.path.exists()  # three pending: no rewrite of the whole index per request
    index.refresh(budget=None)
    assert index.path.exists()  # nothing pending: saved


def test_catch_up_summarises_every_stale_log_and_saves_the_index(tmp_path: Path) -> None:
    for number in range(5):
        _track(tmp_path, f"app-{number}", 1)
    counting = Counting()
    index = SummaryIndex(tmp_path / "proj", counting)
    index.refresh(budget=0.0, first=lambda stale: ["app-0"])
    assert index.catch_up(slice_seconds=0.0) == 4  # the four not read yet, a slice each
    assert sorted(counting.read) == [f"app-{n}" for n in range(5)]
    assert index.catch_up() == 0
    again = Counting()
    summaries, _, pending = SummaryIndex(tmp_path / "proj", again).refresh(budget=0.0)
    assert (len(summaries), pending, again.read) == (5, 0, [])  # all from the saved index


def test_a_page_with_apps_left_pending_has_them_summarised_in_the_background(
    tmp_path: Path,
) -> None:
    for number in range(6):
        _track(tmp_path, f"app-{number}", 1)
    index = TrackingIndex(tmp_path)
    page = index.app_page("proj", AppQuery(limit=2), budget=0.0)
    assert [a.app_id for a in page.apps] == ["app-5", "app-4"]  # the newest: read first
    assert (page.pending, page.matched) == (4, 6)
    for thread in threading.enumerate():
        if thread.name == "turnout-index-proj":
            thread.join(timeout=60)
    page = index.app_page("proj", AppQuery(limit=10), budget=0.0)
    assert (len(page.apps), page.pending) == (6, 0)


def test_a_log_that_cannot_be_summarised_is_unreadable_with_the_reason(tmp_path: Path) -> None:
    _track(tmp_path, "good", 1)
    _track(tmp_path, "bad", 1)

    def summarise(path: Path) -> AppSummary | str:
        if path.parent.name == "bad":
            raise PermissionError(13, "Permission denied")
        return Counting()(path)

    summaries, unreadable, _ = SummaryIndex(tmp_path / "proj", summarise).refresh()
    assert list(summaries) == ["good"]
    assert unreadable == {"bad": "PermissionError: [Errno 13] Permission denied"}


def test_select_filters_sorts_and_pages(tmp_path: Path) -> None:
    for number in range(6):
        _track(tmp_path, f"app-{number}", number + 1, key="even" if number % 2 == 0 else None)
    summaries, _, _ = SummaryIndex(tmp_path / "proj", Counting()).refresh()
    page = select(summaries.values(), AppQuery(limit=4))
    assert [a.app_id for a in page.apps] == ["app-5", "app-4", "app-3", "app-2"]
    assert (page.total, page.matched, page.partition_keys) == (6, 6, (None, "even"))
    page = select(summaries.values(), AppQuery(offset=1, limit=2, partition_keys=("even",)))
    assert [a.app_id for a in page.apps] == ["app-2", "app-0"]
    assert page.matched == 3
    assert select(summaries.values(), AppQuery(status="failed")).matched == 0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"offset": -1}, "an offset is 0 or more"),
        ({"limit": 0}, "a limit is 1 or more"),
        ({"status": "done"}, "a status is one of running, completed, failed"),
    ],
    ids=["offset", "limit", "status"],
)
def test_a_bad_query_names_the_field_and_the_fix(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AppQuery(**fields)  # type: ignore[arg-type]


def test_a_change_wakes_a_waiter_and_a_quiet_store_times_out() -> None:
    counter = ChangeCounter()
    assert counter.wait(0, timeout=0.01) == 0
    started = threading.Event()

    def change() -> None:
        started.wait(5)
        counter.bump(("proj", "a"))

    thread = threading.Thread(target=change)
    thread.start()
    started.set()
    assert counter.wait(0, timeout=10) == 1
    thread.join()
    assert (counter.of(("proj", "a")), counter.of(("proj", "b"))) == (1, 0)


def _long(root: Path, steps: int) -> Path:
    tracker = LocalTracker("proj", root, snapshot_every=10)
    app = (
        ApplicationBuilder()
        .with_actions(tick)
        .with_transitions(("tick", "tick"))
        .with_state(n=0)
        .with_entrypoint("tick")
        .with_identifiers(app_id="long")
        .with_tracker(tracker)
        .build()
    )
    for _ in range(steps):
        app.step()
    tracker.close()
    return root / "proj" / "long" / "log.jsonl"


def test_a_long_log_is_read_from_a_snapshot_near_its_end(tmp_path: Path) -> None:
    path = _long(tmp_path, 300)
    whole = AppLog(path)
    whole.refresh()
    tail = AppLog.tail_first(path, long_log=0, window=path.stat().st_size // 10)
    tail.refresh()
    assert tail.partial
    steps = tail.step_list()
    assert 0 < len(steps) < 300
    assert steps[0].snapshot is not None  # the tail starts at a snapshot line
    assert [s.seq for s in steps] == list(range(steps[0].seq, 300))
    for step in steps[1:]:  # every state after the snapshot, as the whole log gives it
        assert tail.state_after(step.seq) == whole.state_after(step.seq)
        assert tail.state_before(step.seq) == whole.state_before(step.seq)
    summary, full = tail.summary("proj"), whole.summary("proj")
    assert (summary.step_count, summary.status, summary.partial) == (300, "completed", True)
    assert (summary.first_time, summary.last_time) == (full.first_time, full.last_time)
    assert tail.app == whole.app
    from turnout.core.errors import PersistenceError

    with pytest.raises(PersistenceError, match="read every step"):
        tail.state_before(steps[0].seq)
    tail.load_all()
    assert not tail.partial
    assert [s.seq for s in tail.step_list()] == list(range(300))
    assert tail.state_before(steps[0].seq) == whole.state_before(steps[0].seq)


def test_a_short_log_or_one_without_marks_is_still_read(tmp_path: Path) -> None:
    path = _long(tmp_path, 60)
    assert not AppLog.tail_first(path).partial  # far below the threshold: read whole
    path.with_name("log.index").unlink()
    tail = AppLog.tail_first(path, long_log=0, window=path.stat().st_size // 3)
    tail.refresh()
    assert tail.partial
    whole = AppLog(path)
    whole.refresh()
    last = whole.step_list()[-1].seq
    assert tail.state_after(last) == whole.state_after(last)  # from a snapshot in the tail
