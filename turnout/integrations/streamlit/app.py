"""The tracking UI script: ``streamlit run app.py -- --dir DIR``; ``turnout ui`` serves it
through ``serve`` (which refuses requests for foreign Host names).

Pages: Projects -> Applications of a project (``listing``) -> one Application (``app_page``:
steps, and a chosen step's state, inputs and result, error, attributes and spans, code, graph,
fork). Every selection lives in the URL's query parameters (``project``, ``app``, ``step``,
``tab``, ``page``, ``status``, ``pk``, ``tag``, ``live``; see ``selection``), so any step can be
deep-linked; each parameter is checked before use and a refused one is explained on the page.
The store comes from ``--store`` after ``--`` (a ``postgresql://`` connection string: the
tables ``PostgresTracker`` writes, ``--table-prefix`` naming them), else ``$TURNOUT_UI_STORE``
(and ``$TURNOUT_UI_TABLE_PREFIX``); otherwise the storage directory comes from ``--dir``, else
``$TURNOUT_UI_DIR``, else the tracker's default (``tracking_home()``). Pages read the store
through ``turnout.core.tracksource.TrackingSource`` only. Live mode follows a PostgreSQL store
by its notifications (LISTEN/NOTIFY: nothing is queried until a row arrives), a directory by
re-reading the lines appended every 2 s.

Nothing from a trace is executed or interpreted: values are shown as stored JSON, source code as
text, traced strings in markdown as literal text (``render.plain``) and in HTML escaped.
"""

from __future__ import annotations

import os
import sys

import streamlit as st

from turnout.core.tracking import tracking_home
from turnout.core.tracksource import TrackingSource
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


def _option(name: str) -> str | None:
    argv = sys.argv
    return argv[argv.index(name) + 1] if name in argv[:-1] else None


def storage_dir() -> str:
    return _option("--dir") or os.environ.get("TURNOUT_UI_DIR") or str(tracking_home())


def store() -> tuple[str, str]:
    """``("dir", path)`` or ``("postgresql", connection string)``: what the UI reads."""
    dsn = _option("--store") or os.environ.get("TURNOUT_UI_STORE")
    if dsn:
        return "postgresql", dsn
    return "dir", storage_dir()


@st.cache_resource(show_spinner=False)
def _source(kind: str, where: str, prefix: str) -> TrackingSource:
    if kind == "postgresql":
        from turnout.integrations.postgres_tracking import PostgresSource

        return PostgresSource(where, table_prefix=prefix)
    return TrackingIndex(where)


def body(index: TrackingSource) -> None:
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
    kind, where = store()
    prefix = _option("--table-prefix") or os.environ.get("TURNOUT_UI_TABLE_PREFIX")
    index = _source(kind, where, prefix or "turnout_tracking")
    live = sel("live") == "1"
    # The project and application lists always refresh by themselves (new runs appear); an
    # application's page follows its log only when Live is on. A store that pushes its changes
    # is asked again only after one (a rerun with nothing notified queries nothing), so its
    # pages can follow it closely.
    listing = sel("app") is None
    every = (1 if index.pushes else 2) if live else 5
    if (live or listing) and hasattr(st, "fragment"):
        st.fragment(run_every=every)(body)(index)
    else:
        body(index)
    # The sidebar goes last: the page's tables are what a visit waits for.
    st.sidebar.toggle(
        "Live (follow new records as they arrive)"
        if index.pushes
        else "Live (re-read new log lines every 2 s)",
        value=live,
        key="w_live",
        on_change=lambda: set_sel(live="1" if st.session_state["w_live"] else None),
    )
    st.sidebar.caption(
        "The database announces new records (LISTEN/NOTIFY); only those are read."
        if index.pushes
        else "Only the lines appended since the last refresh are read."
    )


main()
