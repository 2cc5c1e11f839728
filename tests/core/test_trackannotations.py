"""Annotations on tracked steps (``turnout.core.trackannotations``, ``trackannotexport``): the
fields' checks, the file store's sidecar (atomic, beside the logs, untrusted when read back),
the filters, the CSV/JSONL exports (formula cells neutralised) and the test cases made from
annotations, run by ``turnout.testing``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from turnout import ApplicationBuilder, State, action
from turnout.core.trackannotations import (
    ANNOTATIONS_NAME,
    MAX_EXPECTED,
    MAX_NOTE,
    MAX_TAGS,
    Annotation,
    AnnotationError,
    AnnotationFields,
    AnnotationQuery,
    AnnotationStore,
    FileAnnotations,
    new_annotation,
)
from turnout.core.trackannotexport import annotation_cases, neutralise, to_csv, to_jsonl
from turnout.core.trackfiles import TrackingIndex
from turnout.core.tracking import LocalTracker
from turnout.testing import assert_case, load_cases

PROJECT = "annotated"


@action(reads=["count"], writes=["count"])
def bump(state: State, by: int = 1) -> tuple[dict[str, Any], State]:
    count = state["count"] + by
    return {"count": count}, state.update(count=count)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A tracking directory with app ``run``: three ``bump`` steps (inputs by=1, 2, 3)."""
    tracker = LocalTracker(PROJECT, storage_dir=tmp_path)
    app = (
        ApplicationBuilder()
        .with_actions(bump=bump)
        .with_transitions(("bump", "bump"))
        .with_state(count=0)
        .with_entrypoint("bump")
        .with_tracker(tracker)
        .with_identifiers(app_id="run")
        .build()
    )
    for by in (1, 2, 3):
        app.step(inputs={"by": by})
    tracker.close()
    return tmp_path


def _note(seq: int, fields: AnnotationFields, app_id: str = "run") -> Annotation:
    return new_annotation(
        project=PROJECT, app_id=app_id, partition_key=None, seq=seq, action="bump", fields=fields
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tags": tuple(f"t{i}" for i in range(MAX_TAGS + 1))},
        {"tags": ("x" * 65,)},
        {"tags": ("a,b",)},
        {"note": "n" * (MAX_NOTE + 1)},
        {"mark": "great"},
        {"expected": float("nan")},
        {"expected": {"set": {1, 2}}},
        {"expected": "x" * MAX_EXPECTED},
    ],
    ids=[
        "too-many-tags", "long-tag", "comma-tag", "long-note", "unknown-mark", "nan", "not-json",
        "too-big",
    ],
)  # fmt: skip
def test_fields_refuse_what_is_too_big_or_not_json(kwargs: dict[str, Any]) -> None:
    with pytest.raises(AnnotationError):
        AnnotationFields(**kwargs)


def test_tags_are_kept_sorted_unique_and_stripped() -> None:
    assert AnnotationFields(tags=("b", " a ", "b", "")).tags == ("a", "b")


def test_file_store_adds_edits_deletes_and_reads_back_in_a_new_instance(root: Path) -> None:
    index = TrackingIndex(root)
    store = index.annotations
    assert isinstance(store, AnnotationStore)
    log = (root / PROJECT / "run" / "log.jsonl").read_bytes()
    made = store.add(_note(1, AnnotationFields(tags=("slow",), note="hm", mark="bad")))
    other = store.add(_note(2, AnnotationFields(mark="good")))
    edited = store.update(PROJECT, made.id, AnnotationFields(note="fixed", expected={"count": 2}))
    assert edited.updated >= made.updated
    assert edited.created == made.created
    again = FileAnnotations(root)
    assert [a.to_json() for a in again.list(PROJECT)] == [edited.to_json(), other.to_json()]
    assert again.delete(PROJECT, other.id) == other
    assert [a.id for a in FileAnnotations(root).list(PROJECT)] == [made.id]
    with pytest.raises(KeyError, match=other.id):
        again.get(PROJECT, other.id)
    # The tracker's append-only log is never written; the sidecar is the only new file.
    assert (root / PROJECT / "run" / "log.jsonl").read_bytes() == log
    assert sorted(p.name for p in (root / PROJECT).iterdir()) == [ANNOTATIONS_NAME, "run"]
    assert [a.app_id for a in index.apps(PROJECT)] == ["run"]


def test_a_project_name_no_tracker_writes_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="cannot name a tracking directory"):
        FileAnnotations(tmp_path).list("../outside")


def test_stored_entries_are_checked_when_read_back(root: Path) -> None:
    good = _note(0, AnnotationFields(note="kept"))
    entries: list[Any] = [
        good.to_json(),
        {**good.to_json(), "id": "b" * 32, "note": "x" * (MAX_NOTE + 1)},
        {**good.to_json(), "id": "c" * 32, "tags": "not-a-list"},
        {**good.to_json(), "id": "d" * 32, "project": "another"},
        {**good.to_json(), "id": "e" * 32, "seq": True},
        "a string",
    ]
    path = root / PROJECT / ANNOTATIONS_NAME
    path.write_text(json.dumps({"version": 1, "annotations": entries}), encoding="utf-8")
    store = FileAnnotations(root)
    assert [a.fields.note for a in store.list(PROJECT)] == ["kept"]
    assert store.refused(PROJECT) == 5
    path.write_text("{not json", encoding="utf-8")
    assert store.list(PROJECT) == []
    assert store.refused(PROJECT) == 1


def test_queries_filter_by_tag_mark_action_and_app(root: Path) -> None:
    store = FileAnnotations(root)
    a = store.add(_note(0, AnnotationFields(tags=("x",), mark="good")))
    b = store.add(_note(1, AnnotationFields(tags=("x", "y"))))
    c = store.add(_note(0, AnnotationFields(mark="bad"), app_id="other"))

    def ids(**kwargs: Any) -> list[str]:
        return [n.id for n in store.list(PROJECT, AnnotationQuery(**kwargs))]

    assert ids(tag="x") == [a.id, b.id]
    assert ids(tag="y") == [b.id]
    assert ids(mark="none") == [b.id]
    assert ids(mark="bad") == [c.id]
    assert ids(app_id="other") == [c.id]
    assert ids(action="bump") == [c.id, a.id, b.id]
    assert ids(action="other") == []
    with pytest.raises(AnnotationError, match="a mark filter"):
        AnnotationQuery(mark="meh")


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(start: str) -> None:
    hostile = _note(0, AnnotationFields(note=f"{start}HYPERLINK(1)", tags=(f"{start}t",)))
    rows = list(csv.DictReader(io.StringIO(to_csv([hostile]))))
    assert rows[0]["note"] == f"'{start}HYPERLINK(1)"
    # Tags are stripped when made: a tab or CR start is gone before the export.
    assert rows[0]["tags"] == (f"'{start}t" if start.strip() else "t")
    assert rows[0]["app_id"] == "run"  # an ordinary cell stays as it is
    assert neutralise("plain") == "plain"


def test_jsonl_lines_read_back_as_the_same_annotations() -> None:
    notes = [_note(0, AnnotationFields(expected={"a": [1]})), _note(1, AnnotationFields())]
    lines = to_jsonl(notes).splitlines()
    assert [Annotation.from_json(json.loads(line)) for line in lines] == notes


def test_cases_from_annotations_run_against_the_action(root: Path, tmp_path: Path) -> None:
    index = TrackingIndex(root)
    store = index.annotations
    store.add(_note(1, AnnotationFields(mark="good")))
    store.add(_note(2, AnnotationFields(mark="bad", expected={"count": 6})))
    store.add(_note(0, AnnotationFields(note="just a remark")))
    store.add(_note(9, AnnotationFields(mark="good")))
    cases, skipped = annotation_cases(store.list(PROJECT), lambda a: index.app(PROJECT, a))
    assert [(c["action"], c["input_state"]["count"], c["inputs"]) for c in cases] == [
        ("bump", 1, {"by": 2}),
        ("bump", 3, {"by": 3}),
    ]
    good, expected = cases
    assert good["expected_state"]["count"] == 3
    assert good["expected_result"] == {"count": 3}
    assert expected["expected_state"] is None
    assert expected["expected_result"] == {"count": 6}
    assert len(skipped) == 2
    assert "neither marked good" in skipped[0]
    assert "not in the store" in skipped[1]
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases), encoding="utf-8")
    loaded = load_cases(path, "bump")
    assert_case(bump, loaded[0])
    # The expected result says 6 where the action gives 6 (3 + 3): it passes on the result.
    assert_case(bump, loaded[1])
    wrong = {**loaded[1], "expected_result": {"count": 7}}
    with pytest.raises(AssertionError, match="result"):
        assert_case(bump, wrong)


def test_a_damaged_sidecar_is_never_written_over(root: Path) -> None:
    path = root / PROJECT / ANNOTATIONS_NAME
    path.write_text('{"annotations": [{"half": ', encoding="utf-8")
    store = FileAnnotations(root)
    assert store.list(PROJECT) == []
    with pytest.raises(AnnotationError, match="repair it, or move it away"):
        store.add(_note(0, AnnotationFields(note="new")))
    assert path.read_text(encoding="utf-8") == '{"annotations": [{"half": '
    path.unlink()
    store.add(_note(0, AnnotationFields(note="new")))
    assert [a.fields.note for a in FileAnnotations(root).list(PROJECT)] == ["new"]
