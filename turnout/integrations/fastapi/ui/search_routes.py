"""The routes of text search: the JSON API (``/api/v1/.../search?q=``) and the pages (an
application's search, from the box on its page; a project's, from its applications page).

Registered before the other routers: an application id is a path parameter that would take
the ``/search`` suffix in as part of the id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from turnout.integrations.fastapi.ui import search
from turnout.integrations.fastapi.ui._source import Reader

__all__ = ["search_router"]

search_router = APIRouter()
_APP = "/projects/{project}/apps/{app_id:path}"
_Q = Annotated[str, Query(description="the text to find (plain, case-insensitive)")]
_LIMIT = Annotated[int, Query(ge=1, le=1000, description="stop after this many steps")]
PAGE_BUDGET = 2.0  # seconds a project search may take


def _source(request: Request) -> Reader:
    source: Reader = request.app.state.source
    return source


def _checked(q: str) -> str:
    try:
        return search.check_query(q)
    except ValueError as error:
        raise HTTPException(422, str(error)) from None


@search_router.get(
    "/api/v1" + _APP + "/search",
    tags=["tracking"],
    summary="The steps of an application whose inputs, result, error or writes hold a text",
)
def api_search_app(
    request: Request, project: str, app_id: str, q: _Q, limit: _LIMIT = 100
) -> search.SearchResults:
    return search.search_app(_source(request), project, app_id, _checked(q), limit=limit)


@search_router.get(
    "/api/v1/projects/{project}/search",
    tags=["tracking"],
    summary="The steps of a project's applications holding a text (bounded in hits and time)",
)
def api_search_project(
    request: Request,
    project: str,
    q: _Q,
    limit: _LIMIT = 100,
    budget: Annotated[float, Query(gt=0, le=30, description="seconds at most")] = PAGE_BUDGET,
) -> search.SearchResults:
    return search.search_project(_source(request), project, _checked(q), limit=limit, budget=budget)


def _page(
    request: Request,
    project: str,
    app_id: str | None,
    q: str,
    run: Callable[[], search.SearchResults],
) -> HTMLResponse:
    results = None
    problem = None
    if q.strip():
        try:
            results = run()
        except ValueError as error:
            problem = str(error)
    response: HTMLResponse = request.app.state.templates.TemplateResponse(
        request,
        "search.html",
        {"project": project, "app_id": app_id, "q": q, "results": results, "problem": problem},
    )
    return response


@search_router.get(_APP + "/search", response_class=HTMLResponse, include_in_schema=False)
def search_app_page(request: Request, project: str, app_id: str, q: str = "") -> HTMLResponse:
    return _page(
        request,
        project,
        app_id,
        q,
        lambda: search.search_app(_source(request), project, app_id, q),
    )


@search_router.get(
    "/projects/{project}/search", response_class=HTMLResponse, include_in_schema=False
)
def search_project_page(request: Request, project: str, q: str = "") -> HTMLResponse:
    return _page(
        request,
        project,
        None,
        q,
        lambda: search.search_project(_source(request), project, q, budget=PAGE_BUDGET),
    )
