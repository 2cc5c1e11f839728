"""Running the child applications of a parallel step (see ``turnout.core.parallel``).

Sync steps submit their children to the step's executor (any ``concurrent.futures.Executor``)
and wait for all of them; async steps gather them. Either way every child runs to its end, so the
work of the children that finish is kept (persisted, and remembered by the step for its
retries) even when others fail; then the failures are raised together as one
``ChildApplicationError``. The streaming variants yield the children's stream items, tagged with
the child's index, as they come.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import queue
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from turnout.core.context import ApplicationContext, current_scope
from turnout.core.errors import AsyncRequiredError, ChildApplicationError
from turnout.core.state import State
from turnout.core.versions import StateSchema

if TYPE_CHECKING:
    from concurrent.futures import Future

    from turnout.core.action import Action
    from turnout.core.parallel import SubGraphTask

__all__ = [
    "ChildApplicationError",
    "ChildStates",
    "ParentRef",
    "Sink",
    "as_state",
    "behaviour",
    "cascade",
    "check_mode",
    "collect",
    "first_attempt",
    "run_async",
    "run_sync",
    "run_task",
    "stream_async",
    "stream_sync",
    "sync_source",
]

Sink = Callable[[str, dict[str, Any]], None]
"""Receives ``(action name, item)`` for every item a child's streaming action yields."""

Failure = tuple[int, str, BaseException]


class ChildStates(list[State]):
    """The children's final states, in task order, as ``reduce`` receives them: a list that
    ``async for`` iterates too (Burr hands an async action's ``reduce`` an async generator).
    With ``on_child_error = "collect"`` it holds the children that finished, and ``failures``
    lists ``(index, app_id, exception)`` of the others."""

    failures: tuple[tuple[int, str, BaseException], ...] = ()

    async def __aiter__(self) -> AsyncIterator[State]:
        for state in list(self):
            yield state


@dataclass(frozen=True, slots=True)
class ParentRef:
    """The parent step, as a child needs it (picklable, unlike the live context). ``hooks``:
    the parent's hooks that ask to be inherited (``cascade_to_children = True``, e.g. the
    OpenTelemetry hook), given only to children run in this process. ``strict``: the parent
    was built with ``build(strict=True)``, and so are its children. ``schema``: the state
    schema version and migrations the parent declared (``with_typing(version=...)``), under
    which its children save and load (with a process pool, its migrations must be picklable:
    module-level functions)."""

    app_id: str
    sequence_id: int | None
    partition_key: str | None
    hooks: tuple[Any, ...] = field(default=(), compare=False)
    strict: bool = False
    schema: StateSchema | None = field(default=None, compare=False)

    @staticmethod
    def of(context: ApplicationContext) -> ParentRef:
        scope = context._scope
        strict = scope is not None and bool(scope.spec.strict)
        builder = None if scope is None else scope.app.builder
        schema = None if builder is None else builder.state_schema
        return ParentRef(
            context.app_id, context.sequence_id, context.partition_key, strict=strict, schema=schema
        )

    def in_process(self, context: ApplicationContext) -> ParentRef:
        scope = context._scope
        hooks = () if scope is None else scope.app._hooks.hooks
        inherited = tuple(h for h in hooks if getattr(h, "cascade_to_children", False) is True)
        return replace(self, hooks=inherited) if inherited else self


def submit(
    executor: Any,
    task: SubGraphTask,
    parent: ParentRef,
    context: ApplicationContext,
    sink: Sink | None = None,
) -> Future[State]:
    """Submit a child. On threads it runs in a copy of the step's context (so libraries that
    keep their current span in a context variable nest the child under the step) with the
    parent's inherited hooks; other executors get neither (contexts and hooks stay here)."""
    from concurrent.futures import ThreadPoolExecutor

    if isinstance(executor, ThreadPoolExecutor):
        copied = contextvars.copy_context()
        future: Future[State] = executor.submit(
            copied.run, run_task, task, parent.in_process(context), sink
        )
        return future
    return executor.submit(run_task, task, parent, sink)  # type: ignore[no-any-return]


def run_task(task: SubGraphTask, parent: ParentRef, sink: Sink | None = None) -> State:
    """What the executor runs (module-level, so process pools can pickle it)."""
    return task.run(parent, sink=sink)


# -- naming and preparing the children -----------------------------------------------------------


async def first_attempt(context: ApplicationContext, name: str, *, sync: bool) -> int | None:
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
            if sync:
                getattr(record, "close", lambda: None)()
                raise AsyncRequiredError(
                    f"parallel action {name!r} runs synchronously (step/run) but the "
                    f"application's persister {type(loader).__name__} loads asynchronously; "
                    f"build it with abuild() and run it with astep/arun."
                )
            record = await record
        if not isinstance(record, Mapping):
            break
        if record.get("status") != "failed" or record.get("position") != name:
            break
        sequence_id -= 1
    return sequence_id


def behaviour(method: Callable[..., Any], context: ApplicationContext) -> Any:
    """Call ``tracker``/``state_persister``/``state_initializer``: with ``context=`` when the
    override takes it (``def tracker(self, context)``, or Burr's ``def tracker(self,
    **kwargs)``), else with nothing (``def tracker(self)``)."""
    try:
        params = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: no signature to read
        return method(context=context)
    if any(p.name == "context" or p.kind is p.VAR_KEYWORD for p in params):
        return method(context=context)
    return method()


def cascade(choice: Any, inherited: Any) -> Any:
    """``"cascade"`` means the parent's ``inherited`` value (its ``copy()`` when it has one, as
    Burr does for trackers); anything else is used as is."""
    if choice != "cascade":
        return choice
    return inherited.copy() if callable(getattr(inherited, "copy", None)) else inherited


def as_state(value: Any, owner: Action) -> State:
    if isinstance(value, State):
        return value
    if isinstance(value, Mapping):
        return State(value)
    raise TypeError(
        f"parallel action {owner.name!r}: states() must yield State objects (or mappings), got "
        f"{type(value).__name__}: {value!r}."
    )


def sync_source(source: Any, owner: Action) -> Iterable[Any]:
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


def check_mode(name: str, tasks: list[SubGraphTask]) -> None:
    """Children that need an event loop (an async persister or loader, async actions) cannot
    run from a sync step: a mistake in the setup, raised as is (retrying cannot help)."""
    for task in tasks:
        if task.needs_loop():
            raise AsyncRequiredError(
                f"parallel action {name!r} runs its children synchronously, but child "
                f"{task.index} (app id {task.application_id!r}) has async actions or an async "
                f"persister/loader; make the parallel action async (an async generator of "
                f"tasks/states/actions, or is_async() returning True) and run the application "
                f"with astep/arun, or give the children sync persisters."
            )


async def collect(source: Any) -> list[Any]:
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


def _finish(
    name: str,
    tasks: list[SubGraphTask],
    done: dict[str, Any],
    failures: list[Failure],
    context: ApplicationContext,
) -> list[State]:
    scope = context._scope
    mode = getattr(scope.action if scope is not None else None, "on_child_error", "raise")
    if mode not in ("raise", "collect"):
        raise ValueError(
            f"parallel action {name!r}: on_child_error is {mode!r}; set it to 'raise' (a failed "
            f"child fails the step) or 'collect' (reduce gets the finished children and "
            f"states.failures)"
        )
    failures.sort(key=lambda f: f[0])
    if failures and mode == "raise":
        raise ChildApplicationError(name, failures, len(tasks)) from failures[0][2]
    states = ChildStates(done[t.application_id] for t in tasks if t.application_id in done)
    states.failures = tuple(failures)
    return states


# -- running them --------------------------------------------------------------------------------


def run_sync(name: str, tasks: list[SubGraphTask], context: ApplicationContext) -> list[State]:
    """Run the unfinished children on the step's executor; their final states, in order."""
    import concurrent.futures  # here: `import turnout` does not pay for it

    done = _children_done(context, tasks)
    check_mode(name, [t for t in tasks if t.application_id not in done])
    failures: list[Failure] = []
    futures: dict[Future[State], tuple[int, SubGraphTask]] = {}
    if any(t.application_id not in done for t in tasks):
        parent = ParentRef.of(context)
        executor = context.parallel_executor_factory()
        try:
            for index, task in enumerate(tasks):
                if task.application_id in done:
                    continue
                try:
                    futures[submit(executor, task, parent, context)] = (index, task)
                except Exception as exc:  # e.g. a task that cannot be sent to a process
                    failures.append((index, task.application_id, exc))
            concurrent.futures.wait(futures)
        finally:
            executor.shutdown(wait=True)
    for future, (index, task) in futures.items():
        error = future.exception()
        if error is None:
            done[task.application_id] = future.result()
        else:
            failures.append((index, task.application_id, error))
    return _finish(name, tasks, done, failures, context)


async def run_async(
    name: str, tasks: list[SubGraphTask], context: ApplicationContext
) -> list[State]:
    """Run the unfinished children concurrently: those that need the event loop (async actions,
    an async persister) as tasks on it, the others on the step's executor, so that sync
    children overlap too. Their final states, in order."""
    done = _children_done(context, tasks)
    todo = [(i, t) for i, t in enumerate(tasks) if t.application_id not in done]
    parent = ParentRef.of(context)
    executor = None
    if any(not t.needs_loop() for _, t in todo):
        executor = context.parallel_executor_factory()
    loop = asyncio.get_running_loop()
    try:
        outcomes = await asyncio.gather(
            *(
                t.arun(parent.in_process(context))
                if executor is None or t.needs_loop()
                else _in_executor(loop, executor, t, parent, context)
                for _, t in todo
            ),
            return_exceptions=True,
        )
    finally:
        if executor is not None:
            executor.shutdown(wait=False)  # every child has ended (gather waited for them)
    failures: list[Failure] = []
    for (index, task), outcome in zip(todo, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            failures.append((index, task.application_id, outcome))
        else:
            done[task.application_id] = outcome
    return _finish(name, tasks, done, failures, context)


async def _in_executor(
    loop: asyncio.AbstractEventLoop, executor: Any, task: SubGraphTask, parent: ParentRef,
    context: ApplicationContext, sink: Sink | None = None,
) -> State:  # fmt: skip
    future = submit(executor, task, parent, context, sink)
    state: State = await asyncio.wrap_future(future, loop=loop)
    return state


# -- streaming them ------------------------------------------------------------------------------

_ITEM, _DONE = "item", "done"


def _item(index: int, app_id: str, action: str, item: dict[str, Any]) -> dict[str, Any]:
    return {"child": index, "app_id": app_id, "action": action, "item": item}


def _ended(index: int, app_id: str, error: BaseException | None) -> dict[str, Any]:
    failed = None if error is None else f"{type(error).__name__}: {error}"
    return {"child": index, "app_id": app_id, "done": True, "error": failed}


def _store(context: ApplicationContext, states: list[State]) -> None:
    """Hand the children's states to the action's ``update`` (it runs in the same step)."""
    scope = context._scope or current_scope()
    if scope is not None:
        scope.child_states = states


def stream_sync(
    name: str, tasks: list[SubGraphTask], context: ApplicationContext
) -> Iterator[dict[str, Any]]:
    """Run the children like ``run_sync``, yielding their stream items as they come (from
    thread executors; other executors cannot call back, so only each child's end is yielded),
    then each child's end ``{"child", "app_id", "done": True, "error"}``."""
    from concurrent.futures import ThreadPoolExecutor

    done = _children_done(context, tasks)
    failures: list[Failure] = []
    events: queue.SimpleQueue[tuple[str, int, Any]] = queue.SimpleQueue()
    todo = [(i, t) for i, t in enumerate(tasks) if t.application_id not in done]
    if todo:
        parent = ParentRef.of(context)
        executor = context.parallel_executor_factory()
        in_threads = isinstance(executor, ThreadPoolExecutor)
        try:
            for index, task in todo:
                sink = _queue_sink(events, index, task.application_id) if in_threads else None
                try:
                    future = submit(executor, task, parent, context, sink)
                except Exception as exc:
                    failures.append((index, task.application_id, exc))
                    continue
                future.add_done_callback(_on_done(events, index))
            remaining = len(todo) - len(failures)
            while remaining:
                kind, index, payload = events.get()
                if kind == _ITEM:
                    yield payload
                    continue
                remaining -= 1
                app_id = tasks[index].application_id
                error = payload.exception()
                if error is None:
                    done[app_id] = payload.result()
                else:
                    failures.append((index, app_id, error))
                yield _ended(index, app_id, error)
        finally:
            executor.shutdown(wait=True)
    _store(context, _finish(name, tasks, done, failures, context))


def _on_done(
    events: queue.SimpleQueue[tuple[str, int, Any]], index: int
) -> Callable[[Future[State]], None]:
    def done(future: Future[State]) -> None:
        events.put((_DONE, index, future))

    return done


def _queue_sink(events: queue.SimpleQueue[tuple[str, int, Any]], index: int, app_id: str) -> Sink:
    def sink(action: str, item: dict[str, Any]) -> None:
        events.put((_ITEM, index, _item(index, app_id, action, item)))

    return sink


async def stream_async(
    name: str, tasks: list[SubGraphTask], context: ApplicationContext
) -> AsyncIterator[dict[str, Any]]:
    """``stream_sync`` for async children: every item as it comes, then each child's end."""
    done = _children_done(context, tasks)
    failures: list[Failure] = []
    events: asyncio.Queue[tuple[str, int, Any]] = asyncio.Queue()
    parent = ParentRef.of(context)

    todo = [(i, t) for i, t in enumerate(tasks) if t.application_id not in done]
    loop = asyncio.get_running_loop()
    executor = None
    if any(not t.needs_loop() for _, t in todo):
        executor = context.parallel_executor_factory()
    from concurrent.futures import ThreadPoolExecutor

    in_threads = isinstance(executor, ThreadPoolExecutor)

    async def one(index: int, task: SubGraphTask) -> None:
        def sink(action: str, item: dict[str, Any]) -> None:
            events.put_nowait((_ITEM, index, _item(index, task.application_id, action, item)))

        def threaded_sink(action: str, item: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(sink, action, item)

        try:
            if executor is None or task.needs_loop():
                state = await task.arun(parent.in_process(context), sink=sink)
            else:
                on_item = threaded_sink if in_threads else None
                state = await _in_executor(loop, executor, task, parent, context, on_item)
        except BaseException as exc:  # every child reports its end, or the stream would wait
            events.put_nowait((_DONE, index, exc))
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            # After the items the child's thread queued before it ended.
            loop.call_soon(events.put_nowait, (_DONE, index, state))

    running = [asyncio.ensure_future(one(i, t)) for i, t in todo]
    try:
        remaining = len(running)
        while remaining:
            kind, index, payload = await events.get()
            if kind == _ITEM:
                yield payload
                continue
            remaining -= 1
            app_id = tasks[index].application_id
            if isinstance(payload, BaseException):
                failures.append((index, app_id, payload))
                yield _ended(index, app_id, payload)
            else:
                done[app_id] = payload
                yield _ended(index, app_id, None)
    finally:
        for job in running:
            job.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        if executor is not None:
            executor.shutdown(wait=False)
    _store(context, _finish(name, tasks, done, failures, context))
