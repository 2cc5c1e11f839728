"""The child application a parallel step runs: ``RunnableGraph`` (what it runs) and
``SubGraphTask`` (one child: its graph, state, inputs, id, tracker and persister, loaded instead
of run again when a finished record of it exists). The parallel actions that build these live in
``turnout.core.parallel``, which re-exports both names."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from turnout.core.action import bound_name, to_action
from turnout.core.children import Sink
from turnout.core.errors import AsyncRequiredError
from turnout.core.graph import Graph, GraphBuilder
from turnout.core.state import State
from turnout.core.versions import StateSchema, migrate_state

if TYPE_CHECKING:
    from turnout.core.builder import ApplicationBuilder

__all__ = ["RunnableGraph", "SubGraphTask"]


@dataclass(frozen=True, slots=True)
class RunnableGraph:
    """A graph a child application runs: from ``entrypoint`` until an action in ``halt_after``."""

    graph: Graph
    entrypoint: str
    halt_after: list[str]

    @staticmethod
    def create(from_: Any) -> RunnableGraph:
        """A ``RunnableGraph`` as is, or a one-action graph around an action (an ``@action``
        function or a named ``Action``)."""
        if isinstance(from_, RunnableGraph):
            return from_
        act = to_action(from_)
        graph = GraphBuilder().with_actions(act).build()
        name = bound_name(act)
        return RunnableGraph(graph=graph, entrypoint=name, halt_after=[name])


def _strict(parent_context: Any) -> bool:
    """Children of a parent built with ``build(strict=True)`` are strict too (``ParentRef``)."""
    return getattr(parent_context, "strict", False) is True


@dataclass(frozen=True, slots=True)
class SubGraphTask:
    """One child application to run: ``graph`` from ``state`` with ``inputs``, under
    ``application_id``, tracked by ``tracker``, saved by ``state_persister`` and, when
    ``state_initializer`` holds a finished record for it, loaded instead of run again.
    ``index`` is the child's position among the step's children (informational)."""

    graph: RunnableGraph
    inputs: dict[str, Any]
    state: State
    application_id: str
    tracker: Any = None
    state_persister: Any = None
    state_initializer: Any = None
    index: int = field(default=0, compare=False)

    def run(self, parent_context: Any, *, sink: Sink | None = None) -> State:
        """Run (or load) the child to its end; return its final state. ``parent_context`` is the
        parent step's ``ApplicationContext`` (anything with ``app_id``, ``sequence_id`` and
        ``partition_key``); ``sink(action_name, item)``, if given, receives the items of the
        child's streaming actions as they come."""
        loaded = self._load(parent_context.partition_key)
        if inspect.isawaitable(loaded):
            getattr(loaded, "close", lambda: None)()
            raise AsyncRequiredError(
                f"the state_initializer of child {self.application_id!r} loads asynchronously; "
                f"make the parallel action async (an async generator of tasks/states)."
            )
        finished = self._finished(loaded, _parent_schema(parent_context))
        if finished is not None:
            return finished
        app = self._builder(parent_context).build(strict=_strict(parent_context))
        if sink is None:
            app.run(halt_after=self.graph.halt_after, inputs=self.inputs)
            return app.state
        steps = app.stream_iterate(halt_after=self.graph.halt_after, inputs=self.inputs)
        for action, container in steps:
            for item in container:
                sink(bound_name(action), item)
        return app.state

    async def arun(self, parent_context: Any, *, sink: Sink | None = None) -> State:
        """``run`` for async children (``abuild``/``arun``; async loaders awaited)."""
        loaded = self._load(parent_context.partition_key)
        if inspect.isawaitable(loaded):
            loaded = await loaded
        finished = self._finished(loaded, _parent_schema(parent_context))
        if finished is not None:
            return finished
        app = await self._builder(parent_context).abuild(strict=_strict(parent_context))
        if sink is None:
            await app.arun(halt_after=self.graph.halt_after, inputs=self.inputs)
            return app.state
        steps = app.astream_iterate(halt_after=self.graph.halt_after, inputs=self.inputs)
        async for action, container in steps:
            async for item in container:
                sink(bound_name(action), item)
        return app.state

    def needs_loop(self) -> bool:
        """Whether the child must run on an event loop: it has async actions, or an async
        persister or loader."""
        for store in (self.state_persister, self.state_initializer):
            is_async = getattr(store, "is_async", None)
            if callable(is_async) and is_async() is True:
                return True
        return any(act.is_async() for act in self.graph.graph.actions)

    def _load(self, partition_key: str | None) -> Any:
        if self.state_initializer is None:
            return None
        return self.state_initializer.load(partition_key, self.application_id, None)

    def _finished(self, record: Any, schema: StateSchema | None) -> State | None:
        """The final state of a child whose stored record shows it reached ``halt_after``: the
        one place that decides a child is finished, before anything is built for it. A record
        saved under an older state schema version is migrated first (as ``initialize_from``
        does for the child it would otherwise build)."""
        if not isinstance(record, Mapping):
            return None
        if record.get("status") == "completed" and record.get("position") in self.graph.halt_after:
            state = record["state"]
            stored = getattr(record, "schema_version", 1)
            if stored != (schema.version if schema is not None else 1):
                source = (
                    f"child app {self.application_id!r} at sequence id {record.get('sequence_id')}"
                )
                plain = state.get_all() if isinstance(state, State) else dict(state)
                return State(migrate_state(plain, stored, schema or StateSchema(), source=source))
            return state if isinstance(state, State) else State(state)
        return None

    def _builder(self, parent: Any) -> ApplicationBuilder:
        from turnout.core.builder import ApplicationBuilder

        builder = (
            ApplicationBuilder()
            .with_graph(self.graph.graph)
            .with_identifiers(app_id=self.application_id, partition_key=parent.partition_key)
            .with_spawning_parent(parent.app_id, parent.sequence_id, parent.partition_key)
        )
        if self.tracker is not None:
            builder.with_tracker(self.tracker)
        schema = _parent_schema(parent)
        if schema is not None:  # children save under the parent's version and migrate with it
            builder.with_typing(None, version=schema.version, migrations=schema.migrations)
        inherited = getattr(parent, "hooks", ())
        if inherited:
            builder.with_hooks(*inherited)
        if self.state_persister is not None:
            builder.with_state_persister(self.state_persister)
        if self.state_initializer is not None:
            builder.initialize_from(
                self.state_initializer,
                resume_at_next_action=True,
                default_state=self.state,
                default_entrypoint=self.graph.entrypoint,
            )
        else:
            builder.with_state(self.state).with_entrypoint(self.graph.entrypoint)
        return builder


def _parent_schema(parent: Any) -> StateSchema | None:
    """The state schema (version and migrations) the parent application declared, if any:
    ``parent`` is a ``ParentRef`` (or anything with its ``schema``)."""
    schema = getattr(parent, "schema", None)
    return schema if isinstance(schema, StateSchema) else None
