"""The public surface: what `import turnout` loads and exports, and the install hints it gives."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import turnout
import turnout.core

ROOT = Path(__file__).resolve().parents[1]

# The everyday vocabulary of ARCHITECTURE.md §2, plus error routing, tracing and the parallel
# actions (which Burr keeps in burr.core.parallelism; turnout.core.parallelism has them too) and
# the error they raise when children fail.
VOCABULARY = {
    "Action",
    "Application",
    "ApplicationBuilder",
    "ApplicationContext",
    "ApplicationGraph",
    "ChildApplicationError",
    "Condition",
    "Graph",
    "GraphBuilder",
    "Input",
    "MapActions",
    "MapActionsAndStates",
    "MapStates",
    "Result",
    "RetryPolicy",
    "RunnableGraph",
    "SingleStepAction",
    "State",
    "StreamingAction",
    "SubGraphTask",
    "TaskBasedParallelAction",
    "TracerFactory",
    "TurnoutError",
    "action",
    "default",
    "expr",
    "on_exception",
    "safe_expr",
    "streaming_action",
    "trace",
    "type_eraser",
    "when",
}

_PROBE = """
import json, sys
before = set(sys.modules)
import turnout
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_import_turnout_loads_only_the_standard_library() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded = json.loads(out.stdout)
    assert "turnout.core.state" in loaded  # the probe really imported the package
    foreign = [
        name
        for name in loaded
        if name.split(".")[0] != "turnout" and name.split(".")[0] not in sys.stdlib_module_names
    ]
    assert foreign == []


def test_import_turnout_loads_no_integration() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded = json.loads(out.stdout)
    assert [m for m in loaded if m.startswith("turnout.integrations.")] == []


def test_core_modules_import_nothing_outside_the_standard_library() -> None:
    """Static check of every `import` in turnout/core, lazy ones inside functions included."""
    pattern = re.compile(r"^\s*(?:from\s+([\w.]+)\s+import|import\s+([\w.]+))", re.MULTILINE)
    offenders = []
    for path in sorted((ROOT / "turnout" / "core").glob("*.py")):
        for match in pattern.finditer(path.read_text()):
            module = match.group(1) or match.group(2)
            top = module.split(".")[0]
            # typing_extensions: only under TYPE_CHECKING (state.py's TypeVar with a default),
            # read by type checkers, which ship its stubs; the probes above prove it never loads.
            allowed = {"turnout", "__future__", "typing_extensions"}
            outside = top not in sys.stdlib_module_names and top not in allowed
            if outside or module.startswith("turnout.integrations"):
                offenders.append((path.name, module))
    assert offenders == []


def _isort_order(name: str) -> tuple[int, str]:
    """ruff's __all__ order (RUF022): CONSTANTS, then Classes, then everything else."""
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name


def test_all_of_turnout_is_sorted() -> None:
    assert turnout.__all__ == sorted(turnout.__all__, key=_isort_order)


def test_all_of_turnout_core_is_sorted() -> None:
    assert turnout.core.__all__ == sorted(turnout.core.__all__, key=_isort_order)


def test_all_of_turnout_core_is_the_documented_vocabulary() -> None:
    assert set(turnout.core.__all__) == VOCABULARY


def test_turnout_reexports_exactly_the_core_vocabulary_and_its_version() -> None:
    assert set(turnout.__all__) == VOCABULARY | {"__version__"}
    for name in VOCABULARY:
        assert getattr(turnout, name) is getattr(turnout.core, name), name


def test_every_core_module_all_names_exist_and_are_sorted() -> None:
    for info in pkgutil.iter_modules(turnout.core.__path__):
        module = importlib.import_module(f"turnout.core.{info.name}")
        names = getattr(module, "__all__", None)
        assert names is not None, f"turnout.core.{info.name} has no __all__"
        assert names == sorted(names, key=_isort_order), info.name
        missing = [n for n in names if not hasattr(module, n)]
        assert missing == [], info.name


def test_version_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert turnout.__version__ == project["version"]


def test_python_versions_claimed_are_the_one_ci_runs() -> None:
    """Only Python 3.11, the version CI runs, is claimed: the classifiers and requires-python
    agree, and the suite is running on a version the package accepts."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    prefix = "Programming Language :: Python :: 3."
    claimed = sorted(c for c in project["classifiers"] if c.startswith(prefix))
    assert claimed == [f"{prefix}11"], claimed
    assert project["requires-python"] == ">=3.11"
    assert sys.version_info >= (3, 11)


def test_every_extra_named_in_an_install_hint_exists() -> None:
    """`pip install "turnout[x]"` in any message or doc must name a real extra."""
    extras = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    )
    hint = re.compile(r"turnout\[([a-z0-9_,\-]+)\]")
    named: set[str] = set()
    for path in [*ROOT.glob("turnout/**/*.py"), *ROOT.glob("docs/**/*.md"), ROOT / "README.md"]:
        for match in hint.finditer(path.read_text()):
            named.update(match.group(1).split(","))
    # not vacuous: the adapters' guarded imports were found and read
    assert {"langchain", "hamilton", "llamaindex"} <= named, sorted(named)
    assert named <= extras, f"unknown extras named: {sorted(named - extras)}"


def test_package_ships_its_type_marker() -> None:
    assert (ROOT / "turnout" / "py.typed").is_file()
