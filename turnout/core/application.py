"""``Application``: a graph, a state and a position, run step by step.

Build one with ``ApplicationBuilder``. ``step`` runs one action, ``iterate`` yields every step
until a halt condition, ``run`` returns the last one; ``stream_result`` streams the items of a
streaming action. Each has an ``async`` twin (``astep``, ``aiterate``, ``arun``,
``astream_result``). The twins are thin: both run the one step algorithm of
``turnout.core.engine``. The sequence id and the prior action live on the application, never
inside the user's state.
"""

from __future__ import annotations

import logging
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Mapping,
)
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from turnout.core._app_drivers import _Drivers
from turnout.core._burr_names import lazy_names
from turnout.core.action import Action, bound_name
from turnout.core.condition import default
from turnout.core.context import (
    ApplicationContext,
    default_parallel_executor_factory,
)
from turnout.core.engine import (
    UNKNOWN,
    Final,
    StepTuple,
    _Final,
    drive,
    drive_iteration,
)
from turnout.core.errors import (
    AsyncRequiredError,
    GraphSetupError,
    StateOperationError,
)
from turnout.core.graph import ApplicationGraph, Graph
from turnout.core.hooks import HookSet
from turnout.core.persistence import ParentPointer
from turnout.core.state import Change, RawChange, State, StateType, as_changes
from turnout.core.step import ActionSpec, check_inputs
from turnout.core.streaming import (
    AsyncStreamingResultContainer,
    StreamingResultContainer,
    _Finished,
)
from turnout.core.visualize import DotSource

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from turnout.core.builder import ApplicationBuilder as ApplicationBuilder

__all__ = ["Application", "StepTuple"]

logger = logging.getLogger("turnout")
__getattr__ = lazy_names(__name__)  # Burr's ApplicationBuilder here; builder.py imports this module

PRIOR_STEP = "__PRIOR_STEP"
"""Burr's state key for the prior action: computed inside a step, never stored."""
SEQUENCE_ID = "__SEQUENCE_ID"
"""Burr's state key for the running step's id: computed inside a step, never stored."""

T = TypeVar("T")
_NO_INPUTS: dict[str, Any] = {}


class Application(_Drivers, Generic[StateType]):
    """A running state machine. Create it with ``ApplicationBuilder().....build()``.

    Generic in the state's type, as Burr's is: ``Application[MyState]`` when built with
    ``with_typing(MyState)``, whose ``state.data`` is then a ``MyState`` for type checkers.
    """

    if TYPE_CHECKING:  # the typed view of StepEngine.state; no property call added at run time

        @property
        def state(self) -> State[StateType]: ...

    def __init__(
        self,
        graph: Graph,
        state: State,
        partition_key: str | None = None,
        uid: str | None = None,
        entrypoint: str | None = None,
        sequence_id: int | None = None,
        adapter_set: HookSet | None = None,
        builder: ApplicationBuilder[StateType] | None = None,
        fork_parent_pointer: ParentPointer | None = None,
        spawning_parent_pointer: ParentPointer | None = None,
        tracker: Any = None,
        parallel_executor_factory: Callable[[], Executor] | None = None,
        state_persister: Any = None,
        state_initializer: Any = None,
        *,
        app_id: str | None = None,
        hooks: HookSet | None = None,
        async_only: bool = False,
        strict: bool = False,
    ) -> None:
        """Use ``ApplicationBuilder`` to create one. The constructor also takes Burr's keywords
        (``uid=``, ``entrypoint=`` with a plain ``Graph``, ``adapter_set=`` a
        ``turnout.lifecycle.internal.LifecycleAdapterSet``, ``fork_parent_pointer=``), so Burr
        code building an ``Application`` directly runs unchanged; ``app_id=``/``uid=`` and
        ``hooks=``/``adapter_set=`` are two names for one value each."""
        app_id = _one_of("app_id", app_id, "uid", uid)
        hooks = _one_of("hooks", hooks, "adapter_set", adapter_set)
        if app_id is None:
            raise GraphSetupError(["Application() needs app_id= (or Burr's uid=)."])
        graph = _with_entrypoint(graph, entrypoint, state.typing_system)
        self._builder = builder
        self._graph = graph
        self._entrypoint = bound_name(graph.entrypoint)
        self._specs = {bound_name(act): ActionSpec(act, strict=strict) for act in graph.actions}
        self._spec_of = {id(spec.action): spec for spec in self._specs.values()}
        # An action whose first transition is unconditional always leads to the same action:
        # the hot path then skips the graph lookup.
        self._fixed_next = {
            name: edges[0][1]
            for name, edges in graph._outgoing.items()
            if edges and edges[0][0] is default
        }
        self._state = state
        self._app_id = app_id
        self._partition_key = partition_key
        self._sequence_id = sequence_id
        self._prior = None
        self._next = UNKNOWN
        self._route = None
        self._last_changes: tuple[RawChange, ...] = ()
        self._hooks = hooks if hooks is not None else HookSet(())
        self._has_hooks = bool(self._hooks)
        self._call_hooks = self._hooks.implements("pre_run_execute_call") or self._hooks.implements(
            "post_run_execute_call"
        )
        self._in_call = False
        self._async_only = async_only
        self._sync_refused = async_only or bool(self._hooks.async_methods)
        self._halt_requested = False
        self._stop_requested = False
        # What the context hands to child applications (turnout.core.parallel).
        self._tracker = tracker
        self._persister = state_persister
        self._initializer = state_initializer
        self._executor_factory = parallel_executor_factory or default_parallel_executor_factory
        self._spawning_parent = spawning_parent_pointer
        self._parent_pointer = fork_parent_pointer
        if builder is None and self._hooks.implements("post_application_create"):
            drive(self._created())  # built directly, as Burr code may: announce it here

    async def _created(
        self, initialization: Any = None, *, schema_version: int | None = None
    ) -> None:
        """Fire ``post_application_create``; the builder calls it once, right after creation,
        with the state schema version the application declared (``with_typing(version=)``),
        which persisters and trackers record with what they save."""
        if initialization is not None:
            self._parent_pointer = initialization.parent
            if initialization.suspended:
                from turnout.core.suspension import load_pending

                await load_pending(self, initialization)
        if self._hooks.implements("post_application_create"):
            versioned = {} if schema_version is None else {"schema_version": schema_version}
            await self._hooks.fire(
                "post_application_create",
                app_id=self._app_id,
                partition_key=self._partition_key,
                state=self._state,
                application_graph=self._graph,
                sequence_id=self._sequence_id,
                parent_pointer=self._parent_pointer,
                initialization=initialization,
                spawning_parent_pointer=self._spawning_parent,
                **versioned,
            )

    def _resume_at(self, prior: str | None, rerun: str | None) -> None:
        """Position a resumed application: after ``prior``, or to run ``rerun`` again — unless
        that failure was routed by ``on_exception`` (its error, from this very step, is in the
        state), in which case the route is taken again."""
        self._prior = prior
        self._route = self._graph.get_action(rerun) if rerun is not None else None
        self._next = UNKNOWN
        if rerun is None:
            return
        for condition, target in self._graph._on_error.get(rerun, ()):
            error = self._state.get(condition.state_key)
            if (
                isinstance(error, dict)
                and error.get("action") == rerun
                and error.get("sequence_id") == self._sequence_id
            ):
                self._prior = rerun
                self._route = target
                return
        # The rerun of the failed step replays its journal (turnout.core.journal).
        self._journal_carry = self._sequence_id

    # -- properties ------------------------------------------------------------------------------

    @property
    def sequence_id(self) -> int | None:
        """The id of the last step run (0 for the first), ``None`` before any step."""
        return self._sequence_id

    @property
    def uid(self) -> str:
        """The application id (``with_identifiers(app_id=...)`` or a generated UUID)."""
        return self._app_id

    @property
    def graph(self) -> ApplicationGraph:
        return self._graph

    @property
    def builder(self) -> ApplicationBuilder[StateType] | None:
        """The builder that built this application (``None`` when constructed directly)."""
        return self._builder

    @property
    def parent_pointer(self) -> ParentPointer | None:
        """The application this one was forked from (``initialize_from(fork_from_app_id=...)``),
        or ``None``."""
        return self._parent_pointer

    @property
    def spawning_parent_pointer(self) -> ParentPointer | None:
        """The step that spawned this application (``with_spawning_parent``), or ``None``."""
        return self._spawning_parent

    @property
    def entrypoint(self) -> str:
        return self._entrypoint

    @property
    def prior_action(self) -> str | None:
        """The name of the last action that completed, ``None`` at the entrypoint."""
        return self._prior

    @property
    def last_changes(self) -> tuple[Change, ...]:
        """The state changes made by the last completed step."""
        return as_changes(self._last_changes)

    @property
    def context(self) -> ApplicationContext:
        """The application's context, as Burr gives it: the next action's name and the current
        sequence id (inside an action, the running step's; between steps, the last step's;
        ``None`` before the first)."""
        nxt = self.get_next_action()
        return ApplicationContext(
            app_id=self._app_id,
            partition_key=self._partition_key,
            sequence_id=self._sequence_id,
            action_name=nxt.name if nxt is not None else None,
            tracker=self._tracker,
            state_persister=self._persister,
            state_initializer=self._initializer,
            parallel_executor_factory=self._executor_factory,
        )

    # -- position --------------------------------------------------------------------------------

    def has_next_action(self) -> bool:
        return self.get_next_action() is not None

    def reset_to_entrypoint(self) -> None:
        """Make the entrypoint the next action again; the state and sequence id are kept."""
        self._prior = None
        self._route = None
        self._next = UNKNOWN

    def update_state(self, new_state: State | Mapping[str, Any]) -> None:
        """Replace the whole state (for example after a human edited it). In a typed
        application the new state keeps the application's typing system and is checked
        against it first (``StateValidationError``; the state is then left as it was)."""
        if not isinstance(new_state, State):
            if not isinstance(new_state, Mapping):
                raise StateOperationError(
                    f"update_state() takes a State (or a mapping), got "
                    f"{type(new_state).__name__}: {new_state!r}."
                )
            new_state = State(new_state)
        typing_system = self._state.typing_system
        if typing_system is not None:
            if new_state.typing_system is not typing_system:
                new_state = new_state.with_typing_system(typing_system)
            typing_system.validate_state(new_state)
        self._state = new_state
        self._next = UNKNOWN

    def request_stop(self) -> None:
        """End the current (or next) ``run``/``iterate`` at the next step boundary: the step in
        progress completes, no other starts. Safe to call from another thread or task."""
        self._stop_requested = True

    # -- sync drivers ----------------------------------------------------------------------------

    def step(self, inputs: Mapping[str, Any] | None = None) -> StepTuple | None:
        """Run the next action; return ``(action, result, state)``, or ``None`` if there is none.

        Args:
            inputs: values for the action's inputs; keys it does not take are ignored.
        """
        if self._sync_refused:
            self._refuse_sync("step")
        checked = _NO_INPUTS if inputs is None else check_inputs(inputs)
        coro = self._step(checked, "app.step(", True)
        if self._call_hooks:
            return drive(self._called("step", coro))
        try:  # drive(coro), inlined on the hottest path
            coro.send(None)
        except StopIteration as stop:
            out: StepTuple | None = stop.value
            return out
        coro.close()
        raise AsyncRequiredError(
            "step() awaited something asynchronous; use `await app.astep(...)` instead"
        )

    def run(
        self,
        *,
        halt_before: Iterable[str] | None = None,
        halt_after: Iterable[str] | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> Final:
        """Run until a halt condition or the end; return the final ``(action, result, state)``.

        At least one step runs (unless ``request_stop()`` was called). After each step the run
        stops if the next action is in ``halt_before`` (names, or ``"@tag:<tag>"``), returning
        ``(next_action, None, state)`` without running it, or if the action just run is in
        ``halt_after`` or called ``request_halt()``, returning its tuple. When no transition
        matches it returns the last step's tuple. ``inputs`` go to every step.
        """
        self._require_sync("run")
        before, after = self._halt_sets(halt_before, halt_after)
        call = _call_text("run", halt_before, halt_after)
        coro = self._run(before, after, check_inputs(inputs), call, True)
        return drive(self._called("run", coro) if self._call_hooks else coro)

    def iterate(
        self,
        *,
        halt_before: Iterable[str] | None = None,
        halt_after: Iterable[str] | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> Generator[StepTuple, None, Final]:
        """Yield ``(action, result, state)`` for each step, with ``run``'s halting rules; the
        generator's return value is what ``run`` returns."""
        self._require_sync("iterate")
        before, after = self._halt_sets(halt_before, halt_after)
        call = _call_text("iterate", halt_before, halt_after)
        steps = self._iterate(before, after, check_inputs(inputs), call, True)
        return drive_iteration(self._called_iteration("iterate", steps))

    def stream_result(
        self,
        halt_after: Iterable[str],
        halt_before: Iterable[str] | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> tuple[Action | None, StreamingResultContainer]:
        """Run up to an action in ``halt_after`` and stream it: ``(action, container)``.

        Steps before it run as in ``run``. Iterating the container yields the streaming
        action's items; ``container.get()`` returns ``(result, state)`` once it is done. A
        non-streaming halt action, a ``halt_before`` stop or the end of the graph give an
        already-finished container.
        """
        self._require_sync("stream_result")
        before, after = self._halt_sets(halt_before, halt_after)
        call = _call_text("stream_result", halt_before, halt_after)
        start = self._stream_source(after, before, check_inputs(inputs), call, True)
        action, source = drive(self._called("stream_result", start))
        if isinstance(source, _Finished):
            return action, StreamingResultContainer._of_step(self, source, None)
        return action, StreamingResultContainer._of_step(self, source, drive_iteration(source))

    def stream_iterate(
        self,
        *,
        halt_before: Iterable[str] | None = None,
        halt_after: Iterable[str] | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> Generator[tuple[Action, StreamingResultContainer], None, Final]:
        """Yield ``(action, container)`` for every step, with ``run``'s halting rules; each
        container is drained before the next step starts."""
        self._require_sync("stream_iterate")
        before, after = self._halt_sets(halt_before, halt_after)
        call = _call_text("stream_iterate", halt_before, halt_after)
        steps = self._stream_steps(before, after, check_inputs(inputs), call, True)
        return drive_iteration(self._called_iteration("stream_iterate", steps))

    # -- async drivers ---------------------------------------------------------------------------

    async def astep(self, inputs: Mapping[str, Any] | None = None) -> StepTuple | None:
        """``step``, awaitable: runs async actions and hooks."""
        checked = _NO_INPUTS if inputs is None else check_inputs(inputs)
        return await self._called("astep", self._step(checked, "app.astep(", False))

    async def arun(
        self,
        *,
        halt_before: Iterable[str] | None = None,
        halt_after: Iterable[str] | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> Final:
        """``run``, awaitable. Cancelling its task interrupts the running action: the step is
        not committed, ``post_run_step`` hooks see the ``CancelledError``, and the application
        resumes from its last completed step."""
        before, after = self._halt_sets(halt_before, halt_after)
        call = _call_text("arun", halt_before, halt_after)
        return await self._called(
            "arun", self._run(before, after, check_inputs(inputs), call, False)
        )

    async def aiterate(
        self,
        *,
        halt_before: Iterable[str] | None = None,
        halt_after: Iterable[str] | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> AsyncGenerator[StepTuple, None]:
        """``iterate``, as an async generator (which has no return value)."""
        before, after = self._halt_sets(halt_before, halt_after)
        call = _call_text("aiterate", halt_before, halt_after)
        steps = self._iterate(before, after, check_inputs(inputs), call, False)
        async for value in _until_final(self._called_iteration("aiterate", steps)):
            yield value

    async def astream_result(
        self,
        halt_after: Iterable[str],
        halt_before: Iterable[str] | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> tuple[Action | None, AsyncStreamingResultContainer]:
        """``stream_result``, awaitable; iterate the container with ``async for`` and
        ``await container.get()``."""
        before, after = self._halt_sets(halt_before, halt_after)
        call = _call_text("astream_result", halt_before, halt_after)
        start = self._stream_source(after, before, check_inputs(inputs), call, False)
        action, source = await self._called("astream_result", start)
        return action, AsyncStreamingResultContainer._of_step(self, source)

    async def astream_iterate(
        self,
        *,
        halt_before: Iterable[str] | None = None,
        halt_after: Iterable[str] | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> AsyncGenerator[tuple[Action, AsyncStreamingResultContainer], None]:
        """``stream_iterate``, as an async generator."""
        before, after = self._halt_sets(halt_before, halt_after)
        call = _call_text("astream_iterate", halt_before, halt_after)
        steps = self._stream_steps(before, after, check_inputs(inputs), call, False)
        async for value in _until_final(self._called_iteration("astream_iterate", steps)):
            yield value

    # -- drawing ---------------------------------------------------------------------------------

    def visualize(
        self,
        output_file_path: str | Path | None = None,
        include_conditions: bool = True,
        include_state: bool = False,
        view: bool = False,
        engine: str = "graphviz",
        write_dot: bool = False,
        *,
        format: str | None = None,
        highlight_next: bool = True,
        graph_attr: Mapping[str, str] | None = None,
        node_attr: Mapping[str, str] | None = None,
        edge_attr: Mapping[str, str] | None = None,
    ) -> DotSource:
        """Draw the graph; return its DOT text and, given a path, write an image there too.

        The text is a ``DotSource``: a ``str`` with the parts of Burr's ``graphviz.Digraph``
        (``source``, ``graph_attr``/``node_attr``/``edge_attr``, ``render``, ``pipe``), whose
        attributes are Burr's defaults merged with ``graph_attr``/``node_attr``/``edge_attr``.
        The image (PNG by default, or the path's suffix / ``format``: svg, pdf, ...) needs the
        Graphviz ``dot`` program; the text does not. ``write_dot`` also writes the DOT text at
        the path without its suffix, as Burr does. ``highlight_next`` highlights the action the
        next step would run.
        """
        nxt = self.get_next_action() if highlight_next else None
        return self._graph._draw(
            output_file_path, current=nxt.name if nxt is not None else None,
            include_conditions=include_conditions, include_state=include_state, view=view,
            engine=engine, write_dot=write_dot, format=format, graph_attr=graph_attr,
            node_attr=node_attr, edge_attr=edge_attr,
        )  # fmt: skip

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None, **kwargs: Any
    ) -> dict[str, str]:
        """Notebooks show the application's graph drawn, as Burr's do."""
        return self.visualize()._repr_mimebundle_(include, exclude)

    def __repr__(self) -> str:
        return (
            f"Application(app_id={self._app_id!r}, partition_key={self._partition_key!r}, "
            f"sequence_id={self._sequence_id!r}, "
            f"next={getattr(self.get_next_action(), 'name', None)!r})"
        )


def _one_of(name: str, value: T | None, burr_name: str, burr_value: T | None) -> T | None:
    """The value of a constructor argument that has a turnout name and Burr's name."""
    if value is not None and burr_value is not None and value is not burr_value:
        raise GraphSetupError(
            [f"Application() got both {name}= and {burr_name}= (Burr's name for it); pass one."]
        )
    return value if value is not None else burr_value


def _with_entrypoint(
    graph: Graph, entrypoint: str | None, typing_system: Any = None
) -> ApplicationGraph:
    """``graph`` starting at ``entrypoint``: Burr passes a plain ``Graph`` and the name."""
    if isinstance(graph, ApplicationGraph) and entrypoint in (None, graph.entrypoint.name):
        return graph
    if entrypoint is None:
        raise GraphSetupError(
            ["Application() with a Graph needs entrypoint=<action name>, where it starts."]
        )
    start = graph.get_action(entrypoint)
    if start is None:
        names = ", ".join(repr(a.name) for a in graph.actions) or "none"
        raise GraphSetupError(
            [f"Application(entrypoint={entrypoint!r}): no such action; the actions are {names}."]
        )
    return ApplicationGraph(
        graph.actions, graph.transitions, start, typing_system=graph.typing_system or typing_system
    )


async def _until_final(steps: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The values of an engine iteration, without its closing ``_Final`` (still consumed, so the
    iteration's own ending, such as its ``post_run_execute_call``, runs now)."""
    async for value in steps:
        if not isinstance(value, _Final):
            yield value


def _call_text(method: str, halt_before: Any, halt_after: Any) -> str:
    """The caller's call up to its inputs, for error messages: ``app.run(halt_after=['x'], ``."""
    args = [
        f"{name}={list(value)!r}, "
        for name, value in (("halt_before", halt_before), ("halt_after", halt_after))
        if value is not None
    ]
    return f"app.{method}({''.join(args)}"
