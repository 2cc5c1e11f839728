"""The tracking UI script through ``streamlit.testing`` (every page with the demo data, step
selection, deep links, live refresh), its HTML helpers, the demo generator and ``turnout ui``."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies

pytest.importorskip("streamlit")

from streamlit.testing.v1 import AppTest

from tests.integrations.missing_extra import import_without
from turnout import ApplicationBuilder, State, action
from turnout.cli import main
from turnout.core.tracking import LocalTracker
from turnout.integrations.streamlit import demo
from turnout.integrations.streamlit.data import StateDiff, Step, TrackingIndex
from turnout.integrations.streamlit.params import InvalidParameterError
from turnout.integrations.streamlit.render import (
    diff_html,
    fork_snippet,
    plain,
    reproduce_command,
    waterfall_html,
)

SCRIPT = Path(demo.__file__).with_name("app.py")


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ui")
    demo.generate(root)
    return root


def _ui(root: Path, monkeypatch: pytest.MonkeyPatch, **params: str) -> AppTest:
    monkeypatch.setenv("TURNOUT_UI_DIR", str(root))
    at = AppTest.from_file(str(SCRIPT), default_timeout=30)
    at.query_params.update(params)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def _rerun(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def _dot(at: AppTest) -> str:
    (chart,) = at.get("graphviz_chart")
    return str(chart.proto.spec)


def _literal(markdown: str) -> str:
    """The text a markdown string shows where its only markup is backslash escapes."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


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


@action(reads=["n"], writes=["n"])
def tick(state: State) -> State:
    return state.update(n=state["n"] + 1)


def _ticker(tracker: LocalTracker, app_id: str) -> Any:
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


# -- traced text is shown as text ------------------------------------------------------------------

PAYLOAD = (
    "![x](http://127.0.0.1:9/x.png) **bold** <img src=x onerror=alert(1)> $x$ :red[boom] "
    ":material/home: `code` [link](http://127.0.0.1:9/)"
)


@action(reads=[], writes=["n"])
def explode(state: State) -> State:
    raise ValueError(PAYLOAD)


def _hostile(root: Path) -> None:
    """An app whose partition key, tag, action name and error message are all ``PAYLOAD``."""
    tracker = LocalTracker("hostile", root, tags={"note": PAYLOAD})
    app = (
        ApplicationBuilder()
        .with_actions(**{PAYLOAD: explode})
        .with_transitions()
        .with_state(n=0)
        .with_entrypoint(PAYLOAD)
        .with_identifiers(app_id="victim", partition_key=PAYLOAD)
        .with_tracker(tracker)
        .build()
    )
    with pytest.raises(ValueError, match="bold"):
        app.step()
    tracker.close()


def _shows_literally(markdown: str, text: str) -> bool:
    """Whether ``markdown`` shows ``text`` as literal characters (every markup one escaped)."""
    return plain(text) in markdown and text in _literal(markdown)


def test_traced_text_on_the_application_page_is_literal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hostile(tmp_path)
    at = _ui(tmp_path, monkeypatch, project="hostile", app="victim", tab="Error")
    shown = [at.subheader[0].value, at.error[0].value]
    shown += [c.value for c in at.caption if "partition key" in c.value or "tags" in c.value]
    assert len(shown) == 4
    for value in shown:
        assert _shows_literally(value, PAYLOAD), value
        for markup in ("![", "**", "<img", "$x$", ":red[", ":material/", "`code`", "]("):
            assert not re.search(rf"(?<!\\){re.escape(markup)}", value), (markup, value)
    assert _shows_literally(at.error[0].value, f"ValueError: {PAYLOAD}")
    at.segmented_control(key="w_tab").set_value("Code")
    _rerun(at)
    assert not at.warning  # the action is found in the logged graph by its name


def test_traced_names_in_labels_are_literal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent_tracker = LocalTracker("labels", tmp_path)
    parent = _ticker(parent_tracker, "p-1")
    parent.step()
    parent_tracker.close()
    log = tmp_path / "labels" / "p-1" / "log.jsonl"
    with log.open("a", encoding="utf-8") as out:  # a child link whose id is markup
        out.write(json.dumps({"t": "child", "seq": 0, "child_app_id": "**c**", "kind": "spawn"}))
        out.write("\n")
    at = _ui(tmp_path, monkeypatch)
    assert _literal(at.button(key="open_project:labels").label) == "Open labels"
    at = _ui(tmp_path, monkeypatch, project="labels", app="p-1", step="0")
    label = at.button(key="link:child:**c**").label
    assert label == "child: \\*\\*c\\*\\*"


def test_opening_a_traced_link_to_an_unsafe_id_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker = LocalTracker("links", tmp_path)
    _ticker(tracker, "p-1").step()
    tracker.close()
    log = tmp_path / "links" / "p-1" / "log.jsonl"
    with log.open("a", encoding="utf-8") as out:
        out.write(json.dumps({"t": "child", "seq": 0, "child_app_id": "../../etc", "kind": "fork"}))
        out.write("\n")
    at = _ui(tmp_path, monkeypatch, project="links", app="p-1", step="0")
    at.button(key="link:child:../../etc").click()
    _rerun(at)
    assert "is not a tracked application name" in _literal(at.error[0].value)


# -- the Fork tab's shell command ------------------------------------------------------------------


def test_the_fork_tab_quotes_the_test_case_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "it's a dir; rm -rf ~ #"
    hostile_key = "'; rm -rf ~ # and spaces"
    tracker = LocalTracker("fork", root)
    app = (
        ApplicationBuilder()
        .with_actions(tick)
        .with_transitions(("tick", "tick"))
        .with_state(n=0)
        .with_entrypoint("tick")
        .with_identifiers(app_id="a-1", partition_key=hostile_key)
        .with_tracker(tracker)
        .build()
    )
    app.step()
    tracker.close()
    at = _ui(root, monkeypatch, project="fork", app="a-1", tab="Fork")
    (command,) = [c.value for c in at.code if c.value.startswith("turnout test-case")]
    words = shlex.split(command)
    assert words[words.index("--dir") + 1] == str(root.resolve())
    assert words[words.index("--partition-key") + 1] == hostile_key
    assert words[words.index("--app-id") + 1] == "a-1"
    assert words[words.index("--sequence-id") + 1] == "0"
    snippet = next(c.value for c in at.code if "fork_from_partition_key" in c.value)
    compile(snippet, "snippet", "exec")


def test_test_case_command_quotes_every_value() -> None:
    hostile = "'; rm -rf ~ #"
    command = reproduce_command(
        storage_dir="/a dir", project="p", app_id=hostile, partition_key=f"k {hostile}", seq=3
    )
    assert shlex.split(command) == [
        "turnout", "test-case", "--dir", "/a dir", "--project", "p", "--app-id", hostile,
        "--sequence-id", "3", "--partition-key", f"k {hostile}", "--out",
        "tests/turnout_cases.json",
    ]  # fmt: skip


# -- URL parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "bad", "shown"),
    [
        ({"project": "/etc"}, "project", "'/etc'"),
        ({"project": "../demo"}, "project", "'../demo'"),
        ({"project": "demo\x00"}, "project", "'demo\\x00'"),
        ({"project": "demo", "app": "../demo/counter"}, "app", "'../demo/counter'"),
        ({"project": "demo", "app": "c" * 10_000}, "app", f"{'c' * 60!r}… (10,000 characters)"),
        ({"project": "demo", "page": "abc"}, "page", "'abc'"),
        ({"project": "demo", "page": "0"}, "page", "'0'"),
        ({"project": "demo", "app": "counter", "step": "-1"}, "step", "'-1'"),
        ({"project": "demo", "app": "counter", "step": "9" * 40}, "step", "'999"),
        ({"project": "demo", "app": "counter", "tab": "Secrets"}, "tab", "'Secrets'"),
        ({"project": "demo", "status": "x"}, "status", "'x'"),
        ({"project": "demo", "pk": "a\x00b"}, "pk", "'a\\x00b'"),
        ({"project": "demo", "tag": "t" * 10_000}, "tag", f"{'t' * 60!r}… (10,000 characters)"),
        ({"live": "yes"}, "live", "'yes'"),
    ],
    ids=[
        "absolute-project", "dotdot-project", "nul-project", "dotdot-app", "10kb-app",
        "page-not-a-number", "page-zero", "negative-step", "huge-step", "unknown-tab",
        "unknown-status", "nul-partition-key", "10kb-tag", "live-not-1",
    ],
)  # fmt: skip
def test_a_bad_url_parameter_gets_a_message_not_a_traceback(
    demo_dir: Path, monkeypatch: pytest.MonkeyPatch, params: dict[str, str], bad: str, shown: str
) -> None:
    at = _ui(demo_dir, monkeypatch, **params)  # _ui fails on any exception the page raised
    (error,) = [_literal(e.value) for e in at.error]
    assert error.startswith(f"URL parameter {bad}={shown}"), error
    assert "Fix or remove it" in error
    assert len(error) < 800  # a 10 KB value is shortened, not echoed
    assert bad not in at.query_params  # the refused value is dropped from the address


def test_a_project_outside_the_tracking_directory_is_not_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "outside"
    tracker = LocalTracker("secret", outside)
    _ticker(tracker, "hidden").step()
    tracker.close()
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside / "secret", target_is_directory=True)
    for project in (str(outside / "secret"), "../outside/secret", "link"):
        at = _ui(root, monkeypatch, project=project)
        assert not at.dataframe, project  # no application of the other directory is listed
        assert "hidden" not in str([m.value for m in at.markdown])
    assert TrackingIndex(root).projects() == []
    tracker = LocalTracker("mine", root)
    _ticker(tracker, "own").step()
    tracker.close()
    (root / "mine" / "stolen").symlink_to(outside / "secret" / "hidden", target_is_directory=True)
    listing = TrackingIndex(root).listing("mine")
    assert [a.app_id for a in listing.apps] == ["own"]
    assert listing.unreadable == {"stolen": "its directory leads outside the tracking root"}
    with pytest.raises(InvalidParameterError, match="outside the tracking directory"):
        TrackingIndex(root).app("mine", "stolen")


def test_an_unknown_filter_value_shows_all_and_says_so(
    demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _ui(demo_dir, monkeypatch, project="demo", pk="**nobody**")
    assert set(at.dataframe[0].value["app"]) == set(demo.DEMO_APPS)
    (warning,) = at.warning
    assert "partition key '**nobody**': showing all" in _literal(warning.value)
    assert "pk" not in at.query_params


# -- damaged logs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        '{"t": "begin", "seq": "x", "action": "tick", "time": 1.0}',
        '{"t": "end", "action": "tick", "status": "completed", "time": 1.0}',
        '{"t": "end", "seq": 1, "status": "completed", "changes": "set", "time": 1.0}',
        '{"t": "begin", "seq": [], "time": 1.0}',
    ],
    ids=["seq-not-a-number", "no-seq", "changes-a-string", "seq-a-list"],
)
def test_one_malformed_line_does_not_break_the_applications_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str
) -> None:
    tracker = LocalTracker("damaged", tmp_path)
    for app_id in ("good", "bad"):
        _ticker(tracker, app_id).step()
    tracker.close()
    with (tmp_path / "damaged" / "bad" / "log.jsonl").open("a", encoding="utf-8") as out:
        out.write(line + "\n")
    at = _ui(tmp_path, monkeypatch, project="damaged")
    listed = set(at.dataframe[0].value["app"])
    assert "good" in listed
    if "bad" not in listed:  # the reader raised: the app is shown as unreadable, with why
        assert any("'bad' is unreadable" in _literal(w.value) for w in at.warning)
    # Its own page, and the step the damaged line recorded, render without an exception.
    for step in ("0", "1"):
        at = _ui(tmp_path, monkeypatch, project="damaged", app="bad", step=step)
        assert _literal(at.title[0].value) == "bad"


def test_skipped_malformed_lines_are_counted_on_the_pages(
    demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from turnout.integrations.streamlit import data

    monkeypatch.setattr(data.AppSummary, "bad_lines", 2, raising=False)
    monkeypatch.setattr(data.AppLog, "bad_lines", 3, raising=False)
    at = _ui(demo_dir, monkeypatch, project="demo")
    assert any("malformed log line(s) were skipped" in _literal(w.value) for w in at.warning)
    at = _ui(demo_dir, monkeypatch, project="demo", app="counter")
    assert any("3 malformed line(s)" in w.value for w in at.warning)


def _unescape_strictly(markdown: str) -> str:
    """``markdown`` read as CommonMark reads backslash escapes; fails on an unescaped markup
    character (any ASCII punctuation) or a backslash escaping nothing."""
    out, position = [], 0
    while position < len(markdown):
        char = markdown[position]
        if char == "\\":
            escaped = markdown[position + 1 : position + 2]
            assert re.fullmatch(r"[!-/:-@\[-`{-~]", escaped), markdown
            out.append(escaped)
            position += 2
            continue
        assert not re.fullmatch(r"[!-/:-@\[-`{-~]", char), (char, markdown)
        out.append(char)
        position += 1
    return "".join(out)


@settings(max_examples=300, deadline=None)
@given(text=strategies.text())
def test_plain_makes_any_text_literal_on_one_line(text: str) -> None:
    shown = plain(text)
    assert _unescape_strictly(shown) == " ".join(text.splitlines())
    assert len(shown.splitlines()) <= 1


def test_plain_escapes_every_streamlit_markup() -> None:
    assert plain(PAYLOAD).startswith(r"\!\[x\]\(http\:\/\/127\.0\.0\.1\:9\/x\.png\) \*\*bold\*\*")
    assert r"\$x\$ \:red\[boom\] \:material\/home\:" in plain(PAYLOAD)


def test_an_app_whose_log_cannot_be_read_is_listed_as_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from turnout.integrations.streamlit import data

    tracker = LocalTracker("unreadable", tmp_path)
    for app_id in ("fine", "locked"):
        _ticker(tracker, app_id).step()
    tracker.close()
    refresh = data.AppLog.refresh

    def failing(log: data.AppLog) -> int:
        if log.path.parent.name == "locked":
            raise PermissionError(13, "Permission denied", str(log.path))
        return refresh(log)

    monkeypatch.setattr(data.AppLog, "refresh", failing)
    listing = TrackingIndex(tmp_path).listing("unreadable")
    assert [a.app_id for a in listing.apps] == ["fine"]
    assert listing.unreadable["locked"].startswith("PermissionError: [Errno 13] Permission denied")
    at = _ui(tmp_path, monkeypatch, project="unreadable")
    assert list(at.dataframe[0].value["app"]) == ["fine"]
    (warning,) = at.warning
    assert "Application 'locked' is unreadable: PermissionError" in _literal(warning.value)
    at = _ui(tmp_path, monkeypatch, project="unreadable", app="locked")
    assert "'locked' is unreadable: PermissionError" in _literal(at.error[0].value)
