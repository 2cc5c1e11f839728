"""``ApplicationContext``: who is running, passed to actions that ask for ``__context``.

While a step runs, a ``StepScope`` is the current value of a context variable: it knows the
application, the step's sequence id and action, and builds the context, the ``__tracer`` and the
pending-hook list on demand, so a step that uses none of them pays for none of them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from turnout.core.journal import StepJournal
    from turnout.core.tracing import TracerFactory

T = TypeVar("T")

__all__ = [
    "ApplicationContext",
    "StepScope",
    "current_scope",
    "default_parallel_executor_factory",
]


def default_parallel_executor_factory() -> Executor:
    """A new ``ThreadPoolExecutor``: where parallel actions run their children by default."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(thread_name_prefix="turnout-child")


@dataclass(frozen=True, kw_only=True, slots=True)
class ApplicationContext:
    """Identity of the application and of the step being run.

    An action receives it by declaring a ``__context`` parameter::

        @action(reads=[], writes=["seen"])
        def remember(state: State, __context: ApplicationContext) -> State:
            return state.update(seen=__context.app_id)

    Inside a step, ``ApplicationContext.get()`` returns it too. ``tracker``, ``state_persister``,
    ``state_initializer`` and ``parallel_executor_factory`` are what a child application spawned
    by the step reuses (see ``turnout.core.parallel``).
    """

    app_id: str
    partition_key: str | None
    sequence_id: int | None
    action_name: str | None
    tracker: Any = None
    state_persister: Any = None
    state_initializer: Any = None
    parallel_executor_factory: Callable[[], Executor] = default_parallel_executor_factory
    _scope: StepScope | None = field(default=None, repr=False, compare=False)

    @staticmethod
    def get() -> ApplicationContext | None:
        """The context of the step running in this thread or task, or ``None`` outside a step."""
        scope = _CURRENT.get()
        return None if scope is None else scope.context()

    def request_halt(self) -> None:
        """Stop the current ``run``/``iterate`` once this step completes, as if its action were
        in ``halt_after``: the caller gets control back (human-in-the-loop)."""
        if self._scope is None:
            raise RuntimeError("request_halt() only works inside a running step")
        self._scope.halt_requested = True

    def durable(self, key: str, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` once per step, however often the step runs.

        The first time, ``fn`` is called and its result is journaled by the application's
        persister (committed) before it is returned. When the step runs again — a retry, or a
        resume after a crash before the step was saved — the journaled result is returned
        instead, without calling ``fn``. Calls are matched by their order in the step; ``key``
        names the call, and a replayed call whose key differs from the journaled one raises
        ``DeterminismError``. The result goes through the persister's ``Serde``: the value
        returned (the first time too) is the decoded one, so a replay sees the same value.

        A call that raises is not journaled: the step's retry calls ``fn`` again. See
        docs/concepts/durable.md for what "once" covers and what it cannot.

        Raises:
            UnsupportedOperationError: the application has no persister that keeps a journal.
            AsyncRequiredError: the persister is asynchronous (use ``adurable``), or ``fn``
                returned an awaitable.
        """
        scope = self._running("durable")
        journal = scope.journal()
        index, entry = journal.access.run(journal.begin(key, scope.attempt))
        if entry is not None:
            replayed: T = journal.replay(entry)
            return replayed
        value = fn(*args, **kwargs)
        if inspect.isawaitable(value):
            from turnout.core.errors import AsyncRequiredError

            getattr(value, "close", lambda: None)()
            raise AsyncRequiredError(
                f"durable({key!r}, {getattr(fn, '__name__', fn)!r}) got an awaitable from the "
                f"function: in an async action, use `await __context.adurable(...)`."
            )
        result: T = journal.access.run(journal.finish(index, key, value))
        return result

    async def adurable(
        self, key: str, fn: Callable[..., Awaitable[T] | T], /, *args: Any, **kwargs: Any
    ) -> T:
        """``durable`` for async actions: ``fn`` may be a coroutine function (its result is
        awaited) or a plain one; the journal is written through the persister's async driver.
        """
        scope = self._running("adurable")
        journal = scope.journal()
        index, entry = await journal.access.arun(journal.begin(key, scope.attempt))
        if entry is not None:
            replayed: T = journal.replay(entry)
            return replayed
        value = fn(*args, **kwargs)
        if inspect.isawaitable(value):
            value = await value
        result: T = await journal.access.arun(journal.finish(index, key, value))
        return result

    def suspend(
        self, channel: str, schema: Any = None, metadata: Mapping[str, Any] | None = None
    ) -> Any:
        """Wait for an answer on ``channel``: end the step as suspended, or return the answer.

        The first time, the step ends here as **suspended** (not failed): its state stays the
        state it started from, the persister saves it with status ``"suspended"``, and
        ``step``/``run`` return ``(action, SuspensionRecord, state)``. ``app.resume(channel,
        value)`` checks the answer and runs the action again from its start, with the same
        inputs and state; this call then returns the answer. Side effects before it belong in
        ``durable`` calls, which replay instead of running again.

        Args:
            channel: what the step waits on; ``resume`` must name it.
            schema: what the answer must look like: a JSON Schema (the subset of
                ``turnout.core.json_schema``) or a pydantic model class (the answer is then
                returned as an instance of it); ``None`` takes any storable answer.
            metadata: data for whoever answers (a question, a draft to approve, ...).

        Raises:
            AnswerValidationError: ``schema`` uses keywords outside the subset.
        """
        from turnout.core.suspension import suspend_call

        return suspend_call(self._running("suspend"), channel, schema, metadata)

    def _running(self, call: str) -> StepScope:
        if self._scope is None:
            raise RuntimeError(
                f"{call}() only works inside a running step: call it on the __context an "
                f"action receives, or on ApplicationContext.get() while the step runs"
            )
        return self._scope


class StepScope:
    """A step in progress: what the engine tracks about it and what it exposes to the code it
    calls (see the module docstring). One is made per step, so it stays small and lazy: the
    rarely used parts start as class-level defaults."""

    # No __slots__: with class-level defaults an instance sets only five attributes.
    attempt = 1
    halt_requested = False
    _pending: list[tuple[Any, str, asyncio.Task[Any]]] | None = None
    _from_threads: list[tuple[Any, str, concurrent.futures.Future[Any]]] | None = None
    loop: asyncio.AbstractEventLoop | None = None  # the async drivers' loop (set by the engine)
    hook_errors: tuple[tuple[Any, str, BaseException], ...] = ()  # from scheduled async hook calls
    _span_counts: dict[str, int] | None = None
    _context: ApplicationContext | None = None
    _tracer: TracerFactory | None = None
    _journal: StepJournal | None = None
    answers: tuple[dict[str, Any], ...] = ()  # answers to this step's suspend calls (resume)
    _suspends: tuple[int, int] = (1, 0)  # (attempt, next suspend call index)
    children: dict[str, Any] | None = None  # child app id -> final state, kept across retries
    invocation: int | None = None  # the sequence id naming this step's children (parallel.py)
    child_states: list[Any] | None = None  # a streamed parallel step's children, for update()
    base: Any  # the State the action starts from (set by the engine)
    kwargs: dict[str, Any]  # the action's keyword arguments (set by the engine)

    def __init__(self, app: Any, sequence_id: int, spec: Any) -> None:
        self.app = app
        self.sequence_id = sequence_id
        self.spec = spec

    @property
    def action(self) -> Any:
        """The action this step runs."""
        return self.spec.action

    @property
    def action_name(self) -> str:
        name: str = self.spec.name
        return name

    @property
    def pending(self) -> list[tuple[Any, str, asyncio.Task[Any]]]:
        """Async hook calls scheduled from sync code (with their hook), awaited before the step
        ends."""
        if self._pending is None:
            self._pending = []
        return self._pending

    def schedule(self, hook: Any, name: str, call: Coroutine[Any, Any, Any]) -> None:
        """Run an async hook method called from sync code, on the step's event loop.

        From the loop's own thread it becomes a task; from another thread (a library's worker
        running part of the action) it is handed to the loop thread-safely. Either way the
        step awaits it before it ends (``flush``)."""
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None and (self.loop is None or running is self.loop):
            self.pending.append((hook, name, running.create_task(call)))
            return
        if self.loop is None or self.loop.is_closed():
            call.close()
            raise RuntimeError(
                f"async hook method {type(hook).__name__}.{name} was called outside an event "
                f"loop; run the application with its async drivers (astep, arun, ...)"
            )
        future = asyncio.run_coroutine_threadsafe(call, self.loop)
        if self._from_threads is None:
            self._from_threads = []
        self._from_threads.append((hook, name, future))

    async def flush(self) -> None:
        """Await the async hook calls scheduled so far; keep their errors for the step's end."""
        if self._from_threads:
            threaded, self._from_threads = self._from_threads, None
            for hook, name, future in threaded:
                self.pending.append(
                    (hook, name, asyncio.ensure_future(asyncio.wrap_future(future)))
                )
        if not self._pending:
            return
        tasks, self._pending = self._pending, None
        results = await asyncio.gather(*(task for _, _, task in tasks), return_exceptions=True)
        failed = [
            (hook, name, result)
            for (hook, name, _), result in zip(tasks, results, strict=True)
            if isinstance(result, Exception)
        ]
        self.hook_errors = (*self.hook_errors, *failed)

    @property
    def span_counts(self) -> dict[str, int]:
        if self._span_counts is None:
            self._span_counts = {}
        return self._span_counts

    def context(self) -> ApplicationContext:
        if self._context is None:
            self._context = ApplicationContext(
                app_id=self.app.app_id,
                partition_key=self.app.partition_key,
                sequence_id=self.sequence_id,
                action_name=self.action_name,
                tracker=self.app._tracker,
                state_persister=self.app._persister,
                state_initializer=self.app._initializer,
                parallel_executor_factory=self.app._executor_factory,
                _scope=self,
            )
        return self._context

    def journal(self) -> StepJournal:
        """The journal of this step (for ``durable``), made on first use."""
        if self._journal is None:
            from turnout.core.journal import StepJournal, journal_for

            app = self.app
            carry = getattr(app, "_journal_carry", None)
            self._journal = StepJournal(
                journal_for(app._persister, "ApplicationContext.durable()"),
                partition_key=app.partition_key,
                app_id=app.app_id,
                sequence_id=self.sequence_id,
                carried_from=carry if carry == self.sequence_id - 1 else None,
            )
        return self._journal

    def next_suspend(self) -> int:
        """The index of this attempt's next ``suspend`` call (0, 1, ... on every attempt)."""
        attempt, index = self._suspends
        if attempt != self.attempt:
            index = 0
        self._suspends = (self.attempt, index + 1)
        return index

    def tracer(self) -> TracerFactory:
        if self._tracer is None:
            from turnout.core.tracing import TracerFactory

            self._tracer = TracerFactory(self)
        return self._tracer


_CURRENT: contextvars.ContextVar[StepScope | None] = contextvars.ContextVar(
    "turnout_step_scope", default=None
)


def current_scope() -> StepScope | None:
    """The scope of the step running in this thread or task, or ``None``."""
    return _CURRENT.get()
