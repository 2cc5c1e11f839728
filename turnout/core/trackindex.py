"""Snapshot marks: a side index that lets a loader start at a snapshot, not at the log's start.

Rebuilding the latest state from a whole log reads every line (at 10,000 chat steps, ~100 MB).
The state after a step needs only the nearest snapshot before it and the deltas after it; what
the lines before that snapshot can still change is *whether* the log is trusted (which run the
snapshot belongs to, which ``app`` line names the application), and that is what a mark
vouches for.

**Writing.** ``MarkWriter`` watches the lines a ``LocalTracker`` appends to each log. For every
snapshot line it appends one *mark* to ``log.index`` next to the log when, since its own last
``app`` line (the run's start), every byte of the log was written by it, in order (the offset
each append landed at follows the previous one: no other writer's line in between), every
finished step took the next sequence id and named that run, and no step began ahead of them.
A mark names the byte offset, length and checksum of the snapshot line and of that ``app``
line. A writer that cannot vouch for its lines (another process appended in between, a second
application object logs the same app id) writes no mark until its next ``app`` line.

**Reading** (``find_chain``). The index is a hint, never trusted on its own word: a mark is
used only if the bytes at its offsets are, to the checksum, the lines it names, each starting
right after a newline, and the log's first line is a ``format`` line this turnout reads. The
loader then rebuilds the application's identity (the ``app`` line the whole log would end up
naming: the last fresh one, else the first) from the marked ``app`` lines and the few lines
between writers' marked regions, which it reads; replays ``app`` line + snapshot line + every
line after the snapshot through the same ``History`` the full replay uses; and answers only if
that replay never cut the timeline back to before the snapshot. Anything else (no index, a
mark that does not verify, an older format, a damaged line after the snapshot, a step before
the snapshot, an error) gives ``None``: the caller replays the whole log, which decides.

**What a gap before the snapshot means.** A state after the snapshot is the snapshot plus the
deltas after it, so lines lost *before* the snapshot do not change it: the full replay also
rebuilds it from that snapshot (its contiguity check covers snapshot to target), and so does
this one. The same-length damage a mark cannot see (a byte flipped in a line before the
snapshot makes that line unreadable; two neighbouring lines swapped) drops or reorders lines of
the marked run, which the full replay also ignores for such a state; damage that moves bytes
moves the snapshot or ``app`` line off its recorded offset and the mark is not used.
"""

from __future__ import annotations

import binascii
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from turnout.core.errors import PersistenceError
from turnout.core.trackhistory import Chain, History
from turnout.core.tracklog import (
    READS_UP_TO,
    AppRecord,
    BeginRecord,
    EndRecord,
    FormatRecord,
    Record,
    dump_line,
    parse_line,
    read_records,
)

__all__ = ["INDEX_FILENAME", "Mark", "MarkWriter", "find_chain", "read_marks"]

INDEX_FILENAME = "log.index"
"""The side index of every application's log, in the same directory."""

_CRC = b',"crc":'
_TRIES = 4  # marks tried, newest first, before the loader gives up and reads the whole log


@dataclass(frozen=True, kw_only=True, slots=True)
class Mark:
    """A snapshot line and the ``app`` line of its run, by byte offset, length and checksum.

    Attributes:
        seq: the snapshot's sequence id.
        run: the run id both lines name.
        at, size, crc: where the snapshot line starts, its length with its newline, and the
            checksum written on it.
        app_at, app_size, app_crc: the same for the run's ``app`` line.
        app_seq: that line's ``sequence_id`` (``None``: the run started afresh).
    """

    seq: int
    run: str
    at: int
    size: int
    crc: int
    app_at: int
    app_size: int
    app_crc: int
    app_seq: int | None

    @property
    def end(self) -> int:
        return self.at + self.size

    def to_json(self) -> dict[str, Any]:
        return {
            "t": "mark", "seq": self.seq, "run": self.run, "at": self.at, "size": self.size,
            "line_crc": self.crc, "app_at": self.app_at, "app_size": self.app_size,
            "app_crc": self.app_crc, "app_seq": self.app_seq,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Mark | None:
        """The mark, or ``None`` if ``data`` is not a well-formed one."""
        ints = ("seq", "at", "size", "line_crc", "app_at", "app_size", "app_crc")
        if data.get("t") != "mark" or not isinstance(data.get("run"), str):
            return None
        if not all(type(data.get(k)) is int and data[k] >= 0 for k in ints):
            return None
        app_seq = data.get("app_seq")
        if app_seq is not None and type(app_seq) is not int:
            return None
        if data["app_at"] + data["app_size"] > data["at"] or data["size"] < 1:
            return None
        return cls(
            seq=data["seq"], run=data["run"], at=data["at"], size=data["size"],
            crc=data["line_crc"], app_at=data["app_at"], app_size=data["app_size"],
            app_crc=data["app_crc"], app_seq=app_seq,
        )  # fmt: skip


def _line_crc(line: bytes) -> int:
    """The checksum written at the end of a line ``dump_line`` made."""
    at = line.rfind(_CRC)
    return int(line[at + len(_CRC) : line.rindex(b"}")])


# -- writing -------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Run:
    """What a writer knows of one log since its own last ``app`` line."""

    app_at: int
    app_size: int
    app_crc: int
    app_seq: int | None
    run: str
    end: int  # where its last line ended
    next: int  # the sequence id the next finished step must take
    clean: bool = True


class MarkWriter:
    """The writer's side: fed every line a tracker appends, it appends the marks."""

    __slots__ = ("_runs",)

    def __init__(self) -> None:
        self._runs: dict[str, _Run] = {}

    def forget(self, app_id: str) -> None:
        """The log of ``app_id`` starts anew (created): nothing before vouches for it."""
        self._runs.pop(app_id, None)

    def wrote(
        self, app_id: str, record: Record, line: bytes, end: int, log_path: Callable[[str], Path]
    ) -> None:
        """``line`` (holding ``record``) was appended to ``app_id``'s log, ending at byte
        ``end``; ``log_path`` names that log."""
        at = end - len(line)
        if isinstance(record, AppRecord):
            if record.run is None:
                self._runs.pop(app_id, None)
                return
            start = record.sequence_id
            self._runs[app_id] = _Run(
                app_at=at, app_size=len(line), app_crc=_line_crc(line), app_seq=start,
                run=record.run, end=end, next=0 if start is None else start + 1,
            )  # fmt: skip
            return
        run = self._runs.get(app_id)
        if run is None or not run.clean:
            return
        if at != run.end:  # another writer's bytes in between: this one cannot vouch for them
            run.clean = False
            return
        run.end = end
        if isinstance(record, BeginRecord) and record.seq > run.next:
            run.clean = False
        elif isinstance(record, EndRecord) and record.finished:
            if record.seq != run.next or record.run != run.run:
                run.clean = False
                return
            run.next += 1
            if record.has_snapshot:
                mark = Mark(
                    seq=record.seq, run=run.run, at=at, size=len(line), crc=_line_crc(line),
                    app_at=run.app_at, app_size=run.app_size, app_crc=run.app_crc,
                    app_seq=run.app_seq,
                )  # fmt: skip
                _append(log_path(app_id).parent / INDEX_FILENAME, mark)


def _append(path: Path, mark: Mark) -> None:
    # The leading newline ends a mark line a killed writer left torn, so this one stays whole.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, b"\n" + dump_line(mark.to_json()))
        finally:
            os.close(fd)
    except OSError:  # the index is a hint: a loader without it reads the whole log
        pass


# -- reading -------------------------------------------------------------------------------------


def read_marks(path: str | Path, *, tail: int | None = None) -> list[Mark]:
    """The well-formed marks of an index file, by offset; none if it is missing. With
    ``tail``, only those in its last ``tail`` bytes (the line cut there is dropped)."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = 0 if tail is None else max(size - tail, 0)
            handle.seek(start)
            data = handle.read()
    except OSError:
        return []
    if start:
        data = data[data.find(b"\n") + 1 :] if b"\n" in data else b""
    marks = []
    for line in data.split(b"\n"):
        parsed = _checked_json(line)
        mark = Mark.from_json(parsed) if parsed is not None else None
        if mark is not None:
            marks.append(mark)
    return sorted(marks, key=lambda m: m.at)


def _checked_json(line: bytes) -> dict[str, Any] | None:
    at = line.rfind(_CRC)
    if at < 0 or not line.endswith(b"}"):
        return None
    try:
        if binascii.crc32(line[:at] + b"}") != int(line[at + len(_CRC) : -1]):
            return None
        data = json.loads(line[:at] + b"}")
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _line_at(log: IO[bytes], at: int, size: int, crc: int) -> bytes | None:
    """The line (without its newline) at byte ``at`` if it is the one a mark names: ``size``
    bytes ending in a newline, right after a newline, carrying checksum ``crc`` that matches."""
    log.seek(max(at - 1, 0))
    data = log.read(size + (1 if at else 0))
    if at:
        if data[:1] != b"\n":
            return None
        data = data[1:]
    if len(data) != size or not data.endswith(b"\n"):
        return None
    raw = data[:-1]
    pos = raw.rfind(_CRC)
    if pos < 0 or raw[pos + len(_CRC) : -1] != b"%d" % crc:
        return None
    if binascii.crc32(raw[:pos] + b"}") != crc:
        return None
    return raw


def _app_at(log: IO[bytes], at: int, size: int, crc: int) -> AppRecord | None:
    raw = _line_at(log, at, size, crc)
    parsed = parse_line(raw, checked=True) if raw is not None else None
    return parsed[1] if parsed is not None and isinstance(parsed[1], AppRecord) else None


def _verified(log: IO[bytes], mark: Mark) -> bool:
    return (
        _line_at(log, mark.at, mark.size, mark.crc) is not None
        and _line_at(log, mark.app_at, mark.app_size, mark.app_crc) is not None
    )


class _Unknown(Exception):
    """The lines before a run cannot be told apart cheaply: read the whole log."""


def _app_before(
    path: Path, log: IO[bytes], marks: Sequence[Mark], pos: int, version: int
) -> AppRecord | None:
    """The ``app`` line a whole replay holds when it reaches byte ``pos`` (the last fresh one
    before it, else the first), walking back over marked regions (which hold no ``app`` line
    but their own first one) and reading the lines between them.

    Raises:
        _Unknown: a region does not end on a line boundary, or a mark does not verify.
    """
    first: AppRecord | tuple[int, int, int] | None = None  # the earliest app line seen so far
    while True:
        mark = next((m for m in reversed(marks) if m.end <= pos), None)
        if mark is not None and not _verified(log, mark):
            raise _Unknown
        start = mark.end if mark is not None else 0
        chunk = read_records(path, start, version=version if start else None, end=pos)
        if chunk.offset != pos:
            raise _Unknown
        apps = [r for r in chunk.records if isinstance(r, AppRecord)]
        fresh = [r for r in apps if r.sequence_id is None]
        if fresh:
            return fresh[-1]
        if apps:
            first = apps[0]
        if mark is None:
            break
        if mark.app_seq is None:
            first = (mark.app_at, mark.app_size, mark.app_crc)
            break
        first, pos = (mark.app_at, mark.app_size, mark.app_crc), mark.app_at
    if isinstance(first, tuple):
        found = _app_at(log, *first)
        if found is None:
            raise _Unknown
        return found
    return first


def find_chain(path: Path, app_id: str, seq: int | None) -> Chain | None:
    """The chain to the state after step ``seq`` (the last finished one if ``None``), read
    from the nearest marked snapshot on; ``None`` when the marks cannot answer for it (see the
    module docstring), and the caller replays the whole log instead."""
    marks = read_marks(path.parent / INDEX_FILENAME)
    if not marks:
        return None
    try:
        with open(path, "rb") as log:
            return _from_marks(path, log, app_id, seq, marks)
    except (OSError, _Unknown):
        return None


def _from_marks(
    path: Path, log: IO[bytes], app_id: str, seq: int | None, marks: list[Mark]
) -> Chain | None:
    first = log.readline()
    parsed = parse_line(first[:-1], checked=False) if first.endswith(b"\n") else None
    if parsed is None or not isinstance(parsed[1], FormatRecord):
        return None
    version = parsed[1].version
    if not 2 <= version <= READS_UP_TO:  # only checksummed lines can be verified in place
        return None
    size = os.fstat(log.fileno()).st_size
    usable = [m for m in marks if m.end <= size and (seq is None or m.seq <= seq)]
    for mark in reversed(usable[-_TRIES:]):
        if not _verified(log, mark):
            continue
        return _replay(path, log, app_id, seq, mark, marks, version)
    return None


def _replay(
    path: Path,
    log: IO[bytes],
    app_id: str,
    seq: int | None,
    mark: Mark,
    marks: list[Mark],
    version: int,
) -> Chain | None:
    run_app = _app_at(log, mark.app_at, mark.app_size, mark.app_crc)
    if run_app is None or run_app.run != mark.run:
        return None
    # Which app line names the application (what the whole replay would hold as History.app)
    # matters only when this run resumed: a fresh app line names it, and so does the first.
    before = None
    if run_app.sequence_id is not None:
        before = _app_before(
            path, log, [m for m in marks if m.end <= mark.app_at], mark.app_at, version
        )
    history = History(app_id=app_id, path=path)
    history.add(FormatRecord(version=version))
    if before is not None:
        history.add(before)
    history.add(run_app)
    starts, history.lowest_cut = history.fresh_starts, None
    records = _records_after(path, log, mark, marks, seq, version)
    if records is None:
        return None
    head = records[0] if records else None
    if not (isinstance(head, EndRecord) and head.seq == mark.seq and head.run == mark.run):
        return None
    if not head.has_snapshot:
        return None
    for record in records:
        history.add(record)
    if history.fresh_starts == starts:  # still the marked run's timeline, or a resume of it
        cut = history.lowest_cut
        # a later timeline went back before the snapshot (or the step asked for)
        if cut is not None and cut <= (mark.seq if seq is None else max(mark.seq, seq)):
            return None
    try:
        chain = history.chain(seq)
    except PersistenceError:  # the whole replay words the error (and may see more)
        return None
    if chain is None or (history.fresh_starts == starts and chain.target.seq < mark.seq):
        return None
    return chain


def _records_after(
    path: Path, log: IO[bytes], mark: Mark, marks: list[Mark], seq: int | None, version: int
) -> list[Record] | None:
    """The records the replay takes from the snapshot ``mark`` names on: every line after it,
    except, for a step ``seq`` inside the marked run, the lines between that step's end and
    the run's last mark after it (``later``): that mark vouches that they are the run's next
    steps in order, which change neither the state at ``seq`` nor what the lines after them
    do to it, so ``later``'s own line stands in for them. ``None``: a line is not where the
    marks say."""
    later = None
    if seq is not None:
        later = next(
            (
                m for m in reversed(marks)
                if m.app_at == mark.app_at and m.run == mark.run and m.seq > seq
                and m.at > mark.at
            ),
            None,
        )  # fmt: skip
    if later is None or not _verified(log, later):
        return list(read_records(path, mark.at, version=version).records)
    records: list[Record] = []
    log.seek(mark.at)
    while True:
        if log.tell() >= later.at:
            return None  # the step's end line is not in the run where the marks put it
        line = log.readline()
        if not line.endswith(b"\n"):
            return None
        parsed = parse_line(line[:-1], checked=True)
        if parsed is None:
            continue
        records.append(parsed[1])
        end = parsed[1]
        if isinstance(end, EndRecord) and end.finished and end.seq == seq:
            break
    records.extend(read_records(path, later.at, version=version).records)
    return records
