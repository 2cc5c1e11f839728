"""The tracking UI's selection (project, application, step, tab, page, filters, live) in session
state, loaded from and saved to the URL's query parameters: every parameter is checked on the way
in (``params.parse_params``) and a refused one is explained on the page, never used."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from turnout.integrations.streamlit.params import PARAMS, parse_params

__all__ = [
    "STATUSES",
    "TABS",
    "choice",
    "chosen",
    "load_params",
    "navigate",
    "param_errors",
    "save_params",
    "sel",
    "set_sel",
]

TABS = ["State", "Inputs & Result", "Error", "Attributes & spans", "Code", "Graph", "Fork"]
STATUSES = ["running", "completed", "failed"]
_ERRORS = "sel_param_errors"


def sel(name: str) -> str | None:
    """The current value of selection ``name`` (``None`` when unset)."""
    value = st.session_state.get(f"sel_{name}")
    return str(value) if value not in (None, "") else None


def set_sel(**values: Any) -> None:
    for name, value in values.items():
        st.session_state[f"sel_{name}"] = None if value is None else str(value)


def navigate(**values: Any) -> Callable[[], None]:
    """An ``on_click`` callback that changes the selection (and clears what depends on it)."""

    def go() -> None:
        st.session_state.pop(_ERRORS, None)  # the refused link is left behind
        set_sel(**values)

    return go


def load_params() -> None:
    """On a session's first run, take the selection from the URL, every parameter checked."""
    if st.session_state.get("sel_loaded"):
        return
    selection = parse_params(
        {name: st.query_params.get(name) for name in PARAMS}, tabs=TABS, statuses=STATUSES
    )
    for name in PARAMS:
        set_sel(**{name: selection.values.get(name)})
    if selection.values.get("app") and not selection.values.get("project"):
        set_sel(app=None, step=None)  # an application is only found within its project
    st.session_state[_ERRORS] = selection.errors
    st.session_state["sel_loaded"] = True


def param_errors() -> list[str]:
    """Why URL parameters of this visit were refused (until the user navigates)."""
    return list(st.session_state.get(_ERRORS) or [])


def save_params() -> None:
    wanted = {name: sel(name) for name in PARAMS}
    current = {name: st.query_params.get(name) for name in PARAMS}
    if wanted != current:
        st.query_params.clear()
        st.query_params.update({k: v for k, v in wanted.items() if v is not None})


def chosen(options: list[str], name: str, default: str) -> str:
    """The value of selection ``name`` among ``options`` (before its selectbox is drawn)."""
    current = sel(name) or default
    return current if current in options else default


def choice(container: Any, label: str, options: list[str], name: str, default: str) -> str:
    """A selectbox bound to selection ``name`` (and so to the URL)."""
    current = chosen(options, name, default)
    key = f"w_{name}"
    if st.session_state.get(key) != current:
        st.session_state[key] = current

    def changed() -> None:
        value = st.session_state[key]
        set_sel(**{name: None if value == default else value})
        if name != "page":
            set_sel(page=None)

    return str(container.selectbox(label, options, key=key, on_change=changed))
