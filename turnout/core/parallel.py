"""Parallel actions: one step fans out over child applications and merges their states.

The forms, with Burr's names and abstract methods:

* ``MapStates``: one action (or sub-graph) over many states (``action``, ``states``, ``reduce``);
* ``MapActions``: many actions over one state (``actions``, ``state``, ``reduce``);
* ``MapActionsAndStates``: every action over every state (``actions``, ``states``, ``reduce``);
* ``TaskBasedParallelAction``: any ``SubGraphTask``s you build (``tasks``, ``reduce``);
* ``map_reduce_action(...)`` (a ``PassThroughMapActionsAndStates``): the actions, the states and
  ``reduce`` given as functions, no subclass.

Each child is a real application: its own app id, the parent's partition key, a spawning-parent
link to the parent step, the parent's tracker and persister. A child's app id is derived from the
parent's app id, the parent step's sequence id and the child's index, so it is unique per parent
invocation (a later step never picks up an earlier step's children, unlike apache/burr#761) and
stable across retries and resumes of the same step: a child whose persisted record shows it
finished is loaded instead of run again.

Sync parallel actions run their children on ``ApplicationContext.parallel_executor_factory()``
(``ApplicationBuilder.with_parallel_executor``; threads by default); async ones (whose
``tasks``/``states``/``actions`` is an async generator, or whose ``is_async()`` returns True),
and sync ones run by the async drivers, gather them on the event loop, children that need no
loop (sync actions and persisters) running on the executor.
"""

from __future__ import annotations

import abc
import inspect
import uuid
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

from turnout.core import children
from turnout.core._subgraph import RunnableGraph, SubGraphTask
from turnout.core.action import Action, SingleStepAction, bound_name
from turnout.core.context import ApplicationContext, StepScope, current_scope
from turnout.core.errors import ChildApplicationError
from turnout.core.state import State
from turnout.core.streaming import StreamingAction

if TYPE_CHECKING:
    pass

__all__ = [
    "ChildApplicationError",
    "MapActions",
    "MapActionsAndStates",
    "MapStates",
    "PassThroughMapActionsAndStates",
    "RunnableGraph",
    "SubGraphTask",
    "TaskBasedParallelAction",
    "map_reduce_action",
]

_NAMESPACE = uuid.UUID("6f1d0c52-3c1e-4d43-9a57-2f0b4c1e7a10")


class TaskBasedParallelAction(SingleStepAction, StreamingAction):
    """A step that runs child applications in parallel and merges their final states.

    Implement ``reads``, ``writes``, ``tasks(state, context, inputs)`` (a generator of
    ``SubGraphTask``; an async generator makes the action async) and ``reduce(state, states)``
    (the parent's new state from the children's final states, in task order). Name the children
    with ``self.child_app_id(context, index)`` so retries and resumes find them again.

    Args:
        stream: make the step a streaming action: ``app.stream_result(halt_after=[name])``
            yields ``{"child": index, "app_id", "action", "item"}`` for every item a child's
            streaming action yields, ``{"child": index, "app_id", "done": True, "error"}`` when
            a child ends, and last ``{"children": count}`` (the step's result). Setting the
            class attribute ``streaming = True`` does the same.

    A failed child fails the step (``ChildApplicationError``, after every child has ended),
    unless the class attribute ``on_child_error`` is ``"collect"``: then ``reduce`` receives the
    children that finished and ``states.failures`` lists ``(index, app_id, exception)`` of the
    others (partial results).
    """

    streaming = False
    on_child_error = "raise"

    def __init__(self, *, stream: bool = False) -> None:
        super().__init__()
        if stream:
            self.streaming = True

    @property
    def inputs(self) -> list[str] | tuple[list[str], list[str]]:
        return ["__context"]

    @abc.abstractmethod
    def tasks(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> Iterable[SubGraphTask] | AsyncIterator[SubGraphTask]:
        """The child applications to run."""

    @abc.abstractmethod
    def reduce(self, state: State, states: Iterable[State]) -> State:
        """Merge the children's final states (in task order) into the parent's state."""

    def is_async(self) -> bool:
        return inspect.isasyncgenfunction(self.tasks)

    def child_app_id(self, context: ApplicationContext, index: int) -> str:
        """The app id of child ``index`` of this step: stable across retries and resumes of the
        step, unique to it (override to name children otherwise, keeping both properties).

        A step that re-runs a failed step (``initialize_from`` resuming a failed record, or an
        ``on_exception`` route back to the same action) gets a new sequence id, so the children
        are named after the first attempt's sequence id (``children.first_attempt``)."""
        scope = context._scope
        invocation = scope.invocation if scope is not None else None
        sequence_id = context.sequence_id if invocation is None else invocation
        return str(uuid.uuid5(_NAMESPACE, f"{context.app_id}:{sequence_id}:{index}"))

    async def _prepare_step(self, step: StepScope) -> None:
        """Before each attempt, in the driver's mode (the engine awaits it under astep/arun and
        drives it under step/run): name the children after the step's first attempt, and when
        a sync action runs under the async drivers, run its children here, on the event loop
        and the executor, so that async persisters and loaders work for them too."""
        step.child_states = None
        context = step.context()
        if step.invocation is None:
            sync = step.loop is None
            step.invocation = await children.first_attempt(context, bound_name(self), sync=sync)
        if step.loop is None or self.is_async() or self.streaming:
            return
        _, inputs = self._split(dict(step.kwargs))
        tasks = list(children.sync_source(self.tasks(step.base, context, inputs), self))
        step.child_states = await children.run_async(bound_name(self), tasks, context)

    def run_and_update(self, state: State, **run_kwargs: Any) -> tuple[dict[str, Any], State]:
        context, inputs = self._split(run_kwargs)
        if self.is_async():
            return self._arun_and_update(state, context, inputs)  # type: ignore[return-value]
        scope = context._scope
        if scope is not None and scope.child_states is not None:  # run by _prepare_step
            return {}, self.reduce(state, scope.child_states)
        tasks = list(children.sync_source(self.tasks(state, context, inputs), self))
        return {}, self.reduce(state, children.run_sync(bound_name(self), tasks, context))

    async def _collect_tasks(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> list[SubGraphTask]:
        return await children.collect(self.tasks(state, context, inputs))

    async def _arun_and_update(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> tuple[dict[str, Any], State]:
        tasks = await self._collect_tasks(state, context, inputs)
        return {}, await self._reduce(
            state, await children.run_async(bound_name(self), tasks, context)
        )

    async def _reduce(self, state: State, states: list[State]) -> State:
        reduced: Any = self.reduce(state, states)
        if inspect.isawaitable(reduced):
            reduced = await reduced
        return reduced  # type: ignore[no-any-return]

    def _split(self, run_kwargs: dict[str, Any]) -> tuple[ApplicationContext, dict[str, Any]]:
        context = run_kwargs.pop("__context", None) or ApplicationContext.get()
        if context is None:
            raise RuntimeError(
                f"{type(self).__name__} runs its children as part of an application step; add "
                f"it to an application with ApplicationBuilder().with_actions(...)."
            )
        return context, {k: v for k, v in run_kwargs.items() if not k.startswith("__")}

    # -- streaming (stream=True) -----------------------------------------------------------------

    def stream_run(self, state: State, **run_kwargs: Any) -> Any:
        """The streaming form of the step (see ``stream``); ``update`` then calls ``reduce``."""
        context, inputs = self._split(run_kwargs)
        if self.is_async():
            return self._astream(state, context, inputs)
        return self._stream(state, context, inputs)

    def _stream(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> Generator[dict[str, Any], None, None]:
        tasks = list(children.sync_source(self.tasks(state, context, inputs), self))
        yield from children.stream_sync(bound_name(self), tasks, context)
        yield {"children": len(tasks)}

    async def _astream(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        tasks = await self._collect_tasks(state, context, inputs)
        async for item in children.stream_async(bound_name(self), tasks, context):
            yield item
        yield {"children": len(tasks)}

    def update(self, result: dict[str, Any], state: State) -> State:
        """After a streamed step: ``reduce`` the children's states into the whole state."""
        scope = current_scope()
        if scope is None or scope.child_states is None:
            raise RuntimeError(f"{type(self).__name__}.update() runs only after a streamed step")
        return self.reduce(state, scope.child_states)


class MapActionsAndStates(TaskBasedParallelAction):
    """Run every action of ``actions()`` on every state of ``states()`` (the cartesian product,
    actions outer), each pair as a child application, then ``reduce``.

    ``actions`` yields ``@action`` functions, named ``Action``s or ``RunnableGraph``s;
    ``states`` yields ``State``s. Either may be an async generator (the action is then async).
    ``tracker``, ``state_persister`` and ``state_initializer`` choose what the children use:
    ``"cascade"`` (the default: the parent's; the initializer defaults to the persister, so
    finished children are loaded on a re-run), ``None``, or an object.
    """

    @abc.abstractmethod
    def actions(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> Iterable[Any] | AsyncIterator[Any]:
        """The actions (or ``RunnableGraph``s) to run on each state."""

    @abc.abstractmethod
    def states(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> Iterable[State] | AsyncIterator[State]:
        """The states to run each action on."""

    # Burr's signatures: keyword arguments only. turnout passes ``context=`` (the parent step's
    # ApplicationContext) to an override that accepts it, and calls ``def tracker(self)`` bare.

    def tracker(self, **kwargs: Any) -> Any:
        """The children's tracker: ``"cascade"`` (the parent's), ``None`` or a tracker."""
        return "cascade"

    def state_persister(self, **kwargs: Any) -> Any:
        """The children's persister: ``"cascade"`` (the parent's), ``None`` or a persister."""
        return "cascade"

    def state_initializer(self, **kwargs: Any) -> Any:
        """Where finished children are loaded from: ``"cascade"`` (the children's persister, or
        else the parent's initializer), ``None`` (always run them) or a loader."""
        return "cascade"

    def is_async(self) -> bool:
        return inspect.isasyncgenfunction(self.actions) or inspect.isasyncgenfunction(self.states)

    def tasks(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> Iterable[SubGraphTask]:
        actions = list(children.sync_source(self.actions(state, context, inputs), self))
        states = list(children.sync_source(self.states(state, context, inputs), self))
        return self._product(actions, states, context, inputs)

    async def _collect_tasks(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> list[SubGraphTask]:
        actions = await children.collect(self.actions(state, context, inputs))
        states = await children.collect(self.states(state, context, inputs))
        return self._product(actions, states, context, inputs)

    def _product(
        self, actions: list[Any], states: list[State], context: ApplicationContext,
        inputs: dict[str, Any],
    ) -> list[SubGraphTask]:  # fmt: skip
        tracker_choice = children.behaviour(self.tracker, context)
        persister_choice = children.behaviour(self.state_persister, context)
        initializer_choice = children.behaviour(self.state_initializer, context)
        out: list[SubGraphTask] = []
        for act in actions:
            graph = RunnableGraph.create(act)
            for substate in states:
                if not isinstance(substate, State):
                    substate = children.as_state(substate, self)
                # Each child gets its own copy() of what it inherits, as on Burr: a tracker or
                # persister that keeps per-application state (or a connection that must not
                # cross threads) is never shared between children running at once.
                tracker = children.cascade(tracker_choice, context.tracker)
                persister = children.cascade(persister_choice, context.state_persister)
                fallback = persister if callable(getattr(persister, "load", None)) else None
                if fallback is not None and initializer_choice == "cascade":
                    initializer = fallback  # the child loads from where it saves, one instance
                else:
                    initializer = children.cascade(initializer_choice, context.state_initializer)
                out.append(
                    SubGraphTask(
                        graph=graph,
                        inputs=inputs,
                        state=substate,
                        application_id=self.child_app_id(context, len(out)),
                        tracker=tracker,
                        state_persister=persister,
                        state_initializer=initializer,
                        index=len(out),
                    )
                )
        return out


class MapStates(MapActionsAndStates):
    """Run one action (or ``RunnableGraph``) on each state of ``states()``, then ``reduce``.

    Implement ``reads``, ``writes``, ``action(state, inputs)``, ``states(state, context,
    inputs)`` and ``reduce(state, states)``.
    """

    @abc.abstractmethod
    def action(self, state: State, inputs: dict[str, Any]) -> Any:
        """The action (an ``@action`` function, a named ``Action`` or a ``RunnableGraph``)."""

    def actions(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> Iterable[Any]:
        return [self.action(state, inputs)]


class MapActions(MapActionsAndStates):
    """Run each action of ``actions()`` on the one state ``state()`` returns, then ``reduce``.

    Implement ``reads``, ``writes``, ``actions(state, context, inputs)`` and ``reduce(state,
    states)``; override ``state(state, inputs)`` to give the children another starting state
    than the parent's.
    """

    def state(self, state: State, inputs: dict[str, Any]) -> State:
        """The state every child starts from: by default the parent's state, as in Burr."""
        return state

    def states(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> Iterable[State]:
        return [self.state(state, inputs)]


# How map_reduce_action calls its ``action`` and ``state`` functions.
_Source = Callable[[State, ApplicationContext, dict[str, Any]], Any]


class PassThroughMapActionsAndStates(MapActionsAndStates):
    """A ``MapActionsAndStates`` whose parts are passed in rather than overridden (Burr's
    experimental functional form; ``map_reduce_action`` builds one).

    Args:
        action: what each child runs: an ``@action`` function, a named ``Action`` or a
            ``RunnableGraph``; a list of them; or a function ``(state, context, inputs)``
            returning one of them, a list, or a (sync or async) generator of them.
        state: a function ``(state, context, inputs)`` returning the children's initial states:
            one ``State``, a list, or a (sync or async) generator of them.
        reducer: ``(state, states) -> State``, the ``reduce`` step (it may be ``async def``).
        reads: the parent state keys the step reads.
        writes: the parent state keys the step writes.
        inputs: runtime inputs the step accepts (optional) and hands to ``action``, ``state``
            and the children.

    The step is async (run it with ``astep``/``arun``) when ``action`` or ``state`` is an async
    generator function or ``reducer`` is a coroutine function.
    """

    # Burr's signature, positional parameters included, so Burr code moves over unchanged.
    def __init__(
        self,
        action: Any,
        state: _Source,
        reducer: Callable[[State, Any], Any],
        reads: list[str],
        writes: list[str],
        inputs: list[str],
    ) -> None:
        super().__init__()
        self._action_source = action
        self._state_source = state
        self._reducer = reducer
        self._reads = list(reads)
        self._writes = list(writes)
        self._inputs = list(inputs)

    @property
    def reads(self) -> list[str]:
        return self._reads

    @property
    def writes(self) -> list[str]:
        return self._writes

    @property
    def inputs(self) -> tuple[list[str], list[str]]:
        # Optional: Burr declares none of them, so Burr code that never passes them still runs.
        return ["__context"], self._inputs

    def is_async(self) -> bool:
        sources = [self._state_source]
        if not _is_child(self._action_source):
            sources.append(self._action_source)
        return any(inspect.isasyncgenfunction(s) for s in sources) or (
            inspect.iscoroutinefunction(self._reducer)
        )

    def actions(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> Iterable[Any] | AsyncIterator[Any]:
        chosen = self._action_source
        if isinstance(chosen, (list, tuple)):
            return list(chosen)
        if _is_child(chosen) or not callable(chosen):
            return [chosen]  # RunnableGraph.create names what is wrong with a non-action
        return _many(chosen(state, context, inputs), _is_child)

    def states(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> Iterable[State] | AsyncIterator[State]:
        return _many(self._state_source(state, context, inputs), _is_state)

    def reduce(self, state: State, states: Iterable[State]) -> State:
        return self._reducer(state, states)  # type: ignore[no-any-return]


def map_reduce_action(
    action: Any,
    state: _Source,
    reducer: Callable[[State, Any], Any],
    reads: list[str],
    writes: list[str],
    inputs: list[str],
) -> PassThroughMapActionsAndStates:
    """A parallel action from functions: run ``action`` on every state ``state`` returns (every
    action on every state, when there are several), then ``reducer(state, states)``. The
    arguments are ``PassThroughMapActionsAndStates``'s."""
    return PassThroughMapActionsAndStates(
        action=action, state=state, reducer=reducer, reads=reads, writes=writes, inputs=inputs
    )


def _is_child(candidate: Any) -> bool:
    """Whether ``candidate`` is one thing a child runs (not a function that produces them)."""
    return isinstance(candidate, (Action, RunnableGraph)) or isinstance(
        getattr(candidate, "action_function", None), Action
    )


def _is_state(candidate: Any) -> bool:
    return isinstance(candidate, Mapping)


def _many(produced: Any, is_one: Callable[[Any], bool]) -> Iterable[Any] | AsyncIterator[Any]:
    """What a source function returned, as an iterable (or async iterable) of items: a single
    item (a ``State`` is itself iterable, hence ``is_one``) becomes a one-item list."""
    if is_one(produced):
        return [produced]
    return cast("Iterable[Any] | AsyncIterator[Any]", produced)
