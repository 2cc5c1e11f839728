"""Editing the price table from the UI: ``PUT /api/v1/prices`` (a JSON price table) and the
``/prices`` page's form (the same document as text, posted by htmx).

Edits go to the user's price file, the one the UI was started with (``turnout ui
--prices FILE``, ``create_ui_app(prices=PATH)``): the table is checked like the file is at
start (``prices.parse_prices``), then written in place of it (a temporary file renamed over
it), and used from the next request. Without a file there is nowhere to keep an edit, so it is
refused, naming the option. Writes are protected as the annotations' are
(``annotations.check_write``): a header a cross-site form cannot send, and no foreign
``Origin`` or ``Sec-Fetch-Site``.
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from turnout.integrations.fastapi.ui.annotations import check_write
from turnout.integrations.fastapi.ui.prices import (
    MAX_FILE_BYTES,
    PriceTable,
    PriceTableError,
    parse_prices,
)

__all__ = ["price_edit_router", "save_prices"]

price_edit_router = APIRouter()
_NO_FILE = (
    "the UI was started without a price file, so an edit has nowhere to be kept: start it "
    "with turnout ui --prices FILE (a JSON price table, e.g. "
    '{"models": {"my-model": {"input": 3, "output": 12}}}), then edit it here'
)
_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["models"],
                    "properties": {
                        "as_of": {"type": "string"},
                        "source": {"type": "string"},
                        "replace_defaults": {"type": "boolean"},
                        "models": {
                            "type": "object",
                            "additionalProperties": {
                                "type": "object",
                                "required": ["input", "output"],
                                "properties": {
                                    "input": {"type": "number", "minimum": 0},
                                    "output": {"type": "number", "minimum": 0},
                                },
                            },
                        },
                    },
                }
            }
        },
    }
}


def save_prices(path: Path, document: Any) -> PriceTable:
    """Check ``document`` as a price table and write it to ``path`` (atomically); the table.

    Raises:
        PriceTableError: the document does not fit; nothing is written.
    """
    table = parse_prices(document, where=str(path))
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".prices-", suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return table


def _path(request: Request) -> Path:
    path: Path | None = request.app.state.prices_path
    if path is None:
        raise HTTPException(409, _NO_FILE)
    return path


async def _read(request: Request, limit: int = MAX_FILE_BYTES) -> bytes:
    raw = await request.body()
    if len(raw) > limit:
        raise HTTPException(413, f"the body is {len(raw):,} bytes: at most {limit:,}")
    return raw


@price_edit_router.put(
    "/api/v1/prices",
    tags=["insights"],
    summary="Replace the user's price table (kept in the price file the UI was started with)",
    openapi_extra=_BODY,
    responses={
        409: {"description": "no price file was given at start"},
        422: {"description": "the table does not fit (the reason names the entry)"},
    },
)
async def put_prices(request: Request) -> Response:
    check_write(request)
    path = _path(request)
    try:
        document = json.loads(await _read(request))
    except (ValueError, RecursionError) as error:
        raise HTTPException(400, f"the body is not JSON: {error}") from None
    try:
        request.app.state.prices = save_prices(path, document)
    except PriceTableError as error:
        return JSONResponse({"detail": str(error)}, status_code=422)
    return JSONResponse({"saved": str(path), "models": len(request.app.state.prices.models)})


@price_edit_router.post("/prices", include_in_schema=False, response_class=HTMLResponse)
async def post_prices_form(request: Request) -> HTMLResponse:
    """The page's form: the table as text; the page comes back (with the reason, if refused)."""
    check_write(request)
    path = _path(request)
    raw = (await _read(request, 4 * MAX_FILE_BYTES)).decode("utf-8", "replace")
    text = urllib.parse.parse_qs(raw).get("table", [""])[-1]
    problem = None
    try:
        request.app.state.prices = save_prices(path, json.loads(text))
    except (ValueError, RecursionError) as error:  # PriceTableError is a ValueError
        problem = str(error) if isinstance(error, PriceTableError) else f"not JSON: {error}"
    return prices_page(request, text=text if problem else None, problem=problem, saved=not problem)


def prices_page(
    request: Request, *, text: str | None = None, problem: str | None = None, saved: bool = False
) -> HTMLResponse:
    """The price table's page; with a price file, a form holding its text (or ``text``)."""
    from turnout.integrations.fastapi.ui.insights_routes import fmt_cost, fmt_tokens

    path: Path | None = request.app.state.prices_path
    if text is None and path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            text, problem = "", f"the price file cannot be read: {error}"
    response: HTMLResponse = request.app.state.templates.TemplateResponse(
        request,
        "prices.html",
        {
            "prices": request.app.state.prices, "editable": path is not None, "text": text,
            "problem": problem, "saved": saved, "fmt_cost": fmt_cost, "fmt_tokens": fmt_tokens,
        },
    )  # fmt: skip
    return response
