"""Suite-wide rule: with ``CI=true`` a skipped test fails the run unless it is allow-listed.

Tests skip with a reason when something they need is missing (an extra, a server, a program);
that is right on a developer's machine and wrong in CI, where every extra is installed and every
service is started, so a skip there means work that silently did not run. The allow-list is
``.ci/allowed-skips.txt``: one ``<test id or id prefix> | <why it cannot run in CI>`` per line.
It is printed at the end of every CI run, so it stays short and visible. (The environment
variable ``TURNOUT_ALLOWED_SKIPS`` names another file; tests/test_ci_rules.py uses it.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

try:
    from hypothesis import settings as _hypothesis_settings
except ImportError:  # hypothesis is a dev dependency; without it the property tests fail alone
    _hypothesis_settings = None  # type: ignore[assignment]

if _hypothesis_settings is not None:
    # In CI the property tests draw the same examples on every run (a failure there is
    # reproducible and never a fluke of the draw) and write no example database; developers'
    # runs draw new examples each time.
    _hypothesis_settings.register_profile("ci", derandomize=True, database=None)
    if os.environ.get("CI") == "true":
        _hypothesis_settings.load_profile("ci")

# The suite runs offline: Haystack would otherwise send usage events to PostHog on pipeline runs
# (read when haystack is first imported, so set before any test imports it).
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

ALLOW_LIST = Path(__file__).resolve().parent.parent / ".ci" / "allowed-skips.txt"


@dataclass(frozen=True)
class AllowedSkip:
    prefix: str
    reason: str


def read_allow_list(path: Path | None = None) -> list[AllowedSkip]:
    """The allowed skips; a line without a ``|`` reason is an error (a skip needs a why)."""
    if path is None:
        path = Path(os.environ.get("TURNOUT_ALLOWED_SKIPS") or ALLOW_LIST)
    allowed: list[AllowedSkip] = []
    if not path.exists():
        return allowed
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        prefix, bar, reason = text.partition("|")
        if not bar or not prefix.strip() or not reason.strip():
            raise pytest.UsageError(
                f"{path}:{number}: expected '<test id> | <reason>', got {text!r}"
            )
        allowed.append(AllowedSkip(prefix.strip(), reason.strip()))
    return allowed


def _in_ci(config: pytest.Config) -> bool:
    return os.environ.get("CI") == "true"


_SKIPPED: list[tuple[str, str]] = []
_ALLOWED = pytest.StashKey[list[AllowedSkip]]()
_UNEXPECTED = pytest.StashKey[list[tuple[str, str]]]()


def pytest_configure(config: pytest.Config) -> None:
    if _in_ci(config):
        config.stash[_ALLOWED] = read_allow_list()


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    text = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return text.removeprefix("Skipped: ")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _SKIPPED.append((report.nodeid, _reason(report)))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    # A module-level importorskip skips the whole module at collection time.
    if report.skipped:
        _SKIPPED.append((report.nodeid, _reason(report)))


def unexpected_skips(
    skipped: list[tuple[str, str]], allowed: list[AllowedSkip]
) -> list[tuple[str, str]]:
    """The skips no allow-list entry covers (an entry covers its id and the ids under it)."""
    return [
        (nodeid, reason)
        for nodeid, reason in skipped
        if not any(nodeid == a.prefix or nodeid.startswith(a.prefix + "::") for a in allowed)
        and not any(nodeid.startswith(a.prefix.rstrip("/") + "/") for a in allowed)
    ]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if not _in_ci(config):
        return
    unexpected = unexpected_skips(_SKIPPED, config.stash[_ALLOWED])
    if unexpected and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    config.stash[_UNEXPECTED] = unexpected


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    config = terminalreporter.config
    if not _in_ci(config):
        return
    write = terminalreporter.write_line
    allowed = config.stash[_ALLOWED]
    terminalreporter.section("skips allowed in CI (.ci/allowed-skips.txt)")
    for entry in allowed:
        write(f"{entry.prefix} | {entry.reason}")
    if not allowed:
        write("(none: every test must run)")
    unexpected = config.stash.get(_UNEXPECTED, [])
    if unexpected:
        terminalreporter.section("FAILED: skipped in CI and not allow-listed", red=True)
        for nodeid, reason in unexpected:
            write(f"{nodeid}: {reason}", red=True)
        write(
            "CI=true installs every extra and starts every service: fix what the test lacks, "
            "or add '<test id> | <reason>' to .ci/allowed-skips.txt",
            red=True,
        )
