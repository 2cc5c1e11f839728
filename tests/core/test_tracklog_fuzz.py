"""Damaged tracking logs, generated: a real log (with snapshots, a failed step, a retry and a
resume from an earlier step) is damaged at random (lines dropped, duplicated, swapped, bytes
flipped, garbage inserted, the file truncated, a ``seq`` turned into a string) and read back.

The property (issue 12.3): readers never raise anything but the documented errors, and a state
rebuilt from a damaged log is exactly the state the whole log gives for that step, or an error
(``PersistenceError``) — never a different state.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from turnout import ApplicationBuilder, RetryPolicy, State, action
from turnout.core import trackview
from turnout.core.errors import PersistenceError
from turnout.core.tracking import LocalTracker
from turnout.core.tracklog import read_records

APP = "fuzzed"
_SEQ = re.compile(rb'"seq":(\d+)')


def _baseline(root: Path) -> Path:
    """Write the undamaged log under ``root`` and return its path."""
    attempts = {"n": 0}

    @action(
        reads=["n", "items"],
        writes=["n", "items"],
        retry=RetryPolicy(max_attempts=2, initial_delay=0, jitter=0),
    )
    def work(state: State) -> State:
        attempts["n"] += 1
        if attempts["n"] == 3:  # step 2's first attempt fails and is retried
            raise ValueError("flaky")
        if attempts["n"] in (6, 7):  # both attempts of step 4 fail: it fails for good
            raise KeyError("broken")
        return state.increment(n=1).append(items=f"item {state['n']}")

    tracker = LocalTracker("proj", root, snapshot_every=3)

    def build(override: dict[str, Any] | None = None, **ids: Any) -> Any:
        return (
            ApplicationBuilder()
            .with_actions(work=work)
            .with_transitions(("work", "work"))
            .with_identifiers(app_id=APP, **ids)
            .initialize_from(
                tracker,
                default_state={"n": 0, "items": []},
                default_entrypoint="work",
                override_state_values=override,
            )
            .with_tracker(tracker)
            .build()
        )

    app = build()
    for _ in range(7):
        with contextlib.suppress(KeyError):
            app.step()
    again = build({"n": 50}, sequence_id=2)  # resume from an earlier step: a second timeline
    for _ in range(3):
        again.step()
    tracker.close()
    return tracker.log_path(APP)


def _true_states(path: Path, data: Any) -> tuple[dict[Any, list[Any]], dict[Any, list[Any]]]:
    """Every state each step had in the log as written: the states the whole log gives, and
    those of each earlier moment (every prefix of whole lines), since a log cut at a line end
    is the same log read earlier. Keys: sequence ids; for the UI ``(seq, "after"|"before")``."""
    whole = path.read_bytes()
    lines = whole.splitlines(keepends=True)
    tracker = LocalTracker("proj", path.parent.parent.parent)
    states: dict[Any, list[Any]] = {}
    ui: dict[Any, list[Any]] = {}
    for end in range(1, len(lines) + 1):
        path.write_bytes(b"".join(lines[:end]))
        for seq in range(10):
            loaded = tracker.load(None, APP, seq)
            if loaded is not None:
                states.setdefault(seq, []).append(dict(loaded.state))
        if data is None:
            continue
        log = data.AppLog(path)
        log.refresh()
        for step in log.step_list():
            ui.setdefault((step.seq, "after"), []).append(log.state_after(step.seq))
            ui.setdefault((step.seq, "before"), []).append(log.state_before(step.seq))
    path.write_bytes(whole)
    return states, ui


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data: Any = trackview  # the UI's reader
    path = _baseline(tmp_path_factory.mktemp("whole"))
    states, ui = _true_states(path, data)
    damaged = tmp_path_factory.mktemp("damaged")
    target = LocalTracker("proj", damaged).log_path(APP)
    target.parent.mkdir(parents=True)
    return {
        "bytes": path.read_bytes(), "states": states, "ui": ui, "root": damaged,
        "target": target, "data": data,
    }  # fmt: skip


# -- damage ---------------------------------------------------------------------------------------

Damage = Callable[[list[bytes]], list[bytes]]


def _named(name: str, apply: Damage) -> Damage:
    class Named:
        def __call__(self, lines: list[bytes]) -> list[bytes]:
            return apply(lines)

        def __repr__(self) -> str:
            return name

    return Named()


def _drop(i: int) -> Damage:
    return _named(f"drop({i})", lambda lines: lines[: i % len(lines)] + lines[i % len(lines) + 1 :])


def _duplicate(i: int, j: int) -> Damage:
    return _named(
        f"duplicate({i}, {j})",
        lambda lines: [*lines[: j % len(lines)], lines[i % len(lines)], *lines[j % len(lines) :]],
    )


def _swap(i: int) -> Damage:
    def apply(lines: list[bytes]) -> list[bytes]:
        k = i % (len(lines) - 1)
        return [*lines[:k], lines[k + 1], lines[k], *lines[k + 2 :]]

    return _named(f"swap({i})", apply)


def _flip(i: int, at: int, value: int) -> Damage:
    def apply(lines: list[bytes]) -> list[bytes]:
        line = bytearray(lines[i % len(lines)])
        line[at % len(line)] = value
        return [*lines[: i % len(lines)], bytes(line), *lines[i % len(lines) + 1 :]]

    return _named(f"flip({i}, {at}, {value})", apply)


def _garbage(j: int, junk: bytes) -> Damage:
    return _named(
        f"garbage({j}, {junk!r})",
        lambda lines: [*lines[: j % len(lines)], junk + b"\n", *lines[j % len(lines) :]],
    )


def _seq_as_string(i: int) -> Damage:
    def apply(lines: list[bytes]) -> list[bytes]:
        with_seq = [k for k, line in enumerate(lines) if _SEQ.search(line)]
        k = with_seq[i % len(with_seq)]
        changed = _SEQ.sub(rb'"seq":"\1"', lines[k], count=1)
        return [*lines[:k], changed, *lines[k + 1 :]]

    return _named(f"seq_as_string({i})", apply)


_INDEX = st.integers(min_value=0, max_value=10_000)
damages = st.one_of(
    st.builds(_drop, _INDEX),
    st.builds(_duplicate, _INDEX, _INDEX),
    st.builds(_swap, _INDEX),
    st.builds(_flip, _INDEX, _INDEX, st.integers(min_value=0, max_value=255)),
    st.builds(_garbage, _INDEX, st.binary(max_size=40)),
    st.builds(_seq_as_string, _INDEX),
)


def _damaged(whole: dict[str, Any], chosen: list[Damage], cut: int | None) -> Path:
    lines = whole["bytes"].splitlines(keepends=True)
    for damage in chosen:
        lines = damage(lines)
    data = b"".join(lines)
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    whole["target"].write_bytes(data)
    return whole["target"]  # type: ignore[no-any-return]


FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=True,
    database=None,  # nothing written next to the sources; derandomized runs need none
)


@FUZZ
@given(chosen=st.lists(damages, min_size=1, max_size=3), cut=st.none() | _INDEX)
def test_the_tracker_loads_the_true_state_or_raises(
    whole: dict[str, Any], chosen: list[Damage], cut: int | None
) -> None:
    _damaged(whole, chosen, cut)
    tracker = LocalTracker("proj", whole["root"])
    read_records(tracker.log_path(APP))  # never raises on damage
    for seq in [None, *range(10)]:
        try:
            loaded = tracker.load(None, APP, seq)
        except PersistenceError:
            continue
        if loaded is None:
            continue
        if seq is not None:
            assert loaded.sequence_id == seq
        true_states = whole["states"].get(loaded.sequence_id, [])
        assert dict(loaded.state) in true_states, (seq, loaded.sequence_id)
