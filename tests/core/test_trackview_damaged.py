"""The tracking UI's log reader (``turnout.core.trackview``, through
``turnout.core.trackfiles.TrackingIndex``) on damaged logs: damaged steps show an error, never a
wrong state.

The tracker's own loader is tested the same way in tests/core/test_tracklog.py and
test_tracklog_fuzz.py, whose helpers and damaged-log strategies these tests reuse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.test_tracklog import (
    APP,
    _lines,
    _resumed_log,
    drop_end,
    newer,
    run_steps,
    tracker,
)
from tests.core.test_tracklog_fuzz import (
    _INDEX,
    FUZZ,
    Damage,
    _damaged,
    damages,
    whole,
)
from turnout.core import trackfiles, trackview
from turnout.core.errors import PersistenceError
from turnout.core.tracking import LocalTracker
from turnout.core.tracklog import FINISHED

__all__ = ["tracker", "whole"]  # fixtures, imported for pytest to find


# -- the UI's reader -------------------------------------------------------------------------------


def test_the_ui_shows_damaged_steps_as_errors_and_the_others_as_they_were(
    tracker: LocalTracker, tmp_path: Path
) -> None:
    path = run_steps(tracker, 7)
    drop_end(path, 2)
    with path.open("a") as handle:
        handle.write("garbage\n")
    log = trackfiles.TrackingIndex(tmp_path).app("proj", APP)
    assert log is not None
    assert log.bad_lines == 1
    (summary,) = trackfiles.TrackingIndex(tmp_path).apps("proj")
    assert summary.bad_lines == 1
    assert [s.seq for s in log.step_list()] == list(range(7))
    assert log.state_after(1) == {"n": 2}
    assert log.state_after(5) == {"n": 6}
    for seq in (2, 3):
        with pytest.raises(PersistenceError, match="sequence ids 2"):
            log.state_after(seq)
    with pytest.raises(PersistenceError, match="sequence ids 2"):
        log.state_before(3)


def test_the_ui_lists_a_newer_log_and_refuses_its_states(
    tracker: LocalTracker, tmp_path: Path
) -> None:
    path = run_steps(tracker, 2)
    newer(path)
    log = trackfiles.TrackingIndex(tmp_path).app("proj", APP)
    assert log is not None
    assert log.newer_format
    assert len(log.step_list()) == 2
    with pytest.raises(PersistenceError, match="format version"):
        log.state_after(1)


def test_the_ui_forgets_steps_a_resume_from_an_earlier_step_replaces(
    tracker: LocalTracker, tmp_path: Path
) -> None:
    path = _resumed_log(tracker)
    lines = _lines(path)
    resume = [i for i, line in enumerate(lines) if b'"t":"app"' in line][1]
    path.write_bytes(b"".join(lines[: resume + 1]))
    log = trackview.AppLog(path)
    log.refresh()
    assert [s.seq for s in log.step_list()] == [0, 1]  # steps 2-4 of the old timeline: gone
    path.write_bytes(b"".join(lines))
    log.refresh()
    assert [s.seq for s in log.step_list()] == [0, 1, 2, 3]
    assert log.state_before(2) == {"n": 50}
    assert log.state_after(3) == {"n": 52}


@FUZZ
@given(chosen=st.lists(damages, min_size=1, max_size=3), cut=st.none() | _INDEX)
def test_the_ui_shows_the_true_state_or_an_error(
    whole: dict[str, Any], chosen: list[Damage], cut: int | None
) -> None:
    path = _damaged(whole, chosen, cut)
    log = whole["data"].AppLog(path)
    log.refresh()
    log.summary("proj")
    log.token_totals()
    for step in log.step_list():
        for which, read in (("after", log.state_after), ("before", log.state_before)):
            try:
                shown = read(step.seq)
            except PersistenceError:
                continue
            true_states = whole["ui"].get((step.seq, which), [])
            if step.status not in FINISHED:
                # A step shown as running (its begin line read, its end not) starts from the
                # state after the step before it, whichever run that begin line came from.
                true_states = true_states + whole["ui"].get((step.seq - 1, "after"), [])
            assert shown in true_states, (step.seq, which)
