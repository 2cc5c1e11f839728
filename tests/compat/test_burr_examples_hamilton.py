"""The patterns of Burr's Hamilton examples, run on turnout.

Burr's ``hamilton-integration`` example (plain actions that call a Hamilton driver bound to
them, with Hamilton's OpenTelemetry tracer and ``use_otel_tracing=True``) and its Hamilton
multi-modal chatbot (``Hamilton`` actions wired with ``from_state``, ``update_state`` and
``append_state`` to a driver set with ``Hamilton.set_driver``) ran on turnout with only ``burr``
replaced by ``turnout`` in their imports (their LanceDB, web and OpenAI parts stood in for
offline) and gave Burr's results, sequence ids and spans. These programs of our own keep what
they depend on; the values asserted are the ones Burr 0.43 gives.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("hamilton")

from hamilton import driver  # type: ignore[import-untyped]

from turnout.core import ApplicationBuilder, State, action, default, when
from turnout.integrations.hamilton import (
    Hamilton,
    append_state,
    from_state,
    from_value,
    update_state,
)

DAG = """
def words(text: str) -> list:
    return text.split()


def counts(words: list) -> dict:
    return {word: len(word) for word in words}


def safe(text: str) -> bool:
    return "unsafe" not in text


def mode(words: list, shout: bool) -> str:
    return "shout" if shout else ("long" if len(words) > 2 else "short")


def reply(words: list, mode: str) -> dict:
    text = " ".join(words)
    return {"role": "bot", "text": text.upper() if mode == "shout" else text}


def refusal() -> dict:
    return {"role": "bot", "text": "no"}
"""


def dag_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str = DAG
) -> ModuleType:
    """``source`` as an importable module (Hamilton finds functions through their module)."""
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, tmp_path / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def dag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A driver over the DAG above, set as every Hamilton action's default, as Burr's chatbot
    does with ``Hamilton.set_driver(driver.Driver({...}, dag))``."""
    built = driver.Driver({}, dag_module(tmp_path, monkeypatch, "turnout_compat_chat_dag"))
    Hamilton.set_driver(built)
    yield built
    Hamilton.set_driver(None)


def _chatbot() -> Any:
    return (
        ApplicationBuilder()
        .with_actions(
            prompt=Hamilton(
                inputs={"text": from_state("text")},
                outputs={"words": update_state("words")},
            ),
            check_safety=Hamilton(
                inputs={"text": from_state("text")}, outputs={"safe": update_state("safe")}
            ),
            decide_mode=Hamilton(
                inputs={"words": from_state("words"), "shout": from_value(False)},
                outputs={"mode": update_state("mode")},
            ),
            respond=Hamilton(
                inputs={"words": from_state("words"), "mode": from_state("mode")},
                outputs={"reply": append_state("history"), "counts": update_state("counts")},
            ),
            refuse=Hamilton(inputs={}, outputs={"refusal": append_state("history")}),
        )
        .with_transitions(
            ("prompt", "check_safety", default),
            ("check_safety", "decide_mode", when(safe=True)),
            ("check_safety", "refuse", default),
            ("decide_mode", "respond", default),
        )
        .with_state(history=[], text="hello small world")
        .with_entrypoint("prompt")
        .build()
    )


def test_hamilton_actions_with_a_default_driver_give_burrs_values(dag: Any) -> None:
    app = _chatbot()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Hamilton's, about raw_execute
        act, result, state = app.run(halt_after=["respond", "refuse"])
    assert act.name == "respond"
    assert app.sequence_id == 3
    assert result == {
        "reply": {"role": "bot", "text": "hello small world"},
        "counts": {"hello": 5, "small": 5, "world": 5},
    }
    # Node values as Hamilton computed them (Burr runs raw_execute): a list stays a list.
    assert type(state["words"]) is list
    assert state["mode"] == "long"
    assert state["history"] == [{"role": "bot", "text": "hello small world"}]


def test_a_refused_prompt_takes_the_other_branch(dag: Any) -> None:
    app = _chatbot()
    app.update_state(app.state.update(text="unsafe words"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        act, result, state = app.run(halt_after=["respond", "refuse"])
    assert (act.name, result, app.sequence_id) == (
        "refuse",
        {"refusal": {"role": "bot", "text": "no"}},
        2,
    )
    assert state["history"] == [{"role": "bot", "text": "no"}]
    assert "mode" not in state


# -- plain actions calling a driver bound to them (hamilton-integration) -----------------------


@action(reads=[], writes=[])
def ingest(state: State, text: str, dr: Any) -> State:
    dr.execute(["counts"], inputs={"text": text})
    return state


@action(reads=[], writes=["answer"])
def ask(state: State, text: str, dr: Any) -> State:
    results = dr.execute(["reply"], inputs={"text": text, "shout": True})
    return state.update(answer=results["reply"])


def test_actions_with_a_bound_driver_traced_through_opentelemetry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, otel_exporter: Any
) -> None:
    from hamilton.plugins.h_opentelemetry import OpenTelemetryTracer  # type: ignore[import-untyped]

    from turnout.core.tracking import read_log
    from turnout.tracking.client import LocalTrackingClient

    module = dag_module(tmp_path, monkeypatch, "turnout_compat_rag_dag")
    dr = driver.Builder().with_modules(module).with_adapters(OpenTelemetryTracer()).build()
    tracker = LocalTrackingClient("modular-rag", tmp_path)
    app = (
        ApplicationBuilder()
        .with_actions(ingest.bind(dr=dr), ask.bind(dr=dr))
        .with_transitions(("ingest", "ask"))
        .with_entrypoint("ingest")
        .with_identifiers(app_id="rag")
        .with_tracker(tracker, use_otel_tracing=True)
        .build()
    )
    _, _, state = app.run(halt_after=["ask"], inputs={"text": "what to monitor"})
    assert state["answer"] == {"role": "bot", "text": "WHAT TO MONITOR"}
    assert app.sequence_id == 1
    names = {span.context.span_id: span.name for span in otel_exporter.get_finished_spans()}
    nodes = {
        span.name: names.get(span.parent.span_id) if span.parent is not None else None
        for span in otel_exporter.get_finished_spans()
        if span.name in {"words", "counts", "mode", "reply"}
    }
    # Hamilton's node spans nest under its run span, which nests under the step, as on Burr.
    runs = {
        span.name: names.get(span.parent.span_id) if span.parent is not None else None
        for span in otel_exporter.get_finished_spans()
        if span.name in set(nodes.values())
    }
    assert set(nodes) == {"words", "counts", "mode", "reply"}
    assert sorted(runs.values()) == ["ask", "ingest"]
    recorded = [
        (r["seq"], r["name"]) for r in read_log(tracker.log_path("rag")) if r["t"] == "span_start"
    ]
    assert [name for seq, name in recorded if seq == 0][1:] == ["words", "counts"]
    assert [name for seq, name in recorded if seq == 1][1:] == ["words", "mode", "reply"]
