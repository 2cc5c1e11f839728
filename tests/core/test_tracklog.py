"""The tracking-log format's one reader (``turnout.core.tracklog``) and the replay that checks a
history is whole (``turnout.core.trackhistory``), through the tracker, the UI's data layer and
the public reader. Logs are written by a real ``LocalTracker``, then damaged on purpose."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from turnout import ApplicationBuilder, State, action
from turnout.core.application import Application
from turnout.core.errors import PersistenceError
from turnout.core.tracking import LocalTracker, read_log
from turnout.core.tracklog import (
    FORMAT_VERSION,
    READS_UP_TO,
    AppRecord,
    BeginRecord,
    EndRecord,
    FormatRecord,
    app_dir_name,
    apply_stored_changes,
    dump_line,
    parse_line,
    read_records,
)

APP = "log-app"


@action(reads=["n"], writes=["n"])
def count(state: State) -> State:
    return state.increment(n=1)


@pytest.fixture
def tracker(tmp_path: Path) -> Iterator[LocalTracker]:
    tracker = LocalTracker("proj", tmp_path, snapshot_every=4)
    yield tracker
    tracker.close()


def counter(tracker: LocalTracker, app_id: str = APP, **initialize: Any) -> Application:
    return (
        ApplicationBuilder()
        .with_actions(count=count)
        .with_transitions(("count", "count"))
        .with_identifiers(app_id=app_id)
        .initialize_from(tracker, default_state={"n": 0}, default_entrypoint="count", **initialize)
        .with_tracker(tracker)
        .build()
    )


def run_steps(tracker: LocalTracker, steps: int, app_id: str = APP) -> Path:
    app = counter(tracker, app_id)
    for _ in range(steps):
        app.step()
    tracker.close()
    return tracker.log_path(app_id)


def drop_end(path: Path, seq: int) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    target = f'"t":"end","seq":{seq},'.encode()
    path.write_bytes(b"".join(line for line in lines if target not in line))


def damage_end(path: Path, seq: int) -> None:
    """One byte of step ``seq``'s end line changed inside a value: still valid JSON."""
    lines = path.read_bytes().splitlines(keepends=True)
    target = f'"t":"end","seq":{seq},'.encode()
    index = next(i for i, line in enumerate(lines) if target in line)
    lines[index] = lines[index].replace(b'"n",1]', b'"n",7]')
    path.write_bytes(b"".join(lines))


# -- the line codec and the reader ----------------------------------------------------------------


def test_a_line_is_checksummed_and_parses_back_to_a_typed_record() -> None:
    record = BeginRecord(seq=3, action="count", time=1.5, attempt=2, inputs={"x": [1]})
    line = dump_line(record.to_json())
    assert line.endswith(b"}\n")
    assert b'"crc":' in line
    parsed = parse_line(line[:-1], checked=True)
    assert parsed is not None
    assert parsed[1] == record
    assert parsed[0] == record.to_json()


@pytest.mark.parametrize(
    "line",
    [
        b"{not json",
        b"[1, 2]",
        b'"text"',
        b'{"t":"mystery","seq":1}',
        b'{"t":"begin","action":"a","time":1}',
        b'{"t":"begin","seq":"1","action":"a","time":1}',
        b'{"t":"begin","seq":true,"action":"a","time":1}',
        b'{"t":"end","seq":1,"action":"a","time":1,"status":"completed","changes":{}}',
        b'{"t":"end","seq":1,"action":"a","time":1,"status":"completed","changes":[["set"]]}',
        b'{"t":"end","seq":1,"action":"a","time":1,"status":"completed","changes":[["x","k",1]]}',
        b'{"t":"app","app_id":"a","time":1,"state":[]}',
        b"\xff\xfe",
    ],
    ids=[
        "not-json", "array", "string", "unknown-kind", "missing-seq", "seq-string", "seq-bool",
        "changes-not-list", "change-short", "change-unknown-op", "state-not-object", "not-utf8",
    ],
)  # fmt: skip
def test_malformed_lines_are_skipped_and_counted(tmp_path: Path, line: bytes) -> None:
    path = tmp_path / "log.jsonl"
    good = dump_line(FormatRecord(version=1).to_json())
    path.write_bytes(good + line + b"\n" + good)
    chunk = read_records(path)
    assert chunk.bad_lines == 1
    assert chunk.records == (FormatRecord(version=1), FormatRecord(version=1))
    assert chunk.offset == path.stat().st_size


def test_a_line_whose_checksum_does_not_match_is_malformed(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    line = dump_line(BeginRecord(seq=1, action="a", time=1.0).to_json())
    path.write_bytes(line.replace(b'"seq":1', b'"seq":2'))
    chunk = read_records(path)
    assert (chunk.records, chunk.bad_lines) == ((), 1)


def test_a_torn_last_line_is_left_for_the_next_read_and_not_counted(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    whole = dump_line(BeginRecord(seq=0, action="a", time=1.0).to_json())
    torn = dump_line(BeginRecord(seq=1, action="a", time=2.0).to_json())
    path.write_bytes(whole + torn[:9])
    first = read_records(path)
    assert (len(first.records), first.bad_lines, first.offset) == (1, 0, len(whole))
    with path.open("ab") as handle:
        handle.write(torn[9:])
    second = read_records(path, first.offset)
    assert [r.seq for r in second.records] == [1]  # type: ignore[union-attr]
    assert second.offset == path.stat().st_size


def test_a_version_1_log_without_checksums_is_read_and_loaded(tmp_path: Path) -> None:
    """Logs written before checksums (format 1) stay readable."""
    tracker = LocalTracker("proj", tmp_path)
    path = tracker.log_path(APP)
    path.parent.mkdir(parents=True)
    lines = [
        {"t": "format", "version": 1},
        {"t": "app", "app_id": APP, "partition_key": None, "time": 1.0, "sequence_id": None,
         "state": {"n": 0}, "graph": {}, "parent": None, "spawning_parent": None},
        {"t": "begin", "seq": 0, "action": "count", "time": 2.0, "attempt": 1, "inputs": {}},
        {"t": "end", "seq": 0, "action": "count", "time": 3.0, "attempt": 1,
         "status": "completed", "result": None, "error": None, "changes": [["set", "n", 1]]},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    chunk = read_records(path)
    assert (chunk.version, chunk.bad_lines, len(chunk.records)) == (1, 0, 4)
    loaded = tracker.load(None, APP)
    assert loaded is not None
    assert (loaded.sequence_id, dict(loaded.state)) == (0, {"n": 1})


def test_in_a_version_2_log_a_line_without_its_checksum_is_malformed(tracker: LocalTracker) -> None:
    path = run_steps(tracker, 1)
    with path.open("a") as handle:
        handle.write(json.dumps({"t": "begin", "seq": 1, "action": "count", "time": 1.0}) + "\n")
    chunk = read_records(path)
    assert chunk.version == FORMAT_VERSION
    assert chunk.bad_lines == 1


def test_read_log_yields_the_well_formed_records_as_objects(tracker: LocalTracker) -> None:
    path = run_steps(tracker, 2)
    with path.open("a") as handle:
        handle.write("garbage\n")
    kinds = [r["t"] for r in read_log(path)]
    assert kinds == ["format", "app", "begin", "end", "begin", "end"]
    assert all("crc" not in r for r in read_log(path))


def test_app_dir_name_keeps_safe_ids_and_encodes_the_rest_without_collisions() -> None:
    assert app_dir_name("chat-1") == "chat-1"
    names = {app_dir_name(i) for i in ["it's", "it_s", "it?s", "a/b", "a\\b", "..", "", "~x"]}
    assert len(names) == 8
    assert all(n.startswith("~") or n == "it_s" for n in names)


# -- whole histories only -------------------------------------------------------------------------


def test_a_missing_end_line_makes_load_raise_naming_app_log_gap_and_fork(
    tracker: LocalTracker,
) -> None:
    """Issue 12.3: a damaged end line used to load a silently wrong state."""
    path = run_steps(tracker, 7)  # snapshots at 0 and 4
    drop_end(path, 2)
    with pytest.raises(PersistenceError) as info:
        tracker.load(None, APP, 3)
    message = str(info.value)
    assert repr(APP) in message
    assert str(path) in message
    assert "sequence ids 2" in message
    assert f"fork_from_app_id={APP!r}, fork_from_sequence_id=1" in message
    for seq, n in [(0, 1), (1, 2), (4, 5), (5, 6), (6, 7)]:  # a snapshot starts a whole chain
        loaded = tracker.load(None, APP, seq)
        assert loaded is not None
        assert dict(loaded.state) == {"n": n}
    with pytest.raises(PersistenceError, match="sequence ids 2"):
        tracker.load(None, APP, 2)


def test_an_end_line_damaged_inside_a_value_is_caught_by_its_checksum(
    tracker: LocalTracker,
) -> None:
    path = run_steps(tracker, 3)
    damage_end(path, 1)  # its change ["increment", "n", 1] now says 7: valid JSON, wrong value
    with pytest.raises(PersistenceError, match="sequence ids 1"):
        tracker.load(None, APP)
    assert read_records(path).bad_lines == 1
    assert dict(tracker.load(None, APP, 0).state) == {"n": 1}  # type: ignore[union-attr]


def test_a_last_step_without_its_end_line_is_unfinished_not_an_error(
    tracker: LocalTracker,
) -> None:
    """As after a crash mid-step: the latest state is the step before, which is whole."""
    path = run_steps(tracker, 3)
    drop_end(path, 2)
    loaded = tracker.load(None, APP)
    assert loaded is not None
    assert (loaded.sequence_id, dict(loaded.state)) == (1, {"n": 2})


def test_a_lost_end_line_at_the_tail_makes_the_latest_state_an_error(
    tracker: LocalTracker,
) -> None:
    path = run_steps(tracker, 3)
    drop_end(path, 1)  # step 2 began, so step 1 ended: its end line is lost
    with pytest.raises(PersistenceError, match="sequence ids 1"):
        tracker.load(None, APP)
    with pytest.raises(PersistenceError, match="sequence ids 1"):
        counter(tracker)  # initialize_from: refused, not a fresh start from the default


def test_the_fork_the_error_names_starts_a_whole_application(tracker: LocalTracker) -> None:
    path = run_steps(tracker, 4)
    drop_end(path, 2)
    with pytest.raises(PersistenceError, match="fork_from_sequence_id=1"):
        counter(tracker)
    fork = counter(tracker, "forked", fork_from_app_id=APP, fork_from_sequence_id=1)
    assert (fork.sequence_id, dict(fork.state)) == (1, {"n": 2})
    fork.step()
    loaded = tracker.load(None, "forked")
    assert loaded is not None
    assert dict(loaded.state) == {"n": 3}


def test_a_lost_resume_line_is_an_error_not_a_replay_past_its_overrides(
    tracker: LocalTracker,
) -> None:
    run_steps(tracker, 2)
    resumed = counter(tracker, override_state_values={"n": 100})
    resumed.step()
    tracker.close()
    path = tracker.log_path(APP)
    loaded = tracker.load(None, APP)
    assert loaded is not None
    assert dict(loaded.state) == {"n": 101}
    lines = path.read_bytes().splitlines(keepends=True)
    resume = [i for i, line in enumerate(lines) if b'"t":"app"' in line][1]
    del lines[resume]
    path.write_bytes(b"".join(lines))
    with pytest.raises(PersistenceError, match="an app line is missing, or a line is out of"):
        tracker.load(None, APP)
    assert dict(tracker.load(None, APP, 1).state) == {"n": 2}  # type: ignore[union-attr]


def test_a_lost_first_app_line_still_loads_from_the_step_0_snapshot(
    tracker: LocalTracker,
) -> None:
    path = run_steps(tracker, 3)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(line for line in lines if b'"t":"app"' not in line))
    loaded = tracker.load(None, APP)
    assert loaded is not None
    assert (loaded.sequence_id, dict(loaded.state)) == (2, {"n": 3})


def test_a_duplicated_line_changes_nothing(tracker: LocalTracker) -> None:
    path = run_steps(tracker, 3)
    lines = path.read_bytes().splitlines(keepends=True)
    end_1 = next(i for i, line in enumerate(lines) if b'"t":"end","seq":1,' in line)
    lines.insert(end_1, lines[end_1])
    path.write_bytes(b"".join(lines))
    loaded = tracker.load(None, APP)
    assert loaded is not None
    assert dict(loaded.state) == {"n": 3}


# -- format versions ------------------------------------------------------------------------------


def newer(path: Path) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    lines[0] = dump_line(FormatRecord(version=READS_UP_TO + 1).to_json())
    path.write_bytes(b"".join(lines))


def test_a_log_from_a_newer_format_is_listed_but_never_loaded(tracker: LocalTracker) -> None:
    path = run_steps(tracker, 2)
    newer(path)
    assert tracker.list_app_ids() == [APP]
    with pytest.raises(
        PersistenceError, match=rf"format version {READS_UP_TO + 1}.*Upgrade turnout"
    ):
        tracker.load(None, APP)


def test_typed_records_cover_what_the_tracker_writes(tracker: LocalTracker) -> None:
    path = run_steps(tracker, 2)
    records = read_records(path).records
    assert isinstance(records[0], FormatRecord)
    assert isinstance(records[1], AppRecord)
    ends = [r for r in records if isinstance(r, EndRecord)]
    app = records[1]
    assert app.run is not None
    assert [e.run for e in ends] == [app.run, app.run]
    assert ends[0].snapshot == {"n": 1}
    assert ends[1].changes == (("increment", "n", 1),)


# -- found by the fuzz suite, pinned ---------------------------------------------------------------


def _resumed_log(tracker: LocalTracker) -> Path:
    """Steps 0-4, then a resume from step 1 with an override, then steps 2-3 again."""
    run_steps(tracker, 5)
    resumed = (
        ApplicationBuilder()
        .with_actions(count=count)
        .with_transitions(("count", "count"))
        .with_identifiers(app_id=APP, sequence_id=1)
        .initialize_from(
            tracker, default_state={"n": 0}, default_entrypoint="count",
            override_state_values={"n": 50},
        )
        .with_tracker(tracker)
        .build()
    )  # fmt: skip
    resumed.step()
    resumed.step()
    tracker.close()
    return tracker.log_path(APP)


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _end_lines(lines: list[bytes], seq: int) -> list[int]:
    return [i for i, line in enumerate(lines) if f'"t":"end","seq":{seq},'.encode() in line]


def test_a_resume_from_an_earlier_step_loads_the_new_timeline(tracker: LocalTracker) -> None:
    _resumed_log(tracker)
    assert dict(tracker.load(None, APP, 3).state) == {"n": 52}  # type: ignore[union-attr]
    assert dict(tracker.load(None, APP, 1).state) == {"n": 2}  # type: ignore[union-attr]
    assert tracker.load(None, APP, 4) is None  # replaced by the new timeline, not yet redone


def test_an_end_line_of_the_old_timeline_placed_in_the_new_one_is_refused(
    tracker: LocalTracker,
) -> None:
    """A misplaced line whose sequence id fits would otherwise be replayed as if it belonged."""
    path = _resumed_log(tracker)
    lines = _lines(path)
    old_3, new_3 = _end_lines(lines, 3)
    new_2 = _end_lines(lines, 2)[1]
    lines.insert(new_2 + 1, lines[old_3])  # the old step 3 right after the new step 2
    del lines[new_3 + 1]
    path.write_bytes(b"".join(lines))
    with pytest.raises(PersistenceError, match="does not follow from the lines before it"):
        tracker.load(None, APP, 3)
    assert dict(tracker.load(None, APP, 2).state) == {"n": 51}  # type: ignore[union-attr]


def test_stored_changes_apply_as_the_state_operations_do() -> None:
    state = {"n": 1, "items": [1], "gone": True}
    changes = [
        ("increment", "n", 2), ("append", "items", 2), ("extend", "items", [3, 4]),
        ("delete", "gone", None), ("set", "new", {"a": 1}), ("append", "fresh", "x"),
    ]  # fmt: skip
    assert apply_stored_changes(state, changes) == {
        "n": 3, "items": [1, 2, 3, 4], "new": {"a": 1}, "fresh": ["x"],
    }  # fmt: skip
    assert state == {"n": 1, "items": [1], "gone": True}
