"""``@pytest.mark.file_name("cases.json")``: one test per case of a ``turnout test-case`` file.

The marker and parameter names are Burr's (``burr.testing``), so a Burr test module keeps working:
a test taking ``input_state`` and ``expected_state`` gets each case's states (decoded with the
default serde into plain values); a test taking ``turnout_case`` gets the whole case, ready for
``turnout.testing.assert_case``. The path is relative to the test's file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

__all__ = ["CaseFileError", "parametrize_cases", "read_case_file"]

_MARK = "file_name"
_STATE_PARAMS = ("input_state", "expected_state")
_CASE_PARAM = "turnout_case"


class CaseFileError(ValueError):
    """A ``file_name`` marker names a file that is missing or is not a list of cases."""


def read_case_file(path: Path, *, action: str | None = None) -> list[dict[str, Any]]:
    """The cases in ``path`` (only ``action``'s if given), each checked to have its states."""
    if not path.is_file():
        raise CaseFileError(
            f"@pytest.mark.file_name: no case file at {path} (the path is relative to the test "
            "file); write one with `turnout test-case ... --out <file>`"
        )
    try:
        cases = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CaseFileError(f"@pytest.mark.file_name: {path} is not JSON: {exc}") from exc
    if not isinstance(cases, list):
        raise CaseFileError(
            f"@pytest.mark.file_name: {path} holds a {type(cases).__name__}; a case file is a "
            "JSON list of cases as `turnout test-case` writes them"
        )
    for index, case in enumerate(cases):
        missing = [k for k in _STATE_PARAMS if not isinstance(case, dict) or k not in case]
        if missing:
            raise CaseFileError(
                f"@pytest.mark.file_name: case {index} of {path} lacks {', '.join(missing)}; "
                "each case needs input_state and expected_state"
            )
    return [c for c in cases if action is None or c.get("action") == action]


def _case_id(index: int, case: dict[str, Any]) -> str:
    name = case.get("name")
    return name if isinstance(name, str) and name else f"case{index}"


def parametrize_cases(metafunc: pytest.Metafunc) -> None:
    """The ``pytest_generate_tests`` part of the plugin: parametrise a marked test."""
    marker = metafunc.definition.get_closest_marker(_MARK)
    if marker is None:
        return
    if len(marker.args) != 1 or not isinstance(marker.args[0], str | Path):
        raise CaseFileError(
            f"{metafunc.definition.nodeid}: @pytest.mark.file_name takes one path, e.g. "
            '@pytest.mark.file_name("cases.json")'
        )
    wants_states = all(p in metafunc.fixturenames for p in _STATE_PARAMS)
    wants_case = _CASE_PARAM in metafunc.fixturenames
    if not (wants_states or wants_case):
        raise CaseFileError(
            f"{metafunc.definition.nodeid}: @pytest.mark.file_name needs the test to take "
            "`input_state, expected_state` or `turnout_case`"
        )
    path = Path(marker.args[0])
    if not path.is_absolute():
        path = Path(metafunc.definition.path).parent / path
    action = marker.kwargs.get("action")
    cases = read_case_file(path, action=action)
    if not cases:
        which = f" of action {action!r}" if action is not None else ""
        raise CaseFileError(
            f"{metafunc.definition.nodeid}: @pytest.mark.file_name: no cases{which} in {path}"
        )
    from turnout.core.serde import DEFAULT_SERDE

    names: list[str] = []
    rows: list[list[Any]] = [[] for _ in cases]
    if wants_states:
        names += _STATE_PARAMS
        for row, case in zip(rows, cases, strict=True):
            row += [DEFAULT_SERDE.decode(case[k]) for k in _STATE_PARAMS]
    if wants_case:
        names.append(_CASE_PARAM)
        for row, case in zip(rows, cases, strict=True):
            row.append(case)
    metafunc.parametrize(
        names, [tuple(r) for r in rows], ids=[_case_id(i, c) for i, c in enumerate(cases)]
    )
