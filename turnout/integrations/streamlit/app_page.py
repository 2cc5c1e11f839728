"""The tracking UI's page of one application: its totals, the steps table and, for the chosen
step, the tabs (state and diff, inputs and result, error, attributes and spans, code, graph,
fork). Every traced string shown in markdown goes through ``plain``; the shell command of the
Fork tab quotes every value; a log that cannot be read is reported on the page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped]  # no stubs ship with pandas
import streamlit as st

from turnout.core.tracksource import AppSummary, TrackingSource
from turnout.core.trackview import AppLog, Step, diff_states, step_token_totals
from turnout.integrations.streamlit.artifact_panel import show_artifacts
from turnout.integrations.streamlit.artifact_refs import compact
from turnout.integrations.streamlit.listing import breadcrumb
from turnout.integrations.streamlit.params import InvalidParameterError
from turnout.integrations.streamlit.render import (
    diff_html,
    fmt_duration,
    fmt_time,
    fork_snippet,
    graph_dot,
    plain,
    reproduce_command,
    reproduce_fixture,
    truncate,
    waterfall_html,
)
from turnout.integrations.streamlit.selection import TABS, navigate, save_params, sel, set_sel

__all__ = ["app_page"]

STEPS_PER_PAGE = 200
OPEN = "open"  # the steps table's column of buttons that open a step
CHILDREN_SHOWN = 24  # buttons for the children of one step; the applications page lists all


def app_page(index: TrackingSource, project: str, app_id: str) -> None:
    # The steps table is sent before the breadcrumb and the header, which fill these slots
    # above it afterwards: the browser starts loading the grid's code (most of a first visit's
    # time) while the rest of the page is still on its way.
    crumbs = st.container()
    st.title(plain(app_id))
    log, problem = _read(index, project, app_id)
    if log is None or log.app is None:
        with crumbs:
            breadcrumb(project, app_id)
        if problem:
            st.error(problem)
        else:
            st.warning(
                f"No tracked application {plain(repr(app_id))} in project {plain(repr(project))}."
            )
        return
    bad_lines = log.bad_lines
    if bad_lines:
        st.warning(
            f"{bad_lines} malformed line(s) of this application's log were skipped: what they "
            "recorded is missing from this page."
        )
    header = st.container()
    steps = log.step_list()
    if log.partial and steps:
        steps = _tail(log, steps)
    if not steps:
        st.info("This application has not run a step yet.")
    elif hasattr(st, "fragment") and sel("live") != "1":
        # Choosing a step or a tab reruns only this part of the page, not the whole script.
        st.fragment(_steps_and_step)(index, project, log, steps)
    else:
        _steps_and_step(index, project, log, steps)
    with crumbs:
        breadcrumb(project, app_id)
    with header:
        _app_header(log, log.summary(project))


def _tail(log: AppLog, steps: list[Step]) -> list[Step]:
    """The steps of a long log's tail shown, from a page boundary (so that its pages are the
    whole log's), and a button that reads every step."""
    first = -(-steps[0].seq // STEPS_PER_PAGE) * STEPS_PER_PAGE
    shown = [s for s in steps if s.seq >= first] or steps
    st.info(
        f"This log is long: only its last {len(shown):,} steps (from step {shown[0].seq}) are "
        "read, and the counts of failed steps and tokens cover those."
    )

    def read_all() -> None:
        log.load_all()

    st.button("Read all steps (reads the whole log: slow)", key="w_read_all", on_click=read_all)
    return shown


def _read(index: TrackingSource, project: str, app_id: str) -> tuple[AppLog | None, str | None]:
    """The application's log, or why it cannot be shown (a refused id, an unreadable log)."""
    try:
        return index.app(project, app_id), None
    except InvalidParameterError as error:
        return None, plain(error)
    # Whatever the log holds, the page says what went wrong instead of a traceback.
    except Exception as error:
        return None, f"Application {plain(repr(app_id))} is unreadable: {plain(_reason(error))}"


def _reason(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


def _steps_and_step(index: TrackingSource, project: str, log: AppLog, steps: list[Step]) -> None:
    by_seq = {s.seq: s for s in steps}
    selected = sel("step")
    seq = int(selected) if selected is not None and selected.isdigit() else None
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
        # Options are plain text (not markdown) in the browser: shown as they are.
        format_func=lambda s: f"{s} · {by_seq[s].action} · {by_seq[s].status}",
        on_change=lambda: set_sel(step=st.session_state[key]),
    )
    try:
        _step_view(index, project, log, by_seq[seq])
    # A damaged record (a delta that is not a list of changes) spoils this step, not the page.
    except Exception as error:
        st.error(f"Step {seq} cannot be shown from its log: {plain(_reason(error))}")
    save_params()


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
            " · ".join(
                f"{plain(k.removeprefix('gen_ai.usage.'))}: {v:,.0f}" for k, v in tokens.items()
            )
        )
    st.caption(
        f"partition key: {plain(summary.partition_key or 'none')} · started {fmt_time(first)} · "
        f"last activity {fmt_time(last)}"
    )
    if summary.tags:
        st.caption("tags: " + " · ".join(plain(f"{k}={v}") for k, v in summary.tags.items()))
    parent = summary.parent
    if parent is not None:
        kind = "forked from" if parent.kind == "fork" else "spawned by"
        st.button(
            f"{kind}: {plain(parent.app_id)} (step {plain(parent.sequence_id)})",
            key=f"link:parent:{parent.app_id}",
            on_click=navigate(app=parent.app_id, step=parent.sequence_id, tab=None),
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
            f"{'fork' if child.kind == 'fork' else 'child'}: {plain(child.app_id)}",
            key=f"link:child:{child.app_id}",
            on_click=navigate(app=child.app_id, step=None, tab=None),
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
            set_sel(step=rows[chosen[0]].seq)

    def opened() -> None:
        event = st.session_state.get(f"{table_key}:open")
        if event is not None:
            set_sel(step=rows[event.row].seq)

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


def _step_view(index: TrackingSource, project: str, log: AppLog, step: Step) -> None:
    tab = sel("tab") if sel("tab") in TABS else TABS[0]
    if st.session_state.get("w_tab") != tab:
        st.session_state["w_tab"] = tab

    def changed() -> None:
        set_sel(tab=st.session_state.get("w_tab") or TABS[0])

    st.segmented_control("View", TABS, key="w_tab", on_change=changed)
    st.subheader(f"Step {step.seq} · {plain(step.action)} · {plain(step.status)}")
    _children_of_step(log, step)
    if tab == "State":
        _state_tab(log, step)
    elif tab == "Inputs & Result":
        st.markdown("**Inputs**")
        st.json(compact(truncate(step.inputs)))
        st.markdown("**Result**")
        st.json(compact(truncate(step.result)))
        shown = {"inputs": step.inputs, "result": step.result}
        show_artifacts(shown, key=f"io:{step.seq}")
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
    if which in ("after", "before"):
        value = after if which == "after" else before
        st.json(compact(truncate(value)), expanded=2)
        show_artifacts(value, key=f"state:{step.seq}:{which}")
    else:
        diff = diff_states(before, after)
        st.markdown(diff_html(diff), unsafe_allow_html=True)
        written = {**diff.added, **{k: new for k, (_old, new) in diff.changed.items()}}
        show_artifacts(written, key=f"diff:{step.seq}")
    if step.status not in ("completed", "failed", "cancelled"):
        st.caption("The step has not finished: its state is the state before it.")


def _error_tab(step: Step) -> None:
    if step.error and step.status != "completed":
        st.error(plain(step.error_summary or "failed"))
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
            f"{plain(step.stream_items if step.stream_items is not None else '?')} items"
        )
    rows = [
        {"span": span.name, "key": key, "value": str(truncate(value, 5))[:200]}
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
    # long or multi-line text (captured prompts and completions) in full, as plain text blocks
    for span in step.spans.values():
        for key, value in span.attributes.items():
            if isinstance(value, str) and (len(value) > 200 or "\n" in value):
                with st.expander(f"{plain(span.name)} · {plain(key)} ({len(value):,} characters)"):
                    st.code(value, language="text", wrap_lines=True)
    tokens = step_token_totals(step)
    if tokens:
        st.caption(" · ".join(f"{plain(k)}: {v:,.0f}" for k, v in tokens.items()))


def _code_tab(log: AppLog, step: Step) -> None:
    spec = next((a for a in log.graph.get("actions", []) if a.get("name") == step.action), None)
    if spec is None:
        st.warning(f"The logged graph has no action {plain(repr(step.action))}.")
        return
    st.markdown(
        f"reads: {plain(', '.join(str(r) for r in spec.get('reads', [])) or '-')} · "
        f"writes: {plain(', '.join(str(w) for w in spec.get('writes', [])) or '-')}"
    )
    source = spec.get("source") or ""
    if source:
        st.code(source, language="python")
    else:
        st.caption("No source was recorded for this action.")


def _fork_tab(index: TrackingSource, project: str, log: AppLog, step: Step) -> None:
    # The id the log is filed under (checked by the source), not the one its first line claims.
    app_id = log.app_id
    partition_key = None if log.partition_key is None else str(log.partition_key)
    root = getattr(index, "root", None)
    st.markdown("Fork this application from this step into a new one:")
    if isinstance(root, Path):
        st.code(
            fork_snippet(
                storage_dir=root.resolve(), project=project, app_id=app_id,
                partition_key=partition_key, seq=step.seq,
                entrypoint=log.graph.get("entrypoint"),
            ),
            language="python",
        )  # fmt: skip
        st.markdown("Reproduce: write this step as a test case (see `turnout.testing`):")
        st.code(
            reproduce_command(
                storage_dir=root.resolve(), project=project, app_id=app_id,
                partition_key=partition_key, seq=step.seq,
            ),
            language="bash",
        )  # fmt: skip
    else:
        # The connection string is not shown: it may hold a password.
        st.code(
            postgres_fork_snippet(
                table_prefix=str(getattr(index, "table_prefix", "turnout_tracking")),
                project=project, app_id=app_id, partition_key=partition_key, seq=step.seq,
                entrypoint=log.graph.get("entrypoint"),
            ),
            language="python",
        )  # fmt: skip
    st.download_button(
        "Reproduce: download this step as a test fixture (JSON)",
        reproduce_fixture(step, log.state_before(step.seq), log.state_after(step.seq)),
        file_name=f"{app_id}-step-{step.seq}.json",
        mime="application/json",
        on_click="ignore",
    )


def postgres_fork_snippet(
    *, table_prefix: str, project: str, app_id: str, partition_key: str | None, seq: int,
    entrypoint: str | None,
) -> str:  # fmt: skip
    """The code that forks ``app_id`` at step ``seq`` from a PostgreSQL tracking store (every
    traced value written as a Python literal; the connection string left for the user)."""
    return f"""from turnout import ApplicationBuilder
from turnout.integrations.postgres_tracking import PostgresTracker

tracker = PostgresTracker(
    "postgresql://...", project={project!r}, table_prefix={table_prefix!r}
)
app = (
    ApplicationBuilder()
    .with_actions(...)  # the same actions and transitions as {app_id!r}
    .with_transitions(...)
    .initialize_from(
        tracker,
        resume_at_next_action=True,
        default_state={{}},
        default_entrypoint={entrypoint!r},
        fork_from_app_id={app_id!r},
        fork_from_partition_key={partition_key!r},
        fork_from_sequence_id={seq},
    )
    .with_tracker(tracker)
    .build()
)
app.run()  # continues from the state after step {seq}
"""
