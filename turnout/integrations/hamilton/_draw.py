"""Drawing a Hamilton action's DAG (DOT and Mermaid text), alone or inside its state machine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hamilton.graph_types import HamiltonGraph, HamiltonNode  # type: ignore[import-untyped]

from turnout.integrations._mapping import from_state, from_value, update_state
from turnout.integrations.hamilton._tracer import type_name

__all__ = ["Wiring", "to_dot", "to_mermaid", "walk"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Wiring:
    """How a Hamilton action wires its DAG: what a step computes and where each name comes
    from (``inputs`` is ``None`` for a function of state) or goes."""

    graph: Any
    final_vars: list[str]
    inputs: dict[str, Any] | None
    overrides: dict[str, Any]
    config: dict[str, Any]
    outputs: dict[str, Any]

    def dot(self, *, full: bool) -> str:
        lines = ["digraph hamilton {", "  rankdir=LR;", *self.lines("dot", "", full), "}"]
        return "\n".join(lines) + "\n"

    def mermaid(self, *, full: bool) -> str:
        return "\n".join(["flowchart LR", *self.lines("mermaid", "", full)]) + "\n"

    def lines(self, kind: str, prefix: str, full: bool) -> list[str]:
        """The DAG's node and edge lines, ``kind`` ``"dot"`` or ``"mermaid"``."""
        nodes = {n.name: n for n in HamiltonGraph.from_graph(self.graph).nodes}
        shown = set(nodes) if full else walk(nodes, self.final_vars, self.overrides)[0]
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
            if name in self.overrides:
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
        if name in self.overrides:
            return f"{name}\noverride: {_source_text(self.overrides[name])}", "override"
        if node.is_external_input:
            source = (self.inputs or {}).get(name)
            where = (
                _source_text(source)
                if source is not None
                else ("config" if name in self.config else "default")
            )
            return f"{name}\n{where}", "input"
        label = f"{name}: {type_name(node.type)}"
        if name in self.outputs:
            target = self.outputs[name]
            target = update_state(target) if isinstance(target, str) else target
            return f"{label}\n{type(target).__name__} {target.key!r}", "output"
        return label, "node"


def walk(
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


def _hamilton_actions(graph: Any) -> list[Any]:
    return [a for a in graph.actions if isinstance(getattr(a, "_wiring", None), Wiring)]


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
        body.extend("  " + line for line in act._wiring.lines("dot", prefix, False))
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
        lines.extend("  " + line for line in act._wiring.lines("mermaid", f"h{i}_", False))
        lines.append("    end")
        lines.append(f"    {ids[act.name]} -.- h{i}")
    return "\n".join(lines) + "\n"
