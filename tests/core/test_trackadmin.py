"""Retention and copying of tracking directories (``turnout.core.trackadmin``, ``turnout prune``,
``turnout tracking copy``): whole apps only, dry runs change nothing, copies load the same."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from turnout import ApplicationBuilder, State, action
from turnout.cli import main
from turnout.core.errors import TrackingAdminError
from turnout.core.trackadmin import (
    AppActivity,
    FileStore,
    copy_project,
    parse_duration,
    prune,
    select_for_prune,
)
from turnout.core.trackindex import INDEX_FILENAME, read_marks
from turnout.core.tracking import LocalTracker

DAY = 86400.0


@action(reads=["n"], writes=["n", "seen"])
def count(state: State) -> State:
    return state.update(seen=f"at {state['n']}").increment(n=1)


def track(root: Path, app_id: str, steps: int, project: str = "p", **kwargs: Any) -> None:
    """Run ``steps`` steps of a counter tracked into ``root``/``project``."""
    tracker = LocalTracker(project, root, snapshot_every=3)
    app = (
        ApplicationBuilder()
        .with_actions(count=count)
        .with_transitions(("count", "count"))
        .with_state(n=0)
        .with_entrypoint("count")
        .with_identifiers(app_id=app_id, **kwargs)
        .with_tracker(tracker)
        .build()
    )
    for _ in range(steps):
        app.step()
    tracker.close()


def age(root: Path, app_id: str, days: float, project: str = "p") -> None:
    """Make the app's last activity ``days`` ago (prune reads the log's modification time)."""
    log = LocalTracker(project, root).log_path(app_id)
    stamp = time.time() - days * DAY
    os.utime(log, (stamp, stamp))


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def states(tracker: Any, app_id: str, steps: int) -> list[Any]:
    """The state and position after every step, as ``initialize_from`` would load them."""
    out = []
    for seq in range(steps):
        loaded = tracker.load(None, app_id, seq)
        out.append((loaded.position, loaded.state.get_all(), loaded.sequence_id))
    return out


@pytest.fixture
def root(tmp_path: Path) -> Path:
    track(tmp_path, "old", 4)
    track(tmp_path, "older", 2)
    track(tmp_path, "new", 5)
    age(tmp_path, "old", 40)
    age(tmp_path, "older", 60)
    age(tmp_path, "new", 1)
    return tmp_path


def activity(last: float, app_id: str) -> AppActivity:
    return AppActivity(app_id=app_id, partition_key=None, last_activity=last, size=1)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"older_than": 30 * DAY}, ["b", "a"]),
        ({"older_than": 50 * DAY}, ["a"]),
        ({"keep_last": 1}, ["b", "a"]),
        ({"keep_last": 0}, ["c", "b", "a"]),
        ({"keep_last": 5}, []),
    ],
    ids=["older-than-30d", "older-than-50d", "keep-last-1", "keep-last-0", "keep-more-than-all"],
)
def test_prune_selects_by_last_activity(rule: dict[str, Any], expected: list[str]) -> None:
    now = 100 * DAY
    apps = [activity(now - 90 * DAY, "a"), activity(now - 40 * DAY, "b"), activity(now, "c")]
    assert [a.app_id for a in select_for_prune(apps, now=now, **rule)] == expected


def test_keep_last_breaks_ties_by_app_id() -> None:
    apps = [activity(5.0, "y"), activity(5.0, "x"), activity(5.0, "z")]
    assert [a.app_id for a in select_for_prune(apps, keep_last=1)] == ["y", "z"]


@pytest.mark.parametrize(
    "rule",
    [{}, {"older_than": 1.0, "keep_last": 1}, {"keep_last": -1}],
    ids=["none", "both", "neg"],
)
def test_prune_refuses_anything_but_one_rule(rule: dict[str, Any]) -> None:
    with pytest.raises(TrackingAdminError):
        select_for_prune([], **rule)


@pytest.mark.parametrize(
    ("text", "seconds"), [("30d", 30 * DAY), ("12h", 43200.0), ("2w", 14 * DAY), ("90s", 90.0)]
)
def test_durations_read_a_number_and_a_unit(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["30", "d", "30 days", "-1d"])
def test_a_duration_without_a_unit_is_refused_naming_the_form(text: str) -> None:
    with pytest.raises(TrackingAdminError, match="--older-than 30d"):
        parse_duration(text)


def test_a_dry_run_changes_nothing_and_reports_what_would_go(root: Path) -> None:
    before = snapshot(root)
    report = prune(FileStore("p", root), older_than=30 * DAY)
    assert snapshot(root) == before
    assert not report.applied
    assert report.examined == 3
    assert [a.app_id for a in report.selected] == ["old", "older"]
    assert report.size == sum(
        p.stat().st_size for p in (root / "p").rglob("*") if p.parent.name in ("old", "older")
    )
    assert "would remove 2 of 3 app(s)" in report.summary()


def test_apply_removes_exactly_the_selected_apps_whole(root: Path) -> None:
    assert (root / "p" / "old" / INDEX_FILENAME).is_file()  # marks go with the app
    progress: list[tuple[int, int, str]] = []
    report = prune(
        FileStore("p", root), keep_last=1, apply=True, progress=lambda *a: progress.append(a)
    )
    assert sorted(p.name for p in (root / "p").iterdir()) == ["new"]
    assert [a.app_id for a in report.selected] == ["old", "older"]
    assert progress == [(1, 2, "old"), (2, 2, "older")]
    assert LocalTracker("p", root).list_app_ids() == ["new"]
    assert states(LocalTracker("p", root), "new", 5)[-1][1]["n"] == 5  # the kept app still loads


def test_prune_leaves_files_it_does_not_own_in_an_app_directory(root: Path) -> None:
    (root / "p" / "old" / "notes.txt").write_text("mine")
    prune(FileStore("p", root), older_than=30 * DAY, apply=True)
    assert sorted(p.name for p in (root / "p" / "old").iterdir()) == ["notes.txt"]
    assert not (root / "p" / "older").exists()


def test_a_copy_loads_the_same_states_and_keeps_last_activity(root: Path, tmp_path: Path) -> None:
    target = tmp_path / "copy"
    report = copy_project(FileStore("p", root), FileStore("q", target))
    assert sorted(report.copied) == ["new", "old", "older"]
    assert report.refused == ()
    for app_id, steps in (("old", 4), ("older", 2), ("new", 5)):
        source, copy = LocalTracker("p", root), LocalTracker("q", target)
        assert states(copy, app_id, steps) == states(source, app_id, steps)
        assert copy.log_path(app_id).read_bytes() == source.log_path(app_id).read_bytes()
        assert read_marks(copy.log_path(app_id).parent / INDEX_FILENAME)  # fast loads too
    assert [a.app_id for a in FileStore("q", target).activity()] == ["new", "old", "older"]


def test_a_second_copy_writes_nothing(root: Path, tmp_path: Path) -> None:
    copy_project(FileStore("p", root), FileStore("p", tmp_path / "copy"))
    before = snapshot(tmp_path / "copy")
    report = copy_project(FileStore("p", root), FileStore("p", tmp_path / "copy"))
    assert sorted(report.skipped) == ["new", "old", "older"]
    assert report.copied == report.completed == ()
    assert report.lines == 0
    assert snapshot(tmp_path / "copy") == before


def test_a_copy_completes_an_app_the_target_holds_a_prefix_of(tmp_path: Path) -> None:
    track(tmp_path / "src", "app", 3)
    copy_project(FileStore("p", tmp_path / "src"), FileStore("p", tmp_path / "dst"))
    track(tmp_path / "src", "app", 4)  # the source ran on: a second run of the same app id
    log = LocalTracker("p", tmp_path / "dst").log_path("app")
    with open(log, "ab") as handle:
        handle.write(b'{"t":"begin","se')  # a copy cut off mid-line
    report = copy_project(FileStore("p", tmp_path / "src"), FileStore("p", tmp_path / "dst"))
    assert report.completed == ("app",)
    assert log.read_bytes() == LocalTracker("p", tmp_path / "src").log_path("app").read_bytes()


def test_a_copy_refuses_an_app_whose_lines_differ_at_the_target(tmp_path: Path) -> None:
    track(tmp_path / "src", "app", 3)
    track(tmp_path / "dst", "app", 2)  # another history under the same id
    before = snapshot(tmp_path / "dst")
    report = copy_project(FileStore("p", tmp_path / "src"), FileStore("p", tmp_path / "dst"))
    assert [app_id for app_id, _ in report.refused] == ["app"]
    assert "holds other lines" in report.refused[0][1]
    assert snapshot(tmp_path / "dst") == before


def test_the_prune_command_is_a_dry_run_until_apply(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(root)
    assert main(["prune", "--older-than", "30d", "--dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "p/old" in out
    assert "p/older" in out
    assert "p/new" not in out
    assert "would remove 2 of 3 app(s)" in out
    assert snapshot(root) == before
    assert main(["prune", "--older-than", "30d", "--dir", str(root), "--apply"]) == 0
    captured = capsys.readouterr()
    assert "removed 2 of 3 app(s)" in captured.out
    assert "2/2" in captured.err  # the progress bar
    assert sorted(p.name for p in (root / "p").iterdir()) == ["new"]


def test_the_prune_command_names_a_bad_duration(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["prune", "--older-than", "soon", "--dir", str(root)]) == 1
    assert "--older-than 30d" in capsys.readouterr().err


def test_the_copy_command_copies_then_skips(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["tracking", "copy", str(root), str(tmp_path / "copy"), "--project", "p"]
    assert main(args) == 0
    assert "copied 3 app(s)" in capsys.readouterr().out
    assert main(args) == 0
    assert "skipped 3 already there" in capsys.readouterr().out
