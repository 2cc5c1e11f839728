"""The timeline tab of an application's page (``.../timeline``): see ``_timeline``.

Registered before the other pages (``app.py``): the application's own route takes the rest of
the path as its id, so this route must be matched first.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from turnout.integrations.fastapi.ui import queries
from turnout.integrations.fastapi.ui._timeline import timeline

__all__ = ["timeline_router", "zoom_links"]

timeline_router = APIRouter(include_in_schema=False)
_APP = "/projects/{project}/apps/{app_id:path}"


def _window(centre: float, half: float) -> tuple[float, float]:
    half = min(max(half, 0.0005), 0.5)
    left = min(max(centre - half, 0.0), 1.0 - 2 * half)
    return round(left, 4), round(left + 2 * half, 4)


def zoom_links(start: float, end: float) -> dict[str, tuple[float, float]]:
    """The windows the zoom buttons open: in and out around the centre, and half a window
    to the left and to the right."""
    centre, half = (start + end) / 2, (end - start) / 2
    return {
        "in": _window(centre, half / 2),
        "out": _window(centre, half * 2),
        "left": _window(centre - half, half),
        "right": _window(centre + half, half),
    }


@timeline_router.get(_APP + "/timeline", response_class=HTMLResponse)
def timeline_page(
    request: Request,
    project: str,
    app_id: str,
    start: Annotated[float, Query(ge=0.0, le=1.0)] = 0.0,
    end: Annotated[float, Query(ge=0.0, le=1.0)] = 1.0,
) -> HTMLResponse:
    source = request.app.state.source
    log = queries.open_app(source, project, app_id)
    view = timeline(source, project, log, app_id, start=start, end=end)
    response: HTMLResponse = request.app.state.templates.TemplateResponse(
        request,
        "timeline.html",
        {
            "project": project,
            "app_id": app_id,
            "view": view,
            "zoom": zoom_links(view.start, view.end),
        },
    )
    return response
