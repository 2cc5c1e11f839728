"""Exactly-once side effects across SIGKILL: a child process whose steps each make two durable
calls (appending a line to a file, the stand-in for sending an email) kills itself at a point a
seeded RNG picks — before the call, right after its journal entry is committed, between the
calls, just before the step's record is saved — 30 times; each time a new process resumes the
app with ``initialize_from``. In the end every logical call's line is in the file exactly once.

The one window the journal cannot cover (the effect happened, its journal write did not) is
pinned too: there the line is written again, as docs/concepts/durable.md says.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.persistence.child import ROOT
from tests.persistence.conftest import Harness

KILLS = 30
TOTAL = 24
POINTS = ("before_send", "after_journal", "between_calls", "before_commit")


def run_child(spec: dict[str, Any]) -> int:
    done = subprocess.run(
        [sys.executable, "-m", "tests.persistence.journal_child", json.dumps(spec)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode in (0, -signal.SIGKILL), done.stderr
    return done.returncode


def committed(h: Harness, app_id: str) -> int:
    loaded = h.load(None, app_id)
    return 0 if loaded is None else loaded.sequence_id + 1


@pytest.mark.slow
def test_each_durable_call_happens_once_across_sigkills(
    process_backend: Harness, tmp_path: Path
) -> None:
    h = process_backend
    effects = tmp_path / "sent.txt"
    rng = random.Random(f"journal-crash-{h.kind}")
    kills = 0
    for _ in range(KILLS):
        before = committed(h, "mail")
        kill_at = min(before + rng.randrange(2), TOTAL - 1)
        spec = h.spec(
            app_id="mail",
            effects=str(effects),
            total=TOTAL,
            kill_at=kill_at,
            point=rng.choice(POINTS),
        )
        kills += run_child(spec) == -signal.SIGKILL
        assert committed(h, "mail") >= before
    assert kills == KILLS  # every run died at its point: none ran to the end
    assert run_child(h.spec(app_id="mail", effects=str(effects), total=TOTAL, kill_at=None,
                            point="")) == 0  # fmt: skip
    lines = effects.read_text(encoding="utf-8").splitlines()
    expected = [f"{call} {s}" for s in range(TOTAL) for call in ("send", "notify")]
    assert sorted(lines) == sorted(expected)  # each once: none lost, none repeated
    assert lines == expected  # and in order
    loaded = h.load(None, "mail")
    assert loaded is not None
    assert loaded.state["done"] == expected


def test_a_kill_between_the_effect_and_its_journal_write_repeats_the_effect(
    process_backend: Harness, tmp_path: Path
) -> None:
    h = process_backend
    effects = tmp_path / "sent.txt"
    spec = h.spec(app_id="gap", effects=str(effects), total=1, kill_at=0)
    assert run_child({**spec, "point": "effect_unjournaled"}) == -signal.SIGKILL
    assert run_child({**spec, "kill_at": None, "point": ""}) == 0
    assert effects.read_text(encoding="utf-8").splitlines() == ["send 0", "send 0", "notify 0"]
