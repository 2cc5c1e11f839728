"""`turnout test-case` turns a tracked step into a case that `turnout.testing` replays."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


def test_test_case_loads_user_types_only_from_modules_it_is_told_to_register(tmp_path):
    """A fresh process loads a tracked dataclass only with ``--register-module``; without it,
    the error names the option."""
    script = (
        "from tests.cli_types import Point\n"
        "from turnout import ApplicationBuilder, State, action\n"
        "from turnout.core.tracking import LocalTracker\n"
        "@action(reads=['p'], writes=['p'])\n"
        "def move(state: State) -> State:\n"
        "    return state.update(p=Point(state['p'].x + 1, 0))\n"
        "tracker = LocalTracker('typed', sys.argv[1])\n"
        "app = (ApplicationBuilder().with_actions(move).with_transitions(('move', 'move'))\n"
        "       .with_state(p=Point(0, 0)).with_entrypoint('move')\n"
        "       .with_identifiers(app_id='points').with_tracker(tracker).build())\n"
        "app.step(); app.step(); tracker.close()\n"
    )
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    subprocess.run(
        [sys.executable, "-c", "import sys\n" + script, str(tmp_path)],
        cwd=root, env=env, check=True, timeout=120,
    )  # fmt: skip
    command = [sys.executable, "-m", "turnout.cli", "test-case", "--dir", str(tmp_path)]
    command += ["--project", "typed", "--app-id", "points", "--sequence-id", "1"]
    command += ["--out", str(tmp_path / "cases.json")]
    refused = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    assert refused.returncode != 0
    assert "tests.cli_types:Point" in refused.stderr
    assert "--register-module <the module>" in refused.stderr
    done = subprocess.run(
        [*command, "--register-module", "tests.cli_types"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (case,) = json.loads((tmp_path / "cases.json").read_text())
    assert case["input_state"]["p"]["v"] == {"x": 1, "y": 0}
    assert case["expected_state"]["p"]["v"] == {"x": 2, "y": 0}
