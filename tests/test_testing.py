"""`turnout test-case` turns a tracked step into a case that `turnout.testing` replays."""

from __future__ import annotations

from pathlib import Path

import pytest

from turnout import ApplicationBuilder, State, action
from turnout.cli import main
from turnout.core.tracking import LocalTracker
from turnout.testing import assert_case, load_cases, run_case


@action(reads=["history"], writes=["history"])
def respond(state: State, prompt: str) -> tuple[dict[str, str], State]:
    return {"reply": prompt.upper()}, state.append(history=prompt.upper())


@action(reads=["history"], writes=["history"])
def respond_wrongly(state: State, prompt: str) -> tuple[dict[str, str], State]:
    return {"reply": prompt}, state.append(history=prompt)


def _track(store: Path) -> None:
    tracker = LocalTracker("proj", store)
    app = (
        ApplicationBuilder()
        .with_actions(respond)
        .with_transitions(("respond", "respond"))
        .with_state(history=[])
        .with_entrypoint("respond")
        .with_identifiers(app_id="chat")
        .with_tracker(tracker)
        .build()
    )
    app.step(inputs={"prompt": "hi"})
    app.step(inputs={"prompt": "yo"})
    tracker.close()


def _write_case(tmp_path: Path, sequence_id: int) -> Path:
    out = tmp_path / "cases.json"
    argv = ["test-case", "--dir", str(tmp_path / "store"), "--project", "proj"]
    argv += ["--app-id", "chat", "--sequence-id", str(sequence_id), "--out", str(out)]
    assert main(argv) == 0
    return out


def test_a_tracked_step_becomes_a_case_with_its_start_state_inputs_and_outcome(tmp_path):
    _track(tmp_path / "store")
    (case,) = load_cases(_write_case(tmp_path, 1))
    assert case["action"] == "respond"
    assert case["input_state"] == {"history": ["HI"]}
    assert case["inputs"] == {"prompt": "yo"}
    assert case["expected_state"] == {"history": ["HI", "YO"]}
    assert case["expected_result"] == {"reply": "YO"}


def test_the_first_step_starts_from_the_initial_state(tmp_path):
    _track(tmp_path / "store")
    (case,) = load_cases(_write_case(tmp_path, 0))
    assert case["input_state"] == {"history": []}


def test_writing_the_same_step_twice_keeps_one_case_and_other_steps_accumulate(tmp_path):
    _track(tmp_path / "store")
    _write_case(tmp_path, 0)
    _write_case(tmp_path, 1)
    out = _write_case(tmp_path, 1)
    assert [c["name"] for c in load_cases(out)] == ["chat-0-respond", "chat-1-respond"]


def test_the_recorded_action_passes_its_case_and_a_changed_one_fails(tmp_path):
    _track(tmp_path / "store")
    (case,) = load_cases(_write_case(tmp_path, 1))
    assert_case(respond, case)
    result, state = run_case(respond, case)
    assert result == {"reply": "YO"}
    assert state["history"] == ["HI", "YO"]
    with pytest.raises(AssertionError, match="state differs"):
        assert_case(respond_wrongly, case)


def test_a_step_that_was_not_tracked_is_a_clear_error(tmp_path):
    _track(tmp_path / "store")
    with pytest.raises(SystemExit, match="no finished step 7"):
        _write_case(tmp_path, 7)


def test_the_command_prints_a_ready_pytest_module(tmp_path, capsys):
    _track(tmp_path / "store")
    _write_case(tmp_path, 1)
    printed = capsys.readouterr().out
    assert "def test_respond(case):" in printed
    assert "assert_case(respond, case)" in printed
