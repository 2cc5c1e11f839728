"""The CI rule of tests/conftest.py: with CI=true, a skip that is not allow-listed fails the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import AllowedSkip, read_allow_list, unexpected_skips

ROOT = Path(__file__).resolve().parent.parent

SKIPPING_MODULE = """
import pytest

def test_runs():
    assert True

def test_skips():
    pytest.skip("needs something CI should have")
"""


def _run_pytest(
    tmp_path: Path, *, ci: str | None, allow: str = ""
) -> subprocess.CompletedProcess[str]:
    """pytest on a module with one passing and one skipping test, with the CI rule loaded."""
    (tmp_path / "test_probe.py").write_text(SKIPPING_MODULE)
    allow_file = tmp_path / "allowed.txt"
    allow_file.write_text(allow)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = str(ROOT)
    env["TURNOUT_ALLOWED_SKIPS"] = str(allow_file)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tests.conftest"]
    return subprocess.run(
        [*command, "--rootdir", str(tmp_path), "-c", os.devnull, "test_probe.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_skip_fails_the_run_under_ci(tmp_path: Path) -> None:
    done = _run_pytest(tmp_path, ci="true")
    assert done.returncode == 1, done.stdout
    assert "skipped in CI and not allow-listed" in done.stdout
    assert "test_probe.py::test_skips: needs something CI should have" in done.stdout


def test_an_allow_listed_skip_passes_and_is_printed(tmp_path: Path) -> None:
    done = _run_pytest(
        tmp_path, ci="true", allow="test_probe.py::test_skips | no such thing here\n"
    )
    assert done.returncode == 0, done.stdout
    assert "test_probe.py::test_skips | no such thing here" in done.stdout


def test_a_skip_passes_outside_ci(tmp_path: Path) -> None:
    done = _run_pytest(tmp_path, ci=None)
    assert done.returncode == 0, done.stdout
    assert "1 skipped" in done.stdout


def test_an_entry_covers_its_file_and_the_tests_under_it() -> None:
    allowed = [AllowedSkip("tests/a.py", "why"), AllowedSkip("tests/b.py::test_x", "why")]
    skipped = [
        ("tests/a.py::test_1", ""),
        ("tests/a.py", ""),
        ("tests/b.py::test_x", ""),
        ("tests/b.py::test_x2", ""),
        ("tests/ab.py::test_1", ""),
    ]
    assert [n for n, _ in unexpected_skips(skipped, allowed)] == [
        "tests/b.py::test_x2",
        "tests/ab.py::test_1",
    ]


def test_an_allow_list_line_without_a_reason_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "allowed.txt"
    path.write_text("# comment\n\ntests/a.py::test_x\n")
    with pytest.raises(pytest.UsageError, match=r"allowed.txt:3: expected '<test id> \| <reason>'"):
        read_allow_list(path)


def test_the_repository_allow_list_reads() -> None:
    for entry in read_allow_list():
        assert entry.reason
