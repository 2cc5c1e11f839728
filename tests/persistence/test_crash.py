"""Crash safety: a child process saving every step is killed with SIGKILL at random points, many
times; every resume continues from the last committed step, and in the end the stored history
is exactly ``range(N)`` with contiguous sequence ids: nothing lost, nothing duplicated.

The child prints each committed sequence id; the test kills it after reading a random number of
lines (seeded), while the child keeps stepping with seeded random pauses, so the kill lands
anywhere: inside an action, inside a save's transaction, between steps.
"""

from __future__ import annotations

import random
import signal

import pytest

from tests.persistence.child import Child
from tests.persistence.conftest import Harness

TOTAL = 40
KILLS = 10
# While it is being killed the child never reaches its end, however far a slow (loaded) test
# process lets it run ahead: a child that finished would print nothing and leave nothing to kill.
ENDLESS = 10**9


def committed(h: Harness, app_id: str) -> int:
    """How many steps are stored; checks they are contiguous and the history matches them."""
    ids = [r.sequence_id for r in h.records(None, app_id)]
    assert ids == list(range(len(ids))), ids
    if ids:
        loaded = h.load(None, app_id)
        assert loaded is not None
        assert loaded.state["history"] == list(range(len(ids)))
    return len(ids)


@pytest.mark.slow
def test_killed_children_resume_with_nothing_lost_or_duplicated(process_backend: Harness) -> None:
    h = process_backend
    rng = random.Random(f"crash-{h.kind}")
    for _kill in range(KILLS):
        before = committed(h, "crash")
        spec = h.spec(
            mode="count", app_id="crash", total=ENDLESS, snapshot_every=5, seed=rng.randrange(2**32)
        )
        with Child(spec) as child:
            printed = []
            for _ in range(rng.randint(1, 3)):
                line = child.line()
                if line is None:
                    break
                printed.append(int(line))
            child.kill()
            assert printed, f"the child committed no step; stderr:\n{child.stderr}"
            assert child.process.returncode in (-signal.SIGKILL, 0), child.stderr
        assert printed[0] == before  # it resumed right after the last committed step
        assert printed == list(range(before, before + len(printed)))
        assert committed(h, "crash") >= printed[-1] + 1
    total = max(TOTAL, committed(h, "crash") + 5)
    with Child(
        h.spec(mode="count", app_id="crash", total=total, snapshot_every=5, seed=0)
    ) as child:
        assert child.wait() == 0, child.stderr
    assert committed(h, "crash") == total
    kinds = {r.kind for r in h.records(None, "crash")}
    assert kinds == {"snapshot", "delta"}
    for sequence_id in range(total):
        loaded = h.load(None, "crash", sequence_id)
        assert loaded is not None
        assert loaded.state["history"] == list(range(sequence_id + 1))
