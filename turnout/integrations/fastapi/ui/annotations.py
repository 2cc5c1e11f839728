"""Annotations in the web UI: the API (``/api/v1/projects/{project}/annotations``), the step
panel's form and the project's annotations page.

Writes (``POST``, ``PUT``, ``DELETE``) change the store, so a page on another site must not be
able to make a visitor's browser send them. The UI answers only its own ``Host`` names
(``allowed_hosts``, against DNS rebinding) and a write is refused (403) unless it carries a
header a cross-site form cannot set: htmx's ``HX-Request`` (the UI's own forms) or
``X-Turnout-UI`` (scripts; any value). A browser adds such a header to a cross-site request
only after a CORS preflight, which this server never approves. An ``Origin`` or
``Sec-Fetch-Site`` header that names another site is refused as well.

A write from htmx is answered with the step's annotations panel (HTML); any other with JSON.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

from turnout.core.trackannotations import (
    MARKS,
    Annotation,
    AnnotationError,
    AnnotationFields,
    AnnotationQuery,
    AnnotationStore,
    new_annotation,
)
from turnout.core.trackannotexport import to_csv, to_jsonl
from turnout.integrations.fastapi.ui import queries
from turnout.integrations.fastapi.ui._source import Reader

__all__ = ["WRITE_HEADER", "annotations_router", "check_write"]

annotations_router = APIRouter()
WRITE_HEADER = "X-Turnout-UI"
_API = "/api/v1/projects/{project}/annotations"
_STEP = "/projects/{project}/apps/{app_id:path}/steps/{seq}/annotations"
_MAX_BODY = 400_000  # bytes of one write's body
_TAGS = "tags (comma-separated)"
_Mark = Literal["good", "bad", "none"]
_FIELDS: dict[str, Any] = {
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 64}, "maxItems": 20},
    "note": {"type": "string", "maxLength": 10_000},
    "mark": {"enum": ["good", "bad", None]},
    "expected": {"description": "any JSON value: the result the step should have produced"},
}


def _body_doc(*, new: bool) -> dict[str, Any]:
    """The request body as the OpenAPI schema shows it (the route reads it itself: JSON or
    the panel's form)."""
    fields = dict(_FIELDS)
    if new:
        fields = {"app_id": {"type": "string"}, "seq": {"type": "integer"}, **fields}
    schema = {"type": "object", "properties": fields}
    if new:
        schema["required"] = ["app_id", "seq"]
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _reader(request: Request) -> Reader:
    reader: Reader = request.app.state.source
    return reader


def _store(request: Request) -> AnnotationStore:
    store = getattr(_reader(request).source, "annotations", None)
    if not isinstance(store, AnnotationStore):
        raise HTTPException(
            501,
            f"this tracking source ({type(_reader(request).source).__name__}) keeps no "
            "annotations: serve a tracking directory or a postgresql:// store",
        )
    return store


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def _check_write(request: Request) -> None:
    """Refuse a write a page of another site could have sent (see the module docstring)."""
    headers = request.headers
    if not (_is_htmx(request) or WRITE_HEADER.lower() in headers):
        raise HTTPException(
            403,
            f"a write needs the header {WRITE_HEADER}: 1 (the UI's own forms send HX-Request): "
            "without it, a page of another site could have sent it",
        )
    origin = headers.get("origin")
    if origin is not None and urllib.parse.urlsplit(origin).netloc != headers.get("host"):
        raise HTTPException(403, f"a write from origin {origin[:100]!r} is refused")
    if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise HTTPException(403, "a write from another site is refused")


check_write = _check_write  # the price table's edits are protected the same way


def _query(
    tag: str | None, mark: str | None, action: str | None, app_id: str | None
) -> AnnotationQuery:
    return AnnotationQuery(tag=tag or None, mark=mark or None, action=action or None,
                           app_id=app_id or None)  # fmt: skip


async def _body(request: Request) -> dict[str, Any]:
    """A write's fields, from JSON or from a form (``tags`` comma-separated, ``expected`` as
    text read as JSON when ``expected_kind`` is ``json``)."""
    raw = await request.body()
    if len(raw) > _MAX_BODY:
        raise HTTPException(413, f"the body is {len(raw):,} bytes: at most {_MAX_BODY:,}")
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind == "application/json":
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError) as error:
            raise HTTPException(400, f"the body is not JSON: {error}") from None
        if not isinstance(parsed, dict):
            raise HTTPException(400, "the body is a JSON object of an annotation's fields")
        return {str(k): v for k, v in parsed.items()}
    form = {k: v[-1] for k, v in urllib.parse.parse_qs(raw.decode("utf-8", "replace")).items()}
    data: dict[str, Any] = {k: form[k] for k in ("app_id", "note") if k in form}
    if "seq" in form:
        data["seq"] = form["seq"]
    data["tags"] = [t for t in form.get("tags", "").split(",") if t.strip()]
    data["mark"] = form.get("mark") or None
    text = form.get("expected", "")
    if not text.strip():
        data["expected"] = None
    elif form.get("expected_kind", "text") == "json":
        try:
            data["expected"] = json.loads(text)
        except (ValueError, RecursionError) as error:
            # Said when the fields are checked, so the form comes back with the reason.
            data["expected_error"] = (
                f"the expected result is not JSON ({error}): fix it or choose 'text'"
            )
    else:
        data["expected"] = text
    return data


def _fields(data: dict[str, Any]) -> AnnotationFields:
    if "expected_error" in data:
        raise AnnotationError(str(data["expected_error"]))
    tags = data.get("tags", [])
    if not isinstance(tags, list):
        raise AnnotationError(f"tags={tags!r}: tags are a list of strings")
    return AnnotationFields(
        tags=tuple(tags), note=data.get("note", ""), mark=data.get("mark"),
        expected=data.get("expected"),
    )  # fmt: skip


def _panel(
    request: Request,
    project: str,
    app_id: str,
    seq: int,
    *,
    edit: str | None = None,
    problem: str | None = None,
) -> HTMLResponse:
    items = _store(request).list(project, AnnotationQuery(app_id=app_id, seq=seq))
    response: HTMLResponse = request.app.state.templates.TemplateResponse(
        request,
        "_annotations.html",
        {
            "project": project, "app_id": app_id, "seq": seq, "items": items,
            "editing": next((a for a in items if a.id == edit), None), "problem": problem,
            "marks": MARKS, "show": _shown_expected,
        },
    )  # fmt: skip
    return response


def _shown_expected(annotation: Annotation) -> tuple[str, str]:
    """``(kind, text)`` of an expected result as the form edits it."""
    value = annotation.fields.expected
    if value is None:
        return "text", ""
    if isinstance(value, str):
        return "text", value
    return "json", json.dumps(value, indent=1, ensure_ascii=False)


def _answer(
    request: Request, annotation: Annotation, status: int, *, problem: str | None = None
) -> Response:
    if _is_htmx(request):
        return _panel(request, annotation.project, annotation.app_id, annotation.seq,
                      problem=problem)  # fmt: skip
    return JSONResponse(annotation.to_json(), status_code=status)


def _refused(
    request: Request, error: AnnotationError, where: tuple[str, str, int] | None
) -> Response:
    if _is_htmx(request) and where is not None:
        # htmx swaps only 2xx answers: the panel comes back with the reason in it.
        return _panel(request, *where, problem=str(error))
    return JSONResponse({"detail": str(error)}, status_code=422)


@annotations_router.get(_API + ".jsonl", tags=["annotations"], summary="Export as JSON Lines")
def export_jsonl(
    request: Request, project: str, tag: str | None = None, mark: _Mark | None = None,
    action: str | None = None, app_id: str | None = None,
) -> Response:  # fmt: skip
    found = _store(request).list(project, _query(tag, mark, action, app_id))
    return PlainTextResponse(
        to_jsonl(found), media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="annotations.jsonl"'},
    )  # fmt: skip


@annotations_router.get(_API + ".csv", tags=["annotations"], summary="Export as CSV")
def export_csv(
    request: Request, project: str, tag: str | None = None, mark: _Mark | None = None,
    action: str | None = None, app_id: str | None = None,
) -> Response:  # fmt: skip
    found = _store(request).list(project, _query(tag, mark, action, app_id))
    return PlainTextResponse(
        to_csv(found), media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="annotations.csv"'},
    )  # fmt: skip


@annotations_router.get(_API, tags=["annotations"], summary="A project's annotations, filtered")
def list_annotations(
    request: Request,
    project: str,
    tag: str | None = None,
    mark: _Mark | None = None,
    action: str | None = None,
    app_id: str | None = None,
    seq: Annotated[int | None, Query(ge=0)] = None,
) -> list[dict[str, Any]]:
    query = _query(tag, mark, action, app_id)
    if seq is not None:
        query = AnnotationQuery(tag=query.tag, mark=query.mark, action=query.action,
                                app_id=query.app_id, seq=seq)  # fmt: skip
    return [a.to_json() for a in _store(request).list(project, query)]


@annotations_router.post(
    _API, tags=["annotations"], status_code=201, openapi_extra=_body_doc(new=True),
    summary="Annotate a step: {app_id, seq, tags, note, mark, expected} (JSON, or a form)",
)  # fmt: skip
async def create_annotation(request: Request, project: str) -> Response:
    _check_write(request)
    store = _store(request)
    data = await _body(request)
    app_id, seq = data.get("app_id"), data.get("seq")
    if isinstance(seq, str) and seq.isdigit():
        seq = int(seq)
    if not isinstance(app_id, str) or type(seq) is not int:
        return JSONResponse({"detail": "a new annotation names its step: app_id and seq"}, 422)
    reader = _reader(request)
    log = queries.open_app(reader, project, app_id)
    step = queries.find_step(log, app_id, seq)
    try:
        made = new_annotation(
            project=project, app_id=app_id, partition_key=log.partition_key, seq=seq,
            action=step.action, fields=_fields(data),
        )  # fmt: skip
        added = store.add(made)
    except AnnotationError as error:
        return _refused(request, error, (project, app_id, seq))
    return _answer(request, added, 201)


@annotations_router.put(
    _API + "/{annotation_id}", tags=["annotations"], openapi_extra=_body_doc(new=False),
    summary="Replace one's fields (a missing one is cleared)",
)  # fmt: skip
async def edit_annotation(request: Request, project: str, annotation_id: str) -> Response:
    _check_write(request)
    store = _store(request)
    old = _found(store, project, annotation_id)
    try:
        data = await _body(request)
        changed = store.update(project, annotation_id, _fields(data))
    except AnnotationError as error:
        return _refused(request, error, (project, old.app_id, old.seq))
    return _answer(request, changed, 200)


@annotations_router.delete(_API + "/{annotation_id}", tags=["annotations"], summary="Delete one")
def delete_annotation(request: Request, project: str, annotation_id: str) -> Response:
    _check_write(request)
    store = _store(request)
    old = _found(store, project, annotation_id)
    try:
        gone = store.delete(project, annotation_id)
    except AnnotationError as error:
        return _refused(request, error, (project, old.app_id, old.seq))
    return _answer(request, gone, 200)


def _found(store: AnnotationStore, project: str, annotation_id: str) -> Annotation:
    try:
        return store.get(project, annotation_id)
    except (KeyError, AnnotationError):
        raise queries.NotFoundError(
            f"project {project!r} has no annotation {annotation_id[:100]!r}"
        ) from None


@annotations_router.get(_STEP, include_in_schema=False)
def step_panel(
    request: Request, project: str, app_id: str, seq: int, edit: str | None = None
) -> HTMLResponse:
    queries.find_step(queries.open_app(_reader(request), project, app_id), app_id, seq)
    return _panel(request, project, app_id, seq, edit=edit)


@annotations_router.get("/projects/{project}/annotations", include_in_schema=False)
def annotations_page(
    request: Request, project: str, tag: str = "", mark: str = "", action: str = "",
    app: str = "",
) -> HTMLResponse:  # fmt: skip
    store = _store(request)
    every = store.list(project)
    try:
        query = _query(tag, mark, action, app)
    except AnnotationError as error:
        raise HTTPException(422, str(error)) from None
    filters = {"tag": tag, "mark": mark, "action": action, "app": app}
    chosen = {
        k: v for k, v in {"tag": tag, "mark": mark, "action": action, "app_id": app}.items() if v
    }
    response: HTMLResponse = request.app.state.templates.TemplateResponse(
        request,
        "annotations.html",
        {
            "project": project, "items": [a for a in every if query.matches(a)],
            "total": len(every), "filters": filters, "marks": MARKS, "show": _shown_expected,
            "tags": sorted({t for a in every for t in a.fields.tags}),
            "actions": sorted({a.action for a in every}),
            "apps": sorted({a.app_id for a in every}),
            "export_query": urllib.parse.urlencode(chosen),
            "refused": store.refused(project),
        },
    )  # fmt: skip
    return response
