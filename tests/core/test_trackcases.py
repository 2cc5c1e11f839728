"""``turnout.core.trackcases``: a tracked step becomes the case ``turnout test-case`` writes
(states in their stored form), only a completed step does, and case files merge by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from turnout import ApplicationBuilder, State, action
from turnout.core.trackcases import CaseError, case_file_name, merge_cases, step_case
from turnout.core.trackfiles import TrackingIndex
from turnout.core.tracking import LocalTracker


@action(reads=["n"], writes=["n"])
def bump(state: State, by: int) -> tuple[dict[str, int], State]:
    if by < 0:
        raise ValueError("by must be >= 0")
    return {"was": state["n"]}, state.update(n=state["n"] + by)


def _index(root: Path) -> TrackingIndex:
    app = (
        ApplicationBuilder()
        .with_actions(bump)
        .with_transitions(("bump", "bump"))
        .with_state(n=1)
        .with_entrypoint("bump")
        .with_tracker(LocalTracker("cases", storage_dir=root))
        .with_identifiers(app_id="app/1")
        .build()
    )
    app.step(inputs={"by": 2})
    app.step(inputs={"by": 5})
    with pytest.raises(ValueError, match="by must be"):
        app.step(inputs={"by": -1})
    return TrackingIndex(root)


def test_a_completed_step_becomes_its_case(tmp_path: Path) -> None:
    log = _index(tmp_path).app("cases", "app/1")
    assert log is not None
    assert step_case(log, "app/1", 1) == {
        "name": "app/1-1-bump",
        "action": "bump",
        "input_state": {"n": 3},
        "inputs": {"by": 5},
        "expected_state": {"n": 8},
        "expected_result": {"was": 3},
    }
    assert step_case(log, "app/1", 0)["input_state"] == {"n": 1}


@pytest.mark.parametrize(
    ("seq", "message"),
    [(2, "step 2 is failed"), (9, r"no completed step 9 .*it has steps 0 to 2")],
    ids=["failed", "missing"],
)
def test_a_step_that_did_not_complete_gives_no_case(tmp_path: Path, seq: int, message: str) -> None:
    log = _index(tmp_path).app("cases", "app/1")
    assert log is not None
    with pytest.raises(CaseError, match=message):
        step_case(log, "app/1", seq)


def test_case_file_names_are_plain(tmp_path: Path) -> None:
    assert case_file_name("app/1", 3) == "turnout_case_app_1_3.json"
    assert case_file_name('../"x"', 0) == "turnout_case___x__0.json"
    assert case_file_name("...", 1) == "turnout_case_app_1.json"


def test_merge_cases_replaces_by_name_and_refuses_a_file_of_something_else(
    tmp_path: Path,
) -> None:
    target = tmp_path / "sub" / "cases.json"
    assert merge_cases(target, [{"name": "x", "v": 1}]) == [{"name": "x", "v": 1}]
    target.write_text('[{"name": "x", "v": 1}, {"name": "y"}]')
    merged = merge_cases(target, [{"name": "x", "v": 2}])
    assert merged == [{"name": "y"}, {"name": "x", "v": 2}]
    assert json.loads(target.read_text()) == merged
    target.write_text('{"a": 1}')
    with pytest.raises(CaseError, match="holds no list of cases"):
        merge_cases(target, [{"name": "x"}])
    target.write_text("{broken")
    with pytest.raises(CaseError, match="is not a JSON case file"):
        merge_cases(target, [{"name": "x"}])
    assert target.read_text() == "{broken"  # nothing overwritten
