"""Lazy snapshots (``turnout.core.tracksnapshot``): a long ``end`` line read for the UI keeps
its snapshot in its bytes until a state is rebuilt from it, gives the same record and states
as a whole read, is parsed whole when its shape is not the one written, and a snapshot damaged
by its writer leaves the steps listed and refuses only the states built on it."""

from __future__ import annotations

import binascii
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from turnout import ApplicationBuilder, State, action
from turnout.core import tracksnapshot
from turnout.core.errors import PersistenceError
from turnout.core.tracking import LocalTracker
from turnout.core.tracklog import EndRecord, dump_line, parse_line, read_records
from turnout.core.tracksnapshot import LAZY_BYTES, split_snapshot
from turnout.core.trackview import AppLog

BIG = list(range(LAZY_BYTES // 4))  # a snapshot of this makes a line past LAZY_BYTES


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The lengths of the snapshots decoded (``_decode`` counted, its cache emptied)."""
    seen: list[int] = []
    real = tracksnapshot._decode

    def counted(line: bytes, start: int, end: int) -> dict[str, Any]:
        seen.append(end - start)
        return real(line, start, end)

    tracksnapshot._recent.cache_clear()
    monkeypatch.setattr(tracksnapshot, "_decode", counted)
    yield seen
    tracksnapshot._recent.cache_clear()


def _end(**fields: Any) -> dict[str, Any]:
    record = EndRecord(seq=7, action="grow", time=1.5, status="completed", **fields)
    return record.to_json()


def _both(data: dict[str, Any]) -> tuple[EndRecord, EndRecord]:
    line = dump_line(data)[:-1]
    eager, lazy = parse_line(line, checked=True), parse_line(line, checked=True, lazy=True)
    assert eager is not None
    assert lazy is not None
    assert isinstance(eager[1], EndRecord)
    assert isinstance(lazy[1], EndRecord)
    return eager[1], lazy[1]


@pytest.mark.parametrize(
    "fields",
    [
        {"snapshot": {"items": BIG}},
        {"snapshot": {"items": BIG}, "run": "r-1"},
        # "snapshot", "run" and "crc" keys nested in the values before and inside the snapshot
        {
            "snapshot": {"items": BIG, "run": "inner", "crc": 3, "snapshot": {"a": 1}},
            "run": "r-2",
            "result": {"snapshot": {"b": 2}, "run": "x"},
            "changes": (("set", "snapshot", {"c": 3}),),
        },
    ],
    ids=["no-run", "run", "nested-keys"],
)
def test_a_long_end_line_read_lazily_is_the_same_record(
    fields: dict[str, Any], decodes: list[int]
) -> None:
    eager, lazy = _both(_end(**fields))
    assert lazy.snapshot is None
    assert lazy.lazy_snapshot is not None
    assert decodes == []  # nothing decoded while reading
    assert lazy.has_snapshot
    assert eager.has_snapshot
    assert lazy.whole_snapshot() == eager.snapshot
    assert len(decodes) == 1
    assert (lazy.seq, lazy.status, lazy.run, lazy.result, lazy.changes) == (
        eager.seq, eager.status, eager.run, eager.result, eager.changes,
    )  # fmt: skip
    assert lazy.to_json() == eager.to_json()


@pytest.mark.parametrize(
    "fields",
    [
        {"snapshot": {"n": 1}},  # short: splitting would not pay
        {"snapshot": {"items": BIG}, "suspension": {"channel": "c"}},  # not the written shape
    ],
    ids=["short", "suspension"],
)
def test_other_lines_are_parsed_whole(fields: dict[str, Any]) -> None:
    data = _end(**fields)
    if "suspension" in fields:
        data["status"] = "suspended"
    eager, lazy = _both(data)
    assert lazy.lazy_snapshot is None
    assert lazy == eager


def test_cut_bytes_that_do_not_parse_are_read_from_the_whole_line() -> None:
    data = _end(snapshot={"items": BIG}, run="r")
    moved = {k: v for k, v in data.items() if k != "run"} | {"extra": [1], "run": "r"}
    eager, lazy = _both(moved)  # a key between the snapshot and "run": not the written order
    assert lazy.whole_snapshot() == eager.snapshot == {"items": BIG}


def test_split_snapshot_refuses_lines_it_cannot_cut_exactly() -> None:
    line = dump_line(_end(snapshot={"items": BIG}))[:-1]
    assert split_snapshot(line) is not None
    assert split_snapshot(line.replace(b'"t":"end"', b'"t":"begin"')) is None
    assert split_snapshot(json.dumps({"snapshot": {"items": BIG}}).encode()) is None


@action(reads=["items"], writes=["items"])
def grow(state: State) -> State:
    return state.append(items=len(state["items"]))


def _grow_log(root: Path, steps: int) -> Path:
    tracker = LocalTracker("proj", root, snapshot_every=5)
    app = (
        ApplicationBuilder()
        .with_actions(grow=grow)
        .with_transitions(("grow", "grow"))
        .with_state(items=BIG)
        .with_entrypoint("grow")
        .with_identifiers(app_id="big")
        .with_tracker(tracker)
        .build()
    )
    for _ in range(steps):
        app.step()
    tracker.close()
    return root / "proj" / "big" / "log.jsonl"


def test_a_log_lists_its_steps_without_decoding_a_snapshot(
    tmp_path: Path, decodes: list[int]
) -> None:
    path = _grow_log(tmp_path, 12)
    log = AppLog(path)
    log.refresh()
    assert [s.seq for s in log.step_list()] == list(range(12))
    log.summary("proj")
    assert decodes == []
    whole = read_records(path)  # a whole read, for the states to compare with
    assert sum(1 for r in whole.records if isinstance(r, EndRecord) and r.snapshot) == 3
    assert log.state_after(11)["items"] == [*BIG, *range(len(BIG), len(BIG) + 12)]
    after_10 = {"items": [*BIG, *range(len(BIG), len(BIG) + 11)]}
    assert decodes == [len(json.dumps(after_10, separators=(",", ":")))]
    assert log.step_list()[10].snapshot == after_10


def test_a_snapshot_damaged_by_its_writer_still_lists_its_step(tmp_path: Path) -> None:
    path = _grow_log(tmp_path, 12)
    lines = path.read_bytes().split(b"\n")
    for number, line in enumerate(lines):
        if b'"seq":5,' in line and b'"snapshot":{' in line:
            data = line[: line.rindex(b',"crc":')] + b"}"
            broken = data.replace(b'"snapshot":{"items":[', b'"snapshot":{"items":[[', 1)
            lines[number] = _rechecked(broken)
    path.write_bytes(b"\n".join(lines))
    log = AppLog(path)
    log.refresh()
    assert log.bad_lines == 0
    assert [(s.seq, s.status) for s in log.step_list()][5] == (5, "completed")
    assert log.state_after(4)["items"][-1] == len(BIG) + 4  # before the snapshot: fine
    with pytest.raises(PersistenceError, match="snapshot"):
        log.state_after(6)  # rebuilt from the damaged snapshot: refused, not guessed


def _rechecked(body: bytes) -> bytes:
    """``body`` (a JSON object's text, possibly broken) with a checksum that matches it."""
    return b'%s,"crc":%d}' % (body[:-1], binascii.crc32(body))
