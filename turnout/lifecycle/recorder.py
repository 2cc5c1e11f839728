"""``InMemoryExecutionRecorder``: a hook that keeps, in memory, what each step did.

For tests and notebooks: ``app = builder.with_hooks(recorder).build()``, run it, then read
``recorder.records``: one ``ExecutionRecord`` per step (failed ones too), with the action, its
inputs, result or exception, and the state keys it changed as ``StateChange``s (before and
after, telling a missing key from one holding ``None``). The keys come from the step's delta
(the changes the engine recorded), so the recorder never copies or compares whole states: a
state holding values that cannot be copied, or whose ``==`` does not return a bool (arrays),
costs nothing. Burr added the same names after 0.43.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from turnout.core.hooks import PostRunStepHook, PreRunStepHook

__all__ = ["ExecutionRecord", "InMemoryExecutionRecorder", "StateChange"]

_MISSING = object()


@dataclass(frozen=True, kw_only=True, slots=True)
class StateChange:
    """One state key a step changed: its value before and after, and whether it existed."""

    key: str
    before_exists: bool
    before: Any
    after_exists: bool
    after: Any


@dataclass(frozen=True, kw_only=True, slots=True)
class ExecutionRecord:
    """What one step did. ``result`` is ``None`` and ``exception`` set when it failed."""

    app_id: str
    partition_key: str | None
    sequence_id: int
    action: str
    inputs: Mapping[str, Any]
    result: Mapping[str, Any] | None
    exception: BaseException | None
    state_changes: tuple[StateChange, ...]


class InMemoryExecutionRecorder(PreRunStepHook, PostRunStepHook):
    """Record every step of the applications it is a hook of (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[ExecutionRecord] = []
        self._before: dict[tuple[str, str | None, int], Any] = {}

    @property
    def records(self) -> tuple[ExecutionRecord, ...]:
        """The steps recorded so far, in the order they ended."""
        with self._lock:
            return tuple(self._records)

    def clear(self) -> None:
        """Forget the steps recorded so far."""
        with self._lock:
            self._records.clear()

    def pre_run_step(
        self, *, app_id: str, partition_key: str | None, sequence_id: int, state: Any,
        **future_kwargs: Any,
    ) -> None:  # fmt: skip
        with self._lock:
            self._before[app_id, partition_key, sequence_id] = state  # immutable: no copy

    def post_run_step(
        self, *, app_id: str, partition_key: str | None, sequence_id: int, state: Any,
        action: Any, inputs: Mapping[str, Any] | None = None,
        result: Mapping[str, Any] | None = None, exception: BaseException | None = None,
        changes: Iterable[Any] = (), **future_kwargs: Any,
    ) -> None:  # fmt: skip
        with self._lock:
            before = self._before.pop((app_id, partition_key, sequence_id), None)
        keys = list(dict.fromkeys(change[1] for change in changes))
        record = ExecutionRecord(
            app_id=app_id,
            partition_key=partition_key,
            sequence_id=sequence_id,
            action=getattr(action, "name", str(action)),
            inputs=dict(inputs or {}),
            result=None if exception is not None else dict(result or {}),
            exception=exception,
            state_changes=() if exception is not None else _changes(keys, before, state),
        )
        with self._lock:
            self._records.append(record)


def _changes(keys: list[str], before: Any, after: Any) -> tuple[StateChange, ...]:
    out: list[StateChange] = []
    for key in keys:
        old = _value(before, key)
        new = _value(after, key)
        if old is new:  # e.g. a key set and deleted again, or set to the very same object
            continue
        out.append(
            StateChange(
                key=key,
                before_exists=old is not _MISSING,
                before=None if old is _MISSING else old,
                after_exists=new is not _MISSING,
                after=None if new is _MISSING else new,
            )
        )
    return tuple(out)


def _value(state: Any, key: str) -> Any:
    if state is None:
        return _MISSING
    try:
        return state.get(key, _MISSING)
    except Exception:  # a computed key outside a step (__SEQUENCE_ID), or a typed state's quirk
        return _MISSING
