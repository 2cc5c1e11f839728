"""Parallel actions: one step fans out over child applications and merges their states.

Four forms, with Burr's names and abstract methods:

* ``MapStates``: one action (or sub-graph) over many states (``action``, ``states``, ``reduce``);
* ``MapActions``: many actions over one state (``actions``, ``state``, ``reduce``);
* ``MapActionsAndStates``: every action over every state (``actions``, ``states``, ``reduce``);
* ``TaskBasedParallelAction``: any ``SubGraphTask``s you build (``tasks``, ``reduce``).

Each child is a real application: its own app id, the parent's partition key, a spawning-parent
link to the parent step, the parent's tracker and persister. A child's app id is derived from the
parent's app id, the parent step's sequence id and the child's index, so it is unique per parent
invocation (a later step never picks up an earlier step's children, unlike apache/burr#761) and
stable across retries and resumes of the same step: a child whose persisted record shows it
finished is loaded instead of run again.

Sync parallel actions run their children on ``ApplicationContext.parallel_executor_factory()``
(``ApplicationBuilder.with_parallel_executor``; threads by default); async ones (whose
``tasks``/``states``/``actions`` is an async generator, or whose ``is_async()`` returns True)
run them with ``asyncio.gather``.
"""

from __future__ import annotations

import abc
import asyncio
import inspect
import pickle
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from turnout.core.action import Action, SingleStepAction, to_action
from turnout.core.context import ApplicationContext, current_scope
from turnout.core.engine import drive
from turnout.core.graph import Graph, GraphBuilder
from turnout.core.state import State

if TYPE_CHECKING:
    from turnout.core.builder import ApplicationBuilder

__all__ = [
    "ChildApplicationError",
    "MapActions",
    "MapActionsAndStates",
    "MapStates",
    "RunnableGraph",
    "SubGraphTask",
    "TaskBasedParallelAction",
]

_NAMESPACE = uuid.UUID("6f1d0c52-3c1e-4d43-9a57-2f0b4c1e7a10")


class ChildApplicationError(RuntimeError):
    """One or more child applications of a parallel step failed.

    A ``RuntimeError`` rather than a ``TurnoutError``: it reports a failure at run time, not a
    mistake in the code, so a ``RetryPolicy`` on the parallel action retries it.

    The finished children's work is kept (persisted, and remembered across retries of the
    step); ``failures`` lists ``(index, app_id, exception)`` of every failed child; the first
    failure is also the ``__cause__``.
    """

    def __init__(self, action: str, failures: list[tuple[int, str, BaseException]], total: int):
        self.action = action
        self.failures = failures
        index, app_id, first = failures[0]
        hint = ""
        if isinstance(first, pickle.PicklingError) or "pickle" in str(first).lower():
            hint = (
                " The child could not be sent to the executor: with a process (or Ray/Dask) "
                "executor its actions must be module-level and its state, tracker and persister "
                "picklable."
            )
        others = f" ({len(failures)} of {total} children failed)" if len(failures) > 1 else ""
        super().__init__(
            f"parallel action {action!r}: child {index} (app id {app_id!r}) failed with "
            f"{type(first).__name__}: {first}{others}.{hint} Children that finished are kept: "
            f"re-running the step (retry=RetryPolicy(...) on the action, or resuming the "
            f"application) runs only the unfinished ones."
        )


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
        return RunnableGraph(graph=graph, entrypoint=act.name, halt_after=[act.name])


@dataclass(frozen=True, slots=True)
class _Parent:
    """The parent step, as a child needs it (picklable, unlike the live context)."""

    app_id: str
    sequence_id: int | None
    partition_key: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class SubGraphTask:
    """One child application to run: ``graph`` from ``state`` with ``inputs``, under
    ``application_id``, tracked by ``tracker``, saved by ``state_persister`` and, when
    ``state_initializer`` holds a finished record for it, loaded instead of run again."""

    graph: RunnableGraph
    inputs: dict[str, Any]
    state: State
    application_id: str
    tracker: Any = None
    state_persister: Any = None
    state_initializer: Any = None
    index: int = field(default=0, compare=False)

    def run(self, parent_context: Any) -> State:
        """Run (or load) the child to its end; return its final state. ``parent_context`` is the
        parent step's ``ApplicationContext`` (anything with ``app_id``, ``sequence_id`` and
        ``partition_key``)."""
        loaded = self._load(parent_context.partition_key)
        if inspect.isawaitable(loaded):
            getattr(loaded, "close", lambda: None)()
            raise TypeError(
                f"the state_initializer of child {self.application_id!r} loads asynchronously; "
                f"make the parallel action async (an async generator of tasks/states)."
            )
        finished = self._finished(loaded)
        if finished is not None:
            return finished
        app = self._builder(parent_context).build()
        if app.prior_action not in self.graph.halt_after:
            app.run(halt_after=self.graph.halt_after, inputs=self.inputs)
        return app.state

    async def arun(self, parent_context: Any) -> State:
        """``run`` for async children (``abuild``/``arun``; async loaders awaited)."""
        loaded = self._load(parent_context.partition_key)
        if inspect.isawaitable(loaded):
            loaded = await loaded
        finished = self._finished(loaded)
        if finished is not None:
            return finished
        app = await self._builder(parent_context).abuild()
        if app.prior_action not in self.graph.halt_after:
            await app.arun(halt_after=self.graph.halt_after, inputs=self.inputs)
        return app.state

    def _load(self, partition_key: str | None) -> Any:
        if self.state_initializer is None:
            return None
        return self.state_initializer.load(partition_key, self.application_id, None)

    def _finished(self, record: Any) -> State | None:
        """The final state of a child whose stored record shows it reached ``halt_after``."""
        if not isinstance(record, Mapping):
            return None
        if record.get("status") == "completed" and record.get("position") in self.graph.halt_after:
            state = record["state"]
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


def _run_task(task: SubGraphTask, parent: _Parent) -> State:
    """What the executor runs (module-level, so process pools can pickle it)."""
    return task.run(parent)


class TaskBasedParallelAction(SingleStepAction):
    """A step that runs child applications in parallel and merges their final states.

    Implement ``reads``, ``writes``, ``tasks(state, context, inputs)`` (a generator of
    ``SubGraphTask``; an async generator makes the action async) and ``reduce(state, states)``
    (the parent's new state from the children's final states, in task order). Name the children
    with ``self.child_app_id(context, index)`` so retries and resumes find them again.
    """

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
        are named after the first attempt's sequence id (see ``_first_attempt``)."""
        scope = context._scope
        invocation = scope.invocation if scope is not None else None
        sequence_id = context.sequence_id if invocation is None else invocation
        return str(uuid.uuid5(_NAMESPACE, f"{context.app_id}:{sequence_id}:{index}"))

    def run_and_update(self, state: State, **run_kwargs: Any) -> tuple[dict[str, Any], State]:
        context = run_kwargs.pop("__context", None) or ApplicationContext.get()
        if context is None:
            raise RuntimeError(
                f"{type(self).__name__} runs its children as part of an application step; add "
                f"it to an application with ApplicationBuilder().with_actions(...)."
            )
        inputs = {k: v for k, v in run_kwargs.items() if not k.startswith("__")}
        if self.is_async():
            return self._arun_and_update(state, context, inputs)  # type: ignore[return-value]
        _set_invocation(context, drive(_first_attempt(context, self.name)))
        tasks = list(_sync_source(self.tasks(state, context, inputs), self))
        states = _run_sync(self.name, tasks, context)
        return {}, self.reduce(state, states)

    async def _collect_tasks(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> list[SubGraphTask]:
        return await _collect(self.tasks(state, context, inputs))

    async def _arun_and_update(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> tuple[dict[str, Any], State]:
        _set_invocation(context, await _first_attempt(context, self.name))
        tasks = await self._collect_tasks(state, context, inputs)
        states = await _run_async(self.name, tasks, context)
        reduced: Any = self.reduce(state, states)
        if inspect.isawaitable(reduced):
            reduced = await reduced
        return {}, reduced


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

    def tracker(self, context: ApplicationContext) -> Any:
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
        actions = list(_sync_source(self.actions(state, context, inputs), self))
        states = list(_sync_source(self.states(state, context, inputs), self))
        return self._product(actions, states, context, inputs)

    async def _collect_tasks(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> list[SubGraphTask]:
        actions = await _collect(self.actions(state, context, inputs))
        states = await _collect(self.states(state, context, inputs))
        return self._product(actions, states, context, inputs)

    def _product(
        self, actions: list[Any], states: list[State], context: ApplicationContext,
        inputs: dict[str, Any],
    ) -> list[SubGraphTask]:  # fmt: skip
        tracker = _cascade(self.tracker(context), context.tracker)
        persister = _cascade(self.state_persister(), context.state_persister)
        fallback = persister if callable(getattr(persister, "load", None)) else None
        initializer = _cascade(self.state_initializer(), fallback or context.state_initializer)
        out: list[SubGraphTask] = []
        for act in actions:
            graph = RunnableGraph.create(act)
            for substate in states:
                if not isinstance(substate, State):
                    substate = _as_state(substate, self)
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

    Implement ``reads``, ``writes``, ``actions(state, context, inputs)``, ``state(state,
    inputs)`` and ``reduce(state, states)``.
    """

    @abc.abstractmethod
    def state(self, state: State, inputs: dict[str, Any]) -> State:
        """The state every child starts from."""

    def states(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> Iterable[State]:
        return [self.state(state, inputs)]


# -- running the children ------------------------------------------------------------------------


async def _first_attempt(context: ApplicationContext, name: str) -> int | None:
    """The sequence id of the first attempt of this step: walk back over the parent's stored
    records while they are failed attempts of the same action (each re-run of a failed step
    gets a new sequence id; its children must keep their names to be found again)."""
    sequence_id = context.sequence_id
    loader = next(
        (
            store
            for store in (context.state_persister, context.state_initializer)
            if callable(getattr(store, "load", None))
        ),
        None,
    )
    if loader is None or sequence_id is None:
        return sequence_id
    while sequence_id > 0:
        record = loader.load(context.partition_key, context.app_id, sequence_id - 1)
        if inspect.isawaitable(record):
            record = await record
        if not isinstance(record, Mapping):
            break
        if record.get("status") != "failed" or record.get("position") != name:
            break
        sequence_id -= 1
    return sequence_id


def _set_invocation(context: ApplicationContext, sequence_id: int | None) -> None:
    scope = context._scope
    if scope is not None and scope.invocation is None:
        scope.invocation = sequence_id


def _cascade(choice: Any, inherited: Any) -> Any:
    return inherited if choice == "cascade" else choice


def _as_state(value: Any, owner: Action) -> State:
    if isinstance(value, Mapping):
        return State(value)
    raise TypeError(
        f"parallel action {owner.name!r}: states() must yield State objects (or mappings), got "
        f"{type(value).__name__}: {value!r}."
    )


def _sync_source(source: Any, owner: Action) -> Iterable[Any]:
    if hasattr(source, "__aiter__"):
        raise TypeError(
            f"parallel action {owner.name!r} yields asynchronously but is run synchronously; "
            f"its is_async() must return True (it does when tasks/actions/states is an async "
            f"generator function), and the application must be run with arun/astep."
        )
    if not isinstance(source, Iterable):
        raise TypeError(
            f"parallel action {owner.name!r}: expected an iterable of children, got "
            f"{type(source).__name__}: {source!r}."
        )
    return source


async def _collect(source: Any) -> list[Any]:
    if hasattr(source, "__aiter__"):
        return [item async for item in source]
    if inspect.isawaitable(source):
        source = await source
    return list(source)


def _children_done(context: ApplicationContext, tasks: list[SubGraphTask]) -> dict[str, Any]:
    """The step's memory of finished children (kept across retries of the step)."""
    ids = [t.application_id for t in tasks]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(
            f"two children of step {context.sequence_id} of {context.app_id!r} share the app id "
            f"{dup!r}; give each SubGraphTask its own application_id (self.child_app_id(context, "
            f"index))."
        )
    scope = context._scope or current_scope()
    if scope is None:
        return {}
    if scope.children is None:
        scope.children = {}
    return scope.children


def _parent(context: ApplicationContext) -> _Parent:
    return _Parent(context.app_id, context.sequence_id, context.partition_key)


def _raise_failures(name: str, failures: list[tuple[int, str, BaseException]], total: int) -> None:
    if failures:
        failures.sort(key=lambda f: f[0])
        raise ChildApplicationError(name, failures, total) from failures[0][2]


def _run_sync(name: str, tasks: list[SubGraphTask], context: ApplicationContext) -> list[State]:
    done = _children_done(context, tasks)
    todo = [t for t in tasks if t.application_id not in done]
    failures: list[tuple[int, str, BaseException]] = []
    if todo:
        parent = _parent(context)
        executor = context.parallel_executor_factory()
        futures: dict[Future[State], tuple[int, SubGraphTask]] = {}
        try:
            for index, task in enumerate(tasks):
                if task.application_id in done:
                    continue
                try:
                    futures[executor.submit(_run_task, task, parent)] = (index, task)
                except Exception as exc:  # e.g. a task that cannot be sent to a process
                    failures.append((index, task.application_id, exc))
            wait(futures)
        finally:
            executor.shutdown(wait=True)
        for future, (index, task) in futures.items():
            error = future.exception()
            if error is None:
                done[task.application_id] = future.result()
            else:
                failures.append((index, task.application_id, error))
    _raise_failures(name, failures, len(tasks))
    return [done[t.application_id] for t in tasks]


async def _run_async(
    name: str, tasks: list[SubGraphTask], context: ApplicationContext
) -> list[State]:
    done = _children_done(context, tasks)
    todo = [(i, t) for i, t in enumerate(tasks) if t.application_id not in done]
    parent = _parent(context)
    outcomes = await asyncio.gather(*(t.arun(parent) for _, t in todo), return_exceptions=True)
    failures: list[tuple[int, str, BaseException]] = []
    for (index, task), outcome in zip(todo, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            failures.append((index, task.application_id, outcome))
        else:
            done[task.application_id] = outcome
    _raise_failures(name, failures, len(tasks))
    return [done[t.application_id] for t in tasks]
