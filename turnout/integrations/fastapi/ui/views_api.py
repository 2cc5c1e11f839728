"""JSON routes (``/api/v1``, in OpenAPI) for the views that began as HTML only: an
application's timeline, what a waiting application waits for, a step's artifact refs; and the
test-case downloads: a step's case file (what ``turnout test-case`` writes) and the cases of a
project's annotations (what ``turnout annotations cases`` writes).

Each answers from the same functions as its page (``_timeline.timeline``, ``waiting.waiting_of``,
``artifacts.step_refs``, ``turnout.core.trackcases.step_case``), so the API and the pages never
disagree. Registered before ``api.py``'s router: an application id is the rest of a path, so
routes with a suffix after it must be matched first.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from turnout.core.trackannotations import AnnotationError, AnnotationQuery, AnnotationStore
from turnout.core.trackannotexport import annotation_cases
from turnout.core.trackcases import CaseError, case_file_name, step_case
from turnout.integrations.fastapi.ui import _format, queries
from turnout.integrations.fastapi.ui._source import Reader
from turnout.integrations.fastapi.ui._timeline import Timeline, timeline
from turnout.integrations.fastapi.ui.artifacts import step_refs
from turnout.integrations.fastapi.ui.waiting import Waiting, waiting_of

__all__ = ["ArtifactOut", "case_download", "views_router"]

views_router = APIRouter(prefix="/api/v1", tags=["views"])
_APP = "/projects/{project}/apps/{app_id:path}"
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such project, application or step (the reason says)"}
}
_JSON_FILE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "a JSON list of test cases, as an attachment",
        "content": {"application/json": {"schema": {"type": "array", "items": {}}}},
    },
    **_NOT_FOUND,
}


def _source(request: Request) -> Reader:
    source: Reader = request.app.state.source
    return source


class ArtifactOut(BaseModel):
    """One artifact ref a step holds, as its panel lists it."""

    model_config = ConfigDict(frozen=True)

    number: int = Field(description="its place in the step's list (what a download names)")
    path: str = Field(description="where it sits: inputs, result, changes.<key> or state")
    valid: bool
    problem: str | None = Field(description="why it is not a valid ref")
    name: str | None = None
    media_type: str | None = None
    size_bytes: int | None = None
    digest: str | None = None
    download: str | None = Field(
        description="the URL of its blob (null: no artifact store configured, or not valid)"
    )


@views_router.get(
    _APP + "/timeline",
    summary="The run's timeline: each step's bar and the spawned children's lanes",
    responses=_NOT_FOUND,
)
def get_timeline(
    request: Request,
    project: str,
    app_id: str,
    start: Annotated[float, Query(ge=0.0, le=1.0, description="window start, of the run")] = 0.0,
    end: Annotated[float, Query(ge=0.0, le=1.0, description="window end, of the run")] = 1.0,
) -> Timeline:
    source = _source(request)
    log = queries.open_app(source, project, app_id)
    return timeline(source, project, log, app_id, start=start, end=end)


@views_router.get(
    _APP + "/waiting",
    summary="What a suspended application waits for: channel, JSON Schema, metadata",
    responses={404: {"description": "no such application, or it is not waiting"}},
)
def get_waiting(request: Request, project: str, app_id: str) -> Waiting:
    waiting = waiting_of(queries.open_app(_source(request), project, app_id))
    if waiting is None:
        raise queries.NotFoundError(
            f"application {app_id!r} is not waiting for an answer (its last step did not suspend)"
        )
    return waiting


@views_router.get(
    _APP + "/steps/{seq}/artifacts",
    summary="The artifact refs a step's inputs, result, delta and state hold",
    responses=_NOT_FOUND,
)
def list_artifacts(request: Request, project: str, app_id: str, seq: int) -> list[ArtifactOut]:
    detail = queries.step_detail(_source(request), project, app_id, seq)
    store = request.app.state.artifacts is not None
    base = f"/projects/{_format.quote(project)}/apps/{_format.quote(app_id)}/steps/{seq}"
    out = []
    for number, found in enumerate(step_refs(detail)):
        ref = found.ref
        out.append(
            ArtifactOut(
                number=number,
                path=found.path,
                valid=ref is not None,
                problem=found.problem,
                name=None if ref is None else ref.name,
                media_type=None if ref is None else ref.media_type,
                size_bytes=None if ref is None else ref.size_bytes,
                digest=None if ref is None else ref.digest,
                download=f"{base}/artifacts/{number}" if store and ref is not None else None,
            )
        )
    return out


def case_download(cases: list[dict[str, Any]], name: str) -> Response:
    """``cases`` as a downloaded case file (``turnout.testing.load_cases`` reads it)."""
    return Response(
        json.dumps(cases, indent=2, ensure_ascii=False) + "\n",
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "private, no-store",
        },
    )


@views_router.get(
    _APP + "/steps/{seq}/test-case",
    summary="The step as a test-case file (the format `turnout test-case` writes)",
    response_class=Response,
    responses=_JSON_FILE,
)
def download_case(request: Request, project: str, app_id: str, seq: int) -> Response:
    log = queries.open_app(_source(request), project, app_id)
    queries.find_step(log, app_id, seq)
    try:
        case = step_case(log, app_id, seq)
    except CaseError as error:
        raise HTTPException(409, str(error)) from None
    return case_download([case], case_file_name(app_id, seq))


@views_router.get(
    "/projects/{project}/annotations.cases.json",
    tags=["annotations"],
    summary="Test cases from the annotations (those marked good or with an expected result)",
    response_class=Response,
    responses=_JSON_FILE,
)
def download_annotation_cases(
    request: Request,
    project: str,
    tag: str | None = None,
    mark: Literal["good", "bad", "none"] | None = None,
    action: str | None = None,
    app_id: str | None = None,
) -> Response:
    source = _source(request)
    store = getattr(source.source, "annotations", None)
    if not isinstance(store, AnnotationStore):
        raise HTTPException(501, "this tracking source keeps no annotations")
    try:
        query = AnnotationQuery(tag=tag or None, mark=mark or None, action=action or None,
                                app_id=app_id or None)  # fmt: skip
    except AnnotationError as error:
        raise HTTPException(422, str(error)) from None
    found = store.list(project, query)
    cases, skipped = annotation_cases(found, lambda app: source.app(project, app))
    response = case_download(cases, "turnout_annotation_cases.json")
    response.headers["X-Turnout-Skipped"] = str(len(skipped))
    return response
