"""The tracking UI script: ``streamlit run app.py -- --dir DIR``; ``turnout ui`` serves it
through ``serve`` (which refuses requests for foreign Host names).

Pages: Projects -> Applications of a project (``listing``) -> one Application (``app_page``:
steps, and a chosen step's state, inputs and result, error, attributes and spans, code, graph,
fork). Every selection lives in the URL's query parameters (``project``, ``app``, ``step``,
``tab``, ``page``, ``status``, ``pk``, ``tag``, ``live``; see ``selection``), so any step can be
deep-linked; each parameter is checked before use and a refused one is explained on the page.
The storage directory comes from ``--dir`` after ``--``, else ``$TURNOUT_UI_DIR``, else the
tracker's default (``tracking_home()``).

Nothing from a trace is executed or interpreted: values are shown as stored JSON, source code as
text, traced strings in markdown as literal text (``render.plain``) and in HTML escaped.
"""

from __future__ import annotations

import os
import sys

import streamlit as st

from turnout.core.tracking import tracking_home
from turnout.integrations.streamlit.app_page import app_page
from turnout.integrations.streamlit.index import TrackingIndex
from turnout.integrations.streamlit.listing import apps_page, projects_page
from turnout.integrations.streamlit.params import InvalidParameterError
from turnout.integrations.streamlit.render import plain
from turnout.integrations.streamlit.selection import (
    load_params,
    param_errors,
    save_params,
    sel,
    set_sel,
)


def storage_dir() -> str:
    argv = sys.argv
    if "--dir" in argv[:-1]:
        return argv[argv.index("--dir") + 1]
    return os.environ.get("TURNOUT_UI_DIR") or str(tracking_home())


@st.cache_resource(show_spinner=False)
def _index(root: str) -> TrackingIndex:
    return TrackingIndex(root)


def body(index: TrackingIndex) -> None:
    project, app_id = sel("project"), sel("app")
    try:
        if project is None:
            projects_page(index)
        elif app_id is None:
            apps_page(index, project)
        else:
            app_page(index, project, app_id)
    except InvalidParameterError as error:  # an id a trace linked to (a parent, a child)
        st.error(plain(error))
    save_params()


def main() -> None:
    st.set_page_config(page_title="turnout", layout="wide")
    load_params()
    for message in param_errors():
        st.error(plain(message))
    index = _index(storage_dir())
    live = sel("live") == "1"
    # The project and application lists always refresh by themselves (new runs appear); an
    # application's page follows its log only when Live is on.
    listing = sel("app") is None
    if (live or listing) and hasattr(st, "fragment"):
        st.fragment(run_every=2 if live else 5)(body)(index)
    else:
        body(index)
    # The sidebar goes last: the page's tables are what a visit waits for.
    st.sidebar.toggle(
        "Live (re-read new log lines every 2 s)",
        value=live,
        key="w_live",
        on_change=lambda: set_sel(live="1" if st.session_state["w_live"] else None),
    )
    st.sidebar.caption("Only the lines appended since the last refresh are read.")


main()
