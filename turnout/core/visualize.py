"""Drawing a graph: DOT and Mermaid text with no dependency, images through Graphviz's ``dot``.

``to_dot`` and ``to_mermaid`` return text that any Graphviz or Mermaid renderer (GitHub, mkdocs,
notebooks) displays. ``render`` turns DOT into PNG/SVG/PDF by running the Graphviz ``dot`` program
when it is installed, and otherwise says exactly how to install it. ``visualize()`` returns a
``DotSource``: the DOT text as a ``str`` that also reads like the ``graphviz.Digraph`` Burr
returns, without the ``graphviz`` Python package.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from turnout.core.action import bound_name
from turnout.core.condition import default
from turnout.core.errors import MissingExtraError
from turnout.core.retry import ExceptionCondition

if TYPE_CHECKING:
    from turnout.core.graph import Graph

__all__ = ["DotSource", "digraph", "draw", "render", "to_dot", "to_mermaid"]

HIGHLIGHT_FILL = "#ffd966"
HIGHLIGHT_STROKE = "#b7950b"
ERROR_COLOR = "#c0392b"
# What Burr's visualize() gives its graphviz.Digraph; a caller's dicts are merged over these.
VISUALIZE_GRAPH_ATTR = {
    "rankdir": "TB",
    "ranksep": "0.4",
    "compound": "false",
    "concentrate": "false",
}
VISUALIZE_NODE_ATTR = {"fontname": "Helvetica", "margin": "0.15", "fillcolor": "#b4d8e4"}
# A DOT ID that needs no quotes (an identifier or a numeral), as the graphviz package writes it.
_BARE_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|-?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)")
_KEYWORDS = frozenset({"node", "edge", "graph", "digraph", "subgraph", "strict"})


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


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _dot_quote(text: str) -> str:
    return f'"{_dot_escape(text)}"'


def _dot_id(escaped: str) -> str:
    """An already escaped value, bare where DOT allows it (``label=counter``), else quoted."""
    if _BARE_ID.fullmatch(escaped) and escaped.lower() not in _KEYWORDS:
        return escaped
    return f'"{escaped}"'


def _dot_state_label(graph: Graph, name: str) -> str:
    """Burr's label: the name, then reads and writes one per line, left-justified (``\\l``)."""
    act = graph.get_action(name)
    assert act is not None
    lines = [_dot_escape(name)]
    for title, keys in (("reads:", act.reads), ("writes:", act.writes)):
        if keys:
            lines += [title, *(f"  {_dot_escape(key)}" for key in keys)]
    return "\\l".join(lines) + ("\\l" if len(lines) > 1 else "")


def _attr_statement(kind: str, attrs: Mapping[str, str] | None) -> list[str]:
    if not attrs:
        return []
    body = ", ".join(f"{_dot_id(key)}={_attr_value(value)}" for key, value in attrs.items())
    return [f"  {kind} [{body}];"]


def _attr_value(value: str) -> str:
    """Backslashes are kept, as the graphviz package keeps them: ``\\l`` is Graphviz's."""
    return _dot_id(value.replace('"', '\\"'))


def to_dot(
    graph: Graph,
    *,
    current: str | None = None,
    entrypoint: str | None = None,
    include_conditions: bool = True,
    include_inputs: bool = True,
    include_state: bool = False,
    graph_attr: Mapping[str, str] | None = None,
    node_attr: Mapping[str, str] | None = None,
    edge_attr: Mapping[str, str] | None = None,
) -> str:
    """The graph as Graphviz DOT text.

    Args:
        current: an action to highlight (e.g. the next one to run).
        entrypoint: the action to mark as the start (double border).
        include_conditions: label conditional edges with their condition.
        include_inputs: draw each input as a dashed node pointing at the actions taking it.
        include_state: list each action's reads and writes in its node, one per line.
        graph_attr: Graphviz graph attributes (``{"rankdir": "LR"}``), over turnout's.
        node_attr: default node attributes, over turnout's (a node's own still win).
        edge_attr: default edge attributes, over turnout's.

    Conditional edges are dashed; default edges are solid.
    """
    lines = [
        "digraph turnout {",
        "  rankdir=TB;",
        '  node [shape=box, style=rounded, fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
        *_attr_statement("graph", graph_attr),
        *_attr_statement("node", node_attr),
        *_attr_statement("edge", edge_attr),
    ]
    for act in graph.actions:
        attrs = []
        if include_state:
            attrs.append(f"label={_dot_id(_dot_state_label(graph, bound_name(act)))}")
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


class DotSource(str):
    """What ``visualize()`` returns: the DOT text, a ``str``, with the parts of
    ``graphviz.Digraph`` that Burr programs use (``source``, ``graph_attr``, ``node_attr``,
    ``edge_attr``, ``pipe``, ``render``, ``save`` and notebook display), drawn by the Graphviz
    ``dot`` program instead of the ``graphviz`` Python package.

    The attribute dicts are those written into the text on top of turnout's own style; changing
    them afterwards does not change the text (build a new one with ``visualize(graph_attr=...)``).
    ``pipe`` and ``render`` draw in the ``format`` given to them, else the one given to
    ``visualize``, else PDF (graphviz's default). There is no ``format`` attribute: it would
    hide ``str.format``.
    """

    graph_attr: dict[str, str]
    node_attr: dict[str, str]
    edge_attr: dict[str, str]
    _format: str

    def __new__(
        cls,
        source: str,
        *,
        graph_attr: Mapping[str, str] | None = None,
        node_attr: Mapping[str, str] | None = None,
        edge_attr: Mapping[str, str] | None = None,
        format: str | None = None,
    ) -> Self:
        self = super().__new__(cls, source)
        self.graph_attr = dict(graph_attr or {})
        self.node_attr = dict(node_attr or {})
        self.edge_attr = dict(edge_attr or {})
        self._format = format or "pdf"
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        attrs = (self.graph_attr, self.node_attr, self.edge_attr)
        return (_rebuild, (self.source, *attrs, self._format))

    @property
    def source(self) -> str:
        """The DOT text as a plain ``str``."""
        return str.__str__(self)

    def pipe(self, format: str | None = None, encoding: str | None = None) -> Any:
        """The drawing in ``format`` as bytes, or as text decoded with ``encoding``; needs the
        Graphviz ``dot`` program."""
        output = _run_dot(self.source, format or self._format)
        return output if encoding is None else output.decode(encoding)

    def save(self, filename: str | Path | None = None, directory: str | Path | None = None) -> str:
        """Write the DOT text to ``filename`` (default ``Digraph.gv``); return its path."""
        path = Path(directory or "", filename or "Digraph.gv")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.source, encoding="utf-8")
        return str(path)

    def render(
        self,
        filename: str | Path | None = None,
        directory: str | Path | None = None,
        view: bool = False,
        cleanup: bool = False,
        format: str | None = None,
    ) -> str:
        """As ``graphviz.Digraph.render``: write the DOT text to ``filename`` and the drawing to
        ``<filename>.<format>`` (``cleanup`` removes the DOT file); return the drawing's path."""
        dot_file = Path(self.save(filename, directory))
        fmt = format or self._format
        image = dot_file.with_name(f"{dot_file.name}.{fmt}")
        image.write_bytes(_run_dot(self.source, fmt))
        if cleanup:
            dot_file.unlink()
        if view:
            _open(image)
        return str(image)

    def _repr_svg_(self) -> str:
        return str(self.pipe(format="svg", encoding="utf-8"))

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None, **kwargs: Any
    ) -> dict[str, str]:
        """For notebooks: the SVG drawing, or the DOT text where ``dot`` is not installed."""
        if shutil.which("dot") is None:
            return {"text/plain": self.source}
        return {"image/svg+xml": self._repr_svg_()}


def _rebuild(
    source: str,
    graph_attr: dict[str, str],
    node_attr: dict[str, str],
    edge_attr: dict[str, str],
    format: str,
) -> DotSource:
    return DotSource(
        source, graph_attr=graph_attr, node_attr=node_attr, edge_attr=edge_attr, format=format
    )


def digraph(
    graph: Graph,
    *,
    current: str | None,
    include_conditions: bool,
    include_state: bool,
    graph_attr: Mapping[str, str] | None,
    node_attr: Mapping[str, str] | None,
    edge_attr: Mapping[str, str] | None,
    format: str | None,
) -> DotSource:
    """What ``visualize()`` returns: Burr's default attributes merged with the caller's."""
    graph_attr = _strings({**VISUALIZE_GRAPH_ATTR, **(graph_attr or {})})
    node_attr = _strings({**VISUALIZE_NODE_ATTR, **(node_attr or {})})
    edge_attr = _strings(edge_attr or {})
    source = graph.to_dot(
        current=current,
        include_conditions=include_conditions,
        include_state=include_state,
        graph_attr=graph_attr,
        node_attr=node_attr,
        edge_attr=edge_attr,
    )
    return DotSource(
        source, graph_attr=graph_attr, node_attr=node_attr, edge_attr=edge_attr, format=format
    )


def _strings(attrs: Mapping[str, object]) -> dict[str, str]:
    """Attribute values as text: Burr programs pass ``{"fontsize": 12}`` to graphviz too."""
    return {key: str(value) for key, value in attrs.items()}


def draw(
    dot_source: str,
    output_file_path: str | Path | None,
    *,
    view: bool = False,
    write_dot: bool = False,
    format: str | None = None,
) -> None:
    """What ``visualize(...)`` does with its DOT text, as Burr's does: nothing without a path;
    else render the image there and, with ``write_dot``, the DOT text at the path without its
    suffix (``graph.png`` -> ``graph``, as graphviz's ``render`` writes it); ``view`` opens it."""
    if not output_file_path:
        return
    path = Path(output_file_path)
    if write_dot:
        path.with_suffix("").write_text(dot_source, encoding="utf-8")
    written = render(dot_source, path, format=format)
    if view:
        _open(written)


def _open(path: Path) -> None:
    import webbrowser

    webbrowser.open(path.resolve().as_uri())


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
    path.write_bytes(_run_dot(dot_source, fmt))
    return path


def _run_dot(dot_source: str, fmt: str) -> bytes:
    """The drawing of ``dot_source`` in ``fmt`` from Graphviz's ``dot`` program."""
    executable = shutil.which("dot")
    if executable is None:
        raise MissingExtraError(GRAPHVIZ_HELP)
    completed = subprocess.run(
        [executable, f"-T{fmt}"],
        input=dot_source.encode("utf-8"),
        capture_output=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"Graphviz 'dot -T{fmt}' failed ({completed.returncode}): "
            f"{completed.stderr.decode(errors='replace').strip()}"
        )
    return completed.stdout
