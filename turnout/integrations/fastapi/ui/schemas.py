"""The JSON API's answers, as pydantic models: they document the API in OpenAPI (``/docs``) and
are what the HTML pages render too, so a page never shows what the API would not give.

Traced values (states, inputs, results, attributes) stay in their stored JSON form (serde's
tagged objects included): nothing is decoded into Python objects, so nothing in a trace can
make the UI import or run code.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AppDetail",
    "AppRow",
    "AppsPage",
    "Change",
    "GraphAction",
    "GraphOut",
    "GraphTransition",
    "LinkOut",
    "ProjectOut",
    "SpanOut",
    "StepDetail",
    "StepRow",
    "StepsPage",
    "ValueItem",
    "ValuePage",
]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)


class ProjectOut(_Model):
    name: str
    app_count: int = Field(description="applications with a log in the project")
    last_activity: float | None = Field(description="POSIX time of the newest log write")


class LinkOut(_Model):
    """A parent or child application, and the step of the parent the link starts at."""

    app_id: str
    partition_key: str | None
    sequence_id: int | None
    kind: str = Field(description='"fork" or "spawn"')


class AppRow(_Model):
    project: str
    app_id: str
    partition_key: str | None
    status: str = Field(description='"running", "completed" or "failed"')
    step_count: int
    error_count: int = Field(description="failed or cancelled steps")
    first_time: float | None
    last_time: float | None
    parent: LinkOut | None
    children: list[LinkOut]
    tags: dict[str, str]
    bad_lines: int = Field(description="malformed log lines skipped while reading")


class AppsPage(_Model):
    project: str
    total: int = Field(description="applications in the project (readable or not)")
    matched: int = Field(description="applications that pass the filters")
    pending: int = Field(
        0,
        description="applications not summarised yet (a tracking directory summarises changed "
        "logs for a bounded time per request): missing from the page until a later one",
    )
    offset: int
    limit: int
    apps: list[AppRow] = Field(description="most recently active first")
    unreadable: dict[str, str] = Field(description="app id -> why its log could not be read")
    partition_keys: list[str] = Field(description="every partition key of the project")
    tags: list[str] = Field(description='every tag of the project, as "key=value"')


class GraphAction(_Model):
    name: str
    reads: list[str] = []
    writes: list[str] = []
    inputs: list[str] = []
    tags: list[str] = []
    source: str | None = None


class GraphTransition(_Model):
    source: str = Field(alias="from")
    target: str = Field(alias="to")
    condition: str = "default"
    on_exception: bool = False


class GraphOut(_Model):
    entrypoint: str | None = None
    actions: list[GraphAction] = []
    transitions: list[GraphTransition] = []


class AppDetail(_Model):
    summary: AppRow
    graph: GraphOut
    run_counts: dict[str, int] = Field(description="steps each action ran (retries count once)")
    token_totals: dict[str, float] = Field(description="gen_ai.usage.* attributes, summed")
    first_seq: int | None
    last_seq: int | None
    partial: bool = Field(
        False,
        description="a long log read from its tail only: the steps before first_seq are not "
        "read, and counts cover the tail (read them all from the page's 'Read all steps')",
    )


class StepRow(_Model):
    seq: int
    action: str
    status: str = Field(description='"running", "retrying", "completed", "failed", "cancelled"')
    attempts: int
    start: float | None
    end: float | None
    duration: float | None = Field(description="seconds, over every attempt")
    time_to_first_item: float | None = Field(description="streaming steps: seconds to item 1")
    stream_items: int | None
    error_summary: str | None = Field(description="the traceback's last line")
    children: list[LinkOut] = Field(description="applications forked or spawned at this step")


class StepsPage(_Model):
    app_id: str
    total: int = Field(description="steps the application has")
    order: Literal["newest-first", "oldest-first"]
    steps: list[StepRow]
    older: int | None = Field(description="pass as ?before= for the next (older) page")
    newer: int | None = Field(description="pass as ?after= for the steps after this page")


class Change(_Model):
    """One operation of the step's recorded delta."""

    op: str = Field(description="set, append, extend, increment, delete, ...")
    key: str
    value: Any = None
    previous: Any = Field(
        default=None, description="the key's value before the step, for set/delete"
    )
    had_previous: bool = False


class SpanOut(_Model):
    span_id: str
    parent: str | None
    name: str
    start: float | None
    end: float | None
    error: str | None
    depth: int
    attributes: dict[str, Any]


class StepDetail(_Model):
    project: str
    app_id: str
    partition_key: str | None
    step: StepRow
    inputs: dict[str, Any]
    result: Any
    error: str | None = Field(description="the full traceback of the last attempt")
    attempt_errors: list[str] = Field(description="tracebacks of the attempts that were retried")
    changes: list[Change] = Field(description="the delta the step recorded, in order")
    state_after: dict[str, Any] | None
    state_before: dict[str, Any] | None
    state_error: str | None = Field(description="why the states could not be rebuilt")
    attributes: dict[str, Any]
    spans: list[SpanOut]
    token_totals: dict[str, float]


class ValueItem(_Model):
    key: str = Field(description="the index (lists) or key (objects) of the item")
    value: Any


class ValuePage(_Model):
    """A page of the items of one value inside a step's state (a list or an object)."""

    pointer: str = Field(description="JSON Pointer (RFC 6901) into the state")
    kind: Literal["list", "object", "scalar"]
    total: int
    offset: int
    limit: int
    items: list[ValueItem]
    value: Any = Field(default=None, description="the value itself, when it is a scalar")
