"""The tracking UI's list pages: the projects of the tracking directory, and the applications of
one project (filtered, paginated). Every traced string shown in markdown goes through ``plain``;
one application whose log cannot be read is listed as unreadable, with the reason, and never
takes the page down."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pandas as pd  # type: ignore[import-untyped]  # no stubs ship with pandas
import streamlit as st

from turnout.integrations.streamlit.data import AppSummary
from turnout.integrations.streamlit.index import TrackingIndex
from turnout.integrations.streamlit.render import fmt_time, plain
from turnout.integrations.streamlit.selection import (
    STATUSES,
    choice,
    chosen,
    navigate,
    sel,
    set_sel,
)

__all__ = ["APPS_PER_PAGE", "NO_PARTITION", "apps_page", "breadcrumb", "projects_page"]

APPS_PER_PAGE = 50
NO_PARTITION = "(none)"
UNREADABLE_SHOWN = 10  # one warning each; past that, one for the rest


def projects_page(index: TrackingIndex) -> None:
    st.title("turnout · projects")
    st.caption(f"Tracking directory: {plain(index.root)}")
    projects = index.projects()
    if not projects:
        st.info(
            "No tracked applications yet. Add "
            + plain(f'.with_tracker(LocalTracker("my-project", storage_dir={str(index.root)!r}))')
            + " to an ApplicationBuilder and run it."
        )
        return
    table = pd.DataFrame(
        [
            {"project": p.name, "apps": p.app_count, "last activity": fmt_time(p.last_activity)}
            for p in projects
        ]
    )
    # A static table: a project list is short, and the grid's code (over a megabyte of
    # JavaScript) would be the first page's main cost.
    st.table(table.set_index("project"))
    columns = st.columns(min(len(projects), 4))
    for number, project in enumerate(projects):
        columns[number % len(columns)].button(
            f"Open {plain(project.name)}",
            key=f"open_project:{project.name}",
            on_click=navigate(
                project=project.name,
                app=None,
                step=None,
                tab=None,
                page=None,
                status=None,
                pk=None,
                tag=None,
            ),
        )


def apps_page(index: TrackingIndex, project: str) -> None:
    breadcrumb(project)
    st.title(f"{plain(project)} · applications")
    listing = index.listing(project)
    apps = listing.apps
    _reading_problems(listing.unreadable, apps)
    if not apps:
        if not listing.unreadable:
            st.warning(
                f"Project {plain(repr(project))} has no tracked applications in "
                f"{plain(index.root)}."
            )
        return
    keys = sorted({a.partition_key or NO_PARTITION for a in apps})
    # The table is sent first and its filters afterwards, into this slot above it: the browser
    # starts loading the grid's code while the filters are still on their way.
    filters = st.container()
    tags = sorted({f"{k}={v}" for a in apps for k, v in a.tags.items()})
    _unknown_filter("pk", "partition key", keys)
    _unknown_filter("tag", "tag", tags)
    pk = chosen(["all", *keys], "pk", default="all")
    status = chosen(["all", *STATUSES], "status", default="all")
    tag = chosen(["all", *tags], "tag", default="all")
    shown = [
        a
        for a in apps
        if (pk == "all" or (a.partition_key or NO_PARTITION) == pk)
        and (status == "all" or a.status == status)
        and (tag == "all" or tag in {f"{k}={v}" for k, v in a.tags.items()})
    ]
    pages = max(1, -(-len(shown) // APPS_PER_PAGE))
    page = min(int(sel("page") or 1), pages)  # the URL's page was checked to be a number >= 1
    rows = shown[(page - 1) * APPS_PER_PAGE : page * APPS_PER_PAGE]
    st.caption(f"{len(shown)} of {len(apps)} applications · page {page} of {pages}")

    def picked() -> None:
        event = st.session_state.get("w_apps_table")
        selected = getattr(getattr(event, "selection", None), "rows", None) or []
        if selected:
            set_sel(app=rows[selected[0]].app_id, step=None, tab=None)

    table = _apps_table(rows, project)
    st.dataframe(
        # Styling costs the server and the browser: only a page with a failed or running app.
        table.style.apply(_status_colours, axis=1)
        if any(a.status != "completed" for a in rows)
        else table,
        hide_index=True,
        key="w_apps_table",
        on_select=picked,
        selection_mode="single-row",
        column_config={
            # Links to the parent and the children, as deep links (they open in a new tab).
            "parent": st.column_config.LinkColumn(display_text=r"app=([^&]+)"),
            "first child": st.column_config.LinkColumn(display_text=r"app=([^&]+)"),
        },
    )
    st.caption("Click a row (or choose below) to open an application.")
    if pages > 1:
        previous, following = st.columns(2)
        previous.button(
            "← previous page", key="w_previous_page", disabled=page <= 1,
            on_click=navigate(page=page - 1),
        )  # fmt: skip
        following.button(
            "next page →", key="w_next_page", disabled=page >= pages,
            on_click=navigate(page=page + 1),
        )  # fmt: skip
    st.selectbox(
        "Open an application",
        [a.app_id for a in rows],
        index=None,
        placeholder="choose an application",
        key="open_app",
        on_change=_open_selected_app,
    )
    columns = filters.columns(3 if tags else 2)
    choice(columns[0], "Partition key", ["all", *keys], "pk", default="all")
    choice(columns[1], "Status", ["all", *STATUSES], "status", default="all")
    if tags:
        choice(columns[2], "Tag", ["all", *tags], "tag", default="all")


def _reading_problems(unreadable: dict[str, str], apps: list[AppSummary]) -> None:
    """A warning per unreadable application, and one for skipped malformed log lines."""
    problems = sorted(unreadable.items())
    for app_id, reason in problems[:UNREADABLE_SHOWN]:
        st.warning(f"Application {plain(repr(app_id))} is unreadable: {plain(reason)}")
    if len(problems) > UNREADABLE_SHOWN:
        st.warning(f"{len(problems) - UNREADABLE_SHOWN} more applications are unreadable.")
    damaged = {a.app_id: a.bad_lines for a in apps if a.bad_lines > 0}
    if damaged:
        listed = ", ".join(f"{app_id} ({n})" for app_id, n in sorted(damaged.items()))
        st.warning(
            plain(
                f"{sum(damaged.values())} malformed log line(s) were skipped in {listed}: "
                "what they recorded is missing from the pages."
            )
        )


def _unknown_filter(name: str, what: str, options: list[str]) -> None:
    value = sel(name)
    if value is not None and value != "all" and value not in options:
        st.warning(
            f"No application of this project has the {what} {plain(repr(value))}: showing all."
        )
        set_sel(**{name: None})


def _open_selected_app() -> None:
    app_id = st.session_state.get("open_app")
    if app_id:
        set_sel(app=app_id, step=None, tab=None)


def _app_link(project: str, app_id: str, step: int | None = None) -> str:
    query = {"project": project, "app": app_id}
    if step is not None:
        query["step"] = str(step)
    return "?" + urllib.parse.urlencode(query)


def _apps_table(rows: list[AppSummary], project: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "app": a.app_id,
                "partition key": a.partition_key or "",
                "status": a.status,
                "steps": a.step_count,
                "failed steps": a.error_count,
                "started": fmt_time(a.first_time),
                "last activity": fmt_time(a.last_time),
                "parent": (
                    _app_link(project, a.parent.app_id, a.parent.sequence_id) if a.parent else None
                ),
                "first child": _app_link(project, a.children[0].app_id) if a.children else None,
                "children": ", ".join(c.app_id for c in a.children),
                "tags": ", ".join(f"{k}={v}" for k, v in a.tags.items()),
            }
            for a in rows
        ],
        columns=[
            "app",
            "partition key",
            "status",
            "steps",
            "failed steps",
            "started",
            "last activity",
            "parent",
            "first child",
            "children",
            "tags",
        ],
    )


def _status_colours(row: Any) -> list[str]:
    colour = {"failed": "background-color: #fce8e6; color: #a50e0e", "running": "color: #1a73e8"}
    return [colour.get(row["status"], "")] * len(row)


def breadcrumb(project: str, app_id: str | None = None) -> None:
    columns = st.columns([1, 1, 4] if app_id else [1, 5])
    columns[0].button("← projects", on_click=navigate(project=None, app=None, step=None))
    if app_id:
        columns[1].button(
            f"← {plain(project)}",
            on_click=navigate(app=None, step=None, tab=None),
            key="crumb_project",
        )
