"""Artifacts in the web UI: each ``ArtifactRef`` in a step's inputs, result, delta or state is
listed in the step's panel (where it sits, name, media type, size, short digest) with a
download link, served from the ``LocalArtifactStore`` directory given to ``create_ui_app
(artifacts=...)`` (``turnout ui --artifacts DIR``).

A download names the step and the ref's place in the list, never a digest: only refs that
the traced step holds can be fetched, and the file's name and type come from the ref. The
store checks the bytes against the ref's digest and size before one is sent (a blob that is
missing or damaged gets a page that says so); the answer is an attachment under a safe file
name, so the browser never renders it as a page of this site.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from turnout.core.artifacts import LocalArtifactStore
from turnout.core.errors import ArtifactIntegrityError, ArtifactNotFoundError, TurnoutError
from turnout.integrations._artifact_refs import FoundRef, download_mime, download_name, find_refs
from turnout.integrations.fastapi.ui import queries
from turnout.integrations.fastapi.ui.schemas import StepDetail

__all__ = [
    "MAX_LISTED",
    "FoundRef",
    "artifact_router",
    "download_mime",
    "download_name",
    "find_refs",
    "open_store",
    "step_refs",
]

MAX_LISTED = 50  # refs listed under one step
_CHUNK = 64 * 1024
_APP = "/projects/{project}/apps/{app_id:path}"

artifact_router = APIRouter(include_in_schema=False)


def open_store(root: str | Path | None) -> LocalArtifactStore | None:
    """The store over ``root`` (``None``: no store); a missing directory is an error, as a
    typo must not create an empty store."""
    if root is None:
        return None
    path = Path(root)
    if not path.is_dir():
        raise ValueError(
            f"artifacts={str(root)!r} is not a directory: pass the directory of the "
            "LocalArtifactStore the application wrote to (turnout ui --artifacts DIR)"
        )
    return LocalArtifactStore(path.resolve())


def step_refs(detail: StepDetail, *, limit: int = MAX_LISTED) -> list[FoundRef]:
    """The refs of a step: its inputs, result, delta and the state after it (a ref the delta
    wrote is listed once, under the delta); numbered by position, which downloads use."""
    found: list[FoundRef] = []
    seen: set[str] = set()
    documents = [
        ("inputs", detail.inputs),
        ("result", detail.result),
        *((f"changes.{c.key}", c.value) for c in detail.changes),
        ("state", detail.state_after),
    ]
    for root, value in documents:
        for item in find_refs(value, root=root, limit=limit - len(found)):
            key = item.ref.digest if item.ref is not None else item.path
            if item.ref is not None and key in seen:
                continue
            seen.add(key)
            found.append(item)
        if len(found) >= limit:
            break
    return found


def _problem(request: Request, message: str, status: int) -> HTMLResponse:
    page: HTMLResponse = request.app.state.templates.TemplateResponse(
        request, "404.html", {"message": message}, status_code=status
    )
    return page


def _chunks(source: Any) -> Iterator[bytes]:
    with source:
        while chunk := source.read(_CHUNK):
            yield chunk


@artifact_router.get(_APP + "/steps/{seq}/artifacts/{number}")
def download(request: Request, project: str, app_id: str, seq: int, number: int) -> Response:
    """The blob of the step's ``number``-th ref, checked against its digest."""
    store: LocalArtifactStore | None = request.app.state.artifacts
    detail = queries.step_detail(request.app.state.source, project, app_id, seq)
    refs = step_refs(detail)
    if not 0 <= number < len(refs):
        raise queries.NotFoundError(
            f"step {seq} of {app_id!r} has {len(refs)} artifact refs, not a number {number}: "
            "download one from the step's Artifacts list"
        )
    ref = refs[number].ref
    if ref is None:
        return _problem(request, f"this is not a valid artifact ref: {refs[number].problem}", 404)
    if store is None:
        return _problem(
            request,
            "no artifact store is configured, so blobs cannot be downloaded: start the UI "
            "with turnout ui --artifacts DIR (the application's LocalArtifactStore "
            "directory).",
            404,
        )
    try:
        source = store.open(ref)  # checks the digest and size first (streamed)
    except ArtifactNotFoundError:
        return _problem(
            request,
            f"the artifact store has no blob {ref.digest[:12]}… (deleted, or written to "
            "another store), so it cannot be downloaded.",
            404,
        )
    except ArtifactIntegrityError:
        return _problem(
            request,
            f"the blob {ref.digest[:12]}… in the artifact store is damaged (its bytes do not "
            "match the ref's digest), so it is not sent.",
            409,
        )
    except TurnoutError as error:
        return _problem(request, f"the artifact store cannot be read: {error}", 500)
    name = download_name(ref)
    disposition = f"attachment; filename=\"{name}\"; filename*=UTF-8''{urllib.parse.quote(name)}"
    return StreamingResponse(
        _chunks(source),
        media_type=download_mime(ref),
        headers={
            "Content-Disposition": disposition,
            "Content-Length": str(ref.size_bytes),
            "Cache-Control": "private, no-store",
        },
    )
