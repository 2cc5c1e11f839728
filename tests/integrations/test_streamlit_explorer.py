"""Burr's Streamlit helpers (``turnout.integrations.streamlit``: ``AppState``, ``Record``,
``render_explorer``, ``load_state_from_log_file``, ...) through ``streamlit.testing``: a
Burr-style page of our own (``explorer_app/``, the layout of Burr's examples), pages over logs
loaded from files (turnout's tracking log, Burr's, ``StateAndResultsFullLogger``'s), damaged
and hostile files."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("streamlit")

from streamlit.testing.v1 import AppTest

from tests.integrations.explorer_app import counter_application as counter
from turnout.core import ApplicationBuilder, State
from turnout.core.action import SingleStepAction
from turnout.core.errors import PersistenceError, SessionStateError, TrackingWarning
from turnout.core.tracking import LocalTracker
from turnout.integrations.streamlit import AppState, Record, load_state_from_log_file
from turnout.integrations.streamlit.explorer import state_machine_dot
from turnout.integrations.streamlit.render import plain
from turnout.lifecycle import StateAndResultsFullLogger

ROOT = Path(__file__).resolve().parents[2]
PAGE = Path(__file__).resolve().parent / "explorer_app" / "streamlit_app.py"
BURR_LOG = ROOT / "tests" / "compat" / "data" / "burr_0_43_tracking" / "demo_project" / "app-1"
PAYLOAD = "![x](http://127.0.0.1:9/x.png) **bold** <img src=x onerror=alert(1)> :red[boom]"


def literal(markdown: str) -> str:
    """The text a markdown string shows where its only markup is backslash escapes."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def _forward(at: AppTest, times: int) -> AppTest:
    for _ in range(times):
        at.button[0].click()
        _run(at)
    return at


def _dot(at: AppTest) -> str:
    return str(at.get("graphviz_chart")[0].proto.spec)


def _fill(dot: str, name: str) -> str | None:
    """The fill colour the explorer's last statement for node ``name`` gives it."""
    fills = [
        line.split('fillcolor="')[1].split('"')[0]
        for line in dot.splitlines()
        if line.strip().startswith(f'"{name}" [style="rounded,filled"')
    ]
    return fills[-1] if fills else None


def _shown_json(at: AppTest) -> list[Any]:
    return [json.loads(element.value) for element in at.json]


# -- the Burr-style page ---------------------------------------------------------------------------


def test_the_page_before_any_step_draws_the_graph_and_no_action() -> None:
    at = _run(AppTest.from_file(str(PAGE), default_timeout=30))
    assert [tab.label for tab in at.tabs] == ["Application", "Action", "State/Results"]
    assert "No current action." in [m.value for m in at.markdown]
    assert not at.json
    assert not at.select_slider
    assert _fill(_dot(at), "counter") is None  # nothing ran: nothing highlighted
    assert at.session_state["burr_state"].history == []


def test_each_forward_click_records_a_step_and_the_explorer_shows_the_newest() -> None:
    at = _forward(_run(AppTest.from_file(str(PAGE), default_timeout=30)), 3)
    history = at.session_state["burr_state"].history
    assert [(r.action, r.state) for r in history] == [
        ("counter", {"counter": n}) for n in (1, 2, 3)
    ]
    assert at.select_slider[0].options == ["0: counter", "1: counter", "2: counter"]
    assert at.select_slider[0].value == 2
    assert _shown_json(at) == [{"counter": 3}, {}]  # the state, then the result
    assert [h.value for h in at.header] == ["counter", "counter", "State", "Result"]
    assert at.code[0].value == "Counted to 1!\nCounted to 2!\nCounted to 3!"
    assert "def counter(state: State) -> State:" in at.code[1].value  # the action's code
    assert "#### Reads:\n- counter" in [m.value for m in at.markdown]
    dot = _dot(at)
    assert _fill(dot, "counter") == "darkgreen"  # the step shown
    assert _fill(dot, "result") == "blue"  # what the application runs next


def test_the_slider_picks_the_step_shown_in_every_tab() -> None:
    at = _forward(_run(AppTest.from_file(str(PAGE), default_timeout=30)), 4)
    assert at.select_slider[0].options[-1] == "3: result"
    at.select_slider[0].set_value(0)
    _run(at)
    assert at.session_state["burr_state"].display_index == 0
    assert _shown_json(at) == [{"counter": 1}, {}]
    dot = _dot(at)
    assert _fill(dot, "counter") == "darkgreen"  # the next step is counter again: shown wins
    assert _fill(dot, "result") is None
    at.select_slider[0].set_value(3)
    _run(at)
    assert _shown_json(at) == [{"counter": 3}, {"counter": 3}]
    assert [h.value for h in at.header][:2] == ["result", "result"]
    dot = _dot(at)
    assert (_fill(dot, "result"), _fill(dot, "counter")) == ("darkgreen", "#b9deea")


def test_forward_past_the_end_counts_again_as_burrs_example_does() -> None:
    at = _forward(_run(AppTest.from_file(str(PAGE), default_timeout=30)), 5)
    history = at.session_state["burr_state"].history
    assert [r.action for r in history] == ["counter", "counter", "counter", "result", "counter"]
    assert history[-1].state == {"counter": 1}
    assert at.select_slider[0].value == 4  # set_slider_to_current() moved it to the newest


# -- AppState and the graph -----------------------------------------------------------------------


def _records(*names: str) -> list[Record]:
    return [Record({"counter": i}, name, {}) for i, name in enumerate(names)]


def test_app_state_answers_burrs_questions_about_the_step_shown() -> None:
    app = counter.application()
    app_state = AppState(display_index=2, history=_records(*"abcdef"), app=app, num_prior_nodes=2)
    assert (app_state.current_action, app_state.prior_actions) == ("c", ["a", "b"])
    assert (app_state.next_action, app_state.max_index) == ("d", 5)
    app_state.display_index = 5
    assert app_state.next_action == "counter"  # after the newest step: the application's next
    empty = AppState.from_empty(app)
    assert (empty.display_index, empty.history, empty.max_index) == (0, [], -1)
    assert (empty.current_action, empty.prior_actions) == (None, [])


def test_older_steps_fade_and_names_outside_the_graph_are_not_drawn() -> None:
    app = counter.application()
    history = _records("counter", "result", "counter", "result", 'not an action"];x')
    app_state = AppState(display_index=3, history=history, app=app)
    dot = state_machine_dot(app_state)
    assert _fill(dot, "result") == "darkgreen"
    assert _fill(dot, "counter") == "#b9deea"  # the most recent prior step: the darkest shade
    assert "not an action" not in dot  # a name read from a log never reaches the DOT text
    app_state.display_index = 4  # the shown step is not in this application's graph
    assert 'fillcolor="darkgreen"' not in state_machine_dot(app_state)


def test_get_state_before_update_state_names_the_fix() -> None:
    def page() -> None:
        from turnout.integrations.streamlit import get_state

        get_state()

    at = AppTest.from_function(page, default_timeout=30).run()
    (failure,) = at.exception
    assert "AppState.from_empty" in failure.message
    assert "update_state" in failure.message
    assert issubclass(SessionStateError, ValueError)  # as Burr raises


class Shout(SingleStepAction):
    """A class action: the Action tab shows the class's code."""

    @property
    def reads(self) -> list[str]:
        return ["word"]

    @property
    def writes(self) -> list[str]:
        return ["word"]

    def run_and_update(self, state: State, **run_kwargs: Any) -> tuple[dict[str, Any], State]:
        return {}, state.update(word=state["word"].upper())


def _explore(app_state: AppState) -> AppTest:
    """A page that renders the explorer over ``app_state``, put in the session beforehand."""

    def page() -> None:
        from turnout.integrations.streamlit import get_state, render_explorer

        render_explorer(get_state())

    at = AppTest.from_function(page, default_timeout=30)
    at.session_state["burr_state"] = app_state
    return _run(at)


def test_the_action_tab_shows_a_class_actions_code() -> None:
    app = (
        ApplicationBuilder()
        .with_actions(shout=Shout())
        .with_state(word="hi")
        .with_entrypoint("shout")
        .build()
    )
    _action, result, state = app.step() or pytest.fail("no step")
    at = _explore(AppState(0, [Record(state.get_all(), "shout", result)], app))
    assert "class Shout(SingleStepAction):" in at.code[0].value
    assert "#### Writes:\n- word" in [m.value for m in at.markdown]
    assert _shown_json(at) == [{"word": "HI"}, {}]


def test_the_action_tab_draws_a_hamilton_actions_dag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("hamilton")
    from turnout.integrations.hamilton import Hamilton, from_state, update_state

    (tmp_path / "explorer_dag.py").write_text("def doubled(x: int) -> int:\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # Hamilton finds functions by their module
    monkeypatch.delitem(sys.modules, "explorer_dag", raising=False)
    dag = importlib.import_module("explorer_dag")
    double = Hamilton(
        inputs={"x": from_state("n")}, outputs={"doubled": update_state("m")}, modules=[dag]
    )
    app = (
        ApplicationBuilder()
        .with_actions(double=double)
        .with_state(n=2)
        .with_entrypoint("double")
        .build()
    )
    _action, result, state = app.step() or pytest.fail("no step")
    at = _explore(AppState(0, [Record(state.get_all(), "double", result)], app))
    charts = [str(chart.proto.spec) for chart in at.get("graphviz_chart")]
    assert len(charts) == 2
    assert "digraph hamilton" in charts[1]
    assert "doubled" in charts[1]
    assert not at.code  # the DAG instead of the class's code


# -- load_state_from_log_file -------------------------------------------------------------------


def test_a_turnout_tracking_log_loads_with_every_steps_state(tmp_path: Path) -> None:
    tracker = LocalTracker("explorer", storage_dir=tmp_path)
    app = (
        ApplicationBuilder()
        .with_graph(counter.application().graph)
        .with_state(counter=0)
        .with_entrypoint("counter")
        .with_tracker(tracker)
        .with_identifiers(app_id="run-1")
        .build()
    )
    app.run(halt_after=["result"])
    (log,) = tmp_path.glob("explorer/*/log.jsonl")
    app_state = load_state_from_log_file(str(log), app)
    assert [(r.action, r.state) for r in app_state.history] == [
        ("counter", {"counter": 1}),
        ("counter", {"counter": 2}),
        ("counter", {"counter": 3}),
        ("result", {"counter": 3}),
    ]
    assert app_state.history[-1].result == {"counter": 3}
    assert (app_state.display_index, app_state.app) == (3, app)
    at = _explore(app_state)
    assert at.select_slider[0].options[-1] == "3: result"
    assert _shown_json(at) == [{"counter": 3}, {"counter": 3}]


def test_a_burr_tracking_log_loads_without_burrs_control_keys() -> None:
    app_state = load_state_from_log_file(BURR_LOG / "log.jsonl", counter.application())
    assert [r.action for r in app_state.history] == ["count", "stamp", "count"]
    assert app_state.history[1].state == {
        "n": 1,
        "chat": [{"role": "user", "content": "hi"}],
        "when": 3.5,
    }
    assert app_state.display_index == 2


def test_a_state_and_results_full_logger_file_loads_as_burrs_helper_reads_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "steps.jsonl"
    app = (
        ApplicationBuilder()
        .with_graph(counter.application().graph)
        .with_state(counter=0)
        .with_entrypoint("counter")
        .with_hooks(StateAndResultsFullLogger(path))
        .build()
    )
    app.run(halt_after=["result"])
    app_state = load_state_from_log_file(str(path), app)
    assert [(r.action, r.state["counter"]) for r in app_state.history] == [
        ("counter", 1), ("counter", 2), ("counter", 3), ("result", 3),
    ]  # fmt: skip
    assert all("__SEQUENCE_ID" not in r.state for r in app_state.history)


def test_an_empty_file_is_an_empty_history(tmp_path: Path) -> None:
    (tmp_path / "steps.jsonl").write_text("")
    app_state = load_state_from_log_file(tmp_path / "steps.jsonl", counter.application())
    assert (app_state.history, app_state.display_index) == ([], 0)


def test_a_file_that_is_no_log_gets_an_error_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "notes.jsonl"
    path.write_bytes(b"\x80\x81 not json\n")
    with pytest.raises(PersistenceError, match=r"line 1 is not a JSON object"):
        load_state_from_log_file(path, counter.application())
    path.write_text('{"hello": "world"}\n')
    with pytest.raises(PersistenceError, match=r"no log this reads has"):
        load_state_from_log_file(path, counter.application())
    with pytest.raises(FileNotFoundError):
        load_state_from_log_file(tmp_path / "missing.jsonl", counter.application())


def _full_log_line(n: int) -> str:
    return json.dumps({"state": {"counter": n}, "action": "counter", "result": {}}) + "\n"


def test_a_damaged_line_inside_a_full_logger_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "steps.jsonl"
    path.write_text(_full_log_line(1) + '{"state": {"coun\n' + _full_log_line(2))
    with pytest.raises(PersistenceError, match=r"line 2 is damaged"):
        load_state_from_log_file(path, counter.application())


def test_a_last_line_cut_short_by_a_crash_is_skipped_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "steps.jsonl"
    path.write_text(_full_log_line(1) + _full_log_line(2) + '{"state": {"cou')
    with pytest.warns(TrackingWarning, match=r"1 damaged line\(s\)"):
        app_state = load_state_from_log_file(path, counter.application())
    assert [r.state for r in app_state.history] == [{"counter": 1}, {"counter": 2}]


def test_a_tracking_log_missing_a_steps_end_is_an_error_not_a_guess(tmp_path: Path) -> None:
    tracker = LocalTracker("explorer", storage_dir=tmp_path, snapshot_every=100)
    app = (
        ApplicationBuilder()
        .with_graph(counter.application().graph)
        .with_state(counter=0)
        .with_entrypoint("counter")
        .with_tracker(tracker)
        .build()
    )
    app.run(halt_after=["result"])
    (log,) = tmp_path.glob("explorer/*/log.jsonl")
    lines = log.read_bytes().splitlines(keepends=True)
    first_end = next(i for i, line in enumerate(lines) if b'"t":"end"' in line)
    lines[first_end] = lines[first_end][:20] + b"\n"  # the first step's end line damaged
    log.write_bytes(b"".join(lines))
    with pytest.raises(PersistenceError, match=r"damaged"):
        load_state_from_log_file(log, app)


def test_stored_values_stay_data_nothing_they_name_is_imported(tmp_path: Path) -> None:
    probe = "turnout_explorer_never_imported_probe"
    tagged = {"__turnout__": "dataclass", "type": f"{probe}:Boom", "v": {"x": 1}}
    burr_tagged = {"__burr_serde__": "pydantic", "__pydantic_class": f"{probe}.Boom"}
    path = tmp_path / "steps.jsonl"
    line = {"state": {"a": tagged, "b": burr_tagged}, "action": "counter", "result": tagged}
    path.write_text(json.dumps(line) + "\n")
    app_state = load_state_from_log_file(path, counter.application())
    assert app_state.history[0].state == {"a": tagged, "b": burr_tagged}
    assert app_state.history[0].result == tagged
    assert probe not in sys.modules


def test_traced_text_in_a_loaded_log_is_shown_as_text(tmp_path: Path) -> None:
    path = tmp_path / "steps.jsonl"
    lines = [
        {"state": {"counter": 1, "note": PAYLOAD}, "action": "counter", "result": {}},
        {"state": {"counter": 1}, "action": PAYLOAD, "result": PAYLOAD},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    at = _explore(load_state_from_log_file(path, counter.application()))
    assert at.select_slider[0].options == ["0: counter", f"1: {plain(PAYLOAD)}"]
    assert literal(at.select_slider[0].options[1]) == f"1: {PAYLOAD}"
    headers = [h.value for h in at.header]
    assert headers[:2] == [plain(PAYLOAD), plain(PAYLOAD)]
    (warning,) = at.warning  # the action is not in the counter's graph
    assert plain(PAYLOAD) in warning.value
    assert literal(warning.value).count(PAYLOAD) == 1
    assert _shown_json(at)[1] == PAYLOAD  # a string result shows as that string
    assert PAYLOAD not in _dot(at)
    for element in (*at.markdown, *at.header, *at.warning):
        assert not re.search(r"(?<!\\)(!\[|<img)", element.value), element.value  # all escaped


# -- importing ---------------------------------------------------------------------------------


def test_importing_the_package_does_not_load_the_helpers_until_one_is_used() -> None:
    script = textwrap.dedent(
        """
        import sys
        import turnout.integrations.streamlit as package
        loaded = sorted(m for m in sys.modules if m.endswith((".explorer", ".steplog")))
        names = [n for n in dir(package) if n in package.__all__]
        from turnout.integrations.streamlit import AppState, render_explorer
        print(loaded, len(names), AppState.__module__, render_explorer.__name__)
        try:
            package.no_such_name
        except AttributeError as error:
            print(error)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.splitlines()
    assert out[0] == "[] 10 turnout.integrations.streamlit.explorer render_explorer"
    assert "has no attribute 'no_such_name'" in out[1]
