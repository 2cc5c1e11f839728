"""The JSON resources of a served application: request and response models, and the view of
an application (``AppView``) every answer about one returns.

Request models for ``inputs`` are made per graph (``inputs_model``) from each action's
``inputs_json_schema()``, so ``/docs`` shows every input with its type; the state's JSON Schema
(``Graph.state_schema()``, or the typing system's) documents ``state``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from turnout.core.graph import Graph
from turnout.integrations.fastapi.streaming import jsonable

__all__ = [
    "AppList",
    "AppView",
    "HistoryEntry",
    "HistoryView",
    "RunAccepted",
    "StepView",
    "StopView",
    "SuspensionView",
    "app_view",
    "inputs_model",
    "inputs_schema",
    "plain",
    "request_models",
]

_JSON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list[Any],
    "object": dict[str, Any],
    "null": type(None),
}


class SuspensionView(BaseModel):
    """What a suspended application waits for: answer it with ``POST /apps/{id}/resume``."""

    channel: str
    action: str
    sequence_id: int
    answer_schema: dict[str, Any] | None = Field(
        description="the JSON Schema the answer must fit (null: any JSON value)"
    )
    metadata: dict[str, Any]


class AppView(BaseModel):
    """One application as it stands."""

    app_id: str
    partition_key: str | None
    sequence_id: int | None = Field(description="the last stored step (0: the creation record)")
    position: str | None = Field(description="the action of the last stored step")
    next_action: str | None = Field(description="what the next step runs; null: finished")
    finished: bool
    running: bool = Field(description="a request drives it now in the worker that answered")
    next_inputs: dict[str, Any] | None = Field(
        description="the JSON Schema of the inputs the next action takes"
    )
    suspension: SuspensionView | None
    state: dict[str, Any]


class StepView(AppView):
    """An application after a step or a run, with the last step's action and result."""

    action: str | None
    result: Any


class AppList(BaseModel):
    app_ids: list[str]


class RunAccepted(BaseModel):
    """A run started in the background (``wait=false``): follow it with ``GET`` and
    ``GET /apps/{id}/stream``."""

    app_id: str
    stream: str = Field(description="the path of the application's event stream")


class StopView(BaseModel):
    stopping: bool = Field(description="a run in the answering worker was asked to stop")


class HistoryEntry(BaseModel):
    sequence_id: int
    action: str | None
    status: str
    created_at: dt.datetime


class HistoryView(BaseModel):
    app_id: str
    steps: list[HistoryEntry]


def _python_type(schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if isinstance(kind, list):
        types = tuple(_JSON_TYPES.get(k, Any) for k in kind)
        return Any if Any in types else _union(types)
    if isinstance(kind, str):
        return _JSON_TYPES.get(kind, Any)
    return Any


def _union(types: tuple[Any, ...]) -> Any:
    out = types[0]
    for more in types[1:]:
        out = out | more
    return out


def inputs_model(graph: Graph, name: str = "Inputs") -> type[BaseModel]:
    """A model with every input any action of ``graph`` takes, each optional (which one is
    needed depends on the next action: a missing one answers 422 naming it)."""
    fields: dict[str, Any] = {}
    takers: dict[str, list[str]] = {}
    for act in graph.actions:
        schema = act.inputs_json_schema()
        for key, prop in (schema.get("properties") or {}).items():
            takers.setdefault(key, []).append(str(act.name))
            if key not in fields:
                fields[key] = (_python_type(prop), prop)
    definitions: dict[str, Any] = {}
    for key, (kind, prop) in fields.items():
        text = f"taken by {', '.join(takers[key])}"
        if prop.get("description"):
            text = f"{prop['description']} ({text})"
        definitions[key] = (kind | None, Field(default=None, description=text))
    return create_model(name, __config__=ConfigDict(extra="forbid"), **definitions)


def request_models(graph: Graph, state_schema: dict[str, Any]) -> dict[str, type[BaseModel]]:
    """The request bodies of a graph's routes: ``create``, ``run``, ``step``, ``resume``,
    ``fork``."""
    inputs = inputs_model(graph)
    state_field: Any = Field(
        default_factory=dict,
        description="initial state values (the factory's with_state() fills the rest)",
        json_schema_extra={"properties": state_schema.get("properties", {})},
    )
    halt: dict[str, Any] = {
        "halt_before": (list[str] | None, Field(default=None, description="action names")),
        "halt_after": (list[str] | None, Field(default=None, description="action names")),
    }
    strict = ConfigDict(extra="forbid")
    create = create_model(
        "CreateApp",
        __config__=strict,
        app_id=(str | None, Field(default=None, description="default: a new UUID")),
        state=(dict[str, Any], state_field),
    )
    policy: Any = (str | None, Field(default=None, description="reject, enqueue or interrupt"))
    optional_inputs: Any = (inputs | None, None)
    wait: Any = (bool, Field(default=True, description="false: answer 202, run in the background"))
    run = create_model(
        "RunRequest",
        __config__=strict,
        inputs=optional_inputs,
        wait=wait,
        on_busy=policy,
        **halt,
    )
    step = create_model("StepRequest", __config__=strict, inputs=optional_inputs, on_busy=policy)
    resume = create_model(
        "ResumeRequest",
        __config__=strict,
        channel=(str, Field(description="the channel the application waits on")),
        value=(Any, Field(description="the answer, checked against the suspension's schema")),
        on_busy=policy,
        **halt,
    )
    fork = create_model(
        "ForkRequest",
        __config__=strict,
        sequence_id=(int | None, Field(default=None, description="default: the latest step")),
        app_id=(str | None, Field(default=None, description="the fork's id; default: a UUID")),
    )
    return {"create": create, "run": run, "step": step, "resume": resume, "fork": fork}


_LEAVES = frozenset({str, int, float, bool, type(None)})
_SCHEMAS: dict[int, tuple[Any, dict[str, Any]]] = {}  # id(action) -> (action, its inputs schema)


def plain(value: Any) -> Any:
    """``jsonable(value)``, with JSON's own types (and flat lists and string-keyed dicts of
    them) copied through without walking each leaf through FastAPI's encoder."""
    kind = type(value)
    if kind in _LEAVES:
        return value
    if kind is list or kind is tuple:
        if all(type(item) in _LEAVES for item in value):
            return list(value)
    elif kind is dict and all(
        type(key) is str and type(item) in _LEAVES for key, item in value.items()
    ):
        return dict(value)
    return jsonable(value)


def inputs_schema(act: Any) -> dict[str, Any]:
    """``act.inputs_json_schema()``, computed once per action object (it reads the action's
    signature and type hints: the slowest part of a view otherwise). Shared: do not mutate."""
    hit = _SCHEMAS.get(id(act))
    if hit is not None and hit[0] is act:
        return hit[1]
    schema: dict[str, Any] = act.inputs_json_schema()
    if len(_SCHEMAS) >= 4096:  # actions made per build: bound what they pin
        _SCHEMAS.clear()
    _SCHEMAS[id(act)] = (act, schema)
    return schema


def app_view(app: Any, *, running: bool) -> dict[str, Any]:
    """``AppView`` data of a built application."""
    nxt = app.get_next_action()
    pending = app.suspension
    suspension = None
    if pending is not None:
        suspension = {
            "channel": pending.channel,
            "action": pending.action,
            "sequence_id": pending.sequence_id,
            "answer_schema": pending.schema,
            "metadata": jsonable(pending.metadata),
        }
    return {
        "app_id": app.uid,
        "partition_key": app.partition_key,
        "sequence_id": app.sequence_id,
        "position": app.prior_action,
        "next_action": None if nxt is None else nxt.name,
        "finished": nxt is None,
        "running": running,
        "next_inputs": None if nxt is None else inputs_schema(nxt),
        "suspension": suspension,
        "state": {str(key): plain(value) for key, value in app.state.get_all().items()},
    }
