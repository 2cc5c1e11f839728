"""The steps of a log file, for ``load_state_from_log_file`` (no Streamlit here).

Three kinds of file are read, told apart by their first JSON line:

- a ``StateAndResultsFullLogger`` file (Burr's or turnout's ``.jsonl``: one line per step with
  ``state``, ``action`` and ``result``), which Burr's helper reads;
- a turnout tracking log (``log.jsonl`` of ``LocalTracker``), read by the tracking UI's reader
  (``data.AppLog``): each finished step's state rebuilt from snapshots and deltas;
- a Burr tracking log (``log.jsonl`` of Burr's ``LocalTrackingClient``), read by
  ``turnout.core.burr_tracking.read_burr_log``.

The file is untrusted input: it is parsed as JSON and nothing else, and values stay in their
stored form (a serde-tagged object stays a dict), so nothing in it is imported or called.
Burr's control keys (``__SEQUENCE_ID``, ``__PRIOR_STEP``) are left out of the states, as
turnout keeps them out of its own.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turnout.core.burr_layout import BURR_CONTROL_KEYS
from turnout.core.burr_tracking import read_burr_log
from turnout.core.errors import PersistenceError
from turnout.core.tracklog import EndRecord
from turnout.core.trackview import AppLog

__all__ = ["LoggedStep", "StepLog", "read_step_log"]

_FINAL = ("completed", "failed")  # a step that ran to its end (a failed one included)
_BURR_KINDS = frozenset({"begin_entry", "end_entry", "begin_span", "end_span", "attribute"})
_KINDS = (
    "a StateAndResultsFullLogger .jsonl file, a turnout tracking log (log.jsonl under "
    "~/.turnout/<project>/<app>/) or a Burr tracking log (log.jsonl under ~/.burr/<project>/<app>/)"
)


@dataclass(frozen=True, kw_only=True, slots=True)
class LoggedStep:
    """One step of a log: its action's name, the state after it and its result."""

    action: str
    state: dict[str, Any]
    result: Any


@dataclass(frozen=True, kw_only=True, slots=True)
class StepLog:
    """The steps of a log file, oldest first, its kind (``"full_logger"``, ``"turnout"`` or
    ``"burr"``) and how many lines were skipped as damaged."""

    kind: str
    steps: list[LoggedStep]
    skipped: int


def read_step_log(path: str | os.PathLike[str]) -> StepLog:
    """The steps of the log file at ``path``; see the module docstring.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        PersistenceError: the file is not one of the three kinds, a line of a
            ``StateAndResultsFullLogger`` file (other than a last line cut short by a crash) is
            damaged, or a tracking log is damaged where a step's state cannot be rebuilt.
    """
    path = Path(path)
    first = _first_object(path)  # only the first line: a tracking log is read by its reader
    if first is None:  # an empty file: nothing was logged yet
        return StepLog(kind="full_logger", steps=[], skipped=0)
    if isinstance(first.get("t"), str):
        return _turnout(path)
    if first.get("type") in _BURR_KINDS:
        return _burr(path)
    if "state" in first and "action" in first:
        return _full_logger(path)
    raise PersistenceError(
        f"load_state_from_log_file({str(path)!r}): its first line is a JSON object with the keys "
        f"{sorted(map(str, first))[:10]}, which no log this reads has; give {_KINDS}."
    )


def _lines(raw: bytes) -> list[tuple[int, bytes]]:
    return [(n, line) for n, line in enumerate(raw.split(b"\n"), 1) if line.strip()]


def _parse(line: bytes) -> Any:
    try:
        return json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: nested past json's limit
        return None


def _first_object(path: Path) -> dict[str, Any] | None:
    with path.open("rb") as file:
        for number, line in enumerate(file, 1):
            line = line.removesuffix(b"\n")
            if not line.strip():
                continue
            data = _parse(line)
            if not isinstance(data, dict):
                raise PersistenceError(
                    f"load_state_from_log_file({str(path)!r}): line {number} is not a JSON "
                    f"object ({line[:60]!r}), so this is not a log it reads (or the file is "
                    f"damaged); give {_KINDS}."
                )
            return data
    return None


def _full_logger(path: Path) -> StepLog:
    raw = path.read_bytes()
    steps: list[LoggedStep] = []
    skipped = 0
    lines = _lines(raw)
    for index, (number, line) in enumerate(lines):
        data = _parse(line)
        usable = (
            isinstance(data, dict)
            and isinstance(data.get("state"), dict)
            and isinstance(data.get("action"), str)
        )
        if not usable:
            # A crash while the logger wrote its last line leaves it cut short (no newline
            # after it): that step is lost, the others are whole. Damage anywhere else is not
            # guessed around.
            if index == len(lines) - 1 and not raw.endswith(b"\n"):
                skipped += 1
                continue
            raise PersistenceError(
                f"load_state_from_log_file({str(path)!r}): line {number} is damaged (not a JSON "
                f"object with a 'state' object and an 'action' name: {line[:60]!r}). The file "
                f"is a StateAndResultsFullLogger log; remove or repair that line."
            )
        assert isinstance(data, dict)
        steps.append(
            LoggedStep(
                action=data["action"], state=_user_state(data["state"]), result=data.get("result")
            )
        )
    return StepLog(kind="full_logger", steps=steps, skipped=skipped)


def _user_state(state: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in state.items() if key not in BURR_CONTROL_KEYS}


def _turnout(path: Path) -> StepLog:
    log = AppLog(path)
    log.refresh()
    steps = [
        LoggedStep(action=step.action, state=log.state_after(step.seq), result=step.result)
        for step in log.step_list()
        if step.status in _FINAL
    ]
    return StepLog(kind="turnout", steps=steps, skipped=log.bad_lines)


def _burr(path: Path) -> StepLog:
    records, skipped = read_burr_log(path)
    steps = [
        LoggedStep(action=end.action, state=dict(end.snapshot or {}), result=end.result)
        for end in records
        if isinstance(end, EndRecord)
    ]
    return StepLog(kind="burr", steps=steps, skipped=skipped)
