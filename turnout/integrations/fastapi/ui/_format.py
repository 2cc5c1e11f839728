"""What the templates need beyond the API's models: times and durations as text, traced values
as a tree of bounded size (every container past ``PAGE_ITEMS`` items or ``MAX_DEPTH`` levels
ends in a link to the page of its items, never a silent cut), the spans waterfall's geometry
and the fork and test-case snippets.

Nothing here produces markup: the templates escape every string these functions return.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from turnout.integrations.fastapi.ui.schemas import SpanOut, StepDetail

__all__ = [
    "MAX_DEPTH",
    "PAGE_ITEMS",
    "Bar",
    "Node",
    "fmt_duration",
    "fmt_time",
    "fork_snippet",
    "pointer_join",
    "test_case_command",
    "value_tree",
    "waterfall",
]

PAGE_ITEMS = 50
MAX_DEPTH = 8
MAX_SCALAR_CHARS = 20_000


def fmt_time(value: float | None) -> str:
    if value is None:
        return ""
    return dt.datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M:%S")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    return f"{seconds / 60:.1f} min"


def pointer_join(pointer: str, key: str) -> str:
    """``pointer`` extended by one reference token (RFC 6901 escapes ``~`` and ``/``)."""
    return f"{pointer}/{key.replace('~', '~0').replace('/', '~1')}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Node:
    """One value as the page shows it.

    ``kind`` is ``scalar`` (``text`` is its JSON), ``list`` or ``object`` (``items`` are the
    first ``PAGE_ITEMS`` as (key, node) pairs, ``total`` how many there are); ``more`` is the
    pointer of a value whose further items (or deeper levels) are on its own page.
    """

    kind: str
    text: str = ""
    items: list[tuple[str, Node]] = field(default_factory=list)
    total: int = 0
    pointer: str = ""
    more: bool = False


def _scalar(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > MAX_SCALAR_CHARS:
        return text[:MAX_SCALAR_CHARS] + f"… ({len(text):,} characters in all)"
    return text


def value_tree(value: Any, pointer: str = "", depth: int = 0) -> Node:
    """``value`` as a ``Node`` tree holding at most ``PAGE_ITEMS`` items per container and
    ``MAX_DEPTH`` levels; what is left out is reachable through ``pointer`` links."""
    if isinstance(value, dict | list):
        total = len(value)
        kind = "list" if isinstance(value, list) else "object"
        if depth >= MAX_DEPTH and total:
            return Node(kind=kind, total=total, pointer=pointer, more=True)
        pairs = (
            enumerate(value[:PAGE_ITEMS])
            if isinstance(value, list)
            else list(value.items())[:PAGE_ITEMS]
        )
        items = [
            (str(k), value_tree(v, pointer_join(pointer, str(k)), depth + 1)) for k, v in pairs
        ]
        return Node(kind=kind, items=items, total=total, pointer=pointer, more=total > PAGE_ITEMS)
    return Node(kind="scalar", text=_scalar(value), pointer=pointer)


@dataclass(frozen=True, kw_only=True, slots=True)
class Bar:
    """One span of the waterfall: percentages of the step's duration."""

    span: SpanOut
    left: float
    width: float
    label: str


def waterfall(detail: StepDetail) -> list[Bar]:
    """The spans of a step placed on the step's own time axis (not the whole run's)."""
    step = detail.step
    starts = [s.start for s in detail.spans if s.start is not None]
    ends = [s.end for s in detail.spans if s.end is not None]
    origin = step.start if step.start is not None else min(starts, default=0.0)
    finish = step.end if step.end is not None else max(ends + starts, default=origin)
    length = max(finish - origin, 1e-9)
    bars = []
    for span in detail.spans:
        start = span.start if span.start is not None else origin
        end = span.end if span.end is not None else finish
        left = min(max((start - origin) / length * 100, 0.0), 100.0)
        width = min(max((end - start) / length * 100, 0.5), 100.0 - left)
        duration = None if span.start is None or span.end is None else span.end - span.start
        bars.append(Bar(span=span, left=left, width=max(width, 0.5), label=fmt_duration(duration)))
    return bars


def fork_snippet(
    detail: StepDetail,
    storage: str | None,
    entrypoint: str | None,
    *,
    table_prefix: str | None = None,
) -> str:
    """The code that forks the application at this step into a new tracked application: with
    a ``LocalTracker`` on ``storage``, or with a ``PostgresTracker`` on the tables of
    ``table_prefix`` (the connection string left for the user: it may hold a password)."""
    if table_prefix is not None:
        imported = "from turnout.integrations.postgres_tracking import PostgresTracker"
        tracker = (
            f'PostgresTracker(\n    "postgresql://...", project={detail.project!r}, '
            f"table_prefix={table_prefix!r}\n)"
        )
    else:
        imported = "from turnout.core.tracking import LocalTracker"
        tracker = f"LocalTracker({detail.project!r}, storage_dir={storage!r})"
    return f"""from turnout import ApplicationBuilder
{imported}

tracker = {tracker}
app = (
    ApplicationBuilder()
    .with_actions(...)  # the same actions and transitions as {detail.app_id!r}
    .with_transitions(...)
    .initialize_from(
        tracker,
        resume_at_next_action=True,
        default_state={{}},
        default_entrypoint={entrypoint!r},
        fork_from_app_id={detail.app_id!r},
        fork_from_partition_key={detail.partition_key!r},
        fork_from_sequence_id={detail.step.seq},
    )
    .with_tracker(tracker)
    .build()
)
app.run()  # continues from the state after step {detail.step.seq}
"""


def test_case_command(detail: StepDetail, storage: str | None, *, table_prefix: str | None) -> str:
    """The ``turnout test-case`` command for the step, quoted for a POSIX shell: over the
    tracking directory ``storage``, or a PostgreSQL store's ``table_prefix`` tables (the
    connection string left for the user: it may hold a password); ``""`` for neither."""
    if storage is not None:
        where = ["--dir", storage]
    elif table_prefix is not None:
        where = ["--store", "postgresql://...", "--table-prefix", table_prefix]
    else:
        return ""
    words = [
        "turnout", "test-case", *where, "--project", detail.project,
        "--app-id", detail.app_id, "--sequence-id", str(detail.step.seq),
    ]  # fmt: skip
    if detail.partition_key is not None:
        words += ["--partition-key", detail.partition_key]
    return shlex.join(words)


def quote(text: str) -> str:
    """``text`` as one URL path segment (``/`` included)."""
    return urllib.parse.quote(text, safe="")
