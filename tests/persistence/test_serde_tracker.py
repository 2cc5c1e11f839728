"""The local tracker stores what persisters store: every built-in codec's sample logs and loads
back with its type (a crafted log naming other code: ``test_serde_trust``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tests.persistence.samples import SAMPLES, same
from turnout.core import ApplicationBuilder, State, action
from turnout.core.tracking import LocalTracker


@action(reads=[], writes=["done"])
def finish(state: State) -> State:
    return state.update(done=True)


def _tracked(tmp_path: Path, values: dict[str, Any]) -> LocalTracker:
    tracker = LocalTracker("types", tmp_path / "tracking")
    app = (
        ApplicationBuilder()
        .with_actions(finish)
        .with_transitions()
        .with_state(**values)
        .with_entrypoint("finish")
        .with_tracker(tracker)
        .with_identifiers(app_id="types")
        .build()
    )
    app.step()
    return tracker


def test_every_built_in_sample_round_trips_through_the_tracker(tmp_path: Path) -> None:
    values = {**SAMPLES, "nan": math.nan}
    loaded = _tracked(tmp_path, values).load(None, "types")
    assert loaded is not None
    got = loaded["state"].get_all()
    for key, value in values.items():
        assert same(value, got[key]), key
    assert got["done"] is True
