"""The HTML pages of the tracking UI: projects, a project's applications, an application with
its steps (a chosen step's detail beside them) and the page of one big value. Each view is a
URL; htmx swaps the application's main region when a step is clicked and pushes the step's URL,
so Back and Forward walk the steps a user opened. Live mode streams new steps (``live``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from turnout.integrations.fastapi.ui import _format, queries
from turnout.integrations.fastapi.ui._graph import layout
from turnout.integrations.fastapi.ui._source import Reader
from turnout.integrations.fastapi.ui._timeline import fanout_bars
from turnout.integrations.fastapi.ui.artifacts import step_refs
from turnout.integrations.fastapi.ui.live import live_response
from turnout.integrations.fastapi.ui.waiting import waiting_of

__all__ = ["STEPS_PER_PAGE", "pages_router"]

pages_router = APIRouter(include_in_schema=False)
STEPS_PER_PAGE = 100
APPS_PER_PAGE = 50
_APP = "/projects/{project}/apps/{app_id:path}"


def _source(request: Request) -> Reader:
    source: Reader = request.app.state.source
    return source


def _render(request: Request, name: str, context: dict[str, Any]) -> HTMLResponse:
    response: HTMLResponse = request.app.state.templates.TemplateResponse(request, name, context)
    return response


def _partial(request: Request) -> bool:
    """An htmx swap (not a history restore, which needs the whole page)."""
    headers = request.headers
    return headers.get("hx-request") == "true" and "hx-history-restore-request" not in headers


@pages_router.get("/", response_class=HTMLResponse)
def projects_page(request: Request) -> HTMLResponse:
    source = _source(request)
    return _render(
        request,
        "projects.html",
        {
            "projects": queries.projects(source),
            "where": source.description,
            "tracker": 'LocalTracker("my-project")'
            if source.table_prefix is None
            else f'PostgresTracker("postgresql://...", project="my-project", '
            f"table_prefix={source.table_prefix!r})",
        },
    )


@pages_router.get("/projects/{project}", response_class=HTMLResponse)
def apps_page(
    request: Request,
    project: str,
    offset: Annotated[int, Query(ge=0)] = 0,
    pk: str = "",
    status: str = "",
    tag: str = "",
) -> HTMLResponse:
    page = queries.apps_page(
        _source(request),
        project,
        offset=offset,
        limit=APPS_PER_PAGE,
        partition_key=pk or None,
        status=status or None,
        tag=tag or None,
    )
    filters = {"pk": pk, "status": status, "tag": tag}
    return _render(
        request,
        "apps.html",
        {
            "project": project,
            "page": page,
            "filters": filters,
            "statuses": queries.STATUSES,
            "filter_query": "&".join(f"{k}={_format.quote(v)}" for k, v in filters.items() if v),
        },
    )


def _app_context(
    request: Request,
    project: str,
    app_id: str,
    *,
    seq: int | None,
    top: int | None,
    live: bool,
    action: str = "",
) -> dict[str, Any]:
    source = _source(request)
    log = queries.open_app(source, project, app_id)
    detail = queries.app_detail(source, project, app_id)
    step = queries.step_detail(source, project, app_id, seq) if seq is not None else None
    last = detail.last_seq
    if action:  # the filtered table pages among that action's steps: start from the newest
        last = None
    if top is None and seq is not None and last is not None and seq <= last - STEPS_PER_PAGE:
        top = seq + STEPS_PER_PAGE // 2  # a step far back: the page around it
    if top is not None and last is not None and top >= last:
        top = None
    live = live and top is None and not action  # live mode streams every new step
    steps = queries.steps_of(
        log, app_id, before=None if top is None else top + 1, limit=STEPS_PER_PAGE, action=action
    )
    current = step.step.action if step else None
    fanout, fanout_left_out = (
        fanout_bars(source, project, log, seq) if step and seq is not None else ([], 0)
    )
    storage, prefix = source.storage_dir, source.table_prefix
    return {
        "project": project,
        "app_id": app_id,
        "app": detail,
        "steps": steps,
        "selected": seq,
        "top": top,
        "live": live,
        "action_filter": action,
        "newest_shown": steps.steps[0].seq if steps.steps else -1,
        "older_top": None if steps.older is None else steps.older - 1,
        "newer_top": None if steps.newer is None else steps.newer + STEPS_PER_PAGE,
        "graph": layout(
            detail.graph, counts=detail.run_counts, current=current, chosen=action or None
        ),
        "action": next((a for a in detail.graph.actions if a.name == current), None),
        "detail": step,
        "bars": _format.waterfall(step) if step else [],
        "fanout": fanout,
        "fanout_left_out": fanout_left_out,
        "artifacts": step_refs(step) if step else [],
        "waiting": waiting_of(log),
        "artifact_store": request.app.state.artifacts is not None,
        "fork": (
            _format.fork_snippet(step, storage, detail.graph.entrypoint, table_prefix=prefix)
            if step
            else ""
        ),
        "test_case": (
            _format.test_case_command(step, storage, table_prefix=prefix) if step else ""
        ),
    }


def _app_response(
    request: Request,
    project: str,
    app_id: str,
    seq: int | None,
    top: int | None,
    live: bool,
    action: str = "",
) -> HTMLResponse:
    context = _app_context(request, project, app_id, seq=seq, top=top, live=live, action=action)
    name = "app.html"
    if _partial(request):
        # A step link swaps the step panel alone; pager and live links the whole main region.
        panel = request.headers.get("hx-target") == "step-panel" and seq is not None
        name = "_step_click.html" if panel else "_app_main.html"
    response = _render(request, name, context)
    response.headers["Vary"] = "HX-Request, HX-Target"
    return response


@pages_router.get(_APP + "/steps/{seq}/value", response_class=HTMLResponse)
def value_page(
    request: Request,
    project: str,
    app_id: str,
    seq: int,
    state: str = "after",
    pointer: str = "",
    offset: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    detail = queries.step_detail(_source(request), project, app_id, seq)
    page = queries.value_page(
        detail, state=state, pointer=pointer, offset=offset, limit=_format.PAGE_ITEMS
    )
    return _render(
        request,
        "value.html",
        {"project": project, "app_id": app_id, "seq": seq, "state": state, "page": page},
    )


@pages_router.get(_APP + "/steps/{seq}", response_class=HTMLResponse)
def step_page(
    request: Request,
    project: str,
    app_id: str,
    seq: int,
    top: int | None = None,
    live: bool = False,
    action: str = "",
) -> HTMLResponse:
    return _app_response(request, project, app_id, seq, top, live, action)


@pages_router.post(_APP + "/read-all")
def read_all(request: Request, project: str, app_id: str) -> Response:
    """Read every step of a long log opened on its tail, then show its page again."""
    source = _source(request)
    source.load_all(queries.open_app(source, project, app_id))
    return RedirectResponse(f"/projects/{_format.quote(project)}/apps/{_format.quote(app_id)}", 303)


@pages_router.get(_APP + "/live")
async def live_page(request: Request, project: str, app_id: str, after: int = -1) -> Response:
    # Reading a log is file work: off the event loop, like every other page's.
    log = await run_in_threadpool(queries.open_app, _source(request), project, app_id)
    return live_response(request, log, project=project, app_id=app_id, after=after)


@pages_router.get(_APP, response_class=HTMLResponse)
def app_page(
    request: Request,
    project: str,
    app_id: str,
    top: int | None = None,
    live: bool = False,
    action: str = "",
) -> HTMLResponse:
    return _app_response(request, project, app_id, None, top, live, action)
