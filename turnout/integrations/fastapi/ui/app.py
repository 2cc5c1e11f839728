"""``create_ui_app``: the tracking UI as one FastAPI application.

It serves the JSON API under ``/api/v1`` (OpenAPI at ``/api/openapi.json``), the HTML pages
(Jinja2, autoescaped; htmx for partial updates) and the vendored static files under
``/static``. Every answer carries a Content-Security-Policy that allows only this server's own
scripts and styles, so a traced value that slipped past escaping still could not run.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import jinja2
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from turnout.integrations._artifact_refs import human_size
from turnout.integrations.fastapi.ui import _format
from turnout.integrations.fastapi.ui._source import (
    DEFAULT_PREFIX,
    Reader,
    TrackingSource,
    open_source,
)
from turnout.integrations.fastapi.ui.annotations import annotations_router
from turnout.integrations.fastapi.ui.api import api_router
from turnout.integrations.fastapi.ui.artifacts import artifact_router, open_store
from turnout.integrations.fastapi.ui.insights_routes import insights_api, insights_pages
from turnout.integrations.fastapi.ui.pages import pages_router
from turnout.integrations.fastapi.ui.price_edit import price_edit_router
from turnout.integrations.fastapi.ui.prices import PriceTable, load_prices
from turnout.integrations.fastapi.ui.queries import NotFoundError
from turnout.integrations.fastapi.ui.search_routes import search_router
from turnout.integrations.fastapi.ui.timeline_pages import timeline_router
from turnout.integrations.fastapi.ui.views_api import views_router
from turnout.integrations.fastapi.ui.waiting import check_serve_url, waiting_router

__all__ = ["CSP", "create_ui_app"]

HERE = Path(__file__).parent
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# FastAPI's own API explorer loads its scripts from a CDN and runs inline code: it shows no
# traced data, so it alone goes without the policy.
_NO_CSP = ("/api/docs", "/api/docs/oauth2-redirect")


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        # Every template is HTML: escape everything, whatever its file name.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        fmt_time=_format.fmt_time,
        fmt_duration=_format.fmt_duration,
        value_tree=_format.value_tree,
        quote=_format.quote,
        PAGE_ITEMS=_format.PAGE_ITEMS,
        human_size=human_size,
    )
    return Jinja2Templates(env=env)


def create_ui_app(
    source: TrackingSource | str | Path,
    *,
    table_prefix: str = DEFAULT_PREFIX,
    allowed_hosts: Sequence[str] | None = None,
    live_poll: float = 0.25,
    artifacts: str | Path | None = None,
    serve_url: str | None = None,
    prices: PriceTable | str | Path | None = None,
) -> FastAPI:
    """The tracking UI over ``source`` as a FastAPI application (serve it with uvicorn).

    Args:
        source: a ``turnout.core.tracksource.TrackingSource`` (a ``TrackingIndex``, a
            ``PostgresSource``), a tracking directory, or a ``postgresql://`` connection
            string (the tables ``PostgresTracker`` writes; closed with the app).
        table_prefix: with a connection string, the tracker's ``table_prefix``.
        allowed_hosts: the ``Host`` names answered (``None``: any). ``turnout ui`` passes
            this machine's names, so a page on another site cannot reach the UI through DNS
            rebinding.
        live_poll: seconds between two reads of a log in live mode, on a store that does not
            announce its changes (files); a PostgreSQL store is waited on instead.
        artifacts: a ``LocalArtifactStore`` directory: the artifact refs a step holds get a
            download link reading their blob from it (``None``: listed without one).
        serve_url: the base URL of a ``turnout serve`` server of the same applications
            (``http://host:port`` and its router's prefix): a waiting application's answer
            form posts to its resume route (``None``: the form gives a snippet only).
        prices: the price table the cost insights use: a ``PriceTable``, or the path of a JSON
            price file (added to the defaults; see ``prices``), ``None``: the defaults. A file
            that does not fit raises ``PriceTableError`` naming the entry. Given a file, the
            ``/prices`` page (and ``PUT /api/v1/prices``) edits it.
    """
    store = open_store(artifacts)
    table = prices if isinstance(prices, PriceTable) else load_prices(prices)
    opened = not isinstance(source, TrackingSource)
    if not isinstance(source, TrackingSource):
        source = open_source(source, table_prefix=table_prefix)
    reader = Reader(source)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if opened:  # a source the caller passed in is the caller's to close
                reader.close()

    app = FastAPI(
        title="turnout tracking UI",
        summary="Projects, applications and steps recorded by turnout's trackers.",
        version="1",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
        lifespan=lifespan,
    )
    app.state.source = reader
    app.state.templates = _templates()
    app.state.live_poll = live_poll
    app.state.artifacts = store
    app.state.serve_url = check_serve_url(serve_url)
    app.state.prices = table
    app.state.prices_path = (
        None if isinstance(prices, PriceTable) or prices is None else Path(prices)
    )
    app.include_router(search_router)  # first: its /search suffix follows an app id
    # Suffixes after an application id too (/insights, /timeline, /waiting, /test-case, ...).
    app.include_router(insights_api)
    app.include_router(insights_pages)
    app.include_router(views_router)
    app.include_router(price_edit_router)
    # Before the other routers: their application routes end in a path parameter that would
    # also match an annotations URL.
    app.include_router(annotations_router)
    app.include_router(api_router)
    # Before the pages: their application route takes the rest of any path.
    app.include_router(timeline_router)
    app.include_router(artifact_router)
    app.include_router(waiting_router)
    app.include_router(pages_router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        if request.url.path not in _NO_CSP:
            response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        return response

    def not_found(request: Request, message: str) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": message}, status_code=404)
        page: HTMLResponse = app.state.templates.TemplateResponse(
            request, "404.html", {"message": message}, status_code=404
        )
        return page

    @app.exception_handler(NotFoundError)
    async def missing(request: Request, error: NotFoundError) -> Response:
        return not_found(request, str(error))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code == 404:
            return not_found(request, f"nothing is at {request.url.path!r}")
        return JSONResponse({"detail": error.detail}, status_code=error.status_code)

    return app
