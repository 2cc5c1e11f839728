"""Hamilton DAGs as actions: real drivers built from modules written by each test."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("hamilton")

from hamilton import async_driver, driver  # type: ignore[import-untyped]
from hamilton.execution import executors  # type: ignore[import-untyped]

from tests.integrations.missing_extra import import_without
from turnout import Application, ApplicationBuilder, State
from turnout.core.errors import ActionDefinitionError, AsyncRequiredError, GraphWarning
from turnout.core.retry import RetryPolicy
from turnout.core.sqlite import SQLitePersister
from turnout.core.tracking import LocalTracker, read_log
from turnout.integrations.hamilton import (
    AsyncHamilton,
    AsyncHamiltonTracer,
    Hamilton,
    HamiltonTracer,
    append_state,
    extend_state,
    from_state,
    from_value,
    to_dot,
    to_mermaid,
    update_state,
)

TEXT_DAG = """
def words(text: str) -> list[str]:
    return text.lower().split()

def n_words(words: list[str]) -> int:
    return len(words)

def longest(words: list[str], min_length: int = 1) -> str:
    return max((w for w in words if len(w) >= min_length), key=len, default="")

def summary(n_words: int, longest: str, prefix: str) -> str:
    return f"{prefix}: {n_words} words, longest {longest!r}"
"""

ASYNC_DAG = """
import asyncio

async def fetched(query: str) -> str:
    await asyncio.sleep(0.05)
    return query.upper()

def length(fetched: str) -> int:
    return len(fetched)
"""

FAILING_DAG = """
def ratio(total: int, count: int) -> float:
    return total / count

def percent(ratio: float) -> float:
    return 100 * ratio
"""


@pytest.fixture
def make_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Write source to a module file under tmp_path and import it (Hamilton reads functions
    through ``inspect.getmodule``, so the module must be importable by name)."""
    made: list[str] = []

    def make(source: str, name: str = "dag") -> types.ModuleType:
        name = f"turnout_test_{name}_{len(made)}"
        path = tmp_path / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, name, module)
        spec.loader.exec_module(module)
        made.append(name)
        return module

    return make


class Spans:
    """A turnout hook recording span starts and ends."""

    def __init__(self) -> None:
        self.started: dict[str, Any] = {}
        self.ended: dict[str, tuple[float, BaseException | None]] = {}
        self.attributes: dict[str, dict[str, Any]] = {}

    def pre_start_span(self, *, span: Any, **future_kwargs: Any) -> None:
        self.started[span.uid] = span

    def post_end_span(
        self, *, span: Any, exception: BaseException | None, end_time: float, **future_kwargs: Any
    ) -> None:
        self.ended[span.uid] = (end_time, exception)

    def do_log_attributes(
        self, *, span: Any, attributes: dict[str, Any], **future_kwargs: Any
    ) -> None:
        if span is not None:
            self.attributes.setdefault(span.uid, {}).update(attributes)

    def named(self, name: str) -> Any:
        (span,) = [s for s in self.started.values() if s.name == name]
        return span

    def duration(self, name: str) -> float:
        span = self.named(name)
        return float(self.ended[span.uid][0] - span.start_time)


def app_of(act: Hamilton, *hooks: Any, **state: Any) -> Application:
    builder = (
        ApplicationBuilder()
        .with_actions(features=act)
        .with_transitions(("features", "features"))
        .with_state(**state)
        .with_entrypoint("features")
    )
    if hooks:
        builder = builder.with_hooks(*hooks)
    return builder.build()


def text_action(module: types.ModuleType, **kwargs: Any) -> Hamilton:
    return Hamilton(
        inputs={"text": from_state("document"), "prefix": from_value("doc")},
        outputs={"summary": update_state("summary"), "n_words": append_state("counts")},
        modules=[module],
        **kwargs,
    )


# -- mapping ------------------------------------------------------------------------------------


def test_inputs_and_outputs_map_state_through_a_sync_driver(make_module):
    act = text_action(make_module(TEXT_DAG))
    assert type(act) is Hamilton
    assert not act.is_async()
    assert act.reads == ["document"]
    assert act.writes == ["summary", "counts"]
    assert act.final_vars == ["summary", "n_words"]
    app = app_of(act, document="The quick brown fox", counts=[])
    _, result, state = app.step()  # type: ignore[misc]
    assert result == {"summary": "doc: 4 words, longest 'quick'", "n_words": 4}
    assert state["summary"] == "doc: 4 words, longest 'quick'"
    assert state["counts"] == [4]


def test_the_driver_is_built_once_and_reused_by_every_step(make_module):
    act = text_action(make_module(TEXT_DAG))
    built = act.driver
    app = app_of(act, document="a bb ccc", counts=[])
    for _ in range(3):
        app.step()
    assert app.state["counts"] == [3, 3, 3]
    assert act.driver is built
    assert app.graph.get_action("features").driver is built  # type: ignore[union-attr]


def test_list_specs_read_and_write_same_named_keys(make_module):
    act = Hamilton(
        inputs=["text", "prefix"], outputs=["n_words", "longest"], modules=[make_module(TEXT_DAG)]
    )
    assert act.reads == ["text", "prefix"]
    assert act.writes == ["n_words", "longest"]
    _, _, state = app_of(act, text="one three", prefix="x").step()  # type: ignore[misc]
    assert (state["n_words"], state["longest"]) == (2, "three")


def test_extend_state_and_a_function_of_state_as_inputs(make_module):
    act = Hamilton(
        inputs=lambda state: {"text": " ".join(state["parts"])},
        outputs={"words": extend_state("all_words")},
        modules=[make_module(TEXT_DAG)],
        reads=["parts"],
    )
    assert act.reads == ["parts"]
    _, _, state = app_of(act, parts=["A", "b"], all_words=["z"]).step()  # type: ignore[misc]
    assert state["all_words"] == ["z", "a", "b"]


def test_static_overrides_replace_a_node(make_module):
    act = text_action(make_module(TEXT_DAG), overrides={"n_words": 99})
    _, result, _ = app_of(act, document="a b", counts=[]).step()  # type: ignore[misc]
    assert result is not None
    assert result["n_words"] == 99
    assert result["summary"].startswith("doc: 99 words")


def test_overrides_from_state_are_reads_and_cut_the_inputs_they_replace(make_module):
    # words is overridden, so text is not needed: no missing-input error at construction
    act = Hamilton(
        inputs={"prefix": from_value("p")},
        outputs={"summary": "summary"},
        overrides={"words": from_state("tokens")},
        modules=[make_module(TEXT_DAG)],
    )
    assert act.reads == ["tokens"]
    _, _, state = app_of(act, tokens=["x", "yyy"]).step()  # type: ignore[misc]
    assert state["summary"] == "p: 2 words, longest 'yyy'"


def test_config_values_count_as_given_inputs(make_module):
    act = Hamilton(
        inputs={"text": "document"},
        outputs={"summary": "summary"},
        modules=[make_module(TEXT_DAG)],
        config={"prefix": "cfg"},
    )
    _, _, state = app_of(act, document="hi").step()  # type: ignore[misc]
    assert state["summary"] == "cfg: 1 words, longest 'hi'"


def test_a_prebuilt_driver_with_the_tracer_is_used_as_given(make_module):
    dr = (
        driver.Builder().with_modules(make_module(TEXT_DAG)).with_adapters(HamiltonTracer()).build()
    )
    act = Hamilton({"text": "document", "prefix": from_value("d")}, {"n_words": "n"}, dr)
    assert act.driver is dr
    _, _, state = app_of(act, document="a b c").step()  # type: ignore[misc]
    assert state["n"] == 3


def test_sync_driver_runs_under_astep_too(make_module):
    act = text_action(make_module(TEXT_DAG))
    app = app_of(act, document="x y", counts=[])
    asyncio.run(app.astep())
    assert app.state["counts"] == [2]


# -- bad mappings -------------------------------------------------------------------------------


def test_unknown_output_node_is_named_with_the_available_nodes(make_module):
    with pytest.raises(ActionDefinitionError) as caught:
        Hamilton(
            inputs={"text": "t", "prefix": "p"},
            outputs={"sumary": "s"},
            modules=[make_module(TEXT_DAG)],
        )
    message = str(caught.value)
    assert "['sumary']" in message
    assert "'summary'" in message
    assert "'n_words'" in message


def test_missing_required_input_is_named(make_module):
    with pytest.raises(ActionDefinitionError, match=r"need the DAG inputs \['prefix'\]"):
        Hamilton(inputs={"text": "t"}, outputs={"summary": "s"}, modules=[make_module(TEXT_DAG)])


def test_optional_inputs_need_not_be_mapped(make_module):
    act = Hamilton(inputs={"text": "t"}, outputs={"longest": "l"}, modules=[make_module(TEXT_DAG)])
    assert act.reads == ["t"]


def test_unknown_input_and_override_names_are_errors(make_module):
    module = make_module(TEXT_DAG)
    with pytest.raises(ActionDefinitionError, match=r"inputs name \['txt'\].*'text'"):
        Hamilton(
            inputs={"txt": "t", "text": "t", "prefix": "p"}, outputs=["summary"], modules=[module]
        )
    with pytest.raises(ActionDefinitionError, match=r"overrides name \['nwords'\]"):
        Hamilton(
            inputs=["text", "prefix"],
            outputs=["summary"],
            overrides={"nwords": 1},
            modules=[module],
        )


def test_an_input_also_in_the_config_is_refused(make_module):
    with pytest.raises(ActionDefinitionError, match=r"\['prefix'\] given both as inputs and in"):
        Hamilton(
            inputs=["text", "prefix"],
            outputs=["summary"],
            modules=[make_module(TEXT_DAG)],
            config={"prefix": "p"},
        )


def test_an_input_of_the_wrong_type_fails_before_any_node_runs(make_module):
    spans = Spans()
    act = Hamilton(inputs=["text", "prefix"], outputs=["n_words"], modules=[make_module(TEXT_DAG)])
    app = app_of(act, spans, text=42, prefix="p")
    with pytest.raises(ValueError, match="text"):
        app.step()
    # raw_execute (as Burr calls it) checks the inputs before the run's hooks: no node ran
    assert [s.name for s in spans.started.values()] == []
    assert "n_words" not in app.state.get_all()  # nothing written


def test_a_driver_without_the_tracer_is_refused_with_the_fix_when_trace_nodes_is_true(
    make_module,
):
    dr = driver.Builder().with_modules(make_module(TEXT_DAG)).build()
    with pytest.raises(ActionDefinitionError, match=r"with_adapters\(HamiltonTracer\(\)\)"):
        Hamilton({"text": "t", "prefix": "p"}, ["summary"], dr, trace_nodes=True)
    act = Hamilton({"text": "t", "prefix": "p"}, ["summary"], dr, trace_nodes=False)
    assert act.driver is dr


def test_a_driver_without_the_tracer_is_accepted_by_default_as_in_burr(make_module):
    """Burr's Hamilton takes any driver: the step's span is then the only one."""
    dr = driver.Builder().with_modules(make_module(TEXT_DAG)).build()
    act = Hamilton({"text": "t", "prefix": "p"}, ["n_words"], dr)
    spans = Spans()
    app = app_of(act, spans, t="a b c", p="x")
    app.step()
    assert app.state["n_words"] == 3
    assert list(spans.started.values()) == []


def test_a_default_driver_gives_values_not_pandas_series_as_in_burr(make_module):
    """``Driver(config, module)`` has a pandas result builder; raw_execute skips it."""
    pytest.importorskip("pandas")
    dr = driver.Driver({}, make_module(TEXT_DAG))
    act = Hamilton({"text": "t", "prefix": "p"}, ["n_words"], dr)
    app = app_of(act, Spans(), t="a b c", p="x")
    _act, result, state = app.step()
    assert state["n_words"] == 3
    assert type(state["n_words"]) is int
    assert result == {"n_words": 3}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"outputs": "summary"}, "outputs is 'summary'"),
        ({"outputs": ["summary"], "driver": object()}, "give a built hamilton.driver.Driver"),
        ({"outputs": ["summary"], "modules": None}, r"modules=\[...\]"),
        ({"outputs": {"summary": 3}}, r"output\['summary'\] is 3"),
    ],
    ids=["outputs-str", "not-a-driver", "nothing-to-run", "bad-target"],
)
def test_malformed_arguments_are_refused(make_module, kwargs, match):
    kwargs = {"modules": [make_module(TEXT_DAG)], **kwargs}
    if kwargs["modules"] is None or "driver" in kwargs:
        kwargs.pop("modules")
    with pytest.raises(TypeError, match=match):
        Hamilton(inputs=["text", "prefix"], **kwargs)


def test_an_input_naming_a_computed_node_overrides_it_as_in_burr(make_module):
    act = Hamilton(
        inputs={"text": "t", "words": from_state("ws")},
        outputs={"n_words": "n"},
        modules=[make_module(TEXT_DAG)],
    )
    assert sorted(act.reads) == ["t", "ws"]
    app = app_of(act, t="one two three", ws=["just", "two"])
    app.step()
    assert app.state["n"] == 2


def test_a_function_input_naming_a_computed_node_overrides_it(make_module):
    act = Hamilton(
        inputs=lambda state: {"words": state["ws"]},
        outputs={"n_words": "n"},
        modules=[make_module(TEXT_DAG)],
        reads=["ws"],
    )
    app = app_of(act, ws=["a", "b", "c"])
    app.step()
    assert app.state["n"] == 3


def test_a_node_in_both_inputs_and_overrides_is_refused(make_module):
    with pytest.raises(ActionDefinitionError, match="both in inputs"):
        Hamilton(
            inputs={"words": "ws"},
            outputs=["n_words"],
            modules=[make_module(TEXT_DAG)],
            overrides={"words": ["x"]},
        )


def test_from_state_missing_drop_leaves_the_input_to_its_default(make_module):
    act = Hamilton(
        inputs={"text": "t", "min_length": from_state("min", missing="drop")},
        outputs={"longest": "out"},
        modules=[make_module(TEXT_DAG)],
    )
    with pytest.warns(GraphWarning, match="reads 'min'"):  # absent by design here
        app = app_of(act, t="a bb ccc")
    app.step()
    assert app.state["out"] == "ccc"
    app = app_of(act, t="a bb ccc", min=5)
    app.step()
    assert app.state["out"] == ""


def test_an_imported_coroutine_function_does_not_make_a_module_async(make_module):
    module = make_module("from asyncio import sleep\n" + TEXT_DAG)
    act = Hamilton(inputs={"text": "t"}, outputs=["n_words"], modules=[module])
    assert type(act) is Hamilton
    assert not act.is_async()


def test_one_module_is_accepted_without_a_list(make_module):
    act = Hamilton(inputs={"text": "t"}, outputs={"n_words": "n"}, modules=make_module(TEXT_DAG))
    app = app_of(act, t="a b")
    app.step()
    assert app.state["n"] == 2


def test_modules_that_are_not_modules_are_refused(make_module):
    with pytest.raises(TypeError, match="not modules"):
        Hamilton(inputs={"text": "t"}, outputs=["n_words"], modules=["dag"])


@pytest.mark.parametrize("option", ["reads", "writes", "tags"])
def test_a_string_for_a_list_of_names_is_refused(make_module, option):
    with pytest.raises(ActionDefinitionError, match=f"write {option}=\\['ab'\\]"):
        Hamilton(
            inputs={"text": "t"}, outputs=["n_words"], modules=[make_module(TEXT_DAG)],
            **{option: "ab"},
        )  # fmt: skip


def test_name_and_retry_options_like_runnable_action(make_module):
    policy = RetryPolicy(max_attempts=2, initial_delay=0, jitter=0)
    act = Hamilton(
        inputs={"text": "t"}, outputs=["n_words"], modules=[make_module(TEXT_DAG)],
        name="count", retry=policy,
    )  # fmt: skip
    assert (act.name, act.retry) == ("count", policy)
    with pytest.raises(ActionDefinitionError, match="retry= takes a RetryPolicy"):
        Hamilton(
            inputs={"text": "t"}, outputs=["n_words"], modules=[make_module(TEXT_DAG)], retry=3
        )


def test_a_driver_error_outside_any_node_names_the_action(make_module):
    act = Hamilton(inputs={"text": "t"}, outputs=["n_words"], modules=[make_module(TEXT_DAG)])
    app = app_of(act, t=42)
    with pytest.raises(ValueError, match="Type requirement mismatch") as caught:
        app.step()
    assert "raised while running the DAG of Hamilton action 'features'" in caught.value.__notes__


def test_importing_the_adapter_without_hamilton_names_the_extra():
    out = import_without("hamilton", "turnout.integrations.hamilton")
    assert out.startswith("MissingExtraError")
    assert 'pip install "turnout[hamilton]"' in out


# -- spans ----------------------------------------------------------------------------------------


def test_one_span_per_node_under_a_graph_span(make_module):
    spans = Spans()
    app = app_of(text_action(make_module(TEXT_DAG)), spans, document="a bb", counts=[])
    app.step()
    graph = spans.named("hamilton.execute")
    assert graph.parent is None
    assert graph.uid == "0:0"
    nodes = {s.name: s for s in spans.started.values() if s.name.startswith("node:")}
    assert set(nodes) == {"node:words", "node:n_words", "node:longest", "node:summary"}
    assert all(s.parent is not None and s.parent.uid == graph.uid for s in nodes.values())
    assert set(spans.ended) == set(spans.started)  # every span closed
    attributes = spans.attributes[nodes["node:n_words"].uid]
    assert attributes["hamilton.node.type"] == "int"
    assert attributes["hamilton.node.tags"]["module"].startswith("turnout_test_dag")
    assert spans.attributes[graph.uid]["hamilton.final_vars"] == ["summary", "n_words"]


def test_async_driver_node_spans_last_as_long_as_the_awaited_node(make_module):
    spans = Spans()
    act = Hamilton(inputs={"query": "q"}, outputs={"length": "n"}, modules=[make_module(ASYNC_DAG)])
    assert isinstance(act, AsyncHamilton)
    assert act.is_async()
    app = app_of(act, spans, q="tides")
    asyncio.run(app.astep())
    assert app.state["n"] == 5
    # a lower bound from a real 50 ms sleep: the async hooks wrap the awaited node
    assert spans.duration("node:fetched") >= 0.05
    assert spans.duration("hamilton.execute") >= spans.duration("node:fetched")
    graph = spans.named("hamilton.execute")
    assert spans.named("node:length").parent.uid == graph.uid


def test_sync_driver_node_spans_last_at_least_as_long_as_the_node(make_module):
    module = make_module(
        "import time\n\ndef slow(x: int) -> int:\n    time.sleep(0.02)\n    return x\n"
    )
    spans = Spans()
    app = app_of(Hamilton(inputs=["x"], outputs=["slow"], modules=[module]), spans, x=1)
    app.step()
    # a lower bound from a real 20 ms sleep, read from the recorded start and end times
    assert spans.duration("node:slow") >= 0.02
    assert spans.duration("hamilton.execute") >= spans.duration("node:slow")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_opentelemetry_exports_node_spans_under_the_step_span(make_module, mode, otel):
    from turnout.integrations.opentelemetry import OpenTelemetryHook

    provider, exporter = otel
    source = TEXT_DAG if mode == "sync" else ASYNC_DAG
    inputs, outputs = (["text"], ["n_words"]) if mode == "sync" else (["query"], ["length"])
    act = Hamilton(inputs=inputs, outputs=outputs, modules=[make_module(source)])
    app = app_of(act, OpenTelemetryHook(tracer_provider=provider), text="a b", query="q")
    app.step() if mode == "sync" else asyncio.run(app.astep())
    spans = exporter.get_finished_spans()
    by_id = {s.context.span_id: s for s in spans}
    graph = next(s for s in spans if s.name == "hamilton.execute")
    assert graph.parent is not None
    assert by_id[graph.parent.span_id].name == "features"  # the step span
    nodes = [s for s in spans if s.name.startswith("node:")]
    expected = {"node:words", "node:n_words"} if mode == "sync" else {"node:fetched", "node:length"}
    assert {s.name for s in nodes} == expected
    assert all(s.parent is not None and s.parent.span_id == graph.context.span_id for s in nodes)


def test_async_action_refuses_sync_step(make_module):
    act = Hamilton(inputs={"query": "q"}, outputs={"length": "n"}, modules=[make_module(ASYNC_DAG)])
    with pytest.raises(AsyncRequiredError, match="astep"):
        app_of(act, q="x").step()


def test_prebuilt_async_driver_needs_the_async_tracer(make_module):
    module = make_module(ASYNC_DAG)

    async def build(*adapters: Any) -> Any:
        return await async_driver.Builder().with_modules(module).with_adapters(*adapters).build()

    with pytest.raises(ActionDefinitionError, match="AsyncHamiltonTracer"):
        Hamilton({"query": "q"}, ["length"], asyncio.run(build(HamiltonTracer())), trace_nodes=True)
    act = Hamilton({"query": "q"}, ["length"], asyncio.run(build(AsyncHamiltonTracer())))
    spans = Spans()
    app = app_of(act, spans, q="abc")
    asyncio.run(app.astep())
    assert app.state["length"] == 3
    assert spans.duration("node:fetched") >= 0.05


def test_nodes_run_by_an_executor_thread_still_nest_under_the_step(make_module):
    module = make_module(
        """
        from hamilton.htypes import Collect, Parallelizable

        def item(n: int) -> Parallelizable[int]:
            yield from range(n)

        def squared(item: int) -> int:
            return item * item

        def total(squared: Collect[int]) -> int:
            return sum(squared)
        """
    )
    dr = (
        driver.Builder()
        .enable_dynamic_execution(allow_experimental_mode=True)
        .with_modules(module)
        .with_remote_executor(executors.MultiThreadingExecutor(2))
        .with_adapters(HamiltonTracer())
        .build()
    )
    spans = Spans()
    app = app_of(Hamilton({"n": "n"}, ["total"], dr), spans, n=3)
    app.step()
    assert app.state["total"] == 5
    graph = spans.named("hamilton.execute")
    squared = [s for s in spans.started.values() if s.name == "node:squared"]
    assert len(squared) == 3
    assert {s.parent.uid for s in squared} == {graph.uid}
    assert len({spans.attributes[s.uid]["hamilton.task_id"] for s in squared}) == 3
    assert set(spans.ended) == set(spans.started)


def test_the_tracer_does_nothing_outside_a_step(make_module):
    dr = (
        driver.Builder().with_modules(make_module(TEXT_DAG)).with_adapters(HamiltonTracer()).build()
    )
    assert dr.execute(["n_words"], inputs={"text": "a b"}) == {"n_words": 2}


def test_spans_reach_the_local_tracker_log(make_module, tmp_path):
    tracker = LocalTracker("hamilton", tmp_path / "tracking")
    act = text_action(make_module(TEXT_DAG))
    app = (
        ApplicationBuilder()
        .with_actions(features=act)
        .with_transitions(("features", "features"))
        .with_state(document="x yy", counts=[])
        .with_entrypoint("features")
        .with_tracker(tracker)
        .with_identifiers(app_id="hamilton-run")
        .build()
    )
    app.step()
    records = list(read_log(tracker.log_path("hamilton-run")))
    starts = {r["name"]: r for r in records if r["t"] == "span_start"}
    ends = {r["span"]: r for r in records if r["t"] == "span_end"}
    assert {"hamilton.execute", "node:words", "node:summary"} <= set(starts)
    graph_uid = starts["hamilton.execute"]["span"]
    assert starts["node:summary"]["parent"] == graph_uid
    assert all(ends[r["span"]]["time"] >= r["time"] for r in starts.values())


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["step", "astep"])
def test_a_failing_node_fails_the_step_with_its_type_and_its_name(make_module, mode):
    spans = Spans()
    act = Hamilton(
        inputs=["total", "count"], outputs=["percent"], modules=[make_module(FAILING_DAG)]
    )
    app = app_of(act, spans, total=1, count=0)
    with pytest.raises(ZeroDivisionError) as caught:
        app.step() if mode == "step" else asyncio.run(app.astep())
    assert "raised by Hamilton node 'ratio'" in getattr(caught.value, "__notes__", [])
    failed = spans.named("node:ratio")
    assert isinstance(spans.ended[failed.uid][1], ZeroDivisionError)
    graph = spans.named("hamilton.execute")
    assert isinstance(spans.ended[graph.uid][1], ZeroDivisionError)
    assert not [s for s in spans.started.values() if s.name == "node:percent"]


def test_a_failing_async_node_names_itself(make_module):
    module = make_module(
        """
        async def fetched(query: str) -> str:
            raise LookupError(f"nothing for {query}")
        """
    )
    act = Hamilton(inputs={"query": "q"}, outputs=["fetched"], modules=[module])
    with pytest.raises(LookupError) as caught:
        asyncio.run(app_of(act, q="x").astep())
    assert "raised by Hamilton node 'fetched'" in getattr(caught.value, "__notes__", [])


# -- drawing --------------------------------------------------------------------------------------


def test_dag_dot_shows_the_nodes_a_step_runs_with_sources_and_targets(make_module):
    act = text_action(make_module(TEXT_DAG), overrides={"longest": "best"})
    dot = act.dag_dot()
    assert dot.startswith("digraph hamilton {")
    assert dot.endswith("}\n")
    assert '"text" [label="text\\nstate[\'document\']", shape=oval, style=dashed];' in dot
    assert "= 'doc'" in dot
    assert "update_state 'summary'" in dot
    assert "append_state 'counts'" in dot
    assert "override: state['best']" in dot
    assert '"words" -> "n_words";' in dot
    assert '"min_length"' not in dot  # behind an overridden node: not run
    assert '"min_length"' in act.dag_dot(full=True)


def test_dag_mermaid_uses_safe_ids(make_module):
    mermaid = text_action(make_module(TEXT_DAG)).dag_mermaid()
    assert mermaid.startswith("flowchart LR\n")
    assert "    n4[[\"summary: str<br>update_state 'summary'\"]]" in mermaid
    assert '    n6["words: list"]' in mermaid
    assert "    n6 --> n2" in mermaid
    assert "    n1 -.-> n0" in mermaid  # min_length is an optional dependency of longest


def test_to_dot_draws_the_state_machine_with_each_dag_beside_its_action(make_module):
    app = app_of(text_action(make_module(TEXT_DAG)), document="a", counts=[])
    dot = to_dot(app)
    assert dot.startswith("digraph turnout {")
    assert dot.count("{") == dot.count("}")
    assert 'subgraph "cluster_0" {' in dot
    assert '"features/summary"' in dot
    assert '"features" -> "features/summary" [style=dotted' in dot
    mermaid = to_mermaid(app)
    assert '    subgraph h0["features: Hamilton DAG"]' in mermaid
    assert "    a0 -.- h0" in mermaid


# -- persistence ----------------------------------------------------------------------------------


def test_a_run_persists_and_resumes_from_sqlite(make_module, tmp_path):
    module = make_module(TEXT_DAG)

    def build() -> Application:
        return (
            ApplicationBuilder()
            .with_actions(features=text_action(module))
            .with_transitions(("features", "features"))
            .with_identifiers(app_id="persisted")
            .initialize_from(
                persister,
                default_state={"document": "a bb ccc", "counts": []},
                default_entrypoint="features",
            )
            .with_state_persister(persister)
            .build()
        )

    persister = SQLitePersister(tmp_path / "state.db")
    try:
        first = build()
        first.step()
        first.step()
        again = build()
        assert again.sequence_id == first.sequence_id
        assert again.state["counts"] == [3, 3]
        assert again.state["summary"] == first.state["summary"]
        again.step()
        assert again.state["counts"] == [3, 3, 3]
    finally:
        persister.close()


def test_module_reexports_the_mapping_vocabulary():
    from turnout.integrations import _mapping

    assert from_state is _mapping.from_state
    assert append_state is _mapping.append_state
    assert isinstance(State({"a": 1}), State)


# -- the example ----------------------------------------------------------------------------------


def test_the_example_triages_every_review_with_node_spans():
    from examples.hamilton_features import application as example

    spans = Spans()
    app = example.application()
    app = (
        ApplicationBuilder()
        .with_graph(app.graph)
        .with_state(**app.state.get_all())
        .with_entrypoint("next_review")
        .with_hooks(spans)
        .build()
    )
    _, result, state = app.run(halt_after=["report"])
    assert result is not None
    assert result["reviews"] == len(example.REVIEWS) == len(state["rows"])
    assert result["to_answer"] == [example.REVIEWS[1], example.REVIEWS[2]]
    assert state["rows"][1]["keywords"] == ["broken", "refund", "late"]
    graphs = [s for s in spans.started.values() if s.name == "hamilton.execute"]
    assert len(graphs) == len(example.REVIEWS)
    node_spans = [s for s in spans.started.values() if s.name == "node:sentiment"]
    assert sorted(s.parent.uid for s in node_spans) == sorted(g.uid for g in graphs)


def test_the_example_script_prints_the_graph_with_its_dag(capsys):
    from examples.hamilton_features import application as example

    result = example.main(["--show-dag"])
    out = capsys.readouterr().out
    assert '    subgraph h0["analyse: Hamilton DAG"]' in out
    assert f"{result['reviews']} reviews" in out


def test_app_inputs_feed_the_dag_from_the_step(make_module: Any) -> None:
    """``app_inputs`` (the other adapters' ``inputs=``): a DAG input named in no spec, and a
    state key the spec reads, both come from ``app.step(inputs=...)``."""
    module = make_module(TEXT_DAG)
    act = Hamilton({"text": "text"}, ["summary"], modules=[module], app_inputs=["text", "prefix"])
    assert act.reads == []
    app = app_of(act)  # no "text" in state: it comes from the step
    _act, _result, state = app.step(inputs={"text": "hello big world", "prefix": "bob"})  # type: ignore[misc]
    assert state["summary"] == "bob: 3 words, longest 'hello'"
    with pytest.raises(ValueError, match="needs the inputs 'text', 'prefix'"):
        app.step()


CONFIG_DAG = """
from hamilton.function_modifiers import config

@config.when(mode="fast")
def speed__fast() -> int:
    return 1

@config.when(mode="slow")
def speed__slow() -> int:
    return 2

def result(speed: int) -> int:
    return speed * 10
"""


def test_a_node_missing_for_want_of_config_names_the_config_key(make_module: Any) -> None:
    module = make_module(CONFIG_DAG)
    with pytest.raises(ActionDefinitionError) as caught:
        Hamilton({}, ["result"], modules=[module])
    message = str(caught.value)
    assert "'speed' is defined only under @config.when on the config key(s) ['mode']" in message
    assert "config={'mode': ...}" in message
    act = Hamilton({}, ["result"], modules=[module], config={"mode": "slow"})
    assert app_of(act).step()[2]["result"] == 20  # type: ignore[index]
