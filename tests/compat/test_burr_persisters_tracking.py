"""Burr's tracking logs converted into turnout's (``turnout import-burr``): old runs load through
turnout's tracker and list in the UI's index; the import is idempotent and counts what it could
not use.

tests/compat/data/burr_0_43_tracking is what apache-burr 0.43's
``LocalTrackingClient("demo_project", storage_dir=...)`` wrote for app "app-1" (partition
"alice"): actions count (n += 1, appends to chat) and stamp (a ``__tracer`` span "inner" with
the attribute tokens=3, sets when) alternating, stepped 3 times; then "app-1-fork", forked from
app-1 at sequence id 1 with ``initialize_from(tracker, fork_from_...)`` and stepped once (Burr
wrote app-1/children.jsonl and the fork's parent pointer)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

from turnout.cli import main
from turnout.core.burr_tracking import import_burr_tracking, read_burr_log
from turnout.core.tracking import LocalTracker
from turnout.core.tracklog import (
    AppRecord,
    AttrRecord,
    ChildRecord,
    EndRecord,
    SpanStartRecord,
    read_records,
)

BURR_LOGS = Path(__file__).parent / "data" / "burr_0_43_tracking"


@pytest.fixture
def burr_dir(tmp_path: Path) -> Path:
    """A copy of Burr's logs (the import must only read them; the copy shows it did)."""
    target = tmp_path / "burr"
    shutil.copytree(BURR_LOGS, target)
    return target


def snapshot_of(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def test_an_imported_burr_app_loads_every_step_through_turnouts_tracker(
    burr_dir: Path, tmp_path: Path
) -> None:
    before = snapshot_of(burr_dir)
    seen: list[tuple[int, int, str]] = []
    summary = import_burr_tracking(
        burr_dir, tmp_path / "turnout", progress=lambda *a: seen.append(a)
    )
    assert (summary.converted, summary.steps, summary.skipped, summary.bad_lines) == (
        ["demo_project/app-1", "demo_project/app-1-fork"],
        4,
        {},
        0,
    )
    assert seen == [(1, 2, "demo_project/app-1"), (2, 2, "demo_project/app-1-fork")]
    tracker = LocalTracker("demo_project", tmp_path / "turnout")
    latest = tracker.load("alice", "app-1")
    assert latest is not None
    assert (latest.sequence_id, latest.position, latest.status) == (2, "count", "completed")
    assert latest.state.get_all() == {
        "n": 2,
        "chat": [{"role": "user", "content": "hi"}] * 2,
        "when": 3.5,
    }
    middle = tracker.load("alice", "app-1", sequence_id=1)
    assert middle is not None
    assert (middle.position, middle.state["when"]) == ("stamp", 3.5)
    assert sorted(tracker.list_app_ids("alice")) == ["app-1", "app-1-fork"]
    fork = tracker.load("alice", "app-1-fork")
    assert fork is not None
    assert (fork.sequence_id, fork.state["n"]) == (2, 2)
    assert snapshot_of(burr_dir) == before  # Burr's files were only read


def test_the_imported_log_keeps_graph_spans_attributes_and_is_tagged(
    burr_dir: Path, tmp_path: Path
) -> None:
    import_burr_tracking(burr_dir, tmp_path)
    chunk = read_records(tmp_path / "demo_project" / "app-1" / "log.jsonl")
    assert chunk.bad_lines == 0
    app = next(r for r in chunk.records if isinstance(r, AppRecord))
    assert app.partition_key == "alice"
    assert app.tags == {"imported_from": "burr"}
    assert app.graph["entrypoint"] == "count"
    assert [a["name"] for a in app.graph["actions"]] == ["count", "stamp"]
    assert app.graph["actions"][1]["inputs"] == []  # __tracer is not an input
    assert {(t["from"], t["to"]) for t in app.graph["transitions"]} == {
        ("count", "stamp"),
        ("stamp", "count"),
    }
    spans = [r for r in chunk.records if isinstance(r, SpanStartRecord)]
    assert [(s.seq, s.name) for s in spans] == [(1, "inner")]
    attributes = [r for r in chunk.records if isinstance(r, AttrRecord)]
    assert [(a.seq, a.key, a.value) for a in attributes] == [(1, "tokens", 3)]
    ends = [r for r in chunk.records if isinstance(r, EndRecord)]
    assert all("__SEQUENCE_ID" not in (e.snapshot or {}) for e in ends)
    children = [r for r in chunk.records if isinstance(r, ChildRecord)]
    assert [(c.kind, c.child_app_id, c.seq) for c in children] == [("fork", "app-1-fork", 1)]


def test_the_imported_fork_keeps_its_parent_pointer(burr_dir: Path, tmp_path: Path) -> None:
    import_burr_tracking(burr_dir, tmp_path)
    chunk = read_records(tmp_path / "demo_project" / "app-1-fork" / "log.jsonl")
    app = next(r for r in chunk.records if isinstance(r, AppRecord))
    assert app.parent == {"app_id": "app-1", "partition_key": "alice", "sequence_id": 1}
    assert app.sequence_id == 1  # the fork's first step is 2


def test_the_imported_app_lists_in_the_ui_index(burr_dir: Path, tmp_path: Path) -> None:
    from turnout.core.trackfiles import TrackingIndex

    import_burr_tracking(burr_dir, tmp_path)
    listed = {app.app_id: app for app in TrackingIndex(tmp_path).apps("demo_project")}
    assert (listed["app-1"].step_count, listed["app-1"].status) == (3, "completed")
    assert listed["app-1"].tags == {"imported_from": "burr"}
    assert listed["app-1-fork"].parent is not None


def test_importing_again_skips_what_is_already_there(burr_dir: Path, tmp_path: Path) -> None:
    import_burr_tracking(burr_dir, tmp_path)
    log = tmp_path / "demo_project" / "app-1" / "log.jsonl"
    first = log.read_bytes()
    again = import_burr_tracking(burr_dir, tmp_path)
    assert again.converted == []
    assert "exists" in again.skipped["demo_project/app-1"]
    assert "exists" in again.skipped["demo_project/app-1-fork"]
    assert "skipped demo_project/app-1" in str(again)
    assert log.read_bytes() == first


def test_lines_turnout_cannot_use_are_counted_and_the_rest_imported(
    burr_dir: Path, tmp_path: Path
) -> None:
    log = burr_dir / "demo_project" / "app-1" / "log.jsonl"
    with log.open("a", encoding="utf-8") as file:
        file.write('{"type": "from_a_future_burr", "x": 1}\n')
        file.write('{"type": "begin_entry", "action": "count"}\n')  # no sequence id
        file.write("not json\n")
    summary = import_burr_tracking(burr_dir, tmp_path)
    assert (summary.steps, summary.bad_lines) == (4, 3)


def test_malformed_burr_lines_and_files_are_counted_or_skipped_and_the_rest_imported(
    burr_dir: Path, tmp_path: Path
) -> None:
    """Burr's files are untrusted input: a state that is not an object, a time that is not a
    time, or a graph whose input names are not text never stop the import of the other apps."""
    log = burr_dir / "demo_project" / "app-1" / "log.jsonl"
    with log.open("a", encoding="utf-8") as file:
        file.write('{"type": "end_entry", "sequence_id": 9, "action": "count", "state": [1], ')
        file.write('"end_time": "2024-01-01T00:00:00"}\n')
        file.write('{"type": "begin_entry", "sequence_id": 9, "action": "count", ')
        file.write('"start_time": "not a time", "inputs": {}}\n')
    broken = burr_dir / "demo_project" / "broken-app"
    shutil.copytree(burr_dir / "demo_project" / "app-1", broken)
    (broken / "graph.json").write_text('{"actions": [{"name": "count", "inputs": [1]}]}')
    summary = import_burr_tracking(burr_dir, tmp_path)
    assert "demo_project/app-1" in summary.converted
    assert "demo_project/broken-app" in summary.skipped
    assert "cannot be read" in summary.skipped["demo_project/broken-app"]


def test_a_project_name_turnout_cannot_use_is_skipped_with_the_reason(
    burr_dir: Path, tmp_path: Path
) -> None:
    (burr_dir / "demo_project").rename(burr_dir / "my project")
    summary = import_burr_tracking(burr_dir, tmp_path)
    assert summary.converted == []
    assert "'my project'" in summary.skipped["my project/app-1"]


def test_only_the_projects_asked_for_are_imported(burr_dir: Path, tmp_path: Path) -> None:
    assert import_burr_tracking(burr_dir, tmp_path, projects=["other"]).converted == []
    assert not (tmp_path / "demo_project").exists()


def test_turnout_import_burr_command_prints_a_progress_bar_and_the_summary(
    burr_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        code = main(["import-burr", "--from", str(burr_dir), "--dir", str(tmp_path / "t")])
    out, err = capsys.readouterr()
    assert code == 0
    assert "2/2 demo_project/app-1-fork" in err
    assert "converted 2 app(s) (4 steps), skipped 0" in out
    assert main(["import-burr", "--from", str(burr_dir), "--dir", str(tmp_path / "t")]) == 0
    assert "skipped demo_project/app-1" in capsys.readouterr().out


def test_turnout_import_burr_names_the_option_when_burrs_directory_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import-burr", "--from", str(tmp_path / "nope")]) == 2
    assert "--from DIR" in capsys.readouterr().err


def test_read_burr_log_gives_turnouts_records_and_counts_what_it_cannot_use(
    burr_dir: Path,
) -> None:
    log = burr_dir / "demo_project" / "app-1" / "log.jsonl"
    log.write_bytes(log.read_bytes() + b"not json\n" + b'{"type": "end_entry"}\n')
    before = snapshot_of(burr_dir)
    records, bad = read_burr_log(log)
    ends = [r for r in records if isinstance(r, EndRecord)]
    assert [(e.seq, e.action, e.status) for e in ends] == [
        (0, "count", "completed"), (1, "stamp", "completed"), (2, "count", "completed"),
    ]  # fmt: skip
    assert ends[1].snapshot == {"n": 1, "chat": [{"role": "user", "content": "hi"}], "when": 3.5}
    assert [(s.seq, s.name) for s in records if isinstance(s, SpanStartRecord)] == [(1, "inner")]
    assert bad == 2  # the line that is not JSON and the end line missing its fields
    assert snapshot_of(burr_dir) == before  # only read
