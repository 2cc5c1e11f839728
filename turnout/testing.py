"""Testing actions with steps recorded by the tracker.

``turnout test-case`` (or the UI's Fork tab) writes a tracked step to a JSON file of cases: the
state the action started from, its inputs, and the result and state it produced. A test then runs
the action again on each case::

    import pytest
    from turnout.testing import assert_case, load_cases

    from myapp import respond

    @pytest.mark.parametrize("case", load_cases("tests/cases.json"), ids=lambda c: c["name"])
    def test_respond(case):
        assert_case(respond, case)
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from turnout._fake_openai import (
    FakeError,
    FakeOpenAIServer,
    FakeReply,
    FakeRequest,
    FakeToolCall,
)
from turnout.core.builder import ApplicationBuilder
from turnout.core.serde import DEFAULT_SERDE, Serde
from turnout.core.state import State

__all__ = [
    "FakeError",
    "FakeOpenAIServer",
    "FakeReply",
    "FakeRequest",
    "FakeToolCall",
    "assert_case",
    "load_cases",
    "openai_client",
    "run_case",
]


def load_cases(path: str | Path, action: str | None = None) -> list[dict[str, Any]]:
    """The cases in a file written by ``turnout test-case`` (of one action, if given)."""
    cases: list[dict[str, Any]] = json.loads(Path(path).read_text(encoding="utf-8"))
    return [c for c in cases if action is None or c["action"] == action]


def run_case(
    action: Any, case: dict[str, Any], *, serde: Serde | None = None
) -> tuple[dict[str, Any] | None, State]:
    """Run ``action`` (an ``@action`` function or an ``Action``) once on the case's state and
    inputs; return its result and new state."""
    codec = serde or DEFAULT_SERDE
    name = case["action"]
    app = (
        ApplicationBuilder()
        .with_actions(**{name: action})
        .with_state(State(codec.decode(case["input_state"])))
        .with_entrypoint(name)
        .build()
    )
    out = app.step(inputs=codec.decode(case.get("inputs") or {}))
    assert out is not None
    return out[1], out[2]


def assert_case(action: Any, case: dict[str, Any], *, serde: Serde | None = None) -> None:
    """Run the case and assert the action produced the recorded result and state (a case with
    ``expected_state: null``, made from an annotation's expected result, checks the result
    only)."""
    codec = serde or DEFAULT_SERDE
    result, state = run_case(action, case, serde=serde)
    expected_state = codec.decode(case["expected_state"])
    assert expected_state is None or state.get_all() == expected_state, (
        f"{case.get('name', case['action'])}: state differs from the recorded one:\n"
        f"  got      {state.get_all()!r}\n  expected {expected_state!r}"
    )
    if case.get("expected_result") is not None:
        expected_result = codec.decode(case["expected_result"])
        assert result == expected_result, (
            f"{case.get('name', case['action'])}: result {result!r} != recorded {expected_result!r}"
        )


@contextlib.contextmanager
def openai_client(
    offline: Callable[[FakeRequest], Any],
    *,
    fake_model: str = "fake",
    use_async: bool = False,
    allow_real: bool = True,
) -> Iterator[tuple[Any, str]]:
    """``(client, model)``: the real API if ``OPENAI_API_KEY`` is set (the model from
    ``OPENAI_MODEL``, default ``gpt-4.1-mini``), else a ``FakeOpenAIServer`` answering with
    ``offline``. ``use_async``: an ``openai.AsyncOpenAI`` client (close it in its event loop).
    ``allow_real=False``: the fake server even when the key is set (demo data, tests).
    Needs ``pip install openai``."""
    import openai

    kind: Any = openai.AsyncOpenAI if use_async else openai.OpenAI
    with contextlib.ExitStack() as stack:
        if allow_real and os.environ.get("OPENAI_API_KEY"):
            made, model = kind(), os.environ.get("OPENAI_MODEL", "gpt-4.1-mini")
        else:
            server = stack.enter_context(FakeOpenAIServer(offline))
            made = kind(base_url=server.base_url, api_key="offline", max_retries=0)
            model = fake_model
        if not use_async:
            stack.callback(made.close)  # an async client is closed in its event loop
        yield made, model
