"""Drawing graphs: exact DOT and Mermaid text, their options and escaping, and rendering images
with the Graphviz ``dot`` program (or a clear error when it is missing)."""

from __future__ import annotations

import copy
import pickle
import shutil

import pytest

from turnout import ApplicationBuilder, GraphBuilder, Result, State, action, expr
from turnout.core import visualize
from turnout.core.application import Application
from turnout.core.errors import GraphSetupError, MissingExtraError
from turnout.core.visualize import (
    VISUALIZE_GRAPH_ATTR,
    VISUALIZE_NODE_ATTR,
    DotSource,
    render,
    to_dot,
    to_mermaid,
)


@action(reads=["count"], writes=["count"])
def counter(state: State, step: int = 1) -> State:
    return state.update(count=state["count"] + step)


def _app() -> Application:
    """counter loops while ``count < 3`` (it takes an optional input), then goes to result."""
    return (
        ApplicationBuilder()
        .with_actions(counter, result=Result("count"))
        .with_transitions(("counter", "counter", expr("count < 3")), ("counter", "result"))
        .with_state(count=0)
        .with_entrypoint("counter")
        .build()
    )


DOT_HEADER = [
    "digraph turnout {",
    "  rankdir=TB;",
    '  node [shape=box, style=rounded, fontname="Helvetica"];',
    '  edge [fontname="Helvetica", fontsize=10];',
]


# -- DOT -----------------------------------------------------------------------------------------


def test_to_dot_draws_actions_inputs_and_transitions_exactly():
    assert _app().graph.to_dot() == (
        "digraph turnout {\n"
        "  rankdir=TB;\n"
        '  node [shape=box, style=rounded, fontname="Helvetica"];\n'
        '  edge [fontname="Helvetica", fontsize=10];\n'
        '  "counter" [peripheries=2];\n'
        '  "result";\n'
        '  "input: step" [shape=oval, style=dashed];\n'
        '  "input: step" -> "counter" [style=dashed];\n'
        '  "counter" -> "counter" [label="count < 3", style=dashed];\n'
        '  "counter" -> "result";\n'
        "}\n"
    )


def test_to_dot_highlights_the_current_action():
    lines = _app().graph.to_dot(current="result").splitlines()
    assert '  "result" [style="rounded,filled", fillcolor="#ffd966"];' in lines
    assert '  "counter" [peripheries=2];' in lines


def test_to_dot_without_conditions_draws_conditional_edges_dashed_without_labels():
    lines = _app().graph.to_dot(include_conditions=False).splitlines()
    assert '  "counter" -> "counter" [style=dashed];' in lines
    assert '  "counter" -> "result";' in lines
    assert not any("label=" in line for line in lines)


def test_to_dot_without_inputs_draws_no_input_nodes():
    assert _app().graph.to_dot(include_inputs=False).splitlines() == [
        *DOT_HEADER,
        '  "counter" [peripheries=2];',
        '  "result";',
        '  "counter" -> "counter" [label="count < 3", style=dashed];',
        '  "counter" -> "result";',
        "}",
    ]


def test_to_dot_with_state_lists_reads_and_writes_one_per_line_as_burr_does():
    lines = _app().graph.to_dot(current="counter", include_state=True).splitlines()
    assert lines[4:6] == [
        '  "counter" [label="counter\\lreads:\\l  count\\lwrites:\\l  count\\l", '
        'peripheries=2, style="rounded,filled", fillcolor="#ffd966"];',
        '  "result" [label="result\\lreads:\\l  count\\l"];',
    ]


def test_a_graph_without_an_entrypoint_draws_no_start_marker():
    graph = GraphBuilder().with_actions(counter).build()
    assert graph.to_dot().splitlines() == [
        *DOT_HEADER,
        '  "counter";',
        '  "input: step" [shape=oval, style=dashed];',
        '  "input: step" -> "counter" [style=dashed];',
        "}",
    ]
    assert "start" not in graph.to_mermaid()


def test_an_input_taken_by_several_actions_is_drawn_once_pointing_at_each():
    @action(reads=[], writes=[])
    def other(state: State, step: int) -> State:
        return state

    graph = GraphBuilder().with_actions(counter, other).build()
    lines = graph.to_dot().splitlines()
    assert lines.count('  "input: step" [shape=oval, style=dashed];') == 1
    assert '  "input: step" -> "counter" [style=dashed];' in lines
    assert '  "input: step" -> "other" [style=dashed];' in lines


# -- Mermaid -------------------------------------------------------------------------------------


def test_to_mermaid_draws_actions_inputs_and_transitions_exactly():
    assert _app().graph.to_mermaid() == (
        "flowchart TD\n"
        '    a0["counter"]\n'
        '    a1["result"]\n'
        "    start(((start))) --> a0\n"
        '    i0(["input: step"])\n'
        "    i0 -.-> a0\n"
        '    a0 -->|"count #lt; 3"| a0\n'
        "    a0 --> a1\n"
    )


def test_to_mermaid_options_highlight_state_and_conditions():
    text = _app().graph.to_mermaid(
        current="counter", include_conditions=False, include_inputs=False, include_state=True
    )
    assert text == (
        "flowchart TD\n"
        '    a0["counter<br>reads: count<br>writes: count"]\n'
        '    a1["result<br>reads: count<br>writes: -"]\n'
        "    start(((start))) --> a0\n"
        "    a0 -.-> a0\n"
        "    a0 --> a1\n"
        "    classDef current fill:#ffd966,stroke:#b7950b\n"
        "    class a0 current\n"
    )


def test_mermaid_node_ids_make_an_action_named_end_safe():
    @action(reads=[], writes=[])
    def end(state: State) -> State:
        return state

    @action(reads=[], writes=[])
    def begin(state: State) -> State:
        return state

    graph = GraphBuilder().with_actions(begin, end).with_transitions(("begin", "end")).build()
    assert graph.to_mermaid().splitlines() == [
        "flowchart TD",
        '    a0["begin"]',
        '    a1["end"]',
        "    a0 --> a1",
    ]


# -- escaping ------------------------------------------------------------------------------------


def _tricky():
    @action(reads=["label"], writes=[])
    def noop(state: State) -> State:
        return state

    return (
        GraphBuilder()
        .with_actions(**{'say "hi"': noop, "plain": noop})
        .with_transitions(("plain", 'say "hi"', expr('label != "<#>"')))
        .build()
    )


def test_dot_escapes_quotes_in_names_and_labels():
    lines = _tricky().to_dot(include_inputs=False).splitlines()
    assert lines[4:] == [
        '  "say \\"hi\\"";',
        '  "plain";',
        '  "plain" -> "say \\"hi\\"" [label="label != \\"<#>\\"", style=dashed];',
        "}",
    ]


def test_dot_escapes_backslashes_and_newlines():
    @action(reads=[], writes=[])
    def noop(state: State) -> State:
        return state

    graph = GraphBuilder().with_actions(**{"a\\b\nc": noop}).build()
    assert graph.to_dot().splitlines()[4] == '  "a\\\\b\\nc";'


def test_mermaid_escapes_quotes_angle_brackets_and_hashes():
    lines = _tricky().to_mermaid(include_inputs=False).splitlines()
    assert lines == [
        "flowchart TD",
        '    a0["say #quot;hi#quot;"]',
        '    a1["plain"]',
        '    a1 -->|"label != #quot;#lt;#35;#gt;#quot;"| a0',
    ]


# -- Application.visualize -----------------------------------------------------------------------


BURR_ATTRS = {"graph_attr": VISUALIZE_GRAPH_ATTR, "node_attr": VISUALIZE_NODE_ATTR}


def test_application_visualize_returns_dot_text_highlighting_the_next_action():
    app = _app()
    assert app.visualize() == app.graph.to_dot(current="counter", **BURR_ATTRS)
    app.run(halt_before=["result"])
    assert app.visualize() == app.graph.to_dot(current="result", **BURR_ATTRS)
    app.step()
    assert app.visualize() == app.graph.to_dot(**BURR_ATTRS)


def test_application_visualize_passes_its_options_on():
    app = _app()
    assert app.visualize(include_conditions=False, include_state=True, highlight_next=False) == (
        app.graph.to_dot(include_conditions=False, include_state=True, **BURR_ATTRS)
    )


def test_application_visualize_rejects_another_engine():
    with pytest.raises(ValueError, match="engine must be 'graphviz'"):
        _app().visualize(engine="mermaid")


def test_graph_and_application_refuse_another_engine_with_turnouts_setup_error():
    app = _app()
    for draw in (app.visualize, app.graph.visualize):
        with pytest.raises(GraphSetupError, match="engine must be 'graphviz'"):
            draw(engine="mermaid")


def test_application_visualize_writes_a_dot_file_without_graphviz(tmp_path, monkeypatch):
    monkeypatch.setattr(visualize.shutil, "which", lambda name: None)
    app = _app()
    source = app.visualize(tmp_path / "graph.dot")
    assert (tmp_path / "graph.dot").read_text(encoding="utf-8") == source


def test_render_without_graphviz_raises_missing_extra_naming_how_to_install_it(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(visualize.shutil, "which", lambda name: None)
    with pytest.raises(MissingExtraError) as info:
        render(_app().graph.to_dot(), tmp_path / "graph.png")
    message = str(info.value)
    assert "Graphviz 'dot' program" in message
    assert "apt-get install graphviz" in message
    assert "brew install graphviz" in message
    assert "to_mermaid()" in message
    assert isinstance(info.value, ImportError)
    assert not (tmp_path / "graph.png").exists()


def test_application_visualize_to_an_image_without_graphviz_raises_missing_extra(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(visualize.shutil, "which", lambda name: None)
    with pytest.raises(MissingExtraError, match="apt-get install graphviz"):
        _app().visualize(tmp_path / "graph")


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs the Graphviz 'dot' program")
def test_visualize_writes_png_svg_and_dot_files_with_graphviz(tmp_path):
    app = _app()
    source = app.visualize(tmp_path / "graph", write_dot=True)
    assert (tmp_path / "graph.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "graph").read_text(encoding="utf-8") == source  # Burr's place for it
    app.visualize(tmp_path / "drawing", format="svg")
    svg = (tmp_path / "drawing.svg").read_text(encoding="utf-8")
    assert "<svg" in svg
    assert "counter" in svg
    assert render(source, tmp_path / "direct.svg") == tmp_path / "direct.svg"
    with pytest.raises(RuntimeError, match="dot -Tnot-a-format"):
        render(source, tmp_path / "bad", format="not-a-format")


# -- the module-level functions ------------------------------------------------------------------


def test_module_functions_match_the_graph_methods():
    app = _app()
    graph = app.graph
    assert to_dot(graph, entrypoint="counter") == graph.to_dot()
    assert to_mermaid(graph, entrypoint="counter", current="result") == graph.to_mermaid(
        current="result"
    )


# -- what visualize() returns: a str that reads like Burr's graphviz.Digraph ---------------------

needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None, reason="needs the Graphviz 'dot' program"
)


def test_visualize_returns_a_str_with_digraph_source_and_burrs_default_attributes():
    drawn = _app().graph.visualize()
    assert isinstance(drawn, DotSource)
    assert isinstance(drawn, str)
    assert drawn.source == drawn
    assert type(drawn.source) is str
    assert drawn.graph_attr == VISUALIZE_GRAPH_ATTR
    assert drawn.node_attr == VISUALIZE_NODE_ATTR
    assert drawn.edge_attr == {}
    assert callable(drawn.format)  # str.format, not hidden by a Digraph.format string


def test_visualize_merges_the_callers_attribute_dicts_over_burrs_and_writes_them_into_the_text():
    drawn = _app().visualize(
        graph_attr={"rankdir": "LR"}, node_attr={"fontname": "Courier"}, edge_attr={"color": "red"}
    )
    assert drawn.graph_attr == {**VISUALIZE_GRAPH_ATTR, "rankdir": "LR"}
    assert drawn.node_attr == {**VISUALIZE_NODE_ATTR, "fontname": "Courier"}
    assert drawn.edge_attr == {"color": "red"}
    assert drawn.splitlines()[4:7] == [
        "  graph [rankdir=LR, ranksep=0.4, compound=false, concentrate=false];",
        '  node [fontname=Courier, margin=0.15, fillcolor="#b4d8e4"];',
        "  edge [color=red];",
    ]


def test_to_dot_writes_attribute_statements_after_turnouts_own_quoting_only_what_needs_it():
    lines = (
        _app()
        .graph.to_dot(
            graph_attr={"label": 'say "hi"', "ranksep": "-1.5"}, edge_attr={"label": "a\\lb"}
        )
        .splitlines()
    )
    assert lines[:4] == DOT_HEADER
    assert lines[4:6] == [
        '  graph [label="say \\"hi\\"", ranksep=-1.5];',
        '  edge [label="a\\lb"];',  # a Graphviz escape is kept, as the graphviz package keeps it
    ]


@pytest.mark.parametrize(
    ("reads", "writes", "label"),
    [
        ([], [], "label=counter"),
        (["count"], [], 'label="counter\\lreads:\\l  count\\l"'),
        ([], ["count"], 'label="counter\\lwrites:\\l  count\\l"'),
        (["a", "b"], ["c"], 'label="counter\\lreads:\\l  a\\l  b\\lwrites:\\l  c\\l"'),
    ],
    ids=["nothing", "reads", "writes", "both"],
)
def test_include_state_labels_are_burrs_one_key_per_line(reads, writes, label):
    act = action(reads=reads, writes=writes)(lambda state: state)
    graph = GraphBuilder().with_actions(counter=act).build()
    assert f'  "counter" [{label}];' in graph.visualize(include_state=True).splitlines()


def test_include_state_labels_escape_names_but_keep_the_line_breaks():
    act = action(reads=['say "hi"'], writes=[])(lambda state: state)
    graph = GraphBuilder().with_actions(**{"a\\b": act}).build()
    assert (
        '  "a\\\\b" [label="a\\\\b\\lreads:\\l  say \\"hi\\"\\l"];'
        in graph.to_dot(include_state=True).splitlines()
    )


def test_visualize_refuses_a_keyword_graphviz_digraph_has_but_turnout_does_not_draw():
    with pytest.raises(TypeError, match="body"):
        _app().visualize(body=["x -> y"])  # type: ignore[call-arg]


@needs_dot
def test_the_returned_text_pickles_and_copies_with_its_attributes():
    drawn = _app().visualize(edge_attr={"color": "red"}, format="svg")
    for again in (pickle.loads(pickle.dumps(drawn)), copy.copy(drawn)):
        assert type(again) is DotSource
        assert again == drawn
        assert again.edge_attr == {"color": "red"}
        assert again.pipe().startswith(b"<?xml")  # the format given to visualize() is kept


@pytest.mark.parametrize(
    ("filename", "write_dot", "files"),
    [
        ("graph", False, {"graph.png"}),
        ("graph.png", False, {"graph.png"}),
        ("graph", True, {"graph", "graph.png"}),
        ("graph.svg", True, {"graph", "graph.svg"}),
    ],
    ids=["no-suffix", "suffix", "no-suffix-write-dot", "suffix-write-dot"],
)
@needs_dot
def test_write_dot_puts_the_dot_text_at_the_path_without_its_suffix_as_burr_does(
    tmp_path, filename, write_dot, files
):
    source = _app().graph.visualize(tmp_path / filename, write_dot=write_dot)
    assert {p.name for p in tmp_path.iterdir()} == files
    if write_dot:
        assert (tmp_path / "graph").read_text(encoding="utf-8") == source


def test_no_path_and_an_empty_path_write_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _app().visualize(None, write_dot=True)
    _app().visualize("", write_dot=True)
    assert list(tmp_path.iterdir()) == []


@needs_dot
def test_render_pipe_and_save_work_as_graphviz_digraphs_do(tmp_path):
    drawn = _app().visualize(format="svg")
    assert drawn.pipe().startswith(b"<?xml")
    assert "<svg" in drawn.pipe(format="svg", encoding="utf-8")
    assert drawn.pipe(format="png")[:4] == b"\x89PNG"
    rendered = drawn.render("graph", directory=tmp_path)
    assert rendered == str(tmp_path / "graph.svg")
    assert (tmp_path / "graph").read_text(encoding="utf-8") == drawn
    assert drawn.render(tmp_path / "clean", format="png", cleanup=True).endswith("clean.png")
    assert not (tmp_path / "clean").exists()
    assert drawn.save(directory=tmp_path) == str(tmp_path / "Digraph.gv")


@needs_dot
def test_notebooks_get_svg_from_the_text_the_graph_and_the_application():
    app = _app()
    assert app.visualize()._repr_svg_().lstrip().startswith("<?xml")
    for shown in (app.visualize(), app.graph, app):
        bundle = shown._repr_mimebundle_()
        assert list(bundle) == ["image/svg+xml"]
        assert "counter" in bundle["image/svg+xml"]


def test_without_graphviz_notebooks_get_the_text_and_rendering_says_how_to_install_it(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(visualize.shutil, "which", lambda name: None)
    drawn = _app().visualize()
    assert drawn._repr_mimebundle_() == {"text/plain": drawn.source}
    with pytest.raises(MissingExtraError, match="apt-get install graphviz"):
        drawn.pipe()
    with pytest.raises(MissingExtraError, match="apt-get install graphviz"):
        drawn.render(tmp_path / "graph")
