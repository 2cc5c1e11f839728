"""The integrity guarantee as a property: whatever records disappear from a stored history, every
load gives back exactly the state that was saved at that sequence id, or ``None`` (that record
itself is gone), or a ``PersistenceError`` — never a wrong state."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from turnout import ApplicationBuilder, State, action
from turnout.core.errors import PersistenceError
from turnout.core.memory import InMemoryPersister


@action(reads=["items", "total"], writes=["items", "total"])
def grow(state: State) -> State:
    n = len(state["items"])
    return state.append(items=n).increment(total=n)


@settings(max_examples=60, deadline=None)
@given(
    steps=st.integers(min_value=1, max_value=30),
    snapshot_every=st.integers(min_value=1, max_value=8),
    data=st.data(),
)
def test_a_load_is_exact_or_refused_whatever_records_are_missing(
    steps: int, snapshot_every: int, data: Any
) -> None:
    persister = InMemoryPersister(snapshot_every=snapshot_every)
    app = (
        ApplicationBuilder()
        .with_actions(grow)
        .with_transitions(("grow", "grow"))
        .with_state(items=[], total=0)
        .with_entrypoint("grow")
        .with_identifiers(app_id="app")
        .with_state_persister(persister)
        .build()
    )
    saved = []
    for _ in range(steps):
        app.step()
        saved.append(copy.deepcopy(app.state.get_all()))
    missing = data.draw(st.sets(st.integers(min_value=0, max_value=steps - 1)), label="missing")
    stored = persister.core.store._records[("", "app")]
    for sequence_id in missing:
        del stored[sequence_id]

    refusals = []
    for target in [*range(steps), None]:
        try:
            loaded = persister.load(None, "app", target)
        except PersistenceError as exc:
            refusals.append(str(exc))
            continue
        if loaded is None:
            assert target in missing
            continue
        assert target is None or loaded.sequence_id == target
        assert target is not None or loaded.sequence_id == steps - 1
        assert loaded.state.get_all() == saved[loaded.sequence_id]
    assert all("'app'" in message for message in refusals)
    assert refusals == [] or missing  # a whole history always loads
