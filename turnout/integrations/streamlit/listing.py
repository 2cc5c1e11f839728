"""The tracking UI's list pages: the projects of the tracking store, and the applications of one
project (filtered, paginated by the store: ``TrackingSource.app_page`` answers one page, not the
whole project). Every traced string shown in markdown goes through ``plain``; one application
whose log cannot be read is listed as unreadable, with the reason, and never takes the page
down."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pandas as pd  # type: ignore[import-untyped]  # no stubs ship with pandas
import streamlit as st

from turnout.core.tracksource import AppPage, AppQuery, AppSummary, TrackingSource
from turnout.integrations.streamlit.render import fmt_time, plain
from turnout.integrations.streamlit.selection import (
    STATUSES,
    choice,
    navigate,
    sel,
    set_sel,
)

__all__ = ["APPS_PER_PAGE", "NO_PARTITION", "apps_page", "breadcrumb", "projects_page"]

APPS_PER_PAGE = 50
NO_PARTITION = "(none)"
UNREADABLE_SHOWN = 10  # one warning each; past that, one for the rest


def projects_page(index: TrackingSource) -> None:
    st.title("turnout · projects")
    root = getattr(index, "root", None)
    st.caption(f"Tracking directory: {plain(root)}" if root else plain(index.location))
    projects = index.projects()
    if not projects:
        tracker = (
            f'LocalTracker("my-project", storage_dir={str(root)!r})'
            if root
            else 'PostgresTracker("postgresql://...", project="my-project")'
        )
        st.info(
            "No tracked applications yet. Add "
            + plain(f".with_tracker({tracker})")
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


def apps_page(index: TrackingSource, project: str) -> None:
    breadcrumb(project)
    st.title(f"{plain(project)} · applications")
    pk_filter, status, tag = (None if sel(n) == "all" else sel(n) for n in ("pk", "status", "tag"))
    asked = int(sel("page") or 1)  # the URL's page was checked to be a number >= 1
    listing = _page(index, project, asked, pk=pk_filter, status=status, tag=tag)
    options = (
        sorted(k or NO_PARTITION for k in listing.partition_keys),
        list(listing.tags),
    )
    if (pk_filter and pk_filter not in options[0]) or (tag and tag not in options[1]):
        _unknown_filter("pk", "partition key", options[0])
        _unknown_filter("tag", "tag", options[1])
        pk_filter, tag = (None if sel(n) == "all" else sel(n) for n in ("pk", "tag"))
        listing = _page(index, project, asked, pk=pk_filter, status=status, tag=tag)
    rows = list(listing.apps)
    _reading_problems(listing.unreadable, rows)
    if listing.pending:
        st.info(
            f"{listing.pending} application(s) are not summarised yet (they are read a few at "
            "a time, on each refresh): the filters leave them out until then."
        )
    readable = listing.total - len(listing.unreadable)
    if readable - listing.pending <= 0:
        if not listing.unreadable and not listing.pending:
            st.warning(
                f"Project {plain(repr(project))} has no tracked applications in "
                f"{plain(getattr(index, 'root', None) or index.location)}."
            )
        return
    keys, tags = options
    # The table is sent first and its filters afterwards, into this slot above it: the browser
    # starts loading the grid's code while the filters are still on their way.
    filters = st.container()
    pages = max(1, -(-listing.matched // APPS_PER_PAGE))
    page = min(asked, pages)
    if page != asked:
        listing = _page(index, project, page, pk=pk_filter, status=status, tag=tag)
        rows = list(listing.apps)
    st.caption(f"{listing.matched} of {readable} applications · page {page} of {pages}")

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


def _page(
    index: TrackingSource,
    project: str,
    page: int,
    *,
    pk: str | None,
    status: str | None,
    tag: str | None,
) -> AppPage:
    """The page of applications the filters select, from the store (at most once per change
    when the store pushes its changes: a rerun with nothing new asks it nothing)."""
    query = AppQuery(
        offset=(page - 1) * APPS_PER_PAGE,
        limit=APPS_PER_PAGE,
        status=status if status in STATUSES else None,
        partition_keys=None if pk is None else ((None,) if pk == NO_PARTITION else (pk,)),
        tag=tag,
    )
    if not index.pushes:
        return index.app_page(project, query)
    cache = st.session_state.setdefault("_app_pages", {})
    version = index.changes()
    hit = cache.get((project, query))
    if hit is not None and hit[0] == version:
        return hit[1]  # type: ignore[no-any-return]
    answer = index.app_page(project, query)
    cache.clear()  # one page per session is kept: the one shown
    cache[(project, query)] = (version, answer)
    return answer


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
