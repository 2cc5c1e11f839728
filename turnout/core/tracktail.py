"""Where a reader starts on a long tracking log: its head and the tail after a snapshot.

A page showing a 100,000-step application draws its last steps first; it need not parse the
100 MB before them. ``file_window(path, window=...)`` answers, for a log longer than
``window`` bytes, the records of its head (the ``format`` line and the first ``app`` line, plus
the ``app`` line of the run the tail belongs to) and the byte offset to read on from: the
start of a snapshot line (an ``end`` record holding the whole state) about ``window`` bytes
before the end, found through the snapshot marks of ``log.index``
(``turnout.core.trackindex``). Starting at a snapshot lets every state after it be rebuilt
from the tail alone, by the same ``History`` replay a whole read uses (its rule: lines before a
snapshot do not change the states after it). Marks are hints: the line at a mark's offset is
read and must be, to the checksum, an ``end`` record with a snapshot; otherwise the tail starts
at the first line boundary after ``size - window`` (states before its first snapshot then need
the whole log).

``AppLog.open_window`` (``turnout.core.trackview``) takes the answer; ``AppLog.load_all``
reads the rest when the user asks for every step.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from turnout.core.trackindex import INDEX_FILENAME, read_marks
from turnout.core.tracklog import (
    AppRecord,
    EndRecord,
    FormatRecord,
    LogChunk,
    Record,
    iter_records,
    parse_line,
)

__all__ = ["LONG_LOG", "WINDOW", "file_window"]

LONG_LOG = 8_000_000  # bytes: a log longer than this is read from its tail first
WINDOW = 1_000_000  # bytes of tail read first (some thousands of small steps)
_HEAD_RECORDS = 16  # records read from the start looking for the first app line
_INDEX_TAIL = 65_536  # bytes of the index read first (some 500 marks)


def file_window(path: Path, *, window: int = WINDOW) -> tuple[LogChunk, int] | None:
    """``(head, start)`` for the log at ``path``, or ``None`` when it is short enough (or its
    head is unusual: no ``app`` line among its first records) to read whole."""
    try:
        size = os.stat(path).st_size
    except OSError:
        return None
    if size <= window:
        return None
    records: list[Record] = []
    raws = []
    version = None
    for raw, record in iter_records(path):
        records.append(record)
        raws.append(raw)
        if isinstance(record, FormatRecord) and version is None:
            version = record.version
        if isinstance(record, AppRecord) or len(records) >= _HEAD_RECORDS:
            break
    if not any(isinstance(r, AppRecord) for r in records):
        return None
    checked = version is not None and version >= 2
    found = _snapshot_start(path, size - window, checked)
    start, run_app = found if found is not None else (_line_start(path, size - window), None)
    if run_app is not None and run_app[1] not in records:
        raws.append(run_app[0])
        records.append(run_app[1])
    head = LogChunk(records=tuple(records), raw=tuple(raws), offset=start, bad_lines=0,
                    version=version)  # fmt: skip
    return head, start


def _read_line(path: Path, at: int, size: int) -> bytes | None:
    with open(path, "rb") as handle:
        if at > 0:
            handle.seek(at - 1)
            if handle.read(1) != b"\n":
                return None
        else:
            handle.seek(0)
        line = handle.read(size)
    return line[:-1] if line.endswith(b"\n") and len(line) == size else None


def _snapshot_start(
    path: Path, latest: int, checked: bool
) -> tuple[int, tuple[dict[str, Any], AppRecord] | None] | None:
    """The offset of the last marked snapshot line starting at or before ``latest`` that
    checks out, with its run's app line (if that checks out too)."""
    index = path.with_name(INDEX_FILENAME)
    # The marks near the end are the ones wanted: read the index's tail first, all of it only
    # when no mark there is early enough.
    marks = [m for m in read_marks(index, tail=_INDEX_TAIL) if m.at <= latest]
    if not marks:
        marks = [m for m in read_marks(index) if m.at <= latest]
    for mark in reversed(marks[-4:]):
        line = _read_line(path, mark.at, mark.size)
        parsed = parse_line(line, checked=checked, lazy=True) if line is not None else None
        if parsed is None:
            continue
        end = parsed[1]
        if not (isinstance(end, EndRecord) and end.has_snapshot and end.seq == mark.seq):
            continue
        app_line = _read_line(path, mark.app_at, mark.app_size)
        app = parse_line(app_line, checked=checked) if app_line is not None else None
        run_app = (app[0], app[1]) if app is not None and isinstance(app[1], AppRecord) else None
        return mark.at, run_app
    return None


def _line_start(path: Path, at: int) -> int:
    """The offset of the first line starting after byte ``at``."""
    with open(path, "rb") as handle:
        handle.seek(at)
        while True:
            chunk = handle.read(65536)
            if not chunk:
                return at
            newline = chunk.find(b"\n")
            if newline >= 0:
                return at + newline + 1
            at += len(chunk)
