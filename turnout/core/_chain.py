"""Stored chains of records: encoding a step, checking a chain is whole, rebuilding a state.

A state is stored as a *snapshot* followed by *deltas*, each delta applying to the record just
before it (``StorePersister.save`` writes a delta only for ``sequence_id == previous + 1``). So a
chain a store returns is whole exactly when it starts with a snapshot and its sequence ids are
contiguous up to the target. ``check_whole`` refuses any other chain — a row deleted by hand, a
half-restored backup — instead of replaying it into a silently wrong state.

A snapshot records the state schema version it was written under (``turnout.core.versions``):
version 1 is the plain encoded state (every record written before versions existed), a later
version wraps it as ``{"__turnout_schema__": n, "state": ...}``. A delta has no version of its
own: it is in its snapshot's, because a save after a migration is always a snapshot.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from turnout.core._serde_fields import whole_values
from turnout.core.errors import PersistenceError
from turnout.core.serde import DEFAULT_SERDE, Serde, _MissingDecoderError
from turnout.core.state import Change, State, apply_changes

if TYPE_CHECKING:
    from turnout.core.persistence import StepRecord

__all__ = [
    "DELTA",
    "SCHEMA_KEY",
    "SNAPSHOT",
    "Codec",
    "check_whole",
    "missing_latest",
    "orphaned",
    "snapshot_version",
]

SNAPSHOT, DELTA = "snapshot", "delta"
SCHEMA_KEY = "__turnout_schema__"


def _unwrap(data: object) -> tuple[object, int]:
    """The encoded state of a snapshot's JSON data and its schema version."""
    if isinstance(data, dict) and SCHEMA_KEY in data:
        version = data[SCHEMA_KEY]
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"the state schema version {version!r} is not an integer >= 1")
        if "state" not in data:
            raise ValueError(f"a snapshot with {SCHEMA_KEY!r} has no 'state'")
        return data["state"], version
    return data, 1


def snapshot_version(payload: str) -> int:
    """The state schema version a snapshot's payload was written under."""
    return _unwrap(json.loads(payload))[1]


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first} to {last}"


def check_whole(
    chain: Sequence[StepRecord],
    *,
    partition_key: str | None,
    app_id: str,
    latest: int | None = None,
) -> None:
    """Raise ``PersistenceError`` unless ``chain`` starts with a snapshot, has no gap and (when
    ``latest``, the app's latest sequence id as its app row records it, is given) reaches it.

    The message names the app, the missing sequence ids and the way out: fork from the last
    sequence id that is whole into a new app id, or delete the app.
    """
    missing: str | None = None
    note = ""
    whole: int | None = None  # the last sequence id that rebuilds from what is stored
    if chain[0].kind != SNAPSHOT:
        missing = f"the snapshot that sequence id {chain[0].sequence_id} (a delta) applies to"
    else:
        for before, after in itertools.pairwise(chain):
            if after.sequence_id != before.sequence_id + 1:
                missing = f"sequence id {_span(before.sequence_id + 1, after.sequence_id - 1)}"
                whole = before.sequence_id
                break
        else:
            if latest is not None and latest > chain[-1].sequence_id:
                missing = f"sequence id {_span(chain[-1].sequence_id + 1, latest)}"
                note = f" (the app's row records {latest} as its latest)"
                whole = chain[-1].sequence_id
    if missing is None:
        return
    if whole is not None:
        way_out = (
            f"Sequence id {whole} and the records before it are whole: continue from there in a "
            f"new app with ApplicationBuilder().with_identifiers(app_id=<new id>).initialize_from("
            f"persister, default_entrypoint=..., fork_from_app_id={app_id!r}, "
            f"fork_from_partition_key={partition_key!r}, fork_from_sequence_id={whole}), "
            f"or remove the app with persister.delete({app_id!r}, {partition_key!r})."
        )
    else:
        way_out = (
            f"Load an earlier sequence id to find a whole one and fork from it "
            f"(initialize_from(..., fork_from_app_id={app_id!r}, fork_from_sequence_id=N)), "
            f"or remove the app with persister.delete({app_id!r}, {partition_key!r})."
        )
    raise PersistenceError(
        f"the stored history of app {app_id!r} (partition {partition_key!r}) is incomplete: "
        f"{missing} is missing{note}, so sequence id {chain[-1].sequence_id} cannot be rebuilt "
        f"(it would load as a wrong state). {way_out}"
    )


def missing_latest(partition_key: str | None, app_id: str, latest: int) -> PersistenceError:
    """The error for an app whose row records ``latest`` but which has no record left to load it
    from (every record removed by hand: ``prune`` always keeps the latest)."""
    return PersistenceError(
        f"the stored history of app {app_id!r} (partition {partition_key!r}) is incomplete: its "
        f"row records sequence id {latest} as its latest, but sequence id {latest} is missing "
        f"and no record it could be rebuilt from is stored. Remove the app with "
        f"persister.delete({app_id!r}, {partition_key!r}), or restore its records from a backup."
    )


def orphaned(partition_key: str | None, app_id: str, last: int) -> PersistenceError:
    """The error for records whose app has no row: ``list_app_ids`` and ``prune`` cannot see them
    (left by a save racing a delete in turnout before the app row was locked by every save)."""
    return PersistenceError(
        f"app {app_id!r} (partition {partition_key!r}) has records up to sequence id {last} but "
        f"no app row: it was deleted while a writer was saving, and list_app_ids() and prune() no "
        f"longer see it. Remove what is left with persister.delete({app_id!r}, {partition_key!r})."
    )


@dataclass(kw_only=True)
class Codec:
    """Turns states and deltas into stored JSON text and chains of records back into a state."""

    serde: Serde = field(default_factory=lambda: DEFAULT_SERDE)

    def snapshot(self, state: State, version: int = 1) -> str:
        """The state as JSON, wrapped with its schema version unless that is 1 (a state with a
        key named like the wrapper's is wrapped at version 1 too, so it never reads as one)."""
        text = self.serde.dumps_state(state.get_all())
        if version == 1 and SCHEMA_KEY not in state:
            return text
        return f'{{"{SCHEMA_KEY}":{int(version)},"state":{text}}}'

    def delta(self, changes: Sequence[Change], state: State) -> str:
        """The changes as JSON; a value that cannot be encoded is named by its place in
        ``state`` (the state after them), e.g. ``$.messages[3].args`` for an appended item.
        A key with a field serde is stored whole (``register_field_serde``)."""
        stored = whole_values(changes, state._peek)
        added: dict[str, int] = {}  # items appended per key, to find where each one landed
        for op, key, value in stored:
            if op in ("append", "extend"):
                added[key] = added.get(key, 0) + (1 if op == "append" else len(value))
        position = {
            key: len(state._peek(key)) - count if key in state else 0
            for key, count in added.items()
        }
        encoded = []
        for op, key, value in stored:
            if op == "append":
                data = self.serde.encode(value, f"$.{key}[{position[key]}]")
                position[key] += 1
            elif op == "extend":
                data = [
                    self.serde.encode(item, f"$.{key}[{position[key] + i}]")
                    for i, item in enumerate(value)
                ]
                position[key] += len(value)
            elif op == "set":
                data = self.serde.encode_field(key, value)
            else:
                data = self.serde.encode(value, f"$.{key}")
            encoded.append([op, key, data])
        return json.dumps(encoded, separators=(",", ":"), ensure_ascii=False)

    def rebuild(self, chain: Sequence[StepRecord]) -> State:
        """The state at the last record of ``chain`` (checked with ``check_whole`` first)."""
        return self.rebuild_versioned(chain)[0]

    def rebuild_versioned(self, chain: Sequence[StepRecord]) -> tuple[State, int]:
        """``rebuild`` and the state schema version of the chain (its snapshot's)."""
        last: tuple[State, int] | None = None
        for _, state, version in self.replay(chain):
            last = state, version
        if last is None:
            raise PersistenceError("no snapshot to rebuild from")
        return last

    def replay(self, chain: Sequence[StepRecord]) -> Iterator[tuple[StepRecord, State, int]]:
        """Each record of ``chain`` with the state after it and that state's schema version;
        a later snapshot starts again from its own state (``turnout migrate`` replays an app's
        whole history this way, checked with ``check_whole`` segment by segment)."""
        state: State | None = None
        version = 1
        for record in chain:
            try:
                data = json.loads(record.payload)
                if record.kind == SNAPSHOT:
                    encoded, version = _unwrap(data)
                    state = State(self.serde.decode(encoded))
                elif record.kind != DELTA or state is None:
                    raise ValueError(f"a record of kind {record.kind!r} cannot follow here")
                else:
                    changes = [Change(op, key, self.serde.decode(value)) for op, key, value in data]
                    state = apply_changes(state, changes)
            except _MissingDecoderError as exc:
                raise PersistenceError(
                    f"the record of app {record.app_id!r} (partition {record.partition_key!r}) "
                    f"at sequence id {record.sequence_id} cannot be loaded in this process: "
                    f"{exc}. The record itself is intact."
                ) from exc
            except (ValueError, TypeError, KeyError, RecursionError) as exc:
                raise PersistenceError(
                    f"the record of app {record.app_id!r} (partition {record.partition_key!r}) "
                    f"at sequence id {record.sequence_id} is unreadable ({exc}); the records "
                    f"before it are intact: load an earlier sequence id, or delete the app."
                ) from exc
            yield record, state, version
