"""A test case from one tracked step, read from any tracking store (stdlib only).

``step_case`` builds the case ``turnout test-case`` writes and ``turnout.testing.load_cases``
and the pytest plugin's ``@pytest.mark.file_name`` read: the step's action, the state it
started from, its inputs, and the result and state it produced. States stay in their stored
(serde) JSON form, so nothing in the log is decoded into objects here. It reads an
``AppLog`` (``TrackingSource.app``), so a tracking directory and a PostgreSQL store give the
same case; ``merge_cases`` adds cases to a case file's list, replacing those of the same name.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from turnout.core.errors import TurnoutError
from turnout.core.trackview import AppLog

__all__ = ["CaseError", "case_file_name", "merge_cases", "step_case"]


class CaseError(TurnoutError, LookupError):
    """The step cannot become a test case (not tracked, not finished, or its states are lost)."""


def step_case(log: AppLog, app_id: str, seq: int) -> dict[str, Any]:
    """The test case of step ``seq`` of ``log`` (the application ``app_id``).

    Raises:
        CaseError: the step is not in the log, has not finished, or its states cannot be
            rebuilt; the message says which.
    """
    if log.partial and log.steps and seq < min(log.steps):
        log.load_all()  # a long log opened on its tail: the step is further back
    step = log.steps.get(seq)
    if step is None or step.status != "completed":
        steps = log.step_list()
        has = f"steps {steps[0].seq} to {steps[-1].seq}" if steps else "no steps"
        status = "" if step is None else f", and step {seq} is {step.status}"
        raise CaseError(
            f"no completed step {seq} of application {app_id!r} (it has {has}{status}): pass "
            "the sequence id of a step that completed"
        )
    try:
        before = log.state_before(seq)
        after = log.state_after(seq)
    except Exception as error:  # a damaged log: say so rather than write half a case
        raise CaseError(
            f"the states around step {seq} of application {app_id!r} cannot be rebuilt from "
            f"its log ({type(error).__name__}: {error})"
        ) from None
    return {
        "name": f"{app_id}-{seq}-{step.action}",
        "action": step.action,
        "input_state": before,
        "inputs": dict(step.inputs),
        "expected_state": after,
        "expected_result": step.result,
    }


def case_file_name(app_id: str, seq: int) -> str:
    """A plain file name for a downloaded case file of one step (no path, no quotes)."""
    kept = "".join(c if c.isalnum() or c in "-_." else "_" for c in app_id)[:80].lstrip(".")
    return f"turnout_case_{kept or 'app'}_{seq}.json"


def merge_cases(path: Path, cases: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Write ``cases`` into the case file ``path`` (created if missing), replacing the cases
    of the same name; the file's cases afterwards.

    Raises:
        CaseError: ``path`` holds something other than a JSON list of cases.
    """
    new = list(cases)
    kept: Any = []
    if path.is_file():
        try:
            kept = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise CaseError(
                f"{path} is not a JSON case file ({error}): pick another --out"
            ) from None
    if not isinstance(kept, list):
        raise CaseError(f"{path} holds no list of cases: pick another --out")
    names = {case["name"] for case in new}
    merged = [c for c in kept if not (isinstance(c, dict) and c.get("name") in names)] + new
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(merged, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return merged
