"""turnout's pytest plugin: fixtures, test cases from tracked steps, record/replay of model calls.

Installing turnout registers this module with pytest (the ``pytest11`` entry point named
``turnout``; ``-p no:turnout`` turns it off). Loading it costs pytest and the standard library
only, and it changes nothing by itself: each feature acts only on the tests that ask for it.

- Fixtures: ``fake_openai`` (a running ``FakeOpenAIServer``), ``turnout_home`` (``TURNOUT_HOME``
  set to a fresh directory), ``run_app`` (build and run an application tracked there).
- ``@pytest.mark.file_name("cases.json")`` on a test taking ``input_state`` and
  ``expected_state`` (or ``turnout_case``) runs it once per case of the file, as Burr's
  ``burr.testing`` does, on the files ``turnout test-case`` writes.
- ``@pytest.mark.turnout_cassette`` (or the ``turnout_cassette`` fixture) replays the test's HTTP
  exchanges from ``cassettes/<module>/<test>.json`` beside the test; ``pytest --turnout-record``
  records them against the real provider first. Needs ``pip install "turnout[pytest]"`` (vcrpy).

See ``docs/integrations/pytest.md``.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from turnout.integrations.pytest._cases import CaseFileError, parametrize_cases
from turnout.integrations.pytest._cassettes import (
    CassetteFormatError,
    CassetteMissError,
    CassetteSecretError,
    CassetteSession,
)
from turnout.integrations.pytest._runner import AppRunner, RunOutcome

if TYPE_CHECKING:
    from turnout._fake_openai import FakeOpenAIServer

__all__ = [
    "AppRunner",
    "CaseFileError",
    "CassetteFormatError",
    "CassetteMissError",
    "CassetteSecretError",
    "CassetteSession",
    "RunOutcome",
    "fake_openai",
    "run_app",
    "turnout_cassette",
    "turnout_home",
]

RECORD_OPTION = "--turnout-record"
_CASSETTE_MARK = "turnout_cassette"
_SESSION_KEY = pytest.StashKey["CassetteSession"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("turnout", "turnout (record/replay of model calls)")
    group.addoption(
        RECORD_OPTION,
        action="store_true",
        default=False,
        help="run tests marked turnout_cassette against the real provider and (re)write their "
        "cassettes; without it they replay offline and a request the cassette lacks fails",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "file_name(path, action=None): run the test once per case of a JSON file written by "
        "`turnout test-case` (parameters input_state/expected_state or turnout_case)",
    )
    config.addinivalue_line(
        "markers",
        "turnout_cassette(name=None): replay the test's HTTP exchanges from a cassette beside "
        "it; record them with pytest --turnout-record",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_cases(metafunc)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixturenames = getattr(item, "fixturenames", None)
        if (
            item.get_closest_marker(_CASSETTE_MARK) is not None
            and fixturenames is not None
            and "turnout_cassette" not in fixturenames
        ):
            fixturenames.insert(0, "turnout_cassette")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    # A request the cassette lacks fails the test even where the code under test caught the
    # error (the openai client turns it into APIConnectionError after its retries).
    try:
        outcome = yield
    except BaseException as exc:
        session = item.stash.get(_SESSION_KEY, None)
        if session is not None and session.misses:
            raise session.miss_error() from exc
        raise
    session = item.stash.get(_SESSION_KEY, None)
    if session is not None and session.misses:
        raise session.miss_error()
    return outcome


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAIServer]:
    """A running ``FakeOpenAIServer`` on 127.0.0.1 (``.base_url`` for the client), stopped after
    the test. Script replies with ``add_replies(...)``; with none it echoes the user."""
    from turnout._fake_openai import FakeOpenAIServer

    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def turnout_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh tracking directory, set as ``TURNOUT_HOME`` for the test."""
    home = tmp_path / "turnout-home"
    home.mkdir()
    monkeypatch.setenv("TURNOUT_HOME", os.fspath(home))
    return home


@pytest.fixture
def run_app(turnout_home: Path) -> AppRunner:
    """``run_app(builder_or_factory, halt_after=..., inputs=...)``: build the application (a
    builder gets a local tracker in ``turnout_home``, project ``pytest``), run it, and return a
    ``RunOutcome`` (``action``, ``result``, ``state``, ``app``, ``log_path``)."""
    return AppRunner(storage_dir=turnout_home)


@pytest.fixture
def turnout_cassette(request: pytest.FixtureRequest) -> Iterator[CassetteSession]:
    """Replay (or, with ``--turnout-record``, record) the test's HTTP exchanges."""
    from turnout.integrations.pytest._cassettes import cassette_path

    marker = request.node.get_closest_marker(_CASSETTE_MARK)
    name = marker.kwargs.get("name") if marker is not None else None
    if marker is not None and marker.args:
        name = marker.args[0]
    path = cassette_path(Path(request.node.path), name or request.node.name)
    session = CassetteSession(path, record=bool(request.config.getoption(RECORD_OPTION)))
    request.node.stash[_SESSION_KEY] = session
    with session:
        yield session
