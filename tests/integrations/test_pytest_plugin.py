"""The pytest plugin's registration, fixtures and ``file_name`` case parametrisation, each run in
an inner pytest session (pytester) the way a user's suite runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.integrations.pytest_plugin_support import PLUGIN, run_inner
from turnout import ApplicationBuilder, State, action
from turnout.cli import test_case_command as write_test_case

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]


def test_the_plugin_is_the_pytest11_entry_point_named_turnout() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["entry-points"]["pytest11"] == {"turnout": PLUGIN}
    extras = project["optional-dependencies"]
    assert [d.split(">")[0] for d in extras["pytest"]] == ["pytest", "vcrpy"]
    assert ",pytest" in extras["all"][0] or "[pytest" in extras["all"][0]
    assert any(d.startswith("vcrpy") for d in extras["dev"])  # the cassette tests need it


def test_importing_the_plugin_loads_no_third_party_library_but_pytest() -> None:
    code = (
        "import sys, turnout.integrations.pytest\n"
        "heavy = {'vcr', 'openai', 'httpx', 'httpx2', 'yaml', 'pydantic', 'langchain_core'}\n"
        "print(sorted(m for m in sys.modules if m.partition('.')[0] in heavy))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "[]"


def test_a_suite_that_asks_for_nothing_runs_unchanged(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    assert 1 + 1 == 2\n")
    result = run_inner(pytester, "--strict-markers", "-W", "error")
    result.assert_outcomes(passed=1)
    assert "turnout_cassette" not in result.stdout.str()


def test_fake_openai_serves_the_real_client_and_stops_after_the_test(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import openai

        SEEN = []

        def test_chat(fake_openai):
            fake_openai.add_replies("Hi from the fake")
            client = openai.OpenAI(base_url=fake_openai.base_url, api_key="k", max_retries=0)
            reply = client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hello"}]
            )
            client.close()
            assert reply.choices[0].message.content == "Hi from the fake"
            assert fake_openai.requests[0].messages[-1]["content"] == "hello"
            assert fake_openai.base_url.startswith("http://127.0.0.1:")
            SEEN.append(fake_openai)

        def test_stopped():
            import urllib.request, urllib.error
            import pytest
            with pytest.raises(urllib.error.URLError):
                urllib.request.urlopen(SEEN[0].base_url + "/chat/completions", timeout=5)
        """
    )
    run_inner(pytester).assert_outcomes(passed=2)


def test_turnout_home_is_an_empty_directory_set_as_turnout_home(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import os

        def test_home(turnout_home):
            assert os.environ["TURNOUT_HOME"] == str(turnout_home)
            assert turnout_home.is_dir() and not any(turnout_home.iterdir())
        """
    )
    before = os.environ.get("TURNOUT_HOME")
    run_inner(pytester).assert_outcomes(passed=1)
    assert os.environ.get("TURNOUT_HOME") == before


def test_run_app_runs_a_builder_tracked_in_the_test_home(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from turnout import ApplicationBuilder, State, action
        from turnout.core.tracking import LocalTracker

        @action(reads=["n"], writes=["n"])
        def bump(state: State, by: int) -> tuple[dict, State]:
            return {"n": state["n"] + by}, state.update(n=state["n"] + by)

        def make():
            return (
                ApplicationBuilder()
                .with_actions(bump=bump)
                .with_transitions(("bump", "bump"))
                .with_state(n=0)
                .with_entrypoint("bump")
            )

        def test_builder(run_app, turnout_home):
            out = run_app(make(), halt_after=["bump"], inputs={"by": 3})
            assert (out.action, out.result, out.state["n"]) == ("bump", {"n": 3}, 3)
            assert out.log_path is not None and out.log_path.is_relative_to(turnout_home)
            assert out.log_path.stat().st_size > 0
            loaded = LocalTracker("pytest", turnout_home).load(None, out.app.uid, 0)
            assert loaded.state["n"] == 3

        def test_factory_of_a_built_app(run_app):
            out = run_app(lambda: make().build(), halt_after=["bump"], inputs={"by": 2})
            assert out.state["n"] == 2 and out.log_path is None

        def test_not_an_app(run_app):
            import pytest
            with pytest.raises(TypeError, match="ApplicationBuilder"):
                run_app(lambda: 42)
        """
    )
    run_inner(pytester).assert_outcomes(passed=3)


@action(reads=["count"], writes=["count"])
def count_up(state: State, step: int) -> tuple[dict[str, int], State]:
    """The action the case file is recorded from."""
    new = state["count"] + step
    return {"count": new}, state.update(count=new)


def _record_cases(tmp: Path, out: Path) -> list[dict[str, object]]:
    """Run ``count_up`` twice with a local tracker, then write both steps with ``turnout
    test-case``'s own function, as a user would from the command line."""
    app = (
        ApplicationBuilder()
        .with_actions(count_up=count_up)
        .with_transitions(("count_up", "count_up"))
        .with_state(count=1)
        .with_entrypoint("count_up")
        .with_tracker("local", project="cases", params={"storage_dir": tmp})
        .with_identifiers(app_id="counter")
        .build()
    )
    app.step(inputs={"step": 2})
    app.step(inputs={"step": 5})
    for seq in (0, 1):
        write_test_case(tmp, "cases", "counter", seq, None, out, ())
    cases: list[dict[str, object]] = json.loads(out.read_text(encoding="utf-8"))
    return cases


CASE_TESTS = """
import pytest
from turnout import State, action
from turnout.testing import assert_case

@action(reads=["count"], writes=["count"])
def count_up(state: State, step: int):
    new = state["count"] + step {bug}
    return {{"count": new}}, state.update(count=new)

STEPS = {{"counter-0-count_up": 2, "counter-1-count_up": 5}}

@pytest.mark.file_name("cases.json")
def test_states(input_state, expected_state, request):
    step = STEPS[request.node.callspec.id]
    _, state = count_up(State(input_state), step=step)
    assert state.get_all() == expected_state

@pytest.mark.file_name("cases.json", action="count_up")
def test_whole_case(turnout_case):
    assert_case(count_up, turnout_case)
"""


def test_file_name_runs_the_test_once_per_recorded_case(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    cases = _record_cases(tmp_path, pytester.path / "cases" / "cases.json")
    assert [c["input_state"] for c in cases] == [{"count": 1}, {"count": 3}]
    (pytester.path / "cases" / "test_cases.py").write_text(CASE_TESTS.format(bug=""))
    result = run_inner(pytester, "-v")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*test_states?counter-0-count_up? PASSED*"])


def test_file_name_fails_a_case_the_code_no_longer_reproduces(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    _record_cases(tmp_path, pytester.path / "cases" / "cases.json")
    (pytester.path / "cases" / "test_cases.py").write_text(CASE_TESTS.format(bug="+ 1"))
    result = run_inner(pytester)
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines(["*counter-1-count_up: state differs from the recorded one*"])


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no case file at *missing.json*turnout test-case*"),
        ('{"a": 1}', "*holds a dict; a case file is a JSON list*"),
        ('[{"input_state": {}}]', "*case 0 of *lacks expected_state*"),
        ("[]", "*no cases in *"),
    ],
)
def test_a_bad_case_file_is_a_collection_error_naming_it(
    pytester: pytest.Pytester, content: str | None, expected: str
) -> None:
    if content is not None:
        (pytester.path / "missing.json").write_text(content)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.file_name("missing.json")
        def test_states(input_state, expected_state):
            pass
        """
    )
    result = run_inner(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*{expected}"])


def test_file_name_on_a_test_without_the_parameters_names_them(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.file_name("cases.json")
        def test_nothing():
            pass
        """
    )
    result = run_inner(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*needs the test to take `input_state, expected_state`*"])
