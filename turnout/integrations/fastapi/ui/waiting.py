"""Waiting applications: an application whose last step suspended on a channel
(``context.suspend(channel, schema=..., metadata=...)``) shows what it waits for and a form for
the answer, built from the channel's JSON Schema (``_answer_form``).

The UI reads traces only: a submitted form is checked against the schema here
(``turnout.core.json_schema``) and gives the answer as a ready-to-run ``app.resume(channel,
value)`` snippet. When the UI was given ``serve_url`` (``turnout ui --serve-url URL``,
a ``turnout serve`` server of the same applications), the checked answer is also posted to
that server's ``POST {serve_url}/apps/{app_id}/resume`` route, and its reply is shown. A form
posted from another site is refused (``Origin``/``Sec-Fetch-Site``), so a page elsewhere cannot
answer through the UI.
"""

from __future__ import annotations

import json
import pprint
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from turnout.core.errors import AnswerValidationError, TurnoutError
from turnout.core.json_schema import check_schema, validate
from turnout.integrations.fastapi.ui import _source as src
from turnout.integrations.fastapi.ui import queries
from turnout.integrations.fastapi.ui._answer_form import Field, FormError, build_fields, read_answer

__all__ = ["Waiting", "check_serve_url", "resume_snippet", "waiting_of", "waiting_router"]

waiting_router = APIRouter(include_in_schema=False)
_APP = "/projects/{project}/apps/{app_id:path}"
POST_TIMEOUT_S = 30.0
MAX_REPLY = 20_000


@dataclass(frozen=True, kw_only=True, slots=True)
class Waiting:
    """What a suspended application waits for (from its last step's tracked suspension)."""

    seq: int
    action: str
    channel: str
    schema: Any
    metadata: Any
    schema_problem: str | None  # the stored schema is not one the checker accepts


def waiting_of(log: src.AppLog) -> Waiting | None:
    """The suspension the application waits on, or ``None`` (its last step did not suspend)."""
    steps = log.step_list()
    if not steps or steps[-1].status != "suspended":
        return None
    last = steps[-1]
    record = last.suspension or {}
    channel = record.get("channel")
    if not isinstance(channel, str):
        return None
    schema = record.get("schema")
    problem = None
    if schema is not None:
        try:
            check_schema(schema)
        except (TurnoutError, ValueError, TypeError, RecursionError) as error:
            problem = str(error)
    return Waiting(
        seq=last.seq,
        action=last.action,
        channel=channel,
        schema=schema,
        metadata=record.get("metadata"),
        schema_problem=problem,
    )


def check_serve_url(url: str | None) -> str | None:
    """``url`` without a trailing ``/``; a clear error unless it is an http(s) base URL."""
    if url is None:
        return None
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(
            f"serve_url={url!r} is not the base URL of a turnout serve server: pass "
            "http(s)://host:port followed by the router's prefix, if any "
            "(e.g. http://127.0.0.1:8000)"
        )
    return url.rstrip("/")


def resume_snippet(channel: str, value: Any) -> str:
    """The Python that answers the suspension on a built ``app`` (the same application)."""
    # A JSON value's repr is a Python literal of it (dicts, lists, str, int, float, bool, None).
    literal = pprint.pformat(value, width=88, sort_dicts=False)
    return (
        "# app: the application, built again over its persister (initialize_from)\n"
        f"value = {literal}\n"
        f"action, result, state = app.resume({channel!r}, value)\n"
    )


def _cross_site(request: Request) -> bool:
    """The form was posted by a page of another site. Browsers say so in ``Sec-Fetch-Site``;
    without it, ``Origin`` must name this host (the UI's ``Referrer-Policy: no-referrer``
    makes a browser send ``Origin: null`` for its own forms, so that alone cannot tell)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return False  # not a browser's cross-site form (those carry an Origin)
    return urllib.parse.urlsplit(origin).netloc != request.headers.get("host")


def _post(url: str, channel: str, value: Any) -> tuple[int | None, str]:
    """POST the answer; (HTTP status or ``None`` when unreachable, the reply's text)."""
    body = json.dumps({"channel": channel, "value": value}).encode()
    post = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(post, timeout=POST_TIMEOUT_S) as reply:
            return reply.status, reply.read(MAX_REPLY).decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read(MAX_REPLY).decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as error:
        return None, f"{type(error).__name__}: {getattr(error, 'reason', error)}"


def _waiting(request: Request, project: str, app_id: str) -> Waiting:
    log = queries.open_app(request.app.state.source, project, app_id)
    waiting = waiting_of(log)
    if waiting is None:
        raise queries.NotFoundError(
            f"application {app_id!r} is not waiting for an answer (its last step did not "
            "suspend): open its page to see its steps"
        )
    return waiting


def _page(
    request: Request, project: str, app_id: str, waiting: Waiting, **extra: Any
) -> HTMLResponse:
    """The page for ``waiting`` (as read before an answer was sent: after it, the
    application may wait no more)."""
    spec: Field = build_fields(None if waiting.schema_problem else waiting.schema)
    context = {
        "project": project,
        "app_id": app_id,
        "waiting": waiting,
        "spec": spec,
        "form": {},
        "error": None,
        "answer": None,
        "snippet": "",
        "serve_url": request.app.state.serve_url,
        "sent": None,
        **extra,
    }
    status = 422 if context["error"] else 200
    response: HTMLResponse = request.app.state.templates.TemplateResponse(
        request, "waiting.html", context, status_code=status
    )
    return response


@waiting_router.get(_APP + "/waiting", response_class=HTMLResponse)
def waiting_page(request: Request, project: str, app_id: str) -> HTMLResponse:
    return _page(request, project, app_id, _waiting(request, project, app_id))


@waiting_router.post(_APP + "/waiting", response_class=HTMLResponse)
async def answer(request: Request, project: str, app_id: str) -> HTMLResponse:
    """Check the submitted answer; give its snippet and, with ``send`` and a ``serve_url``,
    post it to the server."""
    if _cross_site(request):
        return HTMLResponse("refused: the answer form was posted from another site", 403)
    form = {k: v for k, v in (await request.form()).multi_items() if isinstance(v, str)}
    # Reading the log and posting the answer block: off the event loop.
    return await run_in_threadpool(_answer, request, project, app_id, form)


def _answer(request: Request, project: str, app_id: str, form: dict[str, str]) -> HTMLResponse:
    waiting = _waiting(request, project, app_id)
    spec = build_fields(None if waiting.schema_problem else waiting.schema)
    try:
        value = read_answer(spec, form)
        if waiting.schema is not None and waiting.schema_problem is None:
            validate(value, waiting.schema)
    except FormError as error:
        return _page(
            request, project, app_id, waiting, form=form, error=f"{error.path}: {error.message}"
        )
    except AnswerValidationError as error:
        return _page(request, project, app_id, waiting, form=form, error=str(error))
    sent = None
    url = request.app.state.serve_url
    if url is not None and form.get("send") == "1":
        target = f"{url}/apps/{urllib.parse.quote(app_id, safe='')}/resume"
        status, text = _post(target, waiting.channel, value)
        sent = {"url": target, "status": status, "reply": text}
    return _page(
        request,
        project,
        app_id,
        waiting,
        form=form,
        answer=json.dumps(value, indent=2, ensure_ascii=False),
        snippet=resume_snippet(waiting.channel, value),
        sent=sent,
    )
