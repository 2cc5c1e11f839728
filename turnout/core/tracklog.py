"""The tracking-log format, owned in one place: typed records, the line codec and the reader.

A tracking log is UTF-8 text, one JSON object per line (field ``t`` names the record kind).
Every kind is a frozen dataclass below with ``to_json()`` (what a writer puts on the line) and
a strict parser (what a reader accepts): a line that is not JSON, not an object, of an unknown
kind, with a missing or ill-typed field, or whose checksum does not match is *malformed*:
readers skip it and count it (``LogChunk.bad_lines``), never guess at it.

Format version 2 (``FORMAT_VERSION``) ends every line with ``"crc": <CRC-32 of the line's bytes
without that field>``, so a byte damaged inside a value is caught rather than read as another
value; version 1 lines (no checksum) are still read. A log written by a newer turnout
(``format`` line above ``READS_UP_TO``) is read for listing, but rebuilding a state from it
raises ``PersistenceError`` (see ``turnout.core.trackhistory``): its fields may mean something
this version does not know.

The same reader serves the local tracker's loader, the tracking UI, ``turnout test-case`` and
``turnout export-otel``; a new record kind touches this module only.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, TypeAlias

from turnout.core.tracknames import app_dir_name as app_dir_name
from turnout.core.tracknames import is_safe_name as is_safe_name
from turnout.core.tracksnapshot import LazySnapshot, split_snapshot
from turnout.core.tracksnapshot import apply_stored_changes as apply_stored_changes

__all__ = [
    "FINISHED",
    "FORMAT_VERSION",
    "READS_UP_TO",
    "REPR",
    "AppRecord",
    "AttrRecord",
    "BeginRecord",
    "ChildRecord",
    "EndRecord",
    "FormatRecord",
    "LogChunk",
    "Record",
    "SpanEndRecord",
    "SpanStartRecord",
    "StreamEndRecord",
    "StreamFirstRecord",
    "StreamStartRecord",
    "app_dir_name",
    "apply_stored_changes",
    "dump_line",
    "first_app",
    "is_safe_name",
    "iter_records",
    "parse_line",
    "read_records",
]

FORMAT_VERSION = 2  # what this turnout writes
READS_UP_TO = 2  # the newest version whose states this turnout rebuilds
# End statuses that took a sequence id (and may have changed the state; a suspended step did not).
FINISHED = ("completed", "failed", "suspended")
REPR = "repr"  # tag of a value logged as a placeholder: ``{"__turnout__": "repr", "v", "why"}``
_CRC = b',"crc":'


class _Malformed(ValueError):
    """A line that parses as JSON but is not a record of this format."""


def _get(data: dict[str, Any], key: str, kinds: tuple[type, ...], *, optional: bool = False) -> Any:
    if key not in data:
        if optional:
            return None
        raise _Malformed(key)
    value = data[key]
    if value is None and optional:
        return None
    if isinstance(value, bool) and bool not in kinds:  # True is an int to isinstance
        raise _Malformed(key)
    if not isinstance(value, kinds):
        raise _Malformed(key)
    return value


_NUM = (int, float)
_STR = (str,)
_INT = (int,)
_DICT = (dict,)


@dataclass(frozen=True, kw_only=True, slots=True)
class FormatRecord:
    """The first line of a log: the format version it is written in."""

    KIND: ClassVar[str] = "format"
    version: int

    def to_json(self) -> dict[str, Any]:
        return {"t": self.KIND, "version": self.version}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FormatRecord:
        return cls(version=_get(data, "version", _INT))


@dataclass(frozen=True, kw_only=True, slots=True)
class AppRecord:
    """An application was built: its identity, graph and the (stored) state it starts from;
    ``sequence_id`` is the last step already done (``None`` for a new application); ``run``
    identifies this build, and the ``end`` lines that follow it name it."""

    KIND: ClassVar[str] = "app"
    app_id: str
    partition_key: str | None
    time: float
    sequence_id: int | None
    state: dict[str, Any]
    graph: dict[str, Any]
    parent: dict[str, Any] | None = None
    spawning_parent: dict[str, Any] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    run: str | None = None
    schema_version: int = 1  # of the state: this run's (turnout.core.versions); 1 is not written

    def to_json(self) -> dict[str, Any]:
        out = {
            "t": self.KIND, "app_id": self.app_id, "partition_key": self.partition_key,
            "time": self.time, "sequence_id": self.sequence_id, "state": self.state,
            "graph": self.graph, "parent": self.parent, "spawning_parent": self.spawning_parent,
        }  # fmt: skip
        if self.tags:
            out["tags"] = self.tags
        if self.run is not None:
            out["run"] = self.run
        if self.schema_version != 1:  # lines before versions existed (and of version 1) omit it
            out["schema_version"] = self.schema_version
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AppRecord:
        tags = _get(data, "tags", _DICT, optional=True) or {}
        return cls(
            app_id=_get(data, "app_id", _STR),
            partition_key=_get(data, "partition_key", _STR, optional=True),
            time=_get(data, "time", _NUM),
            sequence_id=_get(data, "sequence_id", _INT, optional=True),
            state=_get(data, "state", _DICT),
            graph=_get(data, "graph", _DICT, optional=True) or {},
            parent=_pointer(data, "parent"),
            spawning_parent=_pointer(data, "spawning_parent"),
            tags={str(k): str(v) for k, v in tags.items()},
            run=_get(data, "run", _STR, optional=True),
            schema_version=max(_get(data, "schema_version", _INT, optional=True) or 1, 1),
        )


def _pointer(data: dict[str, Any], key: str) -> dict[str, Any] | None:
    pointer = _get(data, key, _DICT, optional=True)
    if pointer:
        _get(pointer, "app_id", _STR)
        _get(pointer, "sequence_id", _INT, optional=True)
    return pointer or None


@dataclass(frozen=True, kw_only=True, slots=True)
class BeginRecord:
    """An attempt of step ``seq`` starts, with the inputs the caller passed (stored form)."""

    KIND: ClassVar[str] = "begin"
    seq: int
    action: str
    time: float
    attempt: int = 1
    inputs: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "t": self.KIND, "seq": self.seq, "action": self.action, "time": self.time,
            "attempt": self.attempt, "inputs": self.inputs,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BeginRecord:
        return cls(
            seq=_get(data, "seq", _INT),
            action=_get(data, "action", _STR),
            time=_get(data, "time", _NUM),
            attempt=_get(data, "attempt", _INT, optional=True) or 1,
            inputs=_get(data, "inputs", _DICT, optional=True) or {},
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class EndRecord:
    """An attempt of step ``seq`` ended. ``changes`` are ``(op, key, stored value)``;
    ``snapshot`` is the whole state after it (every ``snapshot_every`` steps), or, read with
    ``lazy=True``, ``lazy_snapshot`` holds its stored bytes (``has_snapshot`` and
    ``whole_snapshot()`` answer for both); ``run`` is the id of the ``app`` line it follows,
    so a reader knows which run an end belongs to even when that line was lost or this one is
    out of place."""

    KIND: ClassVar[str] = "end"
    _OPS: ClassVar[frozenset[str]] = frozenset({"set", "append", "extend", "increment", "delete"})
    seq: int
    action: str
    time: float
    status: str
    attempt: int = 1
    result: Any = None
    error: str | None = None
    changes: tuple[tuple[str, str, Any], ...] = ()
    snapshot: dict[str, Any] | None = None
    run: str | None = None
    suspension: dict[str, Any] | None = None  # status "suspended": channel, schema, metadata
    lazy_snapshot: LazySnapshot | None = None

    @property
    def has_snapshot(self) -> bool:
        return self.snapshot is not None or self.lazy_snapshot is not None

    def whole_snapshot(self) -> dict[str, Any] | None:
        """The snapshot, decoded now if it was read lazily (raises ``PersistenceError`` when
        its bytes are not a JSON object)."""
        if self.snapshot is not None or self.lazy_snapshot is None:
            return self.snapshot
        return self.lazy_snapshot.decode()

    @property
    def finished(self) -> bool:
        """It took its sequence id and changed the state (``completed`` or ``failed``)."""
        return self.status in FINISHED

    def to_json(self) -> dict[str, Any]:
        out = {
            "t": self.KIND, "seq": self.seq, "action": self.action, "time": self.time,
            "attempt": self.attempt, "status": self.status, "result": self.result,
            "error": self.error, "changes": [list(change) for change in self.changes],
        }  # fmt: skip
        snapshot = self.whole_snapshot()
        if snapshot is not None:
            out["snapshot"] = snapshot
        if self.run is not None:
            out["run"] = self.run
        if self.suspension is not None:
            out["suspension"] = self.suspension
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EndRecord:
        changes = []
        for change in _get(data, "changes", (list,)):
            if not (isinstance(change, list) and len(change) == 3):
                raise _Malformed("changes")
            op, key, value = change
            if op not in cls._OPS or not isinstance(key, str):
                raise _Malformed("changes")
            changes.append((op, key, value))
        return cls(
            seq=_get(data, "seq", _INT),
            action=_get(data, "action", _STR),
            time=_get(data, "time", _NUM),
            status=_get(data, "status", _STR),
            attempt=_get(data, "attempt", _INT, optional=True) or 1,
            result=data.get("result"),
            error=_get(data, "error", _STR, optional=True),
            changes=tuple(changes),
            snapshot=_get(data, "snapshot", _DICT, optional=True),
            run=_get(data, "run", _STR, optional=True),
            suspension=_get(data, "suspension", _DICT, optional=True),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class SpanStartRecord:
    """A span opened inside step ``seq``; ``span`` is its uid (``"<seq>:<i>.<j>"``)."""

    KIND: ClassVar[str] = "span_start"
    seq: int
    span: str
    parent: str | None
    name: str
    time: float
    dependencies: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out = {
            "t": self.KIND, "seq": self.seq, "span": self.span, "parent": self.parent,
            "name": self.name, "time": self.time,
        }  # fmt: skip
        if self.dependencies:
            out["dependencies"] = list(self.dependencies)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SpanStartRecord:
        return cls(
            seq=_get(data, "seq", _INT),
            span=_get(data, "span", _STR),
            parent=_get(data, "parent", _STR, optional=True),
            name=_get(data, "name", _STR),
            time=_get(data, "time", _NUM),
            dependencies=tuple(
                str(d) for d in _get(data, "dependencies", (list,), optional=True) or ()
            ),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class SpanEndRecord:
    """A span closed; ``error`` is ``"Type: message"`` when an exception left it."""

    KIND: ClassVar[str] = "span_end"
    seq: int
    span: str
    parent: str | None
    time: float
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "t": self.KIND, "seq": self.seq, "span": self.span, "parent": self.parent,
            "time": self.time, "error": self.error,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SpanEndRecord:
        return cls(
            seq=_get(data, "seq", _INT),
            span=_get(data, "span", _STR),
            parent=_get(data, "parent", _STR, optional=True),
            time=_get(data, "time", _NUM),
            error=_get(data, "error", _STR, optional=True),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class AttrRecord:
    """An attribute logged in step ``seq`` (on span ``span``, or the whole step if ``None``)."""

    KIND: ClassVar[str] = "attr"
    seq: int
    span: str | None
    key: str
    value: Any
    time: float

    def to_json(self) -> dict[str, Any]:
        return {
            "t": self.KIND, "seq": self.seq, "span": self.span, "key": self.key,
            "value": self.value, "time": self.time,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AttrRecord:
        return cls(
            seq=_get(data, "seq", _INT),
            span=_get(data, "span", _STR, optional=True),
            key=_get(data, "key", _STR),
            value=data.get("value"),
            time=_get(data, "time", _NUM),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class StreamStartRecord:
    KIND: ClassVar[str] = "stream_start"
    seq: int
    time: float

    def to_json(self) -> dict[str, Any]:
        return {"t": self.KIND, "seq": self.seq, "time": self.time}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StreamStartRecord:
        return cls(seq=_get(data, "seq", _INT), time=_get(data, "time", _NUM))


@dataclass(frozen=True, kw_only=True, slots=True)
class StreamFirstRecord:
    KIND: ClassVar[str] = "stream_first"
    seq: int
    time: float

    def to_json(self) -> dict[str, Any]:
        return {"t": self.KIND, "seq": self.seq, "time": self.time}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StreamFirstRecord:
        return cls(seq=_get(data, "seq", _INT), time=_get(data, "time", _NUM))


@dataclass(frozen=True, kw_only=True, slots=True)
class StreamEndRecord:
    KIND: ClassVar[str] = "stream_end"
    seq: int
    time: float
    items: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "t": self.KIND, "seq": self.seq, "time": self.time, "items": self.items,
            "error": self.error,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StreamEndRecord:
        return cls(
            seq=_get(data, "seq", _INT),
            time=_get(data, "time", _NUM),
            items=_get(data, "items", _INT, optional=True) or 0,
            error=_get(data, "error", _STR, optional=True),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class ChildRecord:
    """In a parent's log: an application forked from step ``seq`` (``kind`` ``"fork"``) or
    spawned by it (``"spawn"``)."""

    KIND: ClassVar[str] = "child"
    kind: str
    child_app_id: str
    child_partition_key: str | None
    seq: int | None
    time: float

    def to_json(self) -> dict[str, Any]:
        return {
            "t": self.KIND, "kind": self.kind, "child_app_id": self.child_app_id,
            "child_partition_key": self.child_partition_key, "seq": self.seq, "time": self.time,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChildRecord:
        return cls(
            kind=_get(data, "kind", _STR),
            child_app_id=_get(data, "child_app_id", _STR),
            child_partition_key=_get(data, "child_partition_key", _STR, optional=True),
            seq=_get(data, "seq", _INT, optional=True),
            time=_get(data, "time", _NUM),
        )


Record: TypeAlias = (
    FormatRecord | AppRecord | BeginRecord | EndRecord | SpanStartRecord | SpanEndRecord
    | AttrRecord | StreamStartRecord | StreamFirstRecord | StreamEndRecord | ChildRecord
)  # fmt: skip
_ALL_KINDS = (
    FormatRecord, AppRecord, BeginRecord, EndRecord, SpanStartRecord, SpanEndRecord, AttrRecord,
    StreamStartRecord, StreamFirstRecord, StreamEndRecord, ChildRecord,
)  # fmt: skip
_KINDS: dict[str, Callable[[dict[str, Any]], Record]] = {k.KIND: k.from_json for k in _ALL_KINDS}


# -- lines ---------------------------------------------------------------------------------------


def dump_line(data: dict[str, Any], *, ascii_only: bool = False) -> bytes:
    """One log line for ``data`` (a record's ``to_json()``), checksummed, ending in ``\\n``.

    Raises what ``json.dumps`` raises for data JSON cannot hold (the tracker falls back to
    placeholders), and ``UnicodeEncodeError`` for lone surrogates unless ``ascii_only``.
    """
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=ascii_only).encode("utf-8")
    return b'%s,"crc":%d}\n' % (body[:-1], binascii.crc32(body))


def parse_line(
    raw: bytes, *, checked: bool, lazy: bool = False
) -> tuple[dict[str, Any], Record] | None:
    """The JSON object and typed record of one line (without its ``\\n``), or ``None`` if it
    is malformed. With ``checked`` (a version 2 log) a line without its checksum is malformed.
    With ``lazy``, a long ``end`` line's snapshot is left in its bytes
    (``turnout.core.tracksnapshot``; the JSON object then has no ``snapshot``)."""
    split = split_snapshot(raw) if lazy else None
    try:
        data, stored = split if split is not None else (json.loads(raw), None)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if not isinstance(data, dict):
        return None
    crc = data.pop("crc", None)
    if crc is None:
        if checked:
            return None
    else:
        at = raw.rfind(_CRC)
        if type(crc) is not int or at < 0 or binascii.crc32(raw[:at] + b"}") != crc:
            return None
    parse = _KINDS.get(data.get("t"))  # type: ignore[arg-type]
    if parse is None:
        return None
    try:
        record = parse(data)
    except (_Malformed, TypeError, AttributeError):
        return None
    if stored is not None and isinstance(record, EndRecord):
        record = replace(record, lazy_snapshot=stored)
    return data, record


@dataclass(frozen=True, kw_only=True, slots=True)
class LogChunk:
    """What one read of a log gave.

    Attributes:
        records: the well-formed records, in log order.
        raw: their JSON objects (checksum removed), aligned with ``records``.
        offset: the byte offset after the last complete line: where the next read starts (a
            torn last line, still being written or cut by a killed writer, is left unread).
        bad_lines: how many complete lines were malformed and skipped.
        version: the format version of the log if its ``format`` line was read, else the
            ``version`` passed in.
    """

    records: tuple[Record, ...]
    raw: tuple[dict[str, Any], ...]
    offset: int
    bad_lines: int
    version: int | None


def read_records(
    path: str | Path,
    offset: int = 0,
    *,
    version: int | None = None,
    end: int | None = None,
    lazy: bool = False,
) -> LogChunk:
    """The records of the log at ``path`` from byte ``offset`` (see ``LogChunk``).

    ``version``: the log's format version when an earlier read saw its ``format`` line (a
    reader going on from ``offset`` passes ``LogChunk.version`` back), so version 2 lines are
    held to their checksum. ``end``: read no further than this byte offset. ``lazy``: long
    snapshots stay unparsed until used (``parse_line``).
    """
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read() if end is None else handle.read(max(end - offset, 0))
    end = data.rfind(b"\n") + 1
    records: list[Record] = []
    raws: list[dict[str, Any]] = []
    bad = 0
    for line in data[:end].split(b"\n")[:-1]:
        parsed = parse_line(line, checked=version is not None and version >= 2, lazy=lazy)
        if parsed is None:
            bad += 1 if line.strip() else 0  # a blank line is a torn line's healed end
            continue
        raw, record = parsed
        if isinstance(record, FormatRecord) and version is None:
            version = record.version
        records.append(record)
        raws.append(raw)
    return LogChunk(
        records=tuple(records), raw=tuple(raws), offset=offset + end, bad_lines=bad,
        version=version,
    )  # fmt: skip


def iter_records(path: str | Path, offset: int = 0) -> Iterator[tuple[dict[str, Any], Record]]:
    """The well-formed records of a log from byte ``offset``, with their JSON objects, read
    lazily line by line (``read_records``' rules, without the counts): a reader that needs only
    the first records (the ``app`` line) stops early."""
    version: int | None = None
    with open(path, "rb") as handle:
        handle.seek(offset)
        for line in handle:
            if not line.endswith(b"\n"):
                return  # torn: a writer was killed mid-line (or is writing it now)
            parsed = parse_line(line[:-1], checked=version is not None and version >= 2)
            if parsed is None:
                continue
            if isinstance(parsed[1], FormatRecord) and version is None:
                version = parsed[1].version
            yield parsed


def iter_raw(path: str | Path, offset: int = 0) -> Iterator[dict[str, Any]]:
    """The JSON objects of the well-formed records of a log (``read_log``'s form)."""
    return (raw for raw, _ in iter_records(path, offset))


def first_app(path: str | Path) -> AppRecord | None:
    """The first ``app`` record of a log (its identity), reading no further than it."""
    return next((r for _, r in iter_records(path) if isinstance(r, AppRecord)), None)
