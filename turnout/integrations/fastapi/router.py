"""``serve()``: a FastAPI ``APIRouter`` driving applications that live in a persister.

An application lives in its persister: any worker on any host can take the next request, and
the persister's conditional save is the only lock across them (a lost race answers ``409`` with
the current sequence id). A worker keeps the applications it built (``cache.Applications``) and
uses one again only after checking the stored sequence id is still the one it is at. Within a
worker, the requests driving one application take turns (``policies.Runs``).
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations, some of
# which are models made per graph inside serve().

import asyncio
import inspect
import uuid
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse

from turnout.core.errors import PersistenceError, UnsupportedOperationError
from turnout.core.persistence import ParentPointer
from turnout.core.state import State
from turnout.integrations.fastapi.builder import Factory, ServedBuilder
from turnout.integrations.fastapi.cache import Applications, filled, not_found
from turnout.integrations.fastapi.errors import (
    ActionFailed,
    ErrorBody,
    ServeError,
    error_response,
)
from turnout.integrations.fastapi.policies import OnBusy, Runs
from turnout.integrations.fastapi.relay import LocalRelay, Relay
from turnout.integrations.fastapi.resources import (
    AppList,
    AppView,
    HistoryView,
    RunAccepted,
    StepView,
    StopView,
    app_view,
    plain,
    request_models,
)
from turnout.integrations.fastapi.route import FastPath, limited_route
from turnout.integrations.fastapi.streaming import EventHook, jsonable, sse_events

__all__ = ["serve"]

PartitionKey = str | Callable[..., Any] | None
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "no such application (in this partition)"},
    409: {"model": ErrorBody, "description": "busy, or another worker advanced it first"},
    413: {"model": ErrorBody, "description": "the body is over max_body_bytes"},
    424: {"model": ActionFailed, "description": "an action raised; the app stays usable"},
}


def serve(
    factory: Factory,
    *,
    persister: Any,
    prefix: str = "",
    dependencies: Sequence[Any] | None = None,
    partition_key: PartitionKey = None,
    on_busy: OnBusy | str = OnBusy.REJECT,
    max_body_bytes: int = 1_000_000,
    tags: Sequence[str] = ("turnout",),
    cache_size: int = 1024,
    relay: Relay | None = None,
) -> APIRouter:
    """An ``APIRouter`` serving the applications ``factory`` describes, stored in ``persister``.

    Args:
        factory: fills in the ``ServedBuilder`` it gets (actions, transitions, entrypoint, the
            state a new application starts with, hooks) and returns it; called whenever an
            application is built (not for one the worker kept).
        persister: where the applications live: an async turnout persister
            (``AsyncSQLitePersister``, ``AsyncPostgreSQLPersister`` over a pool) for a server.
        prefix: the routes' path prefix.
        dependencies: FastAPI dependencies run for every route (``[Depends(auth)]``).
        partition_key: the partition of every app: a string, or a FastAPI dependency (a
            callable, which may itself depend on the authenticated user) returning it. An app
            of another partition answers 404.
        on_busy: what a request driving an app does while another drives it in this worker:
            ``reject`` (409), ``enqueue`` (wait) or ``interrupt`` (stop that run at its next
            step boundary, then go on). A request may override it (``on_busy`` in its body).
        max_body_bytes: a larger request body answers 413 before it is parsed.
        tags: the OpenAPI tags of the routes.
        cache_size: how many built applications each worker keeps in memory (least recently
            used dropped first; 0: none). A kept one is used only while the persister's latest
            sequence id for it is the one it is at (see docs/serving.md, "Caching and
            consistency").
        relay: carries run events to ``GET /apps/{id}/stream`` in other workers
            (``PostgresRelay``); the default, ``LocalRelay``, follows runs only in the worker
            running them.
    """
    policy = OnBusy(on_busy)
    relay = relay or LocalRelay()
    runs = Runs(policy)
    apps = Applications(factory, persister, cache_size)
    described = ServedBuilder()
    described = filled(factory, described)
    graph = described.shape()
    state_schema = described.typed_state_schema() or graph.state_schema()
    models = request_models(graph, state_schema)
    tasks: set[asyncio.Task[None]] = set()

    partition_dependency = _partition_dependency(partition_key)
    Partition = Annotated[str | None, Depends(partition_dependency)]

    fast: dict[Callable[..., Any], FastPath] = {}
    router = APIRouter(
        prefix=prefix,
        dependencies=list(dependencies or ()),
        route_class=limited_route(max_body_bytes, fast),
        tags=list(tags),
        responses=_ERRORS,
    )

    async def current_sequence_id(app_id: str, pk: str | None) -> int | None:
        try:
            latest = await apps.latest_sequence_id(app_id, pk)
            if latest is not None:
                return latest
            loaded = await _call(persister.load(pk, app_id))
        except PersistenceError:
            return None
        return None if loaded is None else int(loaded["sequence_id"])

    async def drive(app: Any, hook: EventHook, body: Any, *, resume: Any = None) -> dict[str, Any]:
        """Run ``app`` as ``body`` asks (after answering ``resume``), publishing its events."""
        bus = hook.bus
        action, result = None, None
        try:
            if resume is not None:
                acted, result, _ = await app.aresume(resume.channel, resume.value)
                action = acted.name
            halts = body.halt_before is not None or body.halt_after is not None
            if resume is None or halts:
                steps = app.astream_iterate(
                    halt_before=body.halt_before, halt_after=body.halt_after, inputs=_inputs(body)
                )
                async for acted, container in steps:
                    index = 0
                    async for item in container:
                        bus.publish(
                            "item",
                            {"action": acted.name, "sequence_id": hook.sequence_id,
                             "index": index, "item": jsonable(item)},
                        )  # fmt: skip
                        index += 1
                    result, _ = await container.get()
                    action = acted.name
        except Exception as exc:
            raise await _failure(exc, hook, app) from exc
        view = app_view(app, running=False)
        bus.publish("state", view)
        return {**view, "action": action, "result": plain(result)}

    async def _failure(exc: Exception, hook: EventHook, app: Any) -> Exception:
        if hook.failed is not None and hook.failed[2] is exc:
            name, sequence_id, _ = hook.failed
            body: dict[str, Any] = {
                "error": "action_failed",
                "message": str(exc),
                "action": name,
                "error_type": type(exc).__name__,
                "sequence_id": sequence_id,
            }
            hook.bus.publish("error", body)
            return ServeError(424, **body)
        if isinstance(exc, PersistenceError) and hasattr(exc, "app_id"):
            current = await current_sequence_id(app.uid, app.partition_key)
            conflict: dict[str, Any] = {
                "error": "conflict",
                "message": str(exc),
                "sequence_id": current,
            }
            body = conflict
            hook.bus.publish("error", body)
            return ServeError(409, **body)
        return exc

    async def run_turn(
        app_id: str, pk: str | None, body: Any, ticket: Any, *, resume: Any = None
    ) -> dict[str, Any]:
        async with ticket as slot:
            kept = await apps.checkout(app_id, pk, slot.bus)
            slot.drive(kept.app)
            out = await drive(kept.app, kept.hook, body, resume=resume)
            if not slot.stop_sent:  # no await since drive() ended: no stop can slip in
                apps.checkin(app_id, pk, kept)
            return out

    def enter(app_id: str, pk: str | None, body: Any) -> Any:
        chosen = None if body.on_busy is None else _policy(body.on_busy)
        ticket = runs.enter((pk, app_id), on_busy=chosen)
        relay.attach(ticket.slot.bus, (pk, app_id))
        return ticket

    def background(coro: Any) -> None:
        task = asyncio.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def quietly(app_id: str, pk: str | None, body: Any, ticket: Any) -> None:
        try:
            await run_turn(app_id, pk, body, ticket)
        except Exception as exc:  # published on the stream; the app's record says the rest
            error_response(exc)

    # -- routes ----------------------------------------------------------------------------------

    async def create_app(body: Any, pk: Partition) -> Response:
        app_id = body.app_id or str(uuid.uuid4())
        app = await apps.build(app_id, pk, initial_state=body.state)
        if app.sequence_id is not None:
            raise ServeError(409, "exists", f"an application {app_id!r} exists already",
                             sequence_id=app.sequence_id)  # fmt: skip
        # The creation record (sequence id 0, no action yet): the app exists, for every worker.
        await _call(persister.save(pk, app_id, 0, None, State(app.state.get_all()), "completed"))
        apps.forget(app_id, pk)
        kept = await apps.existing(app_id, pk, keep=True)
        return _json(app_view(kept.app, running=False), 201)

    async def list_apps(pk: Partition) -> dict[str, Any]:
        return {"app_ids": list(await _call(persister.list_app_ids(pk)))}

    async def get_app(app_id: str, pk: Partition) -> Response:
        idle = runs.slot((pk, app_id)) is None
        app = await apps.current(app_id, pk, idle=idle)
        return _json(app_view(app, running=runs.slot((pk, app_id)) is not None))

    async def step_app(app_id: str, body: Any, pk: Partition) -> Response:
        ticket = enter(app_id, pk, body)
        async with ticket as slot:
            kept = await apps.checkout(app_id, pk, slot.bus)
            app = kept.app
            slot.drive(app)
            try:
                out = await app.astep(inputs=_inputs(body))
            except Exception as exc:
                raise await _failure(exc, kept.hook, app) from exc
            view = app_view(app, running=False)
            slot.bus.publish("state", view)
            if not slot.stop_sent:
                apps.checkin(app_id, pk, kept)
            action, result = (None, None) if out is None else (out[0].name, out[1])
            return _json({**view, "action": action, "result": plain(result)})

    async def run_app(app_id: str, body: Any, pk: Partition) -> Response:
        if not body.wait:
            if await current_sequence_id(app_id, pk) is None:
                raise not_found(app_id)
            ticket = enter(app_id, pk, body)
            await relay.ready(ticket.slot.bus)  # followers in other workers see it running
            background(quietly(app_id, pk, body, ticket))
            accepted = RunAccepted(app_id=app_id, stream=f"{prefix}/apps/{app_id}/stream")
            return JSONResponse(accepted.model_dump(), status_code=202)
        return _json(await run_turn(app_id, pk, body, enter(app_id, pk, body)))

    async def stream_app(app_id: str, pk: Partition) -> EventSourceResponse:
        slot = runs.slot((pk, app_id))
        if slot is not None:
            return EventSourceResponse(sse_events(slot.bus.subscribe()))
        if await current_sequence_id(app_id, pk) is None:
            raise not_found(app_id)

        async def committed() -> dict[str, Any]:
            return app_view(await apps.current(app_id, pk, idle=True), running=False)

        return EventSourceResponse(relay.follow((pk, app_id), committed))

    async def run_streamed(app_id: str, body: Any, pk: Partition) -> EventSourceResponse:
        if await current_sequence_id(app_id, pk) is None:
            raise not_found(app_id)
        ticket = enter(app_id, pk, body)
        queue = ticket.slot.bus.subscribe()
        background(quietly(app_id, pk, body, ticket))
        return EventSourceResponse(sse_events(queue))

    async def resume_app(app_id: str, body: Any, pk: Partition) -> Response:
        return _json(await run_turn(app_id, pk, body, enter(app_id, pk, body), resume=body))

    async def stop_app(app_id: str, pk: Partition) -> dict[str, Any]:
        slot = runs.slot((pk, app_id))
        if slot is not None and slot.stop():
            return {"stopping": True}
        if await current_sequence_id(app_id, pk) is None:
            raise not_found(app_id)
        return {"stopping": False}

    async def history(app_id: str, pk: Partition) -> dict[str, Any]:
        if not callable(getattr(persister, "records", None)):
            raise UnsupportedOperationError(
                f"{type(persister).__name__} cannot list an app's steps (it has no records() "
                f"method); serve a turnout persister (AsyncSQLitePersister, "
                f"AsyncPostgreSQLPersister) for the history"
            )
        records = await _call(persister.records(pk, app_id))
        if not records:
            raise not_found(app_id)
        steps = [
            {"sequence_id": r.sequence_id, "action": r.position, "status": r.status,
             "created_at": r.created_at}
            for r in records
        ]  # fmt: skip
        return {"app_id": app_id, "steps": steps}

    async def fork_app(app_id: str, body: Any, pk: Partition) -> Response:
        loaded = await _call(persister.load(pk, app_id, body.sequence_id))
        if loaded is None:
            raise not_found(app_id, body.sequence_id)
        new_id = body.app_id or str(uuid.uuid4())
        parent = ParentPointer(app_id=app_id, partition_key=pk, sequence_id=loaded["sequence_id"])
        await _call(
            persister.save(pk, new_id, loaded["sequence_id"], loaded["position"], loaded["state"],
                           loaded["status"], parent=parent)
        )  # fmt: skip
        apps.forget(new_id, pk)
        kept = await apps.existing(new_id, pk, keep=runs.slot((pk, new_id)) is None)
        return _json(app_view(kept.app, running=False), 201)

    async def delete_app(app_id: str, pk: Partition) -> Response:
        slot = runs.slot((pk, app_id))
        if slot is not None:
            slot.stop()
        apps.forget(app_id, pk)
        deleted = await _call(persister.delete(app_id, pk))
        apps.forget(app_id, pk)
        if not deleted:
            raise not_found(app_id)
        return Response(status_code=204)

    _typed(create_app, body=models["create"])
    _typed(step_app, body=models["step"])
    _typed(run_app, body=models["run"])
    _typed(run_streamed, body=models["run"])
    _typed(resume_app, body=models["resume"])
    _typed(fork_app, body=models["fork"])
    if not dependencies and (partition_key is None or isinstance(partition_key, str)):
        # Nothing to resolve per request but the body: the hot routes skip FastAPI's
        # dependency solving (route.py); every other case keeps FastAPI's handler.
        for endpoint, model in ((run_app, models["run"]), (step_app, models["step"])):
            fast[endpoint] = FastPath(model=model, constants=(("pk", partition_key),))
    # Registered once their body models are set (a decorator would read them too early).
    router.post("/apps", status_code=201, response_model=AppView, summary="Create an application")(
        create_app
    )
    router.get("/apps", response_model=AppList, summary="The partition's applications")(list_apps)
    router.get("/apps/{app_id}", response_model=AppView, summary="One application")(get_app)
    router.post("/apps/{app_id}/step", response_model=StepView, summary="Run one step")(step_app)
    router.post(
        "/apps/{app_id}/run",
        response_model=StepView,
        responses={202: {"model": RunAccepted, "description": "running in the background"}},
        summary="Run until a halt condition",
    )(run_app)
    router.get(
        "/apps/{app_id}/stream",
        summary="Follow the application's runs (Server-Sent Events)",
        response_class=EventSourceResponse,
    )(stream_app)
    router.post(
        "/apps/{app_id}/stream",
        summary="Run until a halt condition, streaming its events (Server-Sent Events)",
        response_class=EventSourceResponse,
    )(run_streamed)
    router.post("/apps/{app_id}/resume", response_model=StepView, summary="Answer a suspension")(
        resume_app
    )
    router.post("/apps/{app_id}/stop", response_model=StopView, summary="Stop the running run")(
        stop_app
    )
    router.get("/apps/{app_id}/history", response_model=HistoryView, summary="Stored steps")(
        history
    )
    router.post("/apps/{app_id}/fork", status_code=201, response_model=AppView, summary="Fork")(
        fork_app
    )
    router.delete("/apps/{app_id}", status_code=204, summary="Delete an application")(delete_app)
    return router


def _typed(endpoint: Callable[..., Any], **types: Any) -> None:
    endpoint.__annotations__.update(types)


def _partition_dependency(partition_key: PartitionKey) -> Callable[..., Any]:
    if partition_key is None or isinstance(partition_key, str):
        constant = partition_key

        # async: FastAPI runs a plain function dependency in its thread pool, a thread hop
        # (and a GIL handoff) per request for a constant.
        async def fixed() -> str | None:
            return constant

        return fixed
    if not callable(partition_key):
        raise TypeError(
            f"serve(partition_key=...) takes a string or a FastAPI dependency (a callable), "
            f"got {type(partition_key).__name__}: {partition_key!r}"
        )
    return partition_key


def _policy(value: str) -> OnBusy:
    try:
        return OnBusy(value)
    except ValueError:
        raise ServeError(
            422, "invalid_request",
            f"on_busy={value!r} is not a policy; use one of {', '.join(p.value for p in OnBusy)}",
        ) from None  # fmt: skip


def _inputs(body: Any) -> dict[str, Any] | None:
    if body.inputs is None:
        return None
    return dict(body.inputs.model_dump(exclude_unset=True))


def _json(data: dict[str, Any], status: int = 200) -> Response:
    """``data`` (already JSON-compatible: ``app_view`` and ``jsonable`` made it so) as the
    answer, sent as is: FastAPI would otherwise validate it against the response model and
    encode it again (the models stay on the routes, for the OpenAPI schema)."""
    return JSONResponse(data, status_code=status)


async def _call(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value
