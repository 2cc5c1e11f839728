"""Burr's Streamlit helpers (``burr.integrations.streamlit``), on turnout.

A page keeps an ``AppState`` (the application and the steps it recorded as ``Record``s) in
Streamlit's session state (``update_state`` / ``get_state``) and draws the explorer:
``render_explorer`` puts a slider over the recorded steps and three tabs, the graph with the
shown step highlighted (``render_state_machine``), the step's action (``render_action``) and its
state and result (``render_state_results``). ``load_state_from_log_file`` fills an ``AppState``
from a log file instead of a live run. Burr's examples' ``streamlit_app.py`` run on these with
only their imports changed.

Everything shown that came from a run or a log (action names, states, results) is displayed as
text or JSON: names go through ``render.plain``, values through ``st.json``; only names of the
application's own actions reach the graph's DOT text.
"""

from __future__ import annotations

import colorsys
import json
import os
import warnings
from dataclasses import dataclass
from typing import Any

import streamlit as st

from turnout.core.action import bound_name
from turnout.core.application import Application
from turnout.core.errors import SessionStateError, TrackingWarning
from turnout.integrations._artifact_refs import compact
from turnout.integrations.streamlit.render import plain, truncate
from turnout.integrations.streamlit.steplog import read_step_log

__all__ = [
    "AppState",
    "Record",
    "get_state",
    "load_state_from_log_file",
    "render_action",
    "render_explorer",
    "render_state_machine",
    "render_state_results",
    "set_slider_to_current",
    "update_state",
]

# Burr's session-state keys: its examples test ``"burr_state" in st.session_state`` themselves,
# and the slider's key is what ``set_slider_to_current`` moves.
STATE_KEY = "burr_state"
SLIDER_KEY = "index_slider"

CURRENT_FILL, NEXT_FILL = "darkgreen", "blue"
_PRIOR_RGB = (0xAD, 0xD8, 0xE6)  # light blue; older steps fade from it towards white


# Plain dataclasses, mutable and positional like Burr's (its examples build ``Record(state,
# name, result)`` and append to ``AppState.history``), not the frozen keyword-only slotted
# records used elsewhere: a page written for Burr may do to them what Burr allows.
@dataclass
class Record:
    """One recorded step: the state after it, its action's name and its result."""

    state: dict[str, Any]
    action: str
    result: dict[str, Any] | None


@dataclass
class AppState:
    """What the explorer shows: an application, its recorded steps and the one displayed.

    Attributes:
        display_index: the index in ``history`` of the step shown (the slider moves it).
        history: the recorded steps, oldest first; a page appends to it after each step.
        app: the application, whose graph and actions the explorer draws.
        num_prior_nodes: how many steps before the shown one the graph shades.
    """

    display_index: int | None
    history: list[Record]
    app: Application
    num_prior_nodes: int = 5

    def _index(self) -> int | None:
        if self.display_index is None or not self.history:
            return None
        return min(max(self.display_index, 0), len(self.history) - 1)

    @property
    def current_action(self) -> str | None:
        """The action of the step shown, ``None`` before any step."""
        index = self._index()
        return None if index is None else self.history[index].action

    @property
    def prior_actions(self) -> list[str]:
        """The actions of up to ``num_prior_nodes`` steps before the shown one, oldest first."""
        index = self._index()
        if index is None:
            return []
        return [r.action for r in self.history[max(index - self.num_prior_nodes, 0) : index]]

    @property
    def next_action(self) -> str | None:
        """The action of the step after the shown one; after the last step, the one the
        application runs next (``None`` when it has none)."""
        index = self._index()
        if index is not None and index < len(self.history) - 1:
            return self.history[index + 1].action
        upcoming = self.app.get_next_action()
        return None if upcoming is None else upcoming.name

    @property
    def max_index(self) -> int:
        """The index of the newest step (``-1`` before any)."""
        return len(self.history) - 1

    @classmethod
    def from_empty(cls, app: Application) -> AppState:
        """An ``AppState`` for ``app`` with no step recorded yet."""
        return cls(display_index=0, history=[], app=app)


def load_state_from_log_file(jsonl_log_file: str | os.PathLike[str], app: Application) -> AppState:
    """An ``AppState`` for ``app`` holding the steps of a log file, the newest one shown.

    Reads a ``StateAndResultsFullLogger`` file (as Burr's helper does), a turnout tracking log
    (``~/.turnout/<project>/<app>/log.jsonl``) or a Burr tracking log
    (``~/.burr/<project>/<app>/log.jsonl``). States and results stay as the file stores them
    (JSON): nothing in the file is imported or called. Damaged lines that a tracking log's
    reader skips, and a ``StateAndResultsFullLogger`` line cut short by a crash, are left out
    with a ``TrackingWarning`` saying how many.

    Args:
        jsonl_log_file: the file.
        app: the application whose graph and actions the explorer draws.

    Raises:
        FileNotFoundError: there is no such file.
        PersistenceError: the file is not a log of these kinds, or it is damaged where a step
            cannot be read (the message names the line or the steps).
    """
    log = read_step_log(jsonl_log_file)
    if log.skipped:
        warnings.warn(
            f"load_state_from_log_file({os.fspath(jsonl_log_file)!r}): {log.skipped} damaged "
            f"line(s) of this {log.kind} log were skipped; the steps shown are the readable ones.",
            TrackingWarning,
            stacklevel=2,
        )
    history = [Record(step.state, step.action, step.result) for step in log.steps]
    return AppState(display_index=max(len(history) - 1, 0), history=history, app=app)


def update_state(new_state: AppState) -> None:
    """Keep ``new_state`` in the session (call it at the end of the page)."""
    st.session_state[STATE_KEY] = new_state


def get_state() -> AppState:
    """The ``AppState`` kept by ``update_state``.

    Raises:
        SessionStateError: the session holds none yet.
    """
    if STATE_KEY not in st.session_state:
        raise SessionStateError(
            f"no AppState in st.session_state[{STATE_KEY!r}]: create one first, e.g. "
            f"`app_state = AppState.from_empty(app=build())` when "
            f"`{STATE_KEY!r} not in st.session_state`, and store it with "
            f"update_state(app_state) at the end of the page."
        )
    found: AppState = st.session_state[STATE_KEY]
    return found


def set_slider_to_current() -> None:
    """Move the explorer's slider to the newest step (call it after appending a record, before
    ``render_explorer``)."""
    st.session_state[SLIDER_KEY] = get_state().max_index


def _dot_name(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _faded(step: int) -> str:
    """Light blue for the step just before the shown one, fading towards white further back."""
    hue, lightness, saturation = colorsys.rgb_to_hls(*(c / 255 for c in _PRIOR_RGB))
    lightness += (1 - lightness) * min(step * 0.15, 0.9)
    red, green, blue = colorsys.hls_to_rgb(hue, lightness, saturation)
    return "#" + "".join(f"{round(c * 255):02x}" for c in (red, green, blue))


def state_machine_dot(state: AppState) -> str:
    """The graph as DOT: the shown step's action filled dark green, the next one blue and the
    ones before it light blue, fading with age. Names not in the graph are not drawn."""
    app = state.app
    dot = app.graph.to_dot(include_conditions=False, include_state=False)
    known = {bound_name(act) for act in app.graph.actions}
    current, upcoming = state.current_action, state.next_action
    if current not in known:
        return dot
    styles: dict[str, tuple[str, str]] = {}
    for age, name in enumerate(reversed(state.prior_actions), start=1):
        if name in known and name not in styles:
            styles[name] = (_faded(age), "black")
    if upcoming in known and upcoming is not None:
        styles[upcoming] = (NEXT_FILL, "white")
    styles[current] = (CURRENT_FILL, "white")  # a step that loops: the shown step wins
    lines = ['  bgcolor="transparent";']
    lines += [
        f'  {_dot_name(name)} [style="rounded,filled", fillcolor="{fill}", fontcolor="{font}"];'
        for name, (fill, font) in styles.items()
    ]
    head, _, _ = dot.rstrip().rpartition("}")
    return head + "\n".join(lines) + "\n}\n"


def render_state_machine(state: AppState) -> str:
    """Draw the application's graph with the shown step highlighted (see
    ``state_machine_dot``); returns the DOT text drawn."""
    dot = state_machine_dot(state)
    st.graphviz_chart(dot)
    return dot


def _name_list(title: str, names: list[str]) -> None:
    items = "\n".join(f"- {plain(name)}" for name in names) or "(none)"
    st.markdown(f"#### {title}\n{items}")


def render_action(state: AppState) -> None:
    """Show the shown step's action: its reads, its writes and its code (for a Hamilton action,
    its DAG with where each input comes from and each output goes)."""
    name = state.current_action
    if name is None:
        st.markdown("No current action.")
        return
    st.header(plain(name))
    act = state.app.graph.get_action(name)
    if act is None:  # a step loaded from a log of another application
        st.warning(f"The application has no action named {plain(name)}.")
        return
    _name_list("Reads:", list(act.reads))
    _name_list("Writes:", list(act.writes))
    dag_dot = getattr(act, "dag_dot", None)  # a Hamilton action (its adapter need not be loaded)
    if callable(dag_dot):
        st.graphviz_chart(dag_dot())
    else:
        st.code(act.get_source() or "# (source not available)", language="python")


def _json_body(value: Any) -> Any:
    # st.json parses a str as JSON text: a string value is shown as the string it is.
    shown = compact(truncate(value))
    return json.dumps(shown) if isinstance(shown, str) else shown


def render_state_results(state: AppState) -> None:
    """Show the shown step's state and result as JSON (nothing before the first step)."""
    index = state._index()
    if index is None:
        return
    record = state.history[index]
    st.header(plain(record.action))
    st.header("State")
    st.json(_json_body(record.state), expanded=True)
    st.header("Result")
    st.json(_json_body(record.result), expanded=True)


def render_explorer(app_state: AppState) -> None:
    """The explorer: tabs with the graph, the action and the state/results of the shown step,
    and under them a slider over the recorded steps (shown from two steps on) that picks it.
    Stores ``app_state`` in the session (``update_state``)."""
    total = len(app_state.history)
    slot = st.empty()  # the tabs go above the slider, but are drawn after it moved
    if total > 1:
        if st.session_state.get(SLIDER_KEY) not in range(total):
            st.session_state[SLIDER_KEY] = total - 1  # e.g. the page started a new history
        history = app_state.history
        # Streamlit keeps a select_slider's value as its label: labels must differ, or two
        # steps of one action (a loop) could not be told apart. Labels render markdown.
        index = st.select_slider(
            "index",
            options=list(range(total)),
            format_func=lambda i: f"{i}: {plain(history[i].action)}",
            key=SLIDER_KEY,
            label_visibility="hidden",
        )
        app_state.display_index = int(index)
    with slot.container(height=900):
        graph_tab, action_tab, data_tab = st.tabs(["Application", "Action", "State/Results"])
        with graph_tab:
            render_state_machine(app_state)
        with action_tab:
            render_action(app_state)
        with data_tab:
            render_state_results(app_state)
    update_state(app_state)
