"""Drawing a graph: DOT and Mermaid text with no dependency, images through Graphviz's ``dot``.

``to_dot`` and ``to_mermaid`` return text that any Graphviz or Mermaid renderer (GitHub, mkdocs,
notebooks) displays. ``render`` turns DOT into PNG/SVG/PDF by running the Graphviz ``dot`` program
when it is installed, and otherwise says exactly how to install it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from turnout.core.action import bound_name
from turnout.core.condition import default
from turnout.core.errors import MissingExtraError
from turnout.core.retry import ExceptionCondition

if TYPE_CHECKING:
    from turnout.core.graph import Graph

__all__ = ["draw", "render", "to_dot", "to_mermaid"]

HIGHLIGHT_FILL = "#ffd966"
HIGHLIGHT_STROKE = "#b7950b"
ERROR_COLOR = "#c0392b"


def _inputs(graph: Graph) -> dict[str, list[str]]:
    """Input name -> the actions that take it (required or optional), in graph order."""
    out: dict[str, list[str]] = {}
    for act in graph.actions:
        for name in (*act.required_inputs, *act.optional_inputs):
            out.setdefault(name, []).append(bound_name(act))
    return out


def _node_label(graph: Graph, name: str, include_state: bool) -> str:
    if not include_state:
        return name
    act = graph.get_action(name)
    assert act is not None
    reads = ", ".join(act.reads) or "-"
    writes = ", ".join(act.writes) or "-"
    return f"{name}\nreads: {reads}\nwrites: {writes}"


def _dot_quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def to_dot(
    graph: Graph,
    *,
    current: str | None = None,
    entrypoint: str | None = None,
    include_conditions: bool = True,
    include_inputs: bool = True,
    include_state: bool = False,
) -> str:
    """The graph as Graphviz DOT text.

    Args:
        current: an action to highlight (e.g. the next one to run).
        entrypoint: the action to mark as the start (double border).
        include_conditions: label conditional edges with their condition.
        include_inputs: draw each input as a dashed node pointing at the actions taking it.
        include_state: list each action's reads and writes in its node.

    Conditional edges are dashed; default edges are solid.
    """
    lines = [
        "digraph turnout {",
        "  rankdir=TB;",
        '  node [shape=box, style=rounded, fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    for act in graph.actions:
        attrs = []
        label = _node_label(graph, bound_name(act), include_state)
        if label != act.name:
            attrs.append(f"label={_dot_quote(label)}")
        if act.name == entrypoint:
            attrs.append("peripheries=2")
        if act.name == current:
            attrs.append(f'style="rounded,filled", fillcolor="{HIGHLIGHT_FILL}"')
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f"  {_dot_quote(bound_name(act))}{suffix};")
    if include_inputs:
        for name, targets in _inputs(graph).items():
            node = _dot_quote(f"input: {name}")
            lines.append(f"  {node} [shape=oval, style=dashed];")
            lines.extend(f"  {node} -> {_dot_quote(t)} [style=dashed];" for t in targets)
    for t in graph.transitions:
        edge = f"  {_dot_quote(bound_name(t.from_))} -> {_dot_quote(bound_name(t.to))}"
        if t.condition is default:
            lines.append(f"{edge};")
        elif isinstance(t.condition, ExceptionCondition):
            label = f"label={_dot_quote(t.condition.name)}, " if include_conditions else ""
            lines.append(f'{edge} [{label}style=dashed, color="{ERROR_COLOR}"];')
        elif include_conditions:
            lines.append(f"{edge} [label={_dot_quote(t.condition.name)}, style=dashed];")
        else:
            lines.append(f"{edge} [style=dashed];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    """Quote a label for Mermaid: entity codes for the characters its parser treats specially."""
    for char, code in (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(char, code)
    return f'"{text.replace(chr(10), "<br>")}"'


def to_mermaid(
    graph: Graph,
    *,
    current: str | None = None,
    entrypoint: str | None = None,
    include_conditions: bool = True,
    include_inputs: bool = True,
    include_state: bool = False,
) -> str:
    """The graph as a Mermaid flowchart; the arguments are those of ``to_dot``.

    Node ids are ``a0, a1, ...`` (actions) and ``i0, ...`` (inputs), so any action name is safe,
    including Mermaid keywords such as ``end``.
    """
    ids = {act.name: f"a{i}" for i, act in enumerate(graph.actions)}
    lines = ["flowchart TD"]
    for act in graph.actions:
        label = _mermaid_text(_node_label(graph, bound_name(act), include_state))
        lines.append(f"    {ids[act.name]}[{label}]")
    if entrypoint is not None:
        lines.append(f"    start(((start))) --> {ids[entrypoint]}")
    if include_inputs:
        for i, (name, targets) in enumerate(_inputs(graph).items()):
            lines.append(f"    i{i}([{_mermaid_text('input: ' + name)}])")
            lines.extend(f"    i{i} -.-> {ids[t]}" for t in targets)
    for t in graph.transitions:
        source, target = ids[t.from_.name], ids[t.to.name]
        if t.condition is default:
            lines.append(f"    {source} --> {target}")
        elif include_conditions:
            lines.append(f"    {source} -->|{_mermaid_text(t.condition.name)}| {target}")
        else:
            lines.append(f"    {source} -.-> {target}")
    if current is not None:
        lines.append(f"    classDef current fill:{HIGHLIGHT_FILL},stroke:{HIGHLIGHT_STROKE}")
        lines.append(f"    class {ids[current]} current")
    return "\n".join(lines) + "\n"


GRAPHVIZ_HELP = (
    "drawing an image needs the Graphviz 'dot' program, which is not on PATH. Install it: "
    "'apt-get install graphviz' (Debian/Ubuntu), 'brew install graphviz' (macOS), "
    "'conda install graphviz' or 'winget install graphviz' (Windows). No Python package is "
    "needed. Without it, use graph.to_dot() or graph.to_mermaid() and render the text elsewhere."
)


def draw(
    dot_source: str,
    output_file_path: str | Path | None,
    *,
    view: bool = False,
    write_dot: bool = False,
    format: str | None = None,
) -> None:
    """What ``visualize(...)`` does with its DOT text: nothing without a path; else render the
    image there (and ``<path>.dot`` with ``write_dot``) and open it with ``view``."""
    if output_file_path is None:
        return
    path = Path(output_file_path)
    if write_dot:
        render(dot_source, path.with_suffix(".dot") if path.suffix else Path(f"{path}.dot"))
    written = render(dot_source, path, format=format)
    if view:
        import webbrowser

        webbrowser.open(written.resolve().as_uri())


def render(dot_source: str, output_file_path: str | Path, *, format: str | None = None) -> Path:
    """Render DOT text to an image file with Graphviz's ``dot``; return the path written.

    The format comes from ``format`` or the path's suffix (``.png``, ``.svg``, ``.pdf``, ...);
    a path without a suffix gets ``.png`` (or ``.<format>``) appended.
    """
    path = Path(output_file_path)
    if format is not None and path.suffix and path.suffix[1:].lower() != format.lower():
        raise ValueError(
            f"the path {str(path)!r} ends in {path.suffix!r} but format={format!r}; give the path "
            f"without a suffix, or a matching one (e.g. '{path.with_suffix('.' + format)}')."
        )
    fmt = format or (path.suffix[1:] if path.suffix else "png")
    if not path.suffix:
        path = path.with_name(f"{path.name}.{fmt}")
    if fmt == "dot":
        path.write_text(dot_source, encoding="utf-8")
        return path
    executable = shutil.which("dot")
    if executable is None:
        raise MissingExtraError(GRAPHVIZ_HELP)
    completed = subprocess.run(
        [executable, f"-T{fmt}", "-o", str(path)],
        input=dot_source.encode("utf-8"),
        capture_output=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"Graphviz 'dot -T{fmt}' failed ({completed.returncode}): "
            f"{completed.stderr.decode(errors='replace').strip()}"
        )
    return path
