"""Cost and token insights in the UI: the JSON routes (``/api/v1/prices``,
``/api/v1/projects/{project}/insights``, ``.../apps/{app_id}/insights``), an application's
*insights* tab, a project's insights page and the price table's page (``/prices``).

The numbers come from ``insights`` and the prices from the table the app was created with
(``app.state.prices``); the charts are SVG drawn by the templates from ``_charts``' geometry.
Registered before the other routers (``app.py``): the application routes take the rest of the
path as the id.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from turnout.integrations.fastapi.ui import _charts, _format, queries
from turnout.integrations.fastapi.ui._source import Reader
from turnout.integrations.fastapi.ui.insights import (
    AppInsights,
    ProjectInsights,
    app_insights,
    project_insights,
)
from turnout.integrations.fastapi.ui.price_edit import prices_page
from turnout.integrations.fastapi.ui.prices import PriceTable

__all__ = ["PricesOut", "fmt_cost", "fmt_tokens", "insights_api", "insights_pages"]

insights_api = APIRouter(prefix="/api/v1", tags=["insights"])
insights_pages = APIRouter(include_in_schema=False)
_APP = "/projects/{project}/apps/{app_id:path}"
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such project or application (the reason says)"}
}


class PriceOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str
    input: float = Field(description="US dollars per million input tokens")
    output: float = Field(description="US dollars per million output tokens")
    origin: str = Field(description='"default" or "file"')


class PricesOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    as_of: str = Field(description="when the prices were taken")
    source: str
    currency: str
    path: str | None = Field(description="the user's price file, if one was given")
    models: list[PriceOut]


def _prices(request: Request) -> PriceTable:
    prices: PriceTable = request.app.state.prices
    return prices


def _source(request: Request) -> Reader:
    source: Reader = request.app.state.source
    return source


def fmt_tokens(value: float) -> str:
    """``1,234`` below a million, ``1.23M`` above."""
    if value >= 1_000_000:
        return f"{value / 1_000_000:,.2f}M"
    return f"{value:,.0f}"


def fmt_cost(value: float | None) -> str:
    """US dollars, with the digits a small cost needs (``$0.00042``)."""
    if value is None:
        return "not priced"
    if value == 0:
        return "$0"
    if value >= 1:
        return f"${value:,.2f}"
    return f"${value:.{max(2, 2 - int(f'{value:e}'.split('e')[1]))}f}"


def _seconds(value: float) -> str:
    return _format.fmt_duration(value)


@insights_api.get("/prices", summary="The price table in use (US dollars per million tokens)")
def get_prices(request: Request) -> PricesOut:
    table = _prices(request)
    return PricesOut(
        as_of=table.as_of,
        source=table.source,
        currency=table.currency,
        path=table.path,
        models=[
            PriceOut(model=p.model, input=p.input, output=p.output, origin=p.origin)
            for p in table.models
        ],
    )


@insights_api.get(
    _APP + "/insights",
    summary="An application's tokens, cost and latency: per model, per action, per step",
    responses=_NOT_FOUND,
)
def get_app_insights(
    request: Request,
    project: str,
    app_id: str,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT, description="steps listed")] = 200,
) -> AppInsights:
    return app_insights(_source(request), project, app_id, _prices(request), limit=limit)


@insights_api.get(
    "/projects/{project}/insights",
    summary="A project's tokens, cost and latency over its most recent applications",
    responses=_NOT_FOUND,
)
def get_project_insights(
    request: Request,
    project: str,
    limit: Annotated[
        int, Query(ge=1, le=queries.MAX_LIMIT, description="applications read, newest first")
    ] = 100,
) -> ProjectInsights:
    return project_insights(_source(request), project, _prices(request), limit=limit)


def _render(request: Request, name: str, context: dict[str, Any]) -> HTMLResponse:
    context = {"fmt_tokens": fmt_tokens, "fmt_cost": fmt_cost, **context}
    response: HTMLResponse = request.app.state.templates.TemplateResponse(request, name, context)
    return response


def _bucket_text(seconds: int) -> str:
    """``1 minute``, ``6 hours``, ``1 day``, ``30 days``."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


def _when(start: float, bucket: int) -> str:
    shape = "%Y-%m-%d" if bucket >= 86400 else "%m-%d %H:%M"
    return time.strftime(shape, time.gmtime(start))


def _common_charts(view: AppInsights | ProjectInsights) -> dict[str, Any]:
    actions = view.actions
    return {
        "latency_bars": _charts.bars(
            [(a.action, a.mean_duration or 0.0) for a in actions], _seconds
        ),
        "latency_notes": {
            a.action: f"p95 {_seconds(a.p95_duration)}"
            for a in actions
            if a.p95_duration is not None
        },
        "token_bars": _charts.bars(
            [(a.action, a.input_tokens + a.output_tokens) for a in actions], fmt_tokens
        ),
        "token_notes": {a.action: fmt_cost(a.cost) for a in actions if a.cost},
    }


@insights_pages.get(_APP + "/insights", response_class=HTMLResponse)
def app_insights_page(request: Request, project: str, app_id: str) -> HTMLResponse:
    view = app_insights(_source(request), project, app_id, _prices(request))
    steps = view.steps
    return _render(
        request,
        "insights_app.html",
        {
            "project": project,
            "app_id": app_id,
            "view": view,
            **_common_charts(view),
            "token_columns": _charts.columns(
                [
                    (
                        f"#{s.seq}",
                        s.input_tokens + s.output_tokens,
                        f"step {s.seq} {s.action}: {fmt_tokens(s.input_tokens)} in, "
                        f"{fmt_tokens(s.output_tokens)} out, {fmt_cost(s.cost)}",
                    )
                    for s in steps
                ],
                fmt_tokens,
            ),
            "latency_columns": _charts.columns(
                [
                    (
                        f"#{s.seq}",
                        s.duration or 0.0,
                        f"step {s.seq} {s.action}: {_seconds(s.duration or 0.0)}",
                    )
                    for s in steps
                ],
                _seconds,
            ),
        },
    )


@insights_pages.get("/projects/{project}/insights", response_class=HTMLResponse)
def project_insights_page(
    request: Request,
    project: str,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 100,
) -> HTMLResponse:
    view = project_insights(_source(request), project, _prices(request), limit=limit)
    size = view.bucket_seconds
    return _render(
        request,
        "insights_project.html",
        {
            "project": project,
            "view": view,
            **_common_charts(view),
            "token_columns": _charts.columns(
                [
                    (
                        _when(b.start, size),
                        b.input_tokens + b.output_tokens,
                        f"{_when(b.start, size)}: {b.steps} steps, "
                        f"{fmt_tokens(b.input_tokens + b.output_tokens)} tokens, "
                        f"{fmt_cost(b.cost)}",
                    )
                    for b in view.over_time
                ],
                fmt_tokens,
            ),
            "cost_columns": _charts.columns(
                [
                    (_when(b.start, size), b.cost, f"{_when(b.start, size)}: {fmt_cost(b.cost)}")
                    for b in view.over_time
                ],
                fmt_cost,
            ),
            "latency_columns": _charts.columns(
                [
                    (
                        _when(b.start, size),
                        b.mean_duration or 0.0,
                        f"{_when(b.start, size)}: mean step {_seconds(b.mean_duration or 0.0)}",
                    )
                    for b in view.over_time
                ],
                _seconds,
            ),
            "bucket": _bucket_text(size),
        },
    )


@insights_pages.get("/prices", response_class=HTMLResponse)
def get_prices_page(request: Request) -> HTMLResponse:
    return prices_page(request)
