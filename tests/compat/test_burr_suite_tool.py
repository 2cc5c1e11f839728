"""tools/burr_suite/burr_alias.py, the plugin that runs Burr's own tests against turnout, on a
small test file of our own written the way Burr's are (importing ``burr``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

TOOL = Path(__file__).resolve().parents[2] / "tools" / "burr_suite"

BURR_STYLE_TESTS = """
from burr.core import ApplicationBuilder, State, action
from burr.core.application import _a_name_turnout_lacks
from burr.no_such_module import thing


@action(reads=["n"], writes=["n"])
def bump(state: State) -> State:
    return state.update(n=state["n"] + 1)


def test_runs_on_turnout():
    app = (
        ApplicationBuilder().with_actions(bump).with_transitions()
        .with_state(n=1).with_entrypoint("bump").build()
    )
    _, _, state = app.step()
    assert state["n"] == 2
    assert type(app).__module__.startswith("turnout.")


def test_uses_a_missing_name():
    _a_name_turnout_lacks(1)


def test_uses_a_missing_module():
    thing()
"""


def test_the_plugin_runs_burr_style_tests_on_turnout_and_names_what_is_missing(
    tmp_path: Path,
) -> None:
    (tmp_path / "test_burr_style.py").write_text(textwrap.dedent(BURR_STYLE_TESTS))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TOOL), *sys.path])}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "burr_alias",
         "--import-mode=importlib", "-o", "addopts=", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert "1 passed" in out, out
    assert "2 failed" in out, out
    assert "burr.core.application._a_name_turnout_lacks" in out
    assert "['burr.no_such_module']" in out
    assert "tests failing on a name turnout lacks: 2" in out
