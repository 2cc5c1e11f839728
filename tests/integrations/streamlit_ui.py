"""Running the tracking UI script under ``streamlit.testing``, shared by its test suites."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from turnout import ApplicationBuilder, State, action
from turnout.core.tracking import LocalTracker
from turnout.integrations.streamlit import demo

SCRIPT = Path(demo.__file__).with_name("app.py")


def make_demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh directory holding the demo project."""
    root = tmp_path_factory.mktemp("ui")
    demo.generate(root)
    return root


def run_ui(root: Path, monkeypatch: pytest.MonkeyPatch, **params: str) -> AppTest:
    """The UI over ``root`` opened at the URL's ``params``; fails if the page raised."""
    monkeypatch.setenv("TURNOUT_UI_DIR", str(root))
    at = AppTest.from_file(str(SCRIPT), default_timeout=30)
    at.query_params.update(params)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def rerun(at: AppTest) -> AppTest:
    """Rerun the page (what a click or a refresh does); fails if it raised."""
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def literal(markdown: str) -> str:
    """The text a markdown string shows where its only markup is backslash escapes."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


@action(reads=["n"], writes=["n"])
def tick(state: State) -> State:
    return state.update(n=state["n"] + 1)


def ticker(tracker: LocalTracker, app_id: str) -> Any:
    """An application that ticks ``n`` up by one a step, tracked by ``tracker``."""
    return (
        ApplicationBuilder()
        .with_actions(tick)
        .with_transitions(("tick", "tick"))
        .with_state(n=0)
        .with_entrypoint("tick")
        .with_identifiers(app_id=app_id)
        .with_tracker(tracker)
        .build()
    )
