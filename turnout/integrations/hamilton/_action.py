"""Hamilton DAGs as actions: ``Hamilton(inputs=..., outputs=..., modules=[...])``.

A Hamilton driver (``hamilton.driver.Driver`` or ``hamilton.async_driver.AsyncDriver``), or the
modules to build one, becomes one action of the state machine::

    summarise = Hamilton(
        inputs={"text": from_state("document"), "top_k": from_value(3)},
        outputs={"n_words": update_state("word_count"), "keywords": append_state("history")},
        modules=[text_features],
    )

The DAG's external inputs come from state keys or constants, the requested nodes' values go into
state, and ``reads``/``writes`` are derived from the two mappings. Overrides replace nodes with
values (constants, or from state with ``from_state``). The driver is built once, validated against
the mappings at construction, and reused by every step.

Each step opens a ``hamilton.execute`` span with one ``node:<name>`` child per node that ran,
timed by Hamilton's lifecycle hooks (``HamiltonTracer`` on the sync driver, ``AsyncHamiltonTracer``
on the async one, whose node hooks await the node). A failing node's exception keeps its type and
gains a note naming the node. ``dag_dot()``/``dag_mermaid()`` draw the DAG, and ``to_dot``/
``to_mermaid`` draw a whole graph with each Hamilton action's DAG next to its node.
"""

from __future__ import annotations

import inspect
import threading
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from turnout.core.action import SingleStepAction
from turnout.core.errors import ActionDefinitionError
from turnout.core.state import State
from turnout.core.tracing import OpenSpan, TracerFactory
from turnout.integrations._guard import missing_extra
from turnout.integrations._mapping import (
    append_state,
    extend_state,
    from_state,
    from_value,
    input_reader,
    output_writer,
    update_state,
)

try:
    import hamilton.async_driver  # type: ignore[import-untyped]
    import hamilton.driver  # type: ignore[import-untyped]
    from hamilton.graph_types import HamiltonGraph, HamiltonNode  # type: ignore[import-untyped]
    from hamilton.lifecycle import (  # type: ignore[import-untyped]
        GraphExecutionHook,
        NodeExecutionHook,
    )
    from hamilton.lifecycle.base import (  # type: ignore[import-untyped]
        BasePostNodeExecuteAsync,
        BasePreNodeExecuteAsync,
    )
except ImportError as _error:  # pragma: no cover - exercised in a subprocess
    raise missing_extra(
        "turnout.integrations.hamilton", 'pip install "turnout[hamilton]"', _error
    ) from _error

__all__ = [
    "AsyncHamilton",
    "AsyncHamiltonTracer",
    "Hamilton",
    "HamiltonTracer",
    "append_state",
    "extend_state",
    "from_state",
    "from_value",
    "to_dot",
    "to_mermaid",
    "update_state",
]

GRAPH_SPAN = "hamilton.execute"
NODE_SPAN_PREFIX = "node:"


def _note(error: BaseException, note: str) -> None:
    notes: list[str] = list(getattr(error, "__notes__", []))
    if note in notes:
        return
    if hasattr(error, "add_note"):  # Python >= 3.11
        error.add_note(note)
    else:  # pragma: no cover - Python 3.10 keeps the note, the traceback does not show it
        error.__notes__ = [*notes, note]  # type: ignore[attr-defined]


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp)


class _Spans:
    """Open spans of the Hamilton runs in progress, keyed by Hamilton's run id and node."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._graphs: dict[str, tuple[TracerFactory, OpenSpan]] = {}
        self._nodes: dict[tuple[str, str, str | None], OpenSpan] = {}

    def run_before_graph_execution(
        self,
        *,
        run_id: str,
        final_vars: list[str],
        inputs: dict[str, Any] | None = None,
        overrides: dict[str, Any] | None = None,
        **future_kwargs: Any,
    ) -> None:
        tracer = TracerFactory.current()
        if tracer is None:  # the driver runs outside a step: nothing to nest under
            return
        span = tracer.start_span(GRAPH_SPAN)
        span.log_attributes(
            **{
                "hamilton.run_id": run_id,
                "hamilton.final_vars": [str(v) for v in final_vars],
                "hamilton.inputs": sorted(inputs or {}),
                "hamilton.overrides": sorted(overrides or {}),
            }
        )
        with self._lock:  # the tracer too: executors may run nodes in other threads
            self._graphs[run_id] = (tracer, span)

    def run_after_graph_execution(
        self, *, run_id: str, error: Exception | None = None, **future_kwargs: Any
    ) -> None:
        with self._lock:
            run = self._graphs.pop(run_id, None)
        if run is not None:
            run[1].end(error)

    def _node_started(
        self, run_id: str, name: str, return_type: Any, tags: Mapping[str, Any], task_id: str | None
    ) -> None:
        with self._lock:
            run = self._graphs.get(run_id)
        if run is None:  # no graph span (the driver runs outside a step, or a foreign run)
            return
        tracer, parent = run
        span = tracer.start_span(NODE_SPAN_PREFIX + name, parent=parent)
        span.log_attributes(
            **{
                "hamilton.node.name": name,
                "hamilton.node.type": _type_name(return_type),
                "hamilton.node.tags": {str(k): str(v) for k, v in tags.items()},
                **({"hamilton.task_id": task_id} if task_id is not None else {}),
            }
        )
        with self._lock:
            self._nodes[(run_id, name, task_id)] = span

    def _node_ended(
        self, run_id: str, name: str, task_id: str | None, error: BaseException | None
    ) -> None:
        if error is not None:
            _note(error, f"raised by Hamilton node {name!r}")
        with self._lock:
            span = self._nodes.pop((run_id, name, task_id), None)
        if span is not None:
            span.end(error)


class HamiltonTracer(_Spans, GraphExecutionHook, NodeExecutionHook):  # type: ignore[misc]
    """Hamilton lifecycle adapter for the sync ``Driver``: one span per run and per node.

    ``Hamilton`` adds it to the drivers it builds. Add it yourself to a driver you build and pass
    in: ``driver.Builder().with_modules(m).with_adapters(HamiltonTracer()).build()``. Outside a
    turnout step it does nothing.
    """

    def run_before_node_execution(
        self,
        *,
        node_name: str,
        node_tags: dict[str, Any],
        node_return_type: type,
        run_id: str,
        task_id: str | None = None,
        **future_kwargs: Any,
    ) -> None:
        self._node_started(run_id, node_name, node_return_type, node_tags, task_id)

    def run_after_node_execution(
        self,
        *,
        node_name: str,
        error: Exception | None,
        run_id: str,
        task_id: str | None = None,
        **future_kwargs: Any,
    ) -> None:
        self._node_ended(run_id, node_name, task_id, error)


class AsyncHamiltonTracer(
    _Spans,
    GraphExecutionHook,  # type: ignore[misc]
    BasePreNodeExecuteAsync,  # type: ignore[misc]
    BasePostNodeExecuteAsync,  # type: ignore[misc]
):
    """Hamilton lifecycle adapter for the ``AsyncDriver``.

    Its node hooks are Hamilton's async ones, which run around the awaited node: the sync node
    hooks fire around the creation of the node's coroutine on that driver and would time nothing.
    """

    async def pre_node_execute(
        self, *, run_id: str, node_: Any, task_id: str | None = None, **future_kwargs: Any
    ) -> None:
        self._node_started(run_id, node_.name, node_.type, node_.tags, task_id)

    async def post_node_execute(
        self,
        *,
        run_id: str,
        node_: Any,
        error: Exception | None = None,
        task_id: str | None = None,
        **future_kwargs: Any,
    ) -> None:
        self._node_ended(run_id, node_.name, task_id, error)


def _is_async_driver(dr: Any) -> bool:
    return isinstance(dr, hamilton.async_driver.AsyncDriver)


def _has_async_nodes(modules: Sequence[types.ModuleType]) -> bool:
    return any(
        inspect.iscoroutinefunction(fn)
        for module in modules
        for name, fn in vars(module).items()
        if not name.startswith("_") and inspect.isfunction(fn)
    )


def _wants_async(
    driver: Any, modules: Sequence[types.ModuleType] | None, asynchronous: bool | None
) -> bool:
    if driver is not None:
        return _is_async_driver(driver)
    if asynchronous is not None:
        return asynchronous
    return _has_async_nodes(modules or ())


def _check_traced(dr: Any, owner: str) -> None:
    wanted = AsyncHamiltonTracer if _is_async_driver(dr) else HamiltonTracer
    adapters = getattr(getattr(dr, "adapter", None), "adapters", ())
    if any(isinstance(adapter, wanted) for adapter in adapters):
        return
    builder = "async_driver.Builder()" if wanted is AsyncHamiltonTracer else "driver.Builder()"
    raise ActionDefinitionError(
        f"{owner}: the driver has no {wanted.__name__}, so its nodes would not appear as spans; "
        f"build it with {builder}...with_adapters({wanted.__name__}()), pass modules=[...] and "
        f"let Hamilton(...) build it, or pass trace_nodes=False"
    )


def _static_overrides(spec: Any) -> Any:
    """Overrides: a str or ``from_state`` reads state; ``from_value`` or any other value is kept."""
    if not isinstance(spec, Mapping):
        return spec
    return {
        name: value if isinstance(value, str | from_state | from_value) else from_value(value)
        for name, value in spec.items()
    }


class Hamilton(SingleStepAction):
    """An action running a Hamilton DAG: state in, requested nodes out.

    Args:
        inputs: the DAG's external inputs, ``{input_name: from_state("key") | from_value(v) |
            "key"}`` (a list of names reads same-named state keys; a function of state returning
            the dict needs ``reads=[...]``).
        outputs: the nodes to compute and where each goes, ``{node_name: update_state("key") |
            append_state("key") | extend_state("key") | "key"}``; a list of node names updates
            same-named keys.
        driver: a built ``Driver`` or ``AsyncDriver`` carrying a ``HamiltonTracer`` (or
            ``AsyncHamiltonTracer``) adapter; or give ``modules`` instead.
        modules: modules of Hamilton functions to build the driver from.
        config: Hamilton configuration for the built driver.
        overrides: nodes to replace by values, ``{node_name: value | from_value(v) |
            from_state("key") | "key"}`` (a str is a state key, as in ``inputs``).
        adapters: more Hamilton adapters for the built driver.
        asynchronous: build an ``AsyncDriver`` (``None``: when a module has an ``async def``).
        trace_nodes: require the tracer adapter on a given driver (one span per node).
        reads: extra state keys read, required with a function input spec.
        writes: extra state keys written, required with a function output spec.
        tags: labels of the action.

    An ``AsyncDriver`` makes an ``AsyncHamilton`` action, run with ``astep``/``arun``.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Hamilton:
        if cls is Hamilton and _wants_async(
            kwargs.get("driver", args[2] if len(args) > 2 else None),
            kwargs.get("modules"),
            kwargs.get("asynchronous"),
        ):
            cls = AsyncHamilton
        return super().__new__(cls)

    def __init__(
        self,
        inputs: Any,
        outputs: Mapping[str, Any] | Sequence[str],
        driver: Any = None,
        *,
        modules: Sequence[types.ModuleType] | None = None,
        config: Mapping[str, Any] | None = None,
        overrides: Any = None,
        adapters: Iterable[Any] = (),
        asynchronous: bool | None = None,
        trace_nodes: bool = True,
        reads: Sequence[str] | None = None,
        writes: Sequence[str] | None = None,
        tags: Sequence[str] = (),
    ) -> None:
        super().__init__()
        owner = "Hamilton(...)"
        self._driver = self._make_driver(
            driver, modules, config, list(adapters), asynchronous, trace_nodes, owner
        )
        self._initialised = driver is not None  # a driver built by us needs ainit() (async)
        if isinstance(outputs, str) or not isinstance(outputs, Mapping | Sequence):
            raise TypeError(
                f"{owner}: outputs is {outputs!r}; give {{node_name: update_state('key'), ...}} "
                f"or a list of node names"
            )
        out_spec = outputs if isinstance(outputs, Mapping) else {n: n for n in outputs}
        self._final_vars = [str(name) for name in out_spec]
        self._read_inputs, input_keys = input_reader(
            list(inputs) if isinstance(inputs, tuple) else inputs, reads=reads, owner=owner
        )
        override_spec = _static_overrides(overrides if overrides is not None else {})
        self._read_overrides, override_keys = input_reader(override_spec, reads=None, owner=owner)
        self._write, self._writes = output_writer(out_spec, writes=writes, owner=owner)
        self._reads = list(dict.fromkeys([*input_keys, *override_keys]))
        self._tags = list(tags)
        self._input_spec = self._named(inputs)
        self._override_spec = self._named(override_spec) or {}
        self._out_spec = dict(out_spec)
        self._config = dict(config or getattr(getattr(self._driver, "graph", None), "config", {}))
        self._validate(owner)

    @staticmethod
    def _make_driver(
        driver: Any,
        modules: Sequence[types.ModuleType] | None,
        config: Mapping[str, Any] | None,
        adapters: list[Any],
        asynchronous: bool | None,
        trace_nodes: bool,
        owner: str,
    ) -> Any:
        if driver is not None:
            if modules or config or adapters:
                raise TypeError(
                    f"{owner}: pass either driver=... or modules=[...] (with config/adapters), "
                    f"not both"
                )
            if not isinstance(driver, hamilton.driver.Driver | hamilton.async_driver.AsyncDriver):
                raise TypeError(
                    f"{owner}: driver is {driver!r}; give a built hamilton.driver.Driver or "
                    f"hamilton.async_driver.AsyncDriver (call .build() on the Builder)"
                )
            if trace_nodes:
                _check_traced(driver, owner)
            return driver
        if not modules:
            raise TypeError(f"{owner}: give driver=<a built Hamilton driver> or modules=[...]")
        if _wants_async(None, modules, asynchronous):
            tracers: list[Any] = [AsyncHamiltonTracer()] if trace_nodes else []
            return (
                hamilton.async_driver.Builder()
                .with_modules(*modules)
                .with_config(dict(config or {}))
                .with_adapters(*tracers, *adapters)
                .build_without_init()
            )
        builder = hamilton.driver.Builder().with_modules(*modules).with_config(dict(config or {}))
        tracers = [HamiltonTracer()] if trace_nodes else []
        if tracers or adapters:
            builder = builder.with_adapters(*tracers, *adapters)
        return builder.build()

    @staticmethod
    def _named(spec: Any) -> dict[str, Any] | None:
        """``{name: source}`` of a mapping or list spec; ``None`` for a function of state."""
        if isinstance(spec, Mapping):
            return {str(k): from_state(v) if isinstance(v, str) else v for k, v in spec.items()}
        if isinstance(spec, Sequence) and not isinstance(spec, str):
            return {str(k): from_state(str(k)) for k in spec}
        return None

    def _validate(self, owner: str) -> None:
        nodes = {n.name: n for n in HamiltonGraph.from_graph(self._driver.graph).nodes}
        computed = sorted(n for n, node in nodes.items() if not node.is_external_input)
        external = sorted(n for n, node in nodes.items() if node.is_external_input)
        unknown = [n for n in self._final_vars if n not in nodes]
        if unknown:
            raise ActionDefinitionError(
                f"{owner}: outputs name {unknown} but the DAG has no such node; its nodes are "
                f"{computed}"
            )
        unknown = [n for n in self._override_spec if n not in nodes]
        if unknown:
            raise ActionDefinitionError(
                f"{owner}: overrides name {unknown} but the DAG has no such node; its nodes are "
                f"{computed}"
            )
        if self._input_spec is None:  # a function of state: its names are known at run time
            return
        unknown = [n for n in self._input_spec if n not in nodes]
        if unknown:
            raise ActionDefinitionError(
                f"{owner}: inputs name {unknown} but the DAG takes no such input; its inputs are "
                f"{external}"
            )
        clash = sorted(set(self._input_spec) & set(self._config))
        if clash:
            raise ActionDefinitionError(
                f"{owner}: {clash} given both as inputs and in the Hamilton config; Hamilton "
                f"takes each name from one place, so drop them from one of the two"
            )
        given = {*self._input_spec, *self._override_spec, *self._config}
        missing = sorted(_walk(nodes, self._final_vars, self._override_spec)[1] - given)
        if missing:
            raise ActionDefinitionError(
                f"{owner}: outputs {self._final_vars} need the DAG inputs {missing}, which inputs "
                f"does not give; add them, e.g. inputs={{{missing[0]!r}: from_state('key')}} "
                f"(the DAG's inputs are {external})"
            )

    @property
    def reads(self) -> list[str]:
        return self._reads

    @property
    def writes(self) -> list[str]:
        return self._writes

    @property
    def tags(self) -> list[str]:
        return self._tags

    @property
    def driver(self) -> Any:
        """The Hamilton driver, built once and reused by every step."""
        return self._driver

    @property
    def final_vars(self) -> list[str]:
        """The nodes each step computes (the keys of ``outputs``)."""
        return list(self._final_vars)

    def _arguments(self, state: State) -> tuple[dict[str, Any], dict[str, Any]]:
        inputs = self._read_inputs(state)
        if not isinstance(inputs, Mapping):
            raise TypeError(
                f"{self._label()}: the inputs function returned {type(inputs).__name__}; it "
                f"must return a dict of the DAG's input names to values"
            )
        return dict(inputs), dict(self._read_overrides(state))

    def _finish(self, results: Any, state: State) -> tuple[dict[str, Any], State]:
        result = dict(results) if isinstance(results, Mapping) else {"result": results}
        return result, self._write(results, state)

    def _label(self) -> str:
        return f"Hamilton action {self.name!r}" if self.has_name else "Hamilton action"

    def run_and_update(self, state: State, **run_kwargs: Any) -> tuple[dict[str, Any], State]:
        inputs, overrides = self._arguments(state)
        results = self._driver.execute(self._final_vars, inputs=inputs, overrides=overrides)
        return self._finish(results, state)

    def dag_dot(self, *, full: bool = False) -> str:
        """The DAG as Graphviz DOT text: the nodes a step runs (``full``: every node), with
        where each input comes from and where each output goes."""
        lines = ["digraph hamilton {", "  rankdir=LR;", *self._draw("dot", "", full), "}"]
        return "\n".join(lines) + "\n"

    def dag_mermaid(self, *, full: bool = False) -> str:
        """The DAG as a Mermaid flowchart; ``full`` as in ``dag_dot``."""
        return "\n".join(["flowchart LR", *self._draw("mermaid", "", full)]) + "\n"

    def _draw(self, kind: str, prefix: str, full: bool) -> list[str]:
        nodes = {n.name: n for n in HamiltonGraph.from_graph(self._driver.graph).nodes}
        shown = set(nodes) if full else _walk(nodes, self._final_vars, self._override_spec)[0]
        names = sorted(shown)
        ids = {n: f"{prefix}{n}" if kind == "dot" else f"{prefix}n{i}" for i, n in enumerate(names)}
        lines = []
        for name in names:
            label, style = self._label_of(nodes[name])
            if kind == "dot":
                lines.append(f"  {_dot(ids[name])} [label={_dot(label)}, {_DOT_STYLE[style]}];")
            else:
                left, right = _MERMAID_SHAPE[style]
                lines.append(f"    {ids[name]}{left}{_mermaid(label)}{right}")
        for name in names:
            if name in self._override_spec:
                continue  # an overridden node's dependencies do not feed it
            node = nodes[name]
            for dep in sorted(node.required_dependencies | node.optional_dependencies):
                if dep not in shown:
                    continue
                optional = dep in node.optional_dependencies
                if kind == "dot":
                    tail = " [style=dashed]" if optional else ""
                    lines.append(f"  {_dot(ids[dep])} -> {_dot(ids[name])}{tail};")
                else:
                    lines.append(f"    {ids[dep]} {'-.->' if optional else '-->'} {ids[name]}")
        return lines

    def _label_of(self, node: HamiltonNode) -> tuple[str, str]:
        name = node.name
        if name in self._override_spec:
            return f"{name}\noverride: {_source_text(self._override_spec[name])}", "override"
        if node.is_external_input:
            source = (self._input_spec or {}).get(name)
            where = (
                _source_text(source)
                if source is not None
                else ("config" if name in self._config else "default")
            )
            return f"{name}\n{where}", "input"
        label = f"{name}: {_type_name(node.type)}"
        if name in self._out_spec:
            target = self._out_spec[name]
            target = update_state(target) if isinstance(target, str) else target
            return f"{label}\n{type(target).__name__} {target.key!r}", "output"
        return label, "node"


class AsyncHamilton(Hamilton):
    """A ``Hamilton`` action over an ``AsyncDriver``: run it with ``astep``/``arun``."""

    async def run_and_update(  # type: ignore[override]
        self, state: State, **run_kwargs: Any
    ) -> tuple[dict[str, Any], State]:
        if not self._initialised:  # adapters' post-graph-construct hooks, once per driver
            self._initialised = True
            await self._driver.ainit()
        inputs, overrides = self._arguments(state)
        results = await self._driver.execute(self._final_vars, inputs=inputs, overrides=overrides)
        return self._finish(results, state)


def _walk(
    nodes: Mapping[str, HamiltonNode], final_vars: Sequence[str], overridden: Mapping[str, Any]
) -> tuple[set[str], set[str]]:
    """``(shown, required)``: the nodes a run of ``final_vars`` touches, and the external inputs
    it cannot run without."""
    shown: set[str] = set()
    required: set[str] = set()
    stack = list(final_vars)
    while stack:
        name = stack.pop()
        if name in shown:
            continue
        shown.add(name)
        node = nodes[name]
        if name in overridden:
            continue
        for dep in node.required_dependencies | node.optional_dependencies:
            if nodes[dep].is_external_input:
                shown.add(dep)
                if dep in node.required_dependencies:
                    required.add(dep)
            else:
                stack.append(dep)
    return shown, required


_DOT_STYLE = {
    "input": "shape=oval, style=dashed",
    "override": 'shape=box, style="rounded,dashed", color=gray40',
    "output": 'shape=box, style="rounded,filled,bold", fillcolor="#d5e8d4"',
    "node": "shape=box, style=rounded",
}
_MERMAID_SHAPE = {
    "input": ("([", "])"),
    "override": ("[/", "/]"),
    "output": ("[[", "]]"),
    "node": ("[", "]"),
}


def _source_text(source: Any) -> str:
    if isinstance(source, from_state):
        return f"state[{source.key!r}]"
    if isinstance(source, from_value):
        text = repr(source.value)
        return f"= {text if len(text) <= 30 else text[:27] + '...'}"
    return "computed by a function of state"


def _dot(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _mermaid(text: str) -> str:
    for char, code in (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(char, code)
    return '"' + text.replace("\n", "<br>") + '"'


def _hamilton_actions(graph: Any) -> list[Hamilton]:
    return [a for a in graph.actions if isinstance(a, Hamilton)]


def to_dot(app_or_graph: Any, **kwargs: Any) -> str:
    """An application's (or graph's) DOT text with the DAG of each Hamilton action drawn in a
    dashed box linked to its node; ``kwargs`` are those of ``Graph.to_dot`` (``current``,
    ``include_conditions``, ``include_inputs``, ``include_state``). Render it with
    ``turnout.core.visualize.render``."""
    graph = getattr(app_or_graph, "graph", app_or_graph)
    body = graph.to_dot(**kwargs).rstrip().removesuffix("}").rstrip("\n").split("\n")
    body.append("  compound=true;")
    for i, act in enumerate(_hamilton_actions(graph)):
        prefix = f"{act.name}/"
        body.append(f"  subgraph {_dot(f'cluster_{i}')} {{")
        label = _dot(f"{act.name}: Hamilton DAG")
        body.append(f"    label={label}; style=dashed; color=gray60; fontname=Helvetica;")
        body.extend("  " + line for line in act._draw("dot", prefix, False))
        body.append("  }")
        head = _dot(prefix + act.final_vars[0])
        body.append(
            f"  {_dot(act.name)} -> {head} [style=dotted, arrowhead=none, "
            f"lhead={_dot(f'cluster_{i}')}];"
        )
    return "\n".join([*body, "}"]) + "\n"


def to_mermaid(app_or_graph: Any, **kwargs: Any) -> str:
    """As ``to_dot``, as a Mermaid flowchart (``kwargs`` of ``Graph.to_mermaid``)."""
    graph = getattr(app_or_graph, "graph", app_or_graph)
    lines = graph.to_mermaid(**kwargs).rstrip("\n").split("\n")
    ids = {act.name: f"a{i}" for i, act in enumerate(graph.actions)}  # the core's node ids
    for i, act in enumerate(_hamilton_actions(graph)):
        lines.append(f"    subgraph h{i}[{_mermaid(f'{act.name}: Hamilton DAG')}]")
        lines.append("      direction LR")
        lines.extend("  " + line for line in act._draw("mermaid", f"h{i}_", False))
        lines.append("    end")
        lines.append(f"    {ids[act.name]} -.- h{i}")
    return "\n".join(lines) + "\n"
