"""``InMemoryExecutionRecorder`` (Burr's name, added after 0.43): one record per step with the
action, inputs, result or exception, and the keys it changed, taken from the step's delta."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from turnout.core import ApplicationBuilder, State, action
from turnout.lifecycle import ExecutionRecord, InMemoryExecutionRecorder, StateChange


@action(reads=["n"], writes=["n"])
def add(state: State, by: int = 1) -> State:
    return state.update(n=state["n"] + by)


@action(reads=[], writes=["gone"])
def drop(state: State) -> State:
    return state.wipe(delete=["gone"])


@action(reads=[], writes=["fresh"])
def create(state: State) -> State:
    return state.update(fresh=None)


@action(reads=[], writes=[])
def explode(state: State) -> State:
    raise RuntimeError("boom")


def _app(recorder: InMemoryExecutionRecorder, entry: Any, **state: Any) -> Any:
    return (
        ApplicationBuilder()
        .with_actions(entry)
        .with_transitions((entry.__name__, entry.__name__))
        .with_state(**state)
        .with_entrypoint(entry.__name__)
        .with_identifiers(app_id="rec", partition_key="pk")
        .with_hooks(recorder)
        .build()
    )


def test_a_step_is_recorded_with_its_inputs_result_and_changes() -> None:
    recorder = InMemoryExecutionRecorder()
    app = _app(recorder, add, n=1)
    app.step(inputs={"by": 2})
    assert recorder.records == (
        ExecutionRecord(
            app_id="rec",
            partition_key="pk",
            sequence_id=0,
            action="add",
            inputs={"by": 2},
            result={},
            exception=None,
            state_changes=(
                StateChange(key="n", before_exists=True, before=1, after_exists=True, after=3),
            ),
        ),
    )


def test_a_deleted_key_is_recorded_as_no_longer_existing() -> None:
    recorder = InMemoryExecutionRecorder()
    _app(recorder, drop, gone=None).step()
    (change,) = recorder.records[0].state_changes
    assert (change.before_exists, change.before, change.after_exists) == (True, None, False)


def test_a_new_key_holding_none_is_recorded_as_not_existing_before() -> None:
    recorder = InMemoryExecutionRecorder()
    _app(recorder, create).step()
    assert recorder.records[0].state_changes == (
        StateChange(key="fresh", before_exists=False, before=None, after_exists=True, after=None),
    )


def test_a_failed_step_is_recorded_with_its_exception_and_no_changes() -> None:
    recorder = InMemoryExecutionRecorder()
    with pytest.raises(RuntimeError, match="boom"):
        _app(recorder, explode).step()
    (record,) = recorder.records
    assert (record.action, record.result, record.state_changes) == ("explode", None, ())
    assert isinstance(record.exception, RuntimeError)


def test_async_steps_are_recorded_and_clear_forgets_them() -> None:
    recorder = InMemoryExecutionRecorder()
    app = _app(recorder, add, n=0)
    asyncio.run(app.astep())
    assert recorder.records[0].state_changes[0].after == 1
    recorder.clear()
    assert recorder.records == ()


def test_values_that_cannot_be_copied_or_compared_do_not_disturb_it() -> None:
    class Handle:
        def __deepcopy__(self, memo: object) -> object:
            raise TypeError("not copyable")

        def __eq__(self, other: object) -> bool:
            raise ValueError("ambiguous")

        __hash__ = object.__hash__

    recorder = InMemoryExecutionRecorder()
    _app(recorder, add, n=0, handle=Handle()).step()
    assert [c.key for c in recorder.records[0].state_changes] == ["n"]
