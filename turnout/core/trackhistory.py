"""Which tracking-log records rebuild the state after a step, and whether that chain is whole.

``History`` is fed the records of one log in order (``add``) and answers ``chain(seq)``: the
stored state to start from (the nearest snapshot, the state of a resume's ``app`` line, or the
application's starting state) and the ``end`` records to apply after it, through step ``seq``.
It is the only replay of a log: the local tracker's loader decodes and applies the chain, the
tracking UI applies it to stored values.

A chain is whole when the finished steps (``completed``/``failed`` ends) from its start to its
target have contiguous sequence ids. A missing or damaged ``end`` line breaks it: ``chain``
then raises ``PersistenceError`` naming the app, the log, the missing sequence ids and the fork
that starts again from the last whole step, rather than returning a state that skips a step.
A later snapshot starts a whole chain again, so steps after it load. A log in a newer format
than ``READS_UP_TO`` raises too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from turnout.core.errors import PersistenceError
from turnout.core.persistence import ParentPointer, PersistedStateData
from turnout.core.serde import TAG, Serde
from turnout.core.state import Change, State, apply_changes
from turnout.core.tracklog import (
    READS_UP_TO,
    REPR,
    AppRecord,
    BeginRecord,
    EndRecord,
    FormatRecord,
    Record,
    first_app,
    read_records,
)

__all__ = ["Chain", "History", "full_chain", "list_app_ids", "load_chain", "load_tracked"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Chain:
    """How to rebuild the state after step ``target.seq``.

    Attributes:
        app: the ``app`` line of the run the step belongs to (``None`` if it was lost).
        start: the stored state the chain starts from.
        ends: the finished steps to apply to ``start``, in order (the last is ``target``, unless
            ``start`` is the target's own snapshot: then it is empty).
        target: the step's ``end`` record.
        schema_version: the state schema version of the target's run (its app line's).
    """

    app: AppRecord | None
    start: dict[str, Any]
    ends: tuple[EndRecord, ...]
    target: EndRecord
    schema_version: int = 1


@dataclass(slots=True)
class _Entry:
    end: EndRecord
    base: dict[str, Any] | None  # the state before this step, from a resume's app line
    gap: tuple[int, int] | None  # sequence ids (first, last) missing just before this step
    lost_start: bool  # the line that started this run (an app line) is missing
    misplaced: bool = False  # the count went back with no app line: this line is suspect
    schema_version: int = 1  # of the run that logged it (a chain never leaves its run)


class History:
    """The finished steps of one log's current run; see the module docstring.

    Args:
        app_id: the application, for messages.
        path: its log, for messages.
    """

    def __init__(self, *, app_id: str, path: str | Path) -> None:
        self._app_id = app_id
        self.path = str(path)
        self.version: int | None = None
        self.app: AppRecord | None = None
        self._origin: dict[str, Any] | None = None  # the state before the run's first step
        self._origin_next = 0  # the sequence id of the run's first step
        self._entries: list[_Entry] = []
        self._where: dict[int, int] = {}  # sequence id -> index in _entries
        self._next: int | None = None  # the sequence id the next finished step must have
        self._base: dict[str, Any] | None = None  # pending state from a resume's app line
        self._begun = -1  # the highest sequence id begun in this run
        self._run: str | None = None  # the run id of the current run's app line
        self._schema_version = 1  # the current run's state schema version
        self._foreign: set[int] = set()  # steps whose end names another run (out of place)
        self._foreign_last = False  # such an end came after the last finished step
        # For a reader that replays a log from a snapshot on (turnout.core.trackindex): how many
        # runs began afresh, and the lowest sequence id a later timeline cut off since then.
        self.fresh_starts = 0
        self.lowest_cut: int | None = None

    @property
    def app_id(self) -> str:
        """The application, as its app line names it (else as the reader was told)."""
        return self.app.app_id if self.app is not None else self._app_id

    def add(self, record: Record) -> None:
        """Take the next record of the log."""
        if isinstance(record, EndRecord):
            if record.finished:
                self._finished(record)
        elif isinstance(record, BeginRecord):
            self._begun = max(self._begun, record.seq)
        elif isinstance(record, AppRecord):
            self._app(record)
        elif isinstance(record, FormatRecord) and self.version is None:
            self.version = record.version

    def _app(self, record: AppRecord) -> None:
        start = record.sequence_id
        if start is None or (self.app is None and not self._entries):
            # The first run (new, or resumed into a new log), or the app id reused afresh.
            self.app, self._origin, self._base = record, record.state, None
            self._entries, self._where = [], {}
            self._origin_next = 0 if start is None else start + 1
            self.fresh_starts, self.lowest_cut = self.fresh_starts + 1, None
        else:  # a resume: the run goes on from step `start`, from this line's state
            self._truncate(start + 1)
            self._base = record.state
            self.app = self.app or record
        self._next = 0 if start is None else start + 1
        self._begun = -1 if start is None else start
        self._run, self._foreign, self._foreign_last = record.run, set(), False
        self._schema_version = record.schema_version

    def _truncate(self, first_dropped: int) -> None:
        """Forget steps from ``first_dropped`` on: a later timeline replaces them."""
        keep = next(
            (i for i, e in enumerate(self._entries) if e.end.seq >= first_dropped),
            len(self._entries),
        )
        if keep < len(self._entries):
            cut = self._entries[keep].end.seq
            self.lowest_cut = cut if self.lowest_cut is None else min(self.lowest_cut, cut)
            del self._entries[keep:]
            self._where = {e.end.seq: i for i, e in enumerate(self._entries)}

    def _finished(self, end: EndRecord) -> None:
        if self._entries and self._entries[-1].end == end:
            return  # the same line twice: nothing new
        if self._run is not None and end.run is not None and end.run != self._run:
            # An end of another run: its app line was lost, or this line is out of place.
            # Neither it nor a chain through its sequence id can be trusted.
            self._foreign.add(end.seq)
            self._foreign_last = True
            return
        gap, lost = None, self._next is None
        misplaced = False
        if self._next is not None and end.seq > self._next:
            gap = (self._next, end.seq - 1)
        elif self._next is not None and end.seq < self._next:
            # The count went back with no app line: that line was lost, or this one is out
            # of place (even its snapshot cannot be trusted).
            misplaced = True
            self._truncate(end.seq)
        entry = _Entry(
            end=end, base=self._base, gap=gap, lost_start=lost, misplaced=misplaced,
            schema_version=self._schema_version,
        )  # fmt: skip
        self._entries.append(entry)
        self._where[end.seq] = len(self._entries) - 1
        self._base, self._next, self._foreign_last = None, end.seq + 1, False
        if self._run is None:
            self._run = end.run  # no app line read: the run's ends must still agree
        self._begun = max(self._begun, end.seq)

    # -- questions -------------------------------------------------------------------------------

    def last_seq(self) -> int | None:
        """The sequence id of the last finished step of the current run, if any."""
        return self._entries[-1].end.seq if self._entries else None

    def chain(self, seq: int | None = None) -> Chain | None:
        """The chain to the state after step ``seq`` (the last finished one if ``None``);
        ``None`` if the log holds no such step.

        Raises:
            PersistenceError: the log is damaged between the nearest snapshot and the step, or
                it is in a newer format.
        """
        self._check_version()
        if seq is None:
            if self._foreign_last:
                self._raise(self._next or 0, None, misplaced=max(self._foreign))
            last = self.last_seq()
            done = last if last is not None else (self._next - 1 if self._next is not None else -1)
            if self._begun > done + 1:  # later steps began, so these ones ended: lines lost
                self._raise(self._begun - 1, (done + 1, self._begun - 1))
            if last is None:
                return None
            seq = last
        index = self._where.get(seq)
        if seq in self._foreign:
            self._raise(seq, None, misplaced=seq)
        if index is None:
            for entry in self._entries:
                if entry.gap is not None and entry.gap[0] <= seq <= entry.gap[1]:
                    self._raise(seq, entry.gap)
            if self._next is not None and self._next <= seq < self._begun:
                self._raise(seq, (self._next, self._begun - 1))
            return None
        ends: list[EndRecord] = []
        start: dict[str, Any] | None = None
        for i in range(index, -1, -1):
            entry = self._entries[i]
            if entry.misplaced or entry.end.seq in self._foreign:
                self._raise(seq, None, misplaced=entry.end.seq)
            if entry.end.has_snapshot:
                start = entry.end.whole_snapshot()
                break
            ends.append(entry.end)
            if entry.gap is not None:
                self._raise(seq, entry.gap)
            if entry.lost_start:
                self._raise(seq, None)
            if entry.base is not None:
                start = entry.base
                break
        if start is None:
            start = self._origin
        if start is None:  # no app line and no snapshot: nothing to start from
            return self._raise(seq, None)
        ends.reverse()
        target = self._entries[index]
        return Chain(
            app=self.app,
            start=start,
            ends=tuple(ends),
            target=target.end,
            schema_version=target.schema_version,
        )

    def before(self, seq: int) -> tuple[dict[str, Any], tuple[EndRecord, ...]]:
        """The stored state step ``seq`` of the current run started from, as a start state and
        the finished steps to apply to it (the step's own resume base aside, which the caller
        holds). Raises ``PersistenceError`` as ``chain`` does, and when the run's starting
        state was lost with its app line."""
        self._check_version()
        previous = self.chain(seq - 1) if seq > 0 else None
        if previous is not None:
            return previous.start, previous.ends
        if self._origin is None:
            self._raise(seq, None)
        if seq != self._origin_next:  # step seq - 1 is neither in the log nor before its start
            self._raise(seq, (seq - 1, seq - 1))
        return self._origin, ()

    def _check_version(self) -> None:
        if self.version is not None and self.version > READS_UP_TO:
            raise PersistenceError(
                f"the tracking log of app {self.app_id!r} ({self.path}) is in format version "
                f"{self.version}; this turnout reads versions up to {READS_UP_TO}. Upgrade "
                f"turnout (pip install -U turnout) to load it."
            )

    def _last_whole(self, before: int) -> int | None:
        """The last step before ``before`` whose chain is whole."""
        whole: int | None = None
        ok = self._origin is not None
        for entry in self._entries:
            if entry.end.seq >= before:
                break
            linked = ok or entry.base is not None
            ok = (
                not entry.misplaced
                and entry.end.seq not in self._foreign
                and (
                    entry.end.has_snapshot
                    or (linked and entry.gap is None and not entry.lost_start)
                )
            )
            if ok:
                whole = entry.end.seq
        return whole

    def _raise(
        self, seq: int, missing: tuple[int, int] | None, *, misplaced: int | None = None
    ) -> NoReturn:
        if misplaced is not None:
            what = (
                f"the end line of sequence id {misplaced} does not follow from the lines "
                f"before it: an app line is missing, or a line is out of place"
            )
            first_bad = misplaced
        elif missing is None:
            what = "the app line that starts its run is missing or unreadable"
            first_bad = seq
        else:
            ids = str(missing[0]) if missing[0] == missing[1] else f"{missing[0]} to {missing[1]}"
            what = f"the end lines of sequence ids {ids} are missing or unreadable"
            first_bad = missing[0]
        whole = self._last_whole(first_bad)
        if whole is None:
            fix = "no earlier step is whole: start a new application (a new app id)"
        else:
            fix = (
                f"fork from the last whole step: ApplicationBuilder().initialize_from(tracker, "
                f"fork_from_app_id={self.app_id!r}, fork_from_sequence_id={whole}, "
                f"default_entrypoint=...) with a new app id"
            )
        raise PersistenceError(
            f"cannot rebuild the state of app {self.app_id!r} at sequence id {seq}: its tracking "
            f"log {self.path} is damaged ({what}). Nothing was guessed; {fix}."
        )


# -- loading (the local tracker's loader) --------------------------------------------------------


class _Unsaved:
    """A placeholder read back: the value it stands for was never logged."""

    __slots__ = ("text", "why")

    def __init__(self, text: Any, why: Any) -> None:
        self.text, self.why = text, why


def _decode(serde: Serde, data: Any) -> Any:
    if isinstance(data, dict) and data.get(TAG) == REPR:
        return _Unsaved(data.get("v"), data.get("why"))
    return serde.decode(data)


def _decode_state(serde: Serde, data: dict[str, Any]) -> State:
    return State({key: _decode(serde, value) for key, value in data.items()})


def full_chain(path: Path, app_id: str, sequence_id: int | None) -> Chain | None:
    """The chain to the state after step ``sequence_id`` (the last finished one if ``None``),
    from a replay of the whole log at ``path``; raises as ``History.chain`` does."""
    history = History(app_id=app_id, path=path)
    for record in read_records(path).records:
        history.add(record)
    return history.chain(sequence_id)


def load_tracked(
    path: Path,
    app_id: str,
    partition_key: str | None,
    sequence_id: int | None,
    serde: Serde,
    *,
    fast: Callable[[Path, str, int | None], Chain | None] | None = None,
) -> PersistedStateData | None:
    """``LocalTracker.load``: the state after step ``sequence_id`` (the last finished one if
    ``None``) of the log at ``path``, or ``None`` if the log or the step is not there.

    ``fast``: a reader that may find the chain without replaying the whole log
    (``turnout.core.trackindex.find_chain``); when it gives ``None`` the whole log decides.
    """
    if not path.is_file():
        return None
    chain = fast(path, app_id, sequence_id) if fast is not None else None
    if chain is None:
        chain = full_chain(path, app_id, sequence_id)
    if chain is None:
        return None
    return load_chain(chain, app_id, partition_key, serde, where=f"its tracking log {path}")


def load_chain(
    chain: Chain, app_id: str, partition_key: str | None, serde: Serde, *, where: str
) -> PersistedStateData | None:
    """The state ``chain`` rebuilds, decoded with ``serde`` (``None`` if ``partition_key`` is
    not the app's); ``where`` names the store in messages (``"its tracking log <path>"``).
    Every tracking store's loader ends here, whatever it read the chain from."""
    app = chain.app
    if partition_key is not None and (app is None or app.partition_key != partition_key):
        return None
    try:
        state = _decode_state(serde, chain.start)
        for end in chain.ends:
            changes = [Change(op, key, _decode(serde, v)) for op, key, v in end.changes]  # type: ignore[arg-type]
            state = apply_changes(state, changes)
    except PersistenceError:
        raise
    except Exception as exc:  # a value the serde cannot read back (its type is gone, ...)
        raise PersistenceError(
            f"cannot rebuild the state of app {app_id!r} at sequence id {chain.target.seq} from "
            f"{where}: {exc}"
        ) from exc
    unsaved = {k: v for k, v in state.get_all().items() if isinstance(v, _Unsaved)}
    if unsaved:
        shown = ", ".join(f"{k!r} (logged as {v.text!r}: {v.why})" for k, v in unsaved.items())
        raise PersistenceError(
            f"cannot load app {app_id!r} at sequence id {chain.target.seq} from {where}: "
            f"the tracker could not log these state values and kept only a "
            f"placeholder: {shown}. Resume from a persister (with_state_persister) instead, or "
            f"fork from a step before they were set; register a codec (DEFAULT_SERDE.register) "
            f"so that future steps log them."
        )
    target = chain.target
    return PersistedStateData(
        partition_key=app.partition_key if app is not None else partition_key,
        app_id=app_id,
        sequence_id=target.seq,
        position=target.action,
        state=state,
        created_at=dt.datetime.fromtimestamp(target.time, dt.UTC),
        status=target.status,  # type: ignore[arg-type]
        parent=_parent(app.parent if app is not None else None),
        schema_version=chain.schema_version,
    )


def _parent(data: dict[str, Any] | None) -> ParentPointer | None:
    if not data:
        return None
    return ParentPointer(
        app_id=data["app_id"],
        partition_key=data.get("partition_key"),
        sequence_id=data.get("sequence_id"),
    )


def list_app_ids(project_dir: Path, partition_key: str | None = None) -> list[str]:
    """The app ids tracked under ``project_dir`` (of one partition if given), newest first."""
    found: list[tuple[float, str]] = []
    if not project_dir.is_dir():
        return []
    for log in project_dir.glob("*/log.jsonl"):
        app = first_app(log)
        if app is None or (partition_key is not None and app.partition_key != partition_key):
            continue
        found.append((log.stat().st_mtime, app.app_id))
    return [app_id for _, app_id in sorted(found, reverse=True)]
