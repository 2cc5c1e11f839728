"""The tracking UI script through ``streamlit.testing`` (every page with the demo data, step
selection, deep links, live refresh), its HTML helpers, the demo generator and ``turnout ui``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("streamlit")

from streamlit.testing.v1 import AppTest

from tests.integrations.missing_extra import import_without
from tests.integrations.streamlit_ui import literal as _literal
from tests.integrations.streamlit_ui import make_demo_dir
from tests.integrations.streamlit_ui import rerun as _rerun
from tests.integrations.streamlit_ui import run_ui as _ui
from tests.integrations.streamlit_ui import ticker as _ticker
from turnout.cli import main
from turnout.core.tracking import LocalTracker
from turnout.integrations.streamlit import demo
from turnout.integrations.streamlit.data import Span, StateDiff, Step
from turnout.integrations.streamlit.index import TrackingIndex
from turnout.integrations.streamlit.render import (
    diff_html,
    fork_snippet,
    waterfall_html,
)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_dir(tmp_path_factory)


def _dot(at: AppTest) -> str:
    (chart,) = at.get("graphviz_chart")
    return str(chart.proto.spec)


def _html(at: AppTest, marker: str) -> str:
    return "".join(m.value for m in at.markdown if marker in m.value)


def test_the_demo_fills_an_empty_dir_with_its_apps(demo_dir: Path) -> None:
    assert not demo.is_empty(demo_dir)
    apps = {a.app_id: a for a in TrackingIndex(demo_dir).apps("demo")}
    assert set(apps) == set(demo.DEMO_APPS)
    assert apps["approval-invalid-decision"].status == "failed"
    assert apps["approval-routed-failure"].error_count == 1
    assert apps["parent-fork"].parent is not None
    assert [c.app_id for c in apps["parent"].children] == ["parent-fork"]
    assert all(a.step_count > 0 for a in apps.values())


def test_projects_page_lists_projects(demo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _ui(demo_dir, monkeypatch)
    assert at.title[0].value == "turnout · projects"
    table = at.table[0].value
    assert list(table.index) == ["demo"]
    assert list(table["apps"]) == [len(demo.DEMO_APPS)]


def test_an_empty_dir_says_how_to_track(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _ui(tmp_path, monkeypatch)
    assert "No tracked applications yet" in at.info[0].value


def test_applications_page_filters_by_status_and_partition(
    demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _ui(demo_dir, monkeypatch)
    at.button(key="open_project:demo").click()
    _rerun(at)
    assert at.query_params["project"] == "demo"
    assert set(at.dataframe[0].value["app"]) == set(demo.DEMO_APPS)
    at.selectbox(key="w_status").select("failed")
    _rerun(at)
    assert list(at.dataframe[0].value["app"]) == ["approval-invalid-decision"]
    assert at.query_params["status"] == "failed"
    at.selectbox(key="w_status").select("all")
    at.selectbox(key="w_pk").select("editor")
    _rerun(at)
    assert set(at.dataframe[0].value["app"]) == {
        "approval-retried",
        "approval-routed-failure",
        "approval-invalid-decision",
    }
    row = at.dataframe[0].value.set_index("app").loc["approval-invalid-decision"]
    assert "failed" in row["status"]


def test_selecting_an_app_and_a_step_shows_its_diff_and_graph(
    demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _ui(demo_dir, monkeypatch, project="demo")
    at.selectbox(key="open_app").select("counter")
    _rerun(at)
    assert _literal(at.title[0].value) == "counter"
    assert at.query_params["app"] == "counter"
    steps = at.dataframe[0].value
    assert list(steps["action"]) == ["increment"] * 5 + ["report"]
    at.selectbox(key="w_step").select(2)
    _rerun(at)
    assert at.query_params["step"] == "2"
    assert at.subheader[0].value == "Step 2 · increment · completed"
    at.radio(key="w_state_view").set_value("diff")
    _rerun(at)
    diff = _html(at, "turnout-diff")
    assert "~ changed" in diff
    assert "<code>count</code>" in diff
    assert "<code>2</code></td><td><code>3</code>" in diff  # before 2, after 3
    at.segmented_control(key="w_tab").set_value("Graph")
    _rerun(at)
    assert at.query_params["tab"] == "Graph"
    dot = _dot(at)
    assert '"increment" [label="increment\\nran 5x", peripheries=2, style="rounded,filled' in dot
    assert '[label="count < limit", style=dashed]' in dot


def test_a_deep_link_restores_app_step_and_tab(
    demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _ui(demo_dir, monkeypatch, project="demo", app="approval-retried", step="5", tab="Graph")
    assert _literal(at.title[0].value) == "approval-retried"
    assert at.subheader[0].value == "Step 5 · publish · completed"
    assert at.segmented_control(key="w_tab").value == "Graph"
    assert 'fillcolor="#ffd966"' in _dot(at).split('"publish" [')[1].split("\n")[0]
    assert at.query_params["step"] == "5"


def test_every_tab_renders_for_a_failed_step(
    demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _ui(demo_dir, monkeypatch, project="demo", app="approval-invalid-decision")
    assert at.subheader[0].value == "Step 2 · review · failed"  # the first failure is selected
    for tab in ("State", "Inputs & Result", "Error", "Attributes & spans", "Code", "Graph", "Fork"):
        at.segmented_control(key="w_tab").set_value(tab)
        _rerun(at)
        if tab == "Error":
            assert "ValueError: decision must be" in _literal(at.error[0].value)
        elif tab == "Inputs & Result":
            assert at.json[0].value == '{"decision": "maybe", "feedback": ""}'
        elif tab == "Code":
            assert "def review(" in at.code[0].value
        elif tab == "Attributes & spans":
            assert "review (step 2)" in _html(at, "turnout-waterfall")
        elif tab == "Fork":
            snippet = at.code[0].value
            assert "fork_from_app_id='approval-invalid-decision'" in snippet
            assert "fork_from_sequence_id=2" in snippet


def test_retries_and_spans_of_the_demo_show(
    demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _ui(demo_dir, monkeypatch, project="demo", app="approval-retried", step="5", tab="Error")
    assert at.expander[0].label == "attempt 1 failed and was retried"
    at = _ui(
        demo_dir, monkeypatch, project="demo", app="chatbot", step="1", tab="Attributes & spans"
    )
    waterfall = _html(at, "turnout-waterfall")
    assert "prepare_prompt" in waterfall
    assert "call_model" in waterfall
    assert any(m.label == "Tokens" and m.value != "-" for m in at.metric)


def test_parent_and_child_links_navigate(demo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _ui(demo_dir, monkeypatch, project="demo", app="parent-fork")
    assert _literal(at.button(key="link:parent:parent").label) == "forked from: parent (step 1)"
    at.button(key="link:parent:parent").click()
    _rerun(at)
    assert _literal(at.title[0].value) == "parent"
    assert at.query_params["step"] == "1"  # the step the fork came from, with its children
    assert _literal(at.button(key="link:child:parent-fork").label) == "fork: parent-fork"
    at.button(key="link:child:parent-fork").click()
    _rerun(at)
    assert _literal(at.title[0].value) == "parent-fork"


def test_spawned_children_are_listed_under_the_step_that_spawned_them(
    demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _ui(demo_dir, monkeypatch, project="demo", app="simulation", step="1")
    children = [_literal(b.label) for b in at.button if b.key and b.key.startswith("link:child:")]
    assert children == [f"child: simulation-round1-seed{i}" for i in range(3)]
    assert any("3 children of this step" in m.value for m in at.markdown)
    assert any("6 child application(s)" in c.value for c in at.caption)
    at.button(key="link:child:simulation-round1-seed2").click()
    _rerun(at)
    assert _literal(at.title[0].value) == "simulation-round1-seed2"
    assert (
        _literal(at.button(key="link:parent:simulation").label) == "spawned by: simulation (step 1)"
    )


def test_tags_show_on_the_app_and_filter_the_applications(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for app_id, env in (("a", "dev"), ("b", "prod")):
        tracker = LocalTracker("tagged", tmp_path, tags={"env": env})
        _ticker(tracker, app_id).step()
        tracker.close()
    at = _ui(tmp_path, monkeypatch, project="tagged")
    assert sorted(at.dataframe[0].value["tags"]) == ["env=dev", "env=prod"]
    at.selectbox(key="w_tag").select("env=prod")
    _rerun(at)
    assert list(at.dataframe[0].value["app"]) == ["b"]
    assert at.query_params["tag"] == "env=prod"
    at = _ui(tmp_path, monkeypatch, project="tagged", app="a")
    assert any("env=dev" in _literal(c.value) for c in at.caption)


def test_an_unknown_app_says_so(demo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _ui(demo_dir, monkeypatch, project="demo", app="nope")
    assert "No tracked application 'nope'" in _literal(at.warning[0].value)


def test_live_mode_shows_new_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = LocalTracker("live", storage_dir=tmp_path)
    app = _ticker(tracker, "ticker")
    app.step()
    at = _ui(tmp_path, monkeypatch, project="live", app="ticker", live="1")
    assert at.toggle(key="w_live").value is True
    assert len(at.dataframe[0].value) == 1
    app.step()
    app.step()
    _rerun(at)
    assert len(at.dataframe[0].value) == 3
    assert at.subheader[0].value == "Step 2 · tick · completed"  # no step chosen: the latest
    assert at.query_params["live"] == "1"
    tracker.close()


def test_html_helpers_leave_no_line_break_that_would_end_the_html_block() -> None:
    """A blank line in a traced key or span name would close the HTML block st.markdown renders
    and turn what follows into markdown (a remote image); the helpers keep it one inert line."""
    hostile = "k\n\n![x](http://127.0.0.1:9/x.png)\r\n"
    table = diff_html(StateDiff(added={hostile: hostile}, removed={}, changed={}))
    step = Step(seq=0, action=hostile, start=1.0, end=2.0)
    for rendered in (table, waterfall_html(step)):
        assert "\n" not in rendered
        assert "\r" not in rendered
        assert "&#10;&#10;![x]" in rendered


def test_html_helpers_escape_changed_values_and_span_names() -> None:
    """Everything the two HTML helpers show comes from a traced log: before/after values and span
    names are escaped too, not only keys and action names."""
    diff = StateDiff(added={}, removed={}, changed={"k": ("<img src=x>", "<script>1</script>")})
    table = diff_html(diff)
    assert "<img" not in table
    assert "<script>" not in table
    assert "&lt;img src=x&gt;" in table
    step = Step(seq=0, action="a", start=1.0, end=2.0)
    step.spans["0:0"] = Span(span_id="0:0", parent=None, name="<img src=y>", start=1.0, end=1.5)
    assert "<img" not in waterfall_html(step)
    assert "&lt;img src=y&gt;" in waterfall_html(step)


def test_html_helpers_escape_traced_text() -> None:
    html = diff_html(StateDiff(added={"<script>": "<b>"}, removed={}, changed={}))
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    step = Step(seq=0, action="<img src=x>", start=1.0, end=2.0)
    assert "<img" not in waterfall_html(step)
    snippet = fork_snippet(
        storage_dir="/d", project="p", app_id="a'b", partition_key=None, seq=3, entrypoint="e"
    )
    compile(snippet, "snippet", "exec")  # valid Python, with the quote escaped


def test_turnout_ui_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "turnout.cli", "ui", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for option in ("--port", "--host", "--dir", "--no-demo"):
        assert option in done.stdout


def test_turnout_ui_generates_the_demo_then_runs_streamlit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands: list[list[str]] = []

    def fake_run(command: list[str], check: bool) -> subprocess.CompletedProcess[str]:
        commands.append(command)
        return subprocess.CompletedProcess(command, 0)

    def fake_exec(path: str, command: list[str]) -> None:
        assert path == command[0]
        commands.append(command)

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(os, "execv", fake_exec)
    assert main(["ui", "--dir", str(tmp_path / "empty"), "--no-demo"]) == 0
    assert demo.is_empty(tmp_path / "empty")
    assert main(["ui", "--dir", str(tmp_path / "home"), "--port", "8123"]) == 0
    assert {a.app_id for a in TrackingIndex(tmp_path / "home").apps("demo")} == set(demo.DEMO_APPS)
    command = commands[-1]
    assert command[1:3] == ["-m", "turnout.integrations.streamlit.serve"]
    assert command[command.index("--port") + 1] == "8123"
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--dir") + 1] == str((tmp_path / "home").resolve())
    assert "--allow-host" not in command


def test_turnout_ui_passes_allowed_hosts_from_options_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands: list[list[str]] = []
    monkeypatch.setattr(os, "execv", lambda path, command: commands.append(command))
    monkeypatch.setattr(
        subprocess,
        "run",
        lambda command, check: commands.append(command) or subprocess.CompletedProcess(command, 0),
    )
    monkeypatch.setenv("TURNOUT_UI_ALLOW_HOSTS", "b.example, c.example")
    args = ["ui", "--dir", str(tmp_path), "--no-demo", "--allow-host", "a.example"]
    assert main(args) == 0
    command = commands[-1]
    allowed = [command[i + 1] for i, word in enumerate(command) if word == "--allow-host"]
    assert allowed == ["a.example", "b.example", "c.example"]


def _tickers(root: Path, apps: int, steps: int) -> None:
    tracker = LocalTracker("many", storage_dir=root)
    for number in range(apps):
        app = _ticker(tracker, f"app-{number:03d}")
        for _ in range(steps):
            app.step()
    tracker.close()


def test_the_application_list_is_paginated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tickers(tmp_path, 55, 1)
    at = _ui(tmp_path, monkeypatch, project="many")
    assert len(at.dataframe[0].value) == 50
    assert "55 of 55 applications · page 1 of 2" in at.caption[0].value
    at.button(key="w_next_page").click()
    _rerun(at)
    assert len(at.dataframe[0].value) == 5
    assert at.query_params["page"] == "2"
    at = _ui(tmp_path, monkeypatch, project="many", page="2")  # the page is in the URL too
    assert len(at.dataframe[0].value) == 5


def test_a_long_step_list_shows_the_page_of_the_chosen_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tickers(tmp_path, 1, 250)
    at = _ui(tmp_path, monkeypatch, project="many", app="app-000", step="240")
    table = at.dataframe[0].value
    assert list(table["seq"]) == list(range(200, 250))
    assert at.subheader[0].value == "Step 240 · tick · completed"
    at.radio(key="w_state_view").set_value("before")
    _rerun(at)
    assert at.json[0].value == '{"n": 240}'


def test_without_streamlit_the_error_names_the_extra() -> None:
    out = import_without("streamlit", "turnout.integrations.streamlit")
    assert out.startswith("MissingExtraError")
    assert 'pip install "turnout[start]"' in out


def test_the_applications_list_shows_a_run_that_started_after_it_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(app_id: str) -> None:
        tracker = LocalTracker("live", tmp_path)
        _ticker(tracker, app_id).step()
        tracker.close()

    run("first")
    at = _ui(tmp_path, monkeypatch, project="live")
    assert "1 of 1 applications" in " ".join(c.value for c in at.caption)
    run("second")
    _rerun(at)  # what the page's own 5-second refresh does
    assert "2 of 2 applications" in " ".join(c.value for c in at.caption)
