"""Text search over tracked steps: within one application, and across a project's applications.

A step matches when the text occurs, case-insensitively and as plain text (never a pattern, so
no input can make the search slow), in what it recorded: its inputs, its result, its error (and
every failed attempt's), or the state it wrote (the delta, ``changes``). The state *after* a step
is not searched: it holds every earlier step's writes too, so every later step would match.

Across a project the search is bounded: it stops after ``limit`` matching steps or ``budget``
seconds, and says which (``SearchResults.stopped``). The stores narrow the candidates first:

- PostgreSQL: one SQL query over the records' stored lines (``payload``), newest first
  (``PostgresSource.find_text``), under a statement timeout;
- files: each log's bytes are scanned in chunks for the text as JSON writes it, newest
  applications first, and only a log holding it is parsed.

Either way the candidates are confirmed on the parsed steps, so a match in a key or an action's
name that no step recorded is not reported.
"""

from __future__ import annotations

import codecs
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from turnout.core.tracklog import app_dir_name
from turnout.core.trackview import LOG_NAME
from turnout.integrations.fastapi.ui import _source as src
from turnout.integrations.fastapi.ui import queries

__all__ = [
    "MAX_QUERY",
    "SearchHit",
    "SearchResults",
    "search_app",
    "search_project",
]

MAX_QUERY = 200  # characters of a search text
CONTEXT = 40  # characters shown on each side of a match
_CHUNK = 1 << 20  # bytes of a log read at once by the file scan
_FIELDS = ("inputs", "result", "error", "attempt_errors", "changes")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class SearchHit(_Model):
    app_id: str
    seq: int
    action: str
    status: str
    field: Literal["inputs", "result", "error", "attempt_errors", "changes"] = Field(
        description="where the text was found (changes: the state the step wrote)"
    )
    before: str = Field(description="the text before the match (at most 40 characters)")
    match: str = Field(description="the matched text, as recorded")
    after: str = Field(description="the text after the match (at most 40 characters)")


class SearchResults(_Model):
    project: str
    query: str
    hits: list[SearchHit]
    apps_searched: int = Field(description="applications searched before the search stopped")
    apps_total: int = Field(description="applications in the project (or 1 for one app)")
    stopped: Literal["limit", "time"] | None = Field(
        default=None, description="why the search stopped early (None: it searched everything)"
    )
    partial: bool = Field(
        default=False, description="a long log was searched in its tail only (read it all first)"
    )


def check_query(text: str) -> str:
    """``text`` stripped; ``ValueError`` naming the fix when it is empty or too long."""
    text = text.strip()
    if not text:
        raise ValueError("the search text is empty: pass the text to find as ?q=...")
    if len(text) > MAX_QUERY:
        raise ValueError(
            f"the search text has {len(text)} characters, more than {MAX_QUERY}: search for "
            "a shorter part of it"
        )
    return text


def _texts(value: Any) -> Iterator[str]:
    """Every string of ``value`` (keys too), then the whole of it as compact JSON (the form a
    log line holds it in, for texts spanning keys, numbers and structure)."""
    if isinstance(value, str):
        yield value
        return
    stack = [value]
    while stack:  # parsed JSON: its nesting is already bounded by the parser
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            for key, child in item.items():
                yield str(key)
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(reversed(item))
    yield json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _find(haystack: str, needle: str) -> tuple[str, str, str] | None:
    """The context around the first case-insensitive occurrence of ``needle`` (lowered)."""
    lowered = haystack.lower()
    at = lowered.find(needle)
    if at < 0:
        return None
    # A few characters change length when lowered (e.g. "İ"): cut the lowered text then.
    shown = haystack if len(lowered) == len(haystack) else lowered
    end = at + len(needle)
    before = shown[max(0, at - CONTEXT) : at]
    after = shown[end : end + CONTEXT]
    return (
        ("…" if at > CONTEXT else "") + before,
        shown[at:end],
        after + ("…" if end + CONTEXT < len(shown) else ""),
    )


def _hit(app_id: str, step: src.Step, needle: str) -> SearchHit | None:
    values: dict[str, Any] = {
        "inputs": step.inputs or None,
        "result": step.result,
        "error": step.error,
        "attempt_errors": step.attempt_errors or None,
        "changes": step.changes or None,
    }
    for name in _FIELDS:
        value = values[name]
        if value is None:
            continue
        found = next((f for t in _texts(value) if (f := _find(t, needle)) is not None), None)
        if found is not None:
            before, match, after = found
            return SearchHit(
                app_id=app_id,
                seq=step.seq,
                action=step.action,
                status=step.status,
                field=name,  # type: ignore[arg-type]  # one of _FIELDS
                before=before,
                match=match,
                after=after,
            )
    return None


def _search_log(log: src.AppLog, app_id: str, needle: str, limit: int) -> list[SearchHit]:
    hits = []
    for step in reversed(log.step_list()):  # newest first
        hit = _hit(app_id, step, needle)
        if hit is not None:
            hits.append(hit)
            if len(hits) >= limit:
                break
    return hits


def search_app(
    source: src.Reader, project: str, app_id: str, text: str, *, limit: int = 100
) -> SearchResults:
    """The steps of one application holding ``text``, newest first, at most ``limit``."""
    text = check_query(text)
    log = queries.open_app(source, project, app_id)
    hits = _search_log(log, app_id, text.lower(), limit)
    return SearchResults(
        project=project,
        query=text,
        hits=hits,
        apps_searched=1,
        apps_total=1,
        stopped="limit" if len(hits) >= limit else None,
        partial=log.partial,
    )


def _needles(text: str) -> list[str]:
    """``text`` (lowered) as a log line can hold it: JSON-escaped, raw or as ASCII escapes."""
    return sorted({json.dumps(text, ensure_ascii=flag)[1:-1].lower() for flag in (False, True)})


def file_holds(path: Path, needles: list[str], deadline: float) -> bool | None:
    """Whether the UTF-8 file holds one of ``needles`` (lowered) in any case; ``None`` when
    the deadline passed first. Read in chunks that overlap by a needle's length."""
    overlap = max(len(n) for n in needles) - 1
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    tail = ""
    try:
        with path.open("rb") as file:
            while chunk := file.read(_CHUNK):
                window = tail + decoder.decode(chunk).lower()
                if any(n in window for n in needles):
                    return True
                tail = window[-overlap:] if overlap else ""
                if time.monotonic() > deadline:
                    return None
    except OSError:
        return False
    return False


def _candidates_from_files(
    root: str, project: str, apps: list[str], needle: str, deadline: float
) -> tuple[list[str], int]:
    """The apps (in the order given) whose logs hold ``needle``, and how many logs were
    scanned before the deadline."""
    needles = _needles(needle)
    found: list[str] = []
    for scanned, app_id in enumerate(apps):
        path = Path(root) / project / app_dir_name(app_id) / LOG_NAME
        holds = file_holds(path, needles, deadline)
        if holds is None:
            return found, scanned
        if holds:
            found.append(app_id)
    return found, len(apps)


def search_project(
    source: src.Reader, project: str, text: str, *, limit: int = 100, budget: float = 2.0
) -> SearchResults:
    """The steps of ``project``'s applications holding ``text``, newest applications first;
    stops after ``limit`` hits or ``budget`` seconds (``SearchResults.stopped`` says which)."""
    text = check_query(text)
    needle = text.lower()
    deadline = time.monotonic() + budget
    total = queries.apps_page(source, project, limit=1).total  # NotFoundError if none
    finder = getattr(source.source, "find_text", None)
    if callable(finder):
        # The store answers in SQL: every application is searched unless it timed out.
        candidates, timed_out = finder(project, needle, limit=limit + 50, timeout=budget)
        scanned = 0 if timed_out else total
    elif source.storage_dir is not None:
        ordered = source.app_page(project, src.AppQuery(limit=None)).apps
        names = [a.app_id for a in ordered]
        candidates, scanned = _candidates_from_files(
            source.storage_dir, project, names, needle, deadline
        )
        timed_out = scanned < len(names)
    else:
        raise TypeError(f"{source.description} cannot be searched (no files, no find_text)")
    hits: list[SearchHit] = []
    partial = False
    stopped: Literal["limit", "time"] | None = "time" if timed_out else None
    for app_id in candidates:
        if len(hits) >= limit:
            stopped = "limit"
            break
        if time.monotonic() > deadline:
            stopped = "time"
            break
        log = source.app(project, app_id)
        if log is None:
            continue
        partial = partial or log.partial
        hits.extend(_search_log(log, app_id, needle, limit - len(hits)))
    if stopped is None and len(hits) >= limit:
        stopped = "limit"
    return SearchResults(
        project=project,
        query=text,
        hits=hits,
        apps_searched=scanned,
        apps_total=total,
        stopped=stopped,
        partial=partial,
    )
