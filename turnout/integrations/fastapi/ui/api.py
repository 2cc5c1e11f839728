"""The JSON API of the tracking UI (``/api/v1``), documented in the app's OpenAPI schema.

Application ids may hold any character (``/`` included): they are the last path parameter of
a route, percent-encoded by the caller (``urllib.parse.quote(app_id, safe="")``). The routes
with a suffix after the id are declared before the bare one so they match first.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from turnout.integrations.fastapi.ui import queries
from turnout.integrations.fastapi.ui._source import Reader
from turnout.integrations.fastapi.ui.schemas import (
    AppDetail,
    AppsPage,
    ProjectOut,
    StepDetail,
    StepsPage,
    ValuePage,
)

__all__ = ["api_router"]

api_router = APIRouter(prefix="/api/v1", tags=["tracking"])
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such project, application or step (the reason says)"}
}
_APP = "/projects/{project}/apps/{app_id:path}"


def _source(request: Request) -> Reader:
    source: Reader = request.app.state.source
    return source


@api_router.get("/projects", summary="Every project, most recently active first")
def list_projects(request: Request) -> list[ProjectOut]:
    return queries.projects(_source(request))


@api_router.get(
    _APP + "/steps/{seq}/value",
    summary="A page of the items of one value inside a step's state, inputs or result",
    responses=_NOT_FOUND,
)
def step_value(
    request: Request,
    project: str,
    app_id: str,
    seq: int,
    state: Literal[
        "after", "before", "inputs", "result", "attributes", "changes", "previous", "spans"
    ] = "after",
    pointer: Annotated[str, Query(description="JSON Pointer, e.g. /items")] = "",
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 50,
) -> ValuePage:
    detail = queries.step_detail(_source(request), project, app_id, seq)
    return queries.value_page(detail, state=state, pointer=pointer, offset=offset, limit=limit)


@api_router.get(
    _APP + "/steps/{seq}",
    summary="One step: states after and before, its delta, inputs, result, error, spans",
    responses=_NOT_FOUND,
)
def get_step(request: Request, project: str, app_id: str, seq: int) -> StepDetail:
    return queries.step_detail(_source(request), project, app_id, seq)


@api_router.get(
    _APP + "/steps",
    summary="An application's steps: newest first, or after a sequence id (oldest first)",
    responses=_NOT_FOUND,
)
def list_steps(
    request: Request,
    project: str,
    app_id: str,
    before: Annotated[int | None, Query(description="only steps with a lower id")] = None,
    after: Annotated[int | None, Query(description="only steps with a higher id")] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 100,
    action: Annotated[str | None, Query(description="only the steps of this action")] = None,
) -> StepsPage:
    return queries.steps_page(
        _source(request), project, app_id, before=before, after=after, limit=limit, action=action
    )


@api_router.get(
    _APP, summary="An application: summary, graph, run counts, token totals", responses=_NOT_FOUND
)
def get_app(request: Request, project: str, app_id: str) -> AppDetail:
    return queries.app_detail(_source(request), project, app_id)


@api_router.get(
    "/projects/{project}/apps",
    summary="A project's applications, most recently active first, filtered and paged",
    responses=_NOT_FOUND,
)
def list_apps(
    request: Request,
    project: str,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 50,
    partition_key: Annotated[
        str | None, Query(description=f"{queries.NO_PARTITION!r} for none")
    ] = None,
    status: Literal["running", "completed", "failed"] | None = None,
    tag: Annotated[str | None, Query(description="key=value")] = None,
) -> AppsPage:
    return queries.apps_page(
        _source(request),
        project,
        offset=offset,
        limit=limit,
        partition_key=partition_key,
        status=status,
        tag=tag,
    )
