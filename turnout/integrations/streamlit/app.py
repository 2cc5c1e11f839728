"""The tracking UI: ``streamlit run app.py -- --dir DIR`` (what ``turnout ui`` runs).

Pages: Projects -> Applications of a project -> one Application (steps, and a chosen step's
state, inputs and result, error, attributes and spans, code, graph, fork). Every selection lives
in the URL's query parameters (``project``, ``app``, ``step``, ``tab``, ``page``, ``status``,
``pk``, ``live``), so any step can be deep-linked. The storage directory comes from ``--dir``
after ``--``, else ``$TURNOUT_UI_DIR``, else the tracker's default (``tracking_home()``).

Nothing from a trace is executed: values are shown as stored JSON, source code as text, and
every traced string put into HTML is escaped.
"""

from __future__ import annotations

import os
import sys
import urllib.parse
from collections.abc import Callable
from typing import Any

import pandas as pd  # type: ignore[import-untyped]  # no stubs ship with pandas
import streamlit as st

from turnout.core.tracking import tracking_home
from turnout.integrations.streamlit.data import (
    AppLog,
    AppSummary,
    Step,
    TrackingIndex,
    diff_states,
    step_token_totals,
)
from turnout.integrations.streamlit.render import (
    diff_html,
    fmt_duration,
    fmt_time,
    fork_snippet,
    graph_dot,
    reproduce_fixture,
    truncate,
    waterfall_html,
)

TABS = ["State", "Inputs & Result", "Error", "Attributes & spans", "Code", "Graph", "Fork"]
STATUSES = ["running", "completed", "failed"]
APPS_PER_PAGE = 50
STEPS_PER_PAGE = 200
NO_PARTITION = "(none)"
OPEN = "open"  # the steps table's column of buttons that open a step
CHILDREN_SHOWN = 24  # buttons for the children of one step; the applications page lists all
# Selections that live in the URL; the rest of the session state is widget plumbing.
PARAMS = ("project", "app", "step", "tab", "page", "status", "pk", "tag", "live")


def storage_dir() -> str:
    argv = sys.argv
    if "--dir" in argv[:-1]:
        return argv[argv.index("--dir") + 1]
    return os.environ.get("TURNOUT_UI_DIR") or str(tracking_home())


@st.cache_resource(show_spinner=False)
def _index(root: str) -> TrackingIndex:
    return TrackingIndex(root)


# -- selection state ------------------------------------------------------------------------------


def _sel(name: str) -> str | None:
    value = st.session_state.get(f"sel_{name}")
    return str(value) if value not in (None, "") else None


def _set(**values: Any) -> None:
    for name, value in values.items():
        st.session_state[f"sel_{name}"] = None if value is None else str(value)


def _navigate(**values: Any) -> Callable[[], None]:
    """An ``on_click`` callback that changes the selection (and clears what depends on it)."""

    def go() -> None:
        _set(**values)

    return go


def _load_params() -> None:
    """On a session's first run, take the selection from the URL."""
    if st.session_state.get("sel_loaded"):
        return
    for name in PARAMS:
        value = st.query_params.get(name)
        _set(**{name: value})
    st.session_state["sel_loaded"] = True


def _save_params() -> None:
    wanted = {name: _sel(name) for name in PARAMS}
    current = {name: st.query_params.get(name) for name in PARAMS}
    if wanted != current:
        st.query_params.clear()
        st.query_params.update({k: v for k, v in wanted.items() if v is not None})


# -- pages ----------------------------------------------------------------------------------------


def projects_page(index: TrackingIndex) -> None:
    st.title("turnout · projects")
    st.caption(f"Tracking directory: `{index.root}`")
    projects = index.projects()
    if not projects:
        st.info(
            'No tracked applications yet. Add `.with_tracker(LocalTracker("my-project", '
            f"storage_dir={str(index.root)!r}))` to an ApplicationBuilder and run it."
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
            f"Open {project.name}",
            key=f"open_project:{project.name}",
            on_click=_navigate(
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
    _breadcrumb(project)
    st.title(f"{project} · applications")
    apps = index.apps(project)
    if not apps:
        st.warning(f"Project {project!r} has no tracked applications in `{index.root}`.")
        return
    keys = sorted({a.partition_key or NO_PARTITION for a in apps})
    # The table is sent first and its filters afterwards, into this slot above it: the browser
    # starts loading the grid's code while the filters are still on their way.
    filters = st.container()
    pk = _chosen(["all", *keys], "pk", default="all")
    status = _chosen(["all", *STATUSES], "status", default="all")
    tags = sorted({f"{k}={v}" for a in apps for k, v in a.tags.items()})
    tag = _chosen(["all", *tags], "tag", default="all")
    shown = [
        a
        for a in apps
        if (pk in (None, "all") or (a.partition_key or NO_PARTITION) == pk)
        and (status in (None, "all") or a.status == status)
        and (tag in (None, "all") or tag in {f"{k}={v}" for k, v in a.tags.items()})
    ]
    pages = max(1, -(-len(shown) // APPS_PER_PAGE))
    page = min(max(1, int(_sel("page") or 1)), pages)
    rows = shown[(page - 1) * APPS_PER_PAGE : page * APPS_PER_PAGE]
    st.caption(f"{len(shown)} of {len(apps)} applications · page {page} of {pages}")

    def picked() -> None:
        event = st.session_state.get("w_apps_table")
        chosen = getattr(getattr(event, "selection", None), "rows", None) or []
        if chosen:
            _set(app=rows[chosen[0]].app_id, step=None, tab=None)

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
            on_click=_navigate(page=page - 1),
        )  # fmt: skip
        following.button(
            "next page →", key="w_next_page", disabled=page >= pages,
            on_click=_navigate(page=page + 1),
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
    _choice(columns[0], "Partition key", ["all", *keys], "pk", default="all")
    _choice(columns[1], "Status", ["all", *STATUSES], "status", default="all")
    if tags:
        _choice(columns[2], "Tag", ["all", *tags], "tag", default="all")


def _open_selected_app() -> None:
    app_id = st.session_state.get("open_app")
    if app_id:
        _set(app=app_id, step=None, tab=None)


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


def _chosen(options: list[str], name: str, default: str) -> str:
    """The value of selection ``name`` among ``options`` (before its selectbox is drawn)."""
    current = _sel(name) or default
    return current if current in options else default


def _choice(container: Any, label: str, options: list[str], name: str, default: str) -> str:
    """A selectbox bound to selection ``name`` (and so to the URL)."""
    current = _chosen(options, name, default)
    key = f"w_{name}"
    if st.session_state.get(key) != current:
        st.session_state[key] = current

    def changed() -> None:
        value = st.session_state[key]
        _set(**{name: None if value == default else value})
        if name != "page":
            _set(page=None)

    return str(container.selectbox(label, options, key=key, on_change=changed))


def _breadcrumb(project: str, app_id: str | None = None) -> None:
    columns = st.columns([1, 1, 4] if app_id else [1, 5])
    columns[0].button("← projects", on_click=_navigate(project=None, app=None, step=None))
    if app_id:
        columns[1].button(
            f"← {project}", on_click=_navigate(app=None, step=None, tab=None), key="crumb_project"
        )


def app_page(index: TrackingIndex, project: str, app_id: str) -> None:
    # The steps table is sent before the breadcrumb and the header, which fill these slots
    # above it afterwards: the browser starts loading the grid's code (most of a first visit's
    # time) while the rest of the page is still on its way.
    crumbs = st.container()
    log = index.app(project, app_id)
    st.title(f"{app_id}")
    if log is None or log.app is None:
        with crumbs:
            _breadcrumb(project, app_id)
        st.warning(f"No tracked application {app_id!r} in project {project!r}.")
        return
    header = st.container()
    steps = log.step_list()
    if not steps:
        st.info("This application has not run a step yet.")
    elif hasattr(st, "fragment") and _sel("live") != "1":
        # Choosing a step or a tab reruns only this part of the page, not the whole script.
        st.fragment(_steps_and_step)(index, project, log, steps)
    else:
        _steps_and_step(index, project, log, steps)
    with crumbs:
        _breadcrumb(project, app_id)
    with header:
        _app_header(log, log.summary(project))


def _steps_and_step(index: TrackingIndex, project: str, log: AppLog, steps: list[Step]) -> None:
    by_seq = {s.seq: s for s in steps}
    selected = _sel("step")
    seq = int(selected) if selected is not None and selected.lstrip("-").isdigit() else None
    if seq not in by_seq:
        failed = [s.seq for s in steps if s.status == "failed"]
        seq = failed[0] if failed else steps[-1].seq
    rows = _steps_table(steps, seq)
    # Only the shown page's steps are options: a 5,000-option list costs the browser a lot.
    options = [s.seq for s in rows]
    if seq not in options:
        options.insert(0, seq)
    key = "w_step"
    if st.session_state.get(key) != seq:
        st.session_state[key] = seq
    st.selectbox(
        "Step",
        options,
        key=key,
        format_func=lambda s: f"{s} · {by_seq[s].action} · {by_seq[s].status}",
        on_change=lambda: _set(step=st.session_state[key]),
    )
    _step_view(index, project, log, by_seq[seq])
    _save_params()


def _app_header(log: AppLog, summary: AppSummary) -> None:
    tokens = log.token_totals()
    columns = st.columns([1.6, 1, 1, 1, 1])
    columns[0].metric("Status", summary.status)
    columns[1].metric("Steps", summary.step_count)
    columns[2].metric("Failed steps", summary.error_count)
    first, last = summary.first_time, summary.last_time
    duration = last - first if first is not None and last is not None else None
    columns[3].metric("Duration", fmt_duration(duration) or "-")
    total = sum(v for k, v in tokens.items() if k.endswith(("input_tokens", "output_tokens")))
    columns[4].metric("Tokens", f"{total:,.0f}" if tokens else "-")
    if tokens:
        st.caption(
            " · ".join(f"{k.removeprefix('gen_ai.usage.')}: {v:,.0f}" for k, v in tokens.items())
        )
    st.caption(
        f"partition key: `{summary.partition_key or 'none'}` · started {fmt_time(first)} · "
        f"last activity {fmt_time(last)}"
    )
    if summary.tags:
        st.caption("tags: " + " · ".join(f"`{k}={v}`" for k, v in summary.tags.items()))
    parent = summary.parent
    if parent is not None:
        kind = "forked from" if parent.kind == "fork" else "spawned by"
        st.button(
            f"{kind}: {parent.app_id} (step {parent.sequence_id})",
            key=f"link:parent:{parent.app_id}",
            on_click=_navigate(app=parent.app_id, step=parent.sequence_id, tab=None),
        )
    if summary.children:
        steps = sorted({c.sequence_id for c in summary.children if c.sequence_id is not None})
        shown = ", ".join(str(seq) for seq in steps[:10]) + (" ..." if len(steps) > 10 else "")
        st.caption(
            f"{len(summary.children)} child application(s), listed under the step that forked "
            f"or spawned them (step(s) {shown})."
        )


def _children_of_step(log: AppLog, step: Step) -> None:
    """The applications this step forked or spawned, as buttons (at most ``CHILDREN_SHOWN``)."""
    children = log.children_of(step.seq)
    if not children:
        return
    label = "child" if len(children) == 1 else "children"
    st.markdown(f"**{len(children)} {label} of this step**")
    columns = st.columns(min(len(children), 4))
    for number, child in enumerate(children[:CHILDREN_SHOWN]):
        columns[number % len(columns)].button(
            f"{'fork' if child.kind == 'fork' else 'child'}: {child.app_id}",
            key=f"link:child:{child.app_id}",
            on_click=_navigate(app=child.app_id, step=None, tab=None),
        )
    if len(children) > CHILDREN_SHOWN:
        st.caption(
            f"{len(children) - CHILDREN_SHOWN} more: see the applications page (column 'children')."
        )


def _steps_table(steps: list[Step], seq: int) -> list[Step]:
    """The table of the steps of the chosen step's page (or of the page asked for)."""
    position = next(i for i, s in enumerate(steps) if s.seq == seq)
    pages = max(1, -(-len(steps) // STEPS_PER_PAGE))
    # The chosen step's page, until the page chooser (drawn under the table, so that the table
    # goes first) says otherwise; choosing another step starts again from its page.
    page_key = f"w_steps_page:{seq}"
    page = int(st.session_state.get(page_key) or position // STEPS_PER_PAGE + 1)
    page = min(max(1, page), pages)
    rows = steps[(page - 1) * STEPS_PER_PAGE : page * STEPS_PER_PAGE]
    table = pd.DataFrame(
        [
            {
                OPEN: "open",
                "seq": s.seq,
                "action": s.action,
                "status": s.status,
                "attempts": s.attempts,
                "duration": fmt_duration(s.duration),
                "first item": fmt_duration(s.time_to_first_item),
                "started": fmt_time(s.start),
                "error": s.error_summary or "",
            }
            for s in rows
        ]
    )

    def picked() -> None:
        event = st.session_state.get(table_key)
        chosen = getattr(getattr(event, "selection", None), "rows", None) or []
        if chosen:
            _set(step=rows[chosen[0]].seq)

    def opened() -> None:
        event = st.session_state.get(f"{table_key}:open")
        if event is not None:
            _set(step=rows[event.row].seq)

    # A pandas Styler (red rows) only where the page has failures: styling costs tens of
    # milliseconds per rerun. The chosen step is the grid's selected row, first the one chosen
    # when the page was drawn, then the clicked one. The table's message stays the same from one
    # step click to the next, so Streamlit sends the browser a reference to it, not the table.
    table_key = f"w_steps_table:{page}"
    first_row = position - (page - 1) * STEPS_PER_PAGE
    default_row = st.session_state.setdefault(
        f"{table_key}:default", first_row if 0 <= first_row < len(rows) else None
    )
    st.dataframe(
        table.style.apply(_failed_red, axis=1) if _has_failures(rows) else table,
        hide_index=True,
        key=table_key,
        on_select=picked,
        selection_mode="single-row",
        selection_default=None if default_row is None else {"selection": {"rows": [default_row]}},
        # Each row's "open" button opens its step at once; a row selection reaches the server
        # only after the grid's 150 ms debounce (Streamlit's front end), half the click budget.
        column_config={
            OPEN: st.column_config.ButtonColumn(
                "",
                key=f"{table_key}:open",
                on_click=opened,
                pinned=True,
                type="tertiary",
                help="Open this step",
            ),
        },
    )
    if pages > 1:
        st.selectbox(
            "Steps page", range(1, pages + 1), index=page - 1, key=page_key,
            format_func=lambda number: f"{number} of {pages} (steps "
            f"{steps[(number - 1) * STEPS_PER_PAGE].seq}-"
            f"{steps[min(number * STEPS_PER_PAGE, len(steps)) - 1].seq})",
        )  # fmt: skip
    return rows


def _has_failures(rows: list[Step]) -> bool:
    return any(s.status in ("failed", "cancelled") for s in rows)


def _failed_red(row: Any) -> list[str]:
    failed = row["status"] in ("failed", "cancelled")
    return ["background-color: #fce8e6; color: #a50e0e" if failed else ""] * len(row)


def _step_view(index: TrackingIndex, project: str, log: AppLog, step: Step) -> None:
    tab = _sel("tab") if _sel("tab") in TABS else TABS[0]
    if st.session_state.get("w_tab") != tab:
        st.session_state["w_tab"] = tab

    def changed() -> None:
        _set(tab=st.session_state.get("w_tab") or TABS[0])

    st.segmented_control("View", TABS, key="w_tab", on_change=changed)
    st.subheader(f"Step {step.seq} · {step.action} · {step.status}")
    _children_of_step(log, step)
    if tab == "State":
        _state_tab(log, step)
    elif tab == "Inputs & Result":
        st.markdown("**Inputs**")
        st.json(truncate(step.inputs))
        st.markdown("**Result**")
        st.json(truncate(step.result))
    elif tab == "Error":
        _error_tab(step)
    elif tab == "Attributes & spans":
        _spans_tab(step)
    elif tab == "Code":
        _code_tab(log, step)
    elif tab == "Graph":
        failed = {s.action for s in log.step_list() if s.status == "failed"}
        st.graphviz_chart(
            graph_dot(log.graph, counts=log.run_counts(), current=step.action, failed=failed)
        )
        st.caption("Node labels show how many steps each action ran; the step's action is filled.")
    elif tab == "Fork":
        _fork_tab(index, project, log, step)


def _state_tab(log: AppLog, step: Step) -> None:
    which = st.radio("State", ["after", "before", "diff"], horizontal=True, key="w_state_view")
    after = log.state_after(step.seq)
    before = log.state_before(step.seq)
    if which == "after":
        st.json(truncate(after), expanded=2)
    elif which == "before":
        st.json(truncate(before), expanded=2)
    else:
        st.markdown(diff_html(diff_states(before, after)), unsafe_allow_html=True)
    if step.status not in ("completed", "failed", "cancelled"):
        st.caption("The step has not finished: its state is the state before it.")


def _error_tab(step: Step) -> None:
    if step.error and step.status != "completed":
        st.error(step.error_summary or "failed")
        st.code(step.error, language="text")
    else:
        st.success("This step raised no error.")
    for number, error in enumerate(step.attempt_errors, 1):
        with st.expander(f"attempt {number} failed and was retried"):
            st.code(error, language="text")


def _spans_tab(step: Step) -> None:
    st.markdown(waterfall_html(step), unsafe_allow_html=True)
    if step.stream_first is not None:
        st.caption(
            f"first streamed item after {fmt_duration(step.time_to_first_item)}; "
            f"{step.stream_items if step.stream_items is not None else '?'} items"
        )
    rows = [
        {"span": span.name, "key": key, "value": str(truncate(value, 5))}
        for span in step.spans.values()
        for key, value in span.attributes.items()
    ]
    span_keys = {(r["key"]) for r in rows}
    rows.extend(
        {"span": "(step)", "key": k, "value": str(truncate(v, 5))}
        for k, v in step.attributes.items()
        if k not in span_keys
    )
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True)
    else:
        st.caption("No attributes were logged in this step.")
    tokens = step_token_totals(step)
    if tokens:
        st.caption(" · ".join(f"{k}: {v:,.0f}" for k, v in tokens.items()))


def _code_tab(log: AppLog, step: Step) -> None:
    spec = next((a for a in log.graph.get("actions", []) if a.get("name") == step.action), None)
    if spec is None:
        st.warning(f"The logged graph has no action {step.action!r}.")
        return
    st.markdown(
        f"reads: {', '.join(f'`{r}`' for r in spec.get('reads', [])) or '-'} · "
        f"writes: {', '.join(f'`{w}`' for w in spec.get('writes', [])) or '-'}"
    )
    source = spec.get("source") or ""
    if source:
        st.code(source, language="python")
    else:
        st.caption("No source was recorded for this action.")


def _fork_tab(index: TrackingIndex, project: str, log: AppLog, step: Step) -> None:
    summary_app_id = str((log.app or {}).get("app_id"))
    st.markdown("Fork this application from this step into a new one:")
    st.code(
        fork_snippet(
            storage_dir=index.root.resolve(),
            project=project,
            app_id=summary_app_id,
            partition_key=log.partition_key,
            seq=step.seq,
            entrypoint=log.graph.get("entrypoint"),
        ),
        language="python",
    )
    st.markdown("Reproduce: write this step as a test case (see `turnout.testing`):")
    st.code(
        f"turnout test-case --dir {index.root.resolve()} --project {project} "
        f"--app-id {summary_app_id} --sequence-id {step.seq} --out tests/turnout_cases.json",
        language="bash",
    )
    st.download_button(
        "Reproduce: download this step as a test fixture (JSON)",
        reproduce_fixture(step, log.state_before(step.seq), log.state_after(step.seq)),
        file_name=f"{summary_app_id}-step-{step.seq}.json",
        mime="application/json",
        on_click="ignore",
    )


# -- the script -----------------------------------------------------------------------------------


def body(index: TrackingIndex) -> None:
    project, app_id = _sel("project"), _sel("app")
    if project is None:
        projects_page(index)
    elif app_id is None:
        apps_page(index, project)
    else:
        app_page(index, project, app_id)
    _save_params()


def main() -> None:
    st.set_page_config(page_title="turnout", layout="wide")
    _load_params()
    index = _index(storage_dir())
    live = _sel("live") == "1"
    # The project and application lists always refresh by themselves (new runs appear); an
    # application's page follows its log only when Live is on.
    listing = _sel("app") is None
    if (live or listing) and hasattr(st, "fragment"):
        st.fragment(run_every=2 if live else 5)(body)(index)
    else:
        body(index)
    # The sidebar goes last: the page's tables are what a visit waits for.
    st.sidebar.toggle(
        "Live (re-read new log lines every 2 s)",
        value=live,
        key="w_live",
        on_change=lambda: _set(live="1" if st.session_state["w_live"] else None),
    )
    st.sidebar.caption("Only the lines appended since the last refresh are read.")


main()
