"""Stored states: a snapshot kept in its bytes until needed (``LazySnapshot``), and the replay
of stored changes on stored values (``apply_stored_changes``). Stdlib only.

An ``end`` record's snapshot is the whole state after its step (every ``snapshot_every``
steps); on a long application holding a big value it is most of the log's bytes (a state of a
100,000-int list makes a 600 KB line). A page listing steps never needs it, so a reader that
asks for lazy snapshots (``tracklog.parse_line(..., lazy=True)``, ``read_records(..., lazy=
True)``) parses such a line without its snapshot (``split_snapshot``) and keeps the snapshot's
bytes: ``LazySnapshot.decode`` parses them when a state is rebuilt from that step.

The split is exact or not made: the line must be a checksummed ``end`` line longer than
``LAZY_BYTES`` whose top level reads ``..., "snapshot": {...}[, "run": "..."], "crc": N}``
(the order ``EndRecord.to_json`` writes), and the line without the snapshot must parse as a
JSON object, which it does only when the cut was made at the top level (a cut inside a nested
value leaves its brackets unbalanced). Anything else is parsed whole, as before; cut bytes
that do not parse on their own are read from the whole line when decoded. A snapshot that is
not a JSON object after all (a line damaged by its writer, its checksum made over the damage)
raises ``PersistenceError`` when decoded: the steps still list, and only the states rebuilt
from that snapshot are refused (read whole, the line would have been skipped, its step shown
as never finished).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from turnout.core.errors import PersistenceError

__all__ = ["LAZY_BYTES", "LazySnapshot", "apply_stored_changes", "split_snapshot"]

LAZY_BYTES = 16_384  # lines shorter than this are parsed whole: splitting would not pay
_KEY = b',"snapshot":{'
_VALUE_AT = len(_KEY) - 1  # the snapshot's value starts at its opening brace
_RUN = b',"run":"'
_CRC = b',"crc":'
_SUSPENSION = b',"suspension":'
_TRIES = 4  # nested "snapshot" keys tried before parsing the line whole
_KEPT = 4  # decoded snapshots kept (a line's bytes hash once: a lookup is cheap)


@dataclass(frozen=True, slots=True)
class LazySnapshot:
    """An end line's bytes and where its snapshot lies in them, parsed on demand."""

    line: bytes
    start: int
    end: int

    def decode(self) -> dict[str, Any]:
        """The snapshot as its stored JSON object (serde's tagged values left as they are);
        the last few decoded are kept (a step's states before and after start from the same
        snapshot). Treat it as read-only, as a snapshot read whole is.

        Raises:
            PersistenceError: the snapshot is not a JSON object.
        """
        return _recent(self)


@functools.lru_cache(maxsize=_KEPT)
def _recent(snapshot: LazySnapshot) -> dict[str, Any]:
    return _decode(snapshot.line, snapshot.start, snapshot.end)


def _decode(line: bytes, start: int, end: int) -> dict[str, Any]:
    # A module name: tests count the snapshots a page decodes.
    try:
        value = json.loads(line[start:end])
    except (ValueError, RecursionError):
        # Not the shape split_snapshot expects after all: read the line whole, as before.
        try:
            value = json.loads(line).get("snapshot")
        except (ValueError, RecursionError, AttributeError) as error:
            raise PersistenceError(
                f"a state snapshot in the tracking log is not valid JSON ({error}): the "
                "states rebuilt from it cannot be shown; the other steps still load."
            ) from None
    if not isinstance(value, dict):
        raise PersistenceError(
            f"a state snapshot in the tracking log is a {type(value).__name__}, not an "
            "object: the states rebuilt from it cannot be shown; the other steps still load."
        )
    return value


def split_snapshot(raw: bytes) -> tuple[dict[str, Any], LazySnapshot] | None:
    """The JSON object of an ``end`` line without its snapshot (its checksum field kept), and
    the snapshot's bytes; ``None`` when the line is short or not of the shape this reads
    exactly (the caller parses it whole)."""
    if len(raw) < LAZY_BYTES:
        return None
    crc_at = raw.rfind(_CRC)
    at = raw.find(_KEY)
    if raw.find(_SUSPENSION, max(at, 0)) >= 0:
        return None  # a suspended step's line (or a state naming that key): parsed whole
    for _ in range(_TRIES):
        if at < 0 or crc_at < at:
            return None
        run = raw.rfind(_RUN, at, crc_at)
        end = run if run >= 0 else crc_at
        try:
            data = json.loads(raw[:at] + raw[end:])
        except (ValueError, RecursionError):
            at = raw.find(_KEY, at + 1)  # a "snapshot" key nested in an earlier value
            continue
        shaped = isinstance(data, dict) and data.get("t") == "end"
        if not shaped or (run >= 0 and "run" not in data):
            return None
        return data, LazySnapshot(raw, at + _VALUE_AT, end)
    return None


def apply_stored_changes(
    state: dict[str, Any], changes: tuple[tuple[str, str, Any], ...] | list[Any]
) -> dict[str, Any]:
    """``state`` after ``changes``, on stored (encoded) values, without decoding them (what the
    UI shows); ``state`` itself is not touched."""
    out = dict(state)
    for op, key, value in changes:
        if op == "set":
            out[key] = value
        elif op == "delete":
            out.pop(key, None)
        elif op == "append":
            current = out.get(key)
            out[key] = [*current, value] if isinstance(current, list) else [value]
        elif op == "extend":
            current = out.get(key)
            extra = value if isinstance(value, list) else [value]
            out[key] = [*current, *extra] if isinstance(current, list) else list(extra)
        elif op == "increment":
            current = out.get(key, 0)
            both_numbers = isinstance(current, (int, float)) and isinstance(value, (int, float))
            out[key] = current + value if both_numbers else value
    return out
