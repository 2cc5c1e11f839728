"""Burr-internal names that Burr programs and their tests reach for, each delegating to
turnout's own machinery: ``_cascade_adapter`` and ``SubgraphType`` (parallelism), the tracker's
``_allowed_project_name``, ``project_id``, ``LOG_FILENAME`` and ``copy()``."""

from __future__ import annotations

import typing
import warnings
from pathlib import Path
from typing import Any

import pytest

from turnout.core import ApplicationBuilder, State, action
from turnout.core.errors import TrackingNameError, TrackingWarning
from turnout.core.parallelism import RunnableGraph, SubgraphType, _cascade_adapter
from turnout.core.tracking import LocalTracker, allowed_project_name
from turnout.tracking.client import LocalTrackingClient, _allowed_project_name


class _Copyable:
    def __init__(self, parent: _Copyable | None = None) -> None:
        self.parent = parent

    def copy(self) -> _Copyable:
        return _Copyable(parent=self)


@pytest.mark.parametrize(
    ("behaviour", "expect"),
    [("cascade", "copy"), (None, "none"), ("fixed", "fixed")],
    ids=["cascade-copies", "none-gives-none", "an-object-is-used-as-is"],
)
def test_cascade_adapter_follows_the_behaviour(behaviour: Any, expect: str) -> None:
    parent, fixed = _Copyable(), _Copyable()
    got = _cascade_adapter(fixed if behaviour == "fixed" else behaviour, parent)
    if expect == "copy":
        assert isinstance(got, _Copyable)
        assert got.parent is parent
    elif expect == "none":
        assert got is None
    else:
        assert got is fixed


def test_cascade_adapter_passes_an_adapter_without_copy_through() -> None:
    plain = object()
    assert _cascade_adapter("cascade", plain) is plain


def test_subgraph_type_names_what_actions_may_produce() -> None:
    assert RunnableGraph in typing.get_args(SubgraphType)


@pytest.mark.parametrize(
    ("name", "on_windows", "allowed"),
    [
        ("chat-bot_2", False, True),
        ("team:chat", False, True),
        ("team:chat", True, False),
        ("bad*name", False, False),
        ("dollar$", True, False),
        ("../escape", False, False),
    ],
    ids=["plain", "colon-posix", "colon-windows", "star", "dollar", "traversal"],
)
def test_allowed_project_name_is_the_trackers_rule(
    name: str, on_windows: bool, allowed: bool
) -> None:
    assert _allowed_project_name(name, on_windows) is allowed
    assert allowed_project_name(name, on_windows=on_windows) is allowed


def test_a_project_the_tracker_refuses_is_one_allowed_project_name_refuses(tmp_path: Path) -> None:
    with pytest.raises(TrackingNameError):
        LocalTracker("bad*name", tmp_path)


def test_local_tracking_client_has_burrs_project_id_and_log_filename(tmp_path: Path) -> None:
    @action(reads=["n"], writes=["n"])
    def bump(state: State) -> State:
        return state.update(n=state["n"] + 1)

    tracker = LocalTrackingClient("proj", tmp_path)
    app = (
        ApplicationBuilder()
        .with_actions(bump)
        .with_transitions(("bump", "bump"))
        .with_state(n=0)
        .with_entrypoint("bump")
        .with_tracker(tracker)
        .with_identifiers(app_id="a1")
        .build()
    )
    app.step()
    assert tracker.project_id == "proj"
    assert (tmp_path / "proj" / "a1" / LocalTrackingClient.LOG_FILENAME).is_file()


def test_a_tracker_copy_keeps_project_storage_and_serde_kwargs(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrackingWarning)
        tracker = LocalTrackingClient("proj", tmp_path, serde_kwargs={"k": "v"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the copy does not warn a second time
        copied = tracker.copy()
    assert (copied.project_id, copied.storage_dir, copied.serde_kwargs) == (
        "proj",
        tracker.storage_dir,
        {"k": "v"},
    )
