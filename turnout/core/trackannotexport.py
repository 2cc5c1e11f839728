"""Annotations out of the store: JSON Lines, CSV, and test cases (stdlib only).

- ``to_jsonl``: one annotation per line, as ``Annotation.to_json`` writes it.
- ``to_csv``: one row per annotation (tags joined by commas, the expected result as JSON). A
  cell a spreadsheet would read as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab
  or a carriage return) is prefixed with ``'``, so opening an export never runs what a
  reviewer, or whoever wrote the store, typed.
- ``annotation_cases``: the test cases ``turnout.testing.load_cases`` and the pytest plugin's
  ``@pytest.mark.file_name`` read, one per annotation that says what the step should do: the
  step's recorded input state and inputs, and as expectation the annotation's expected result,
  or, for a step marked ``good``, the recorded result and state. A case made from an expected
  result alone has ``expected_state: null`` (``assert_case`` then checks the result only).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from typing import Any

from turnout.core.trackannotations import Annotation
from turnout.core.trackview import AppLog

__all__ = ["CSV_COLUMNS", "annotation_cases", "neutralise", "to_csv", "to_jsonl"]

CSV_COLUMNS = (
    "id", "project", "app_id", "partition_key", "seq", "action", "mark", "tags", "note",
    "expected", "created", "updated",
)  # fmt: skip
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def to_jsonl(annotations: Iterable[Annotation]) -> str:
    """One JSON object per line."""
    return "".join(json.dumps(a.to_json(), ensure_ascii=False) + "\n" for a in annotations)


def neutralise(cell: str) -> str:
    """``cell`` as a spreadsheet shows it as text (a formula-looking one gets a ``'``)."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def to_csv(annotations: Iterable[Annotation]) -> str:
    """A CSV document with a header row (``CSV_COLUMNS``), formula-looking cells neutralised."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for a in annotations:
        data = a.to_json()
        data["tags"] = ",".join(a.fields.tags)
        data["expected"] = "" if a.fields.expected is None else json.dumps(a.fields.expected)
        data["mark"] = a.fields.mark or ""
        data["partition_key"] = a.partition_key or ""
        writer.writerow([neutralise(str(data[column])) for column in CSV_COLUMNS])
    return out.getvalue()


def annotation_cases(
    annotations: Iterable[Annotation], app_log: Callable[[str], AppLog | None]
) -> tuple[list[dict[str, Any]], list[str]]:
    """``(cases, skipped)``: a test case per annotation marked good or with an expected result,
    and why each other annotation gave none. ``app_log(app_id)`` opens an application's log
    (a tracking source's ``app``); states stay in their stored (serde) JSON form, as
    ``turnout test-case`` writes them."""
    cases: list[dict[str, Any]] = []
    skipped: list[str] = []
    for a in annotations:
        label = f"annotation {a.id} ({a.app_id} step {a.seq})"
        good = a.fields.mark == "good"
        if not good and a.fields.expected is None:
            skipped.append(f"{label}: neither marked good nor given an expected result")
            continue
        log = app_log(a.app_id)
        step = None if log is None else log.steps.get(a.seq)
        if log is None or step is None or step.status == "running":
            skipped.append(f"{label}: the step is not in the store (or not finished)")
            continue
        try:
            before = log.state_before(a.seq)
            after = log.state_after(a.seq) if good else None
        except Exception as error:  # a damaged log: that annotation gives no case
            skipped.append(f"{label}: its states cannot be rebuilt ({error})")
            continue
        expected = a.fields.expected if a.fields.expected is not None else step.result
        cases.append(
            {
                "name": f"{a.app_id}-{a.seq}-{step.action}-{a.id[:8]}",
                "action": step.action,
                "input_state": before,
                "inputs": dict(step.inputs),
                "expected_state": after,
                "expected_result": expected,
                "annotation": {"id": a.id, "tags": list(a.fields.tags), "note": a.fields.note},
            }
        )
    return cases, skipped
