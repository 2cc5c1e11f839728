"""``ApplicationBuilder``: declare actions, transitions, state and identity, then ``build()``.

``build()`` checks the whole application at once and reports every problem in one
``GraphSetupError``, one line per problem. Legal but suspicious graphs (an action that can never
run, a key read that nothing provides) produce one ``GraphWarning`` listing them all, or an error
with ``build(strict=True)``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import is_dataclass
from typing import Any, Generic, Self, TypeVar, overload

from turnout.core._build_checks import check_suspicious, resume_problems
from turnout.core.action import bound_name
from turnout.core.application import Application
from turnout.core.engine import drive
from turnout.core.errors import (
    AsyncRequiredError,
    GraphSetupError,
    StateValidationError,
)
from turnout.core.graph import ApplicationGraph, Graph, GraphBuilder
from turnout.core.hooks import HOOK_NAMES, HookSet
from turnout.core.persistence import AsyncBaseStateSaver, ParentPointer
from turnout.core.saving import (
    Initialization,
    InitializeFrom,
    PersisterHook,
    PersisterHookAsync,
    initialize,
)
from turnout.core.state import State, StateType
from turnout.core.typed_classes import field_problems
from turnout.core.typing import TypingSystem, typing_system_for
from turnout.core.versions import Migration, StateSchema, declare, persister_problems

__all__ = ["ApplicationBuilder", "register_otel_tracing"]


_OTEL_TRACING: Callable[[], list[Any]] | None = None


_OTEL_LOADER: Callable[[], object] | None = None


def register_otel_tracing(hooks: Callable[[], list[Any]]) -> None:
    """Give ``with_tracker(use_otel_tracing=True)`` its hooks: called by turnout's
    OpenTelemetry adapter when it is imported (the core never imports it)."""
    global _OTEL_TRACING
    _OTEL_TRACING = hooks


def register_otel_loader(load: Callable[[], object]) -> None:
    """Give ``with_tracker(use_otel_tracing=True)`` a way to load the OpenTelemetry adapter when
    no one imported it (Burr's switch needs no import): set by the ``turnout`` package, so the
    core names no adapter. ``load`` raises ``ImportError`` if OpenTelemetry is not installed."""
    global _OTEL_LOADER
    _OTEL_LOADER = load


T = TypeVar("T")


class ApplicationBuilder(Generic[StateType]):
    """Fluent builder of an ``Application``::

    app = (
        ApplicationBuilder()
        .with_actions(count, done)
        .with_transitions(("count", "count", expr("count < 10")), ("count", "done"))
        .with_state(count=0)
        .with_entrypoint("count")
        .build()
    )
    """

    def __init__(self) -> None:
        self._graph = GraphBuilder()
        self._state: State | None = None
        self._entrypoint: str | None = None
        self._app_id: str | None = None
        self._partition_key: str | None = None
        self._sequence_id: int | None = None
        self._hooks: list[Any] = []
        self._problems: list[str] = []
        self._persister: Any = None
        self._initialize_from: InitializeFrom | None = None
        self._tracker: Any = None
        self._executor_factory: Callable[[], Executor] | None = None
        self._spawning_parent: ParentPointer | None = None
        self._typing_system: TypingSystem[Any] | None = None
        self._schema: StateSchema | None = None

    def with_actions(self, *actions: Any, **named_actions: Any) -> Self:
        """Add actions: ``@action`` functions by their name, or any action by keyword."""
        self._graph.with_actions(*actions, **named_actions)
        return self

    def with_transitions(self, *transitions: tuple[Any, ...]) -> Self:
        """Add ``(from, to)`` or ``(from, to, condition)``; ``from`` may be a list of names."""
        self._graph.with_transitions(*transitions)
        return self

    def with_graph(self, graph: Graph) -> Self:
        """Add every action and transition of a ``Graph`` built with ``GraphBuilder``."""
        self._graph.with_graph(graph)
        return self

    def with_state(self, state: State | Mapping[str, Any] | Any = None, **kwargs: Any) -> Self:
        """Set initial state values; successive calls merge, later values winning. ``state``
        may also be a typed object (a pydantic model) of the typing system given to
        ``with_typing``, which turns it into a ``State`` (``construct_state``)."""
        if state is not None and not isinstance(state, Mapping):
            if self._typing_system is not None:
                state = self._typing_system.construct_state(state)
            else:
                name = type(state).__name__
                system = (
                    f"PydanticTypingSystem({name})"
                    if hasattr(type(state), "model_fields")
                    else name
                )
                hint = (
                    f" A typed state object needs its typing system first: .with_typing("
                    f"{system}).with_state(...)."
                    if hasattr(type(state), "model_fields") or is_dataclass(state)
                    else ""
                )
                self._problems.append(
                    f"with_state() takes a State, a mapping or keyword values, got "
                    f"{type(state).__name__}: {state!r}.{hint}"
                )
                state = None
        current = self._state if self._state is not None else State()
        if state is not None:
            current = current.merge(state)
        if kwargs:
            current = current.update(**kwargs)
        self._state = State(current)
        return self

    @property
    def typing_system(self) -> TypingSystem[Any] | None:
        """The typing system ``with_typing`` set (``None``: untyped state)."""
        return self._typing_system

    @overload
    def with_typing(
        self,
        typing_system: TypingSystem[T],
        *,
        version: int | None = None,
        migrations: Mapping[int, Migration] | None = None,
    ) -> ApplicationBuilder[T]: ...
    @overload
    def with_typing(
        self,
        typing_system: type[T],
        *,
        version: int | None = None,
        migrations: Mapping[int, Migration] | None = None,
    ) -> ApplicationBuilder[T]: ...
    @overload
    def with_typing(
        self,
        typing_system: StateSchema | None = None,
        *,
        version: int | None = None,
        migrations: Mapping[int, Migration] | None = None,
    ) -> Self: ...
    def with_typing(
        self,
        typing_system: Any = None,
        *,
        version: int | None = None,
        migrations: Mapping[int, Migration] | None = None,
    ) -> Any:
        """Give the application's state a typing system (``turnout.core.typing``): every state
        of the run carries it, and ``state.data`` is the typed view it constructs. A class
        stands for its system: a ``TypedDict`` or dataclass (``typing_system_for``), a
        pydantic model (``PydanticTypingSystem``). ``None`` keeps the current one.

        ``version`` declares the state schema version (``turnout.core.versions``) and
        ``migrations[n]`` turns a state dict of version ``n`` into version ``n + 1``: records
        saved under an older version are migrated when loaded (then validated), newer ones are
        refused. ``typing_system=None`` with ``version=`` versions untyped state. A
        ``StateSchema`` holds all three."""
        declared = declare(typing_system, version, migrations)
        self._problems.extend(declared.problems)
        self._schema = declared.schema or self._schema
        typing = declared.typing
        if isinstance(typing, type):
            try:
                typing = typing_system_for(typing)
            except StateValidationError as exc:
                self._problems.append(f"with_typing({typing.__name__}): {exc}")
                return self
        if typing is not None:
            self._typing_system = typing
        return self

    def reset_to_entrypoint(self) -> Self:
        """Drop Burr's ``__PRIOR_STEP`` key from the state given so far, so an application built
        from a state copied out of a Burr application starts at its entrypoint. (turnout keeps
        positions out of the state; ``initialize_from`` still resumes where its record left.)"""
        if self._state is not None and "__PRIOR_STEP" in self._state:
            self._state = self._state.wipe(delete=["__PRIOR_STEP"])
        return self

    def with_entrypoint(self, action: str) -> Self:
        """The action the application starts with."""
        if self._entrypoint is not None and self._entrypoint != action:
            self._problems.append(
                f"with_entrypoint() was called twice ({self._entrypoint!r}, then {action!r}); "
                f"keep one."
            )
        self._entrypoint = action
        return self

    def with_identifiers(
        self,
        app_id: str | None = None,
        partition_key: str | None = None,
        sequence_id: int | None = None,
    ) -> Self:
        """Name the application (default: a new UUID), its partition (e.g. a user id), and the
        sequence id to continue from."""
        if app_id is not None:
            self._app_id = app_id
        if partition_key is not None:
            self._partition_key = partition_key
        if sequence_id is not None:
            self._sequence_id = sequence_id
        return self

    def with_state_persister(self, persister: Any, on_every: str = "step") -> Self:
        """Save every step to ``persister`` (sync, or async for ``abuild()`` applications); a
        hook object with ``post_run_step`` is also accepted and added as is."""
        if on_every != "step":
            self._problems.append(f"with_state_persister(on_every={on_every!r}): only 'step'.")
        if isinstance(persister, AsyncBaseStateSaver):
            self._hooks.append(PersisterHookAsync(persister))
        elif callable(getattr(persister, "save", None)):
            self._hooks.append(PersisterHook(persister))
        elif callable(getattr(persister, "post_run_step", None)):
            self._hooks.append(persister)
            return self
        else:
            self._problems.append(
                f"with_state_persister() takes a persister (with a save() method), got "
                f"{type(persister).__name__}: {persister!r}."
            )
            return self
        self._persister = persister
        return self

    def initialize_from(
        self,
        initializer: Any,
        resume_at_next_action: bool = True,
        default_state: Mapping[str, Any] | None = None,
        default_entrypoint: str | None = None,
        fork_from_app_id: str | None = None,
        fork_from_partition_key: str | None = None,
        fork_from_sequence_id: int | None = None,
        override_state_values: Mapping[str, Any] | None = None,
    ) -> Self:
        """Start from a stored record: resume this app id (from ``with_identifiers``), or fork
        another one into it; see ``turnout.core.saving.initialize`` for the rules. Replaces
        ``with_state`` and ``with_entrypoint``: ``default_state`` and ``default_entrypoint`` are
        used when nothing is stored."""
        if default_entrypoint is None:
            self._problems.append(
                "initialize_from() needs default_entrypoint=<action name>, where a new "
                "application starts."
            )
        if fork_from_app_id is None and (
            fork_from_partition_key is not None or fork_from_sequence_id is not None
        ):
            self._problems.append(
                "initialize_from(): fork_from_partition_key / fork_from_sequence_id name a "
                "record of another app, so they need fork_from_app_id=<its app id> too. (If you "
                "set fork_from_partition_key or fork_from_sequence_id, you must also set "
                "fork_from_app_id.)"
            )
        if callable(getattr(initializer, "load", None)) is False:
            self._problems.append(
                f"initialize_from() takes a loader (with a load() method), got "
                f"{type(initializer).__name__}: {initializer!r}."
            )
        self._initialize_from = InitializeFrom(
            loader=initializer,
            resume_at_next_action=resume_at_next_action,
            default_state=dict(default_state or {}),
            default_entrypoint=default_entrypoint or "",
            fork_from_app_id=fork_from_app_id,
            fork_from_partition_key=fork_from_partition_key,
            fork_from_sequence_id=fork_from_sequence_id,
            override_state_values=dict(override_state_values) if override_state_values else None,
        )
        return self

    def with_tracker(
        self,
        tracker: Any = "local",
        project: str = "default",
        params: dict[str, Any] | None = None,
        use_otel_tracing: bool = False,
    ) -> Self:
        """Record every step for the UI: a ``LocalTracker`` (``turnout.core.tracking``) or any
        tracker hook object; ``"local"`` builds ``LocalTracker(project, **params)``.

        ``use_otel_tracing=True`` (Burr's switch) also sends the steps and spans to
        OpenTelemetry and records the OpenTelemetry spans of instrumented libraries in the
        tracker. It loads turnout's OpenTelemetry adapter (``turnout.integrations.opentelemetry``)
        if it is not imported yet, as Burr does; without OpenTelemetry installed ``build()``
        raises ``GraphSetupError`` naming the extra to install."""
        if use_otel_tracing:
            self._use_otel_tracing()
        if tracker == "local":
            from turnout.core.tracking import LocalTracker

            try:
                tracker = LocalTracker(project, **(params or {}))
            except (TypeError, ValueError) as exc:
                self._problems.append(f"with_tracker(): {exc}")
                return self
        elif isinstance(tracker, str):
            self._problems.append(
                f"with_tracker({tracker!r}): the only named tracker is 'local'; pass a tracker "
                f"object otherwise."
            )
            return self
        self._hooks.append(tracker)
        self._tracker = tracker
        return self

    def _use_otel_tracing(self) -> None:
        if _OTEL_TRACING is None and _OTEL_LOADER is not None:
            try:
                _OTEL_LOADER()  # the adapter registers its hooks when imported
            except ImportError as exc:
                self._problems.append(
                    f"with_tracker(use_otel_tracing=True) needs OpenTelemetry, which could not "
                    f'be loaded ({exc}). Install it (pip install "turnout[opentelemetry]") or '
                    f"pass use_otel_tracing=False."
                )
                return
        if _OTEL_TRACING is None:
            self._problems.append(
                "with_tracker(use_otel_tracing=True) needs turnout's OpenTelemetry adapter: "
                "add `import turnout.integrations.opentelemetry` (pip install "
                '"turnout[opentelemetry]") before building, or pass '
                "use_otel_tracing=False and add OpenTelemetryHook() with with_hooks()."
            )
            return
        self._hooks.extend(_OTEL_TRACING())

    def with_parallel_executor(self, executor_factory: Callable[[], Executor]) -> Self:
        """Where parallel actions (``MapStates``, ...) run their children: a function returning a
        ``concurrent.futures.Executor``, called once per parallel step (the executor is shut down
        when the step ends). Default: a new ``ThreadPoolExecutor``. Async parallel actions use
        ``asyncio.gather`` instead."""
        if isinstance(executor_factory, Executor) or not callable(executor_factory):
            self._problems.append(
                f"with_parallel_executor() takes a function returning an Executor, got "
                f"{type(executor_factory).__name__}: {executor_factory!r}; write "
                f"with_parallel_executor(lambda: ThreadPoolExecutor(max_workers=4))."
            )
            return self
        self._executor_factory = executor_factory
        return self

    def with_spawning_parent(
        self, app_id: str | None, sequence_id: int | None, partition_key: str | None = None
    ) -> Self:
        """Mark this application as spawned by step ``sequence_id`` of application ``app_id``
        (in an action: ``__context.app_id, __context.sequence_id``); trackers link the two.
        ``app_id=None`` means no parent, as in Burr (code passing a parent that may be absent)."""
        if app_id is None:
            self._spawning_parent = None
            return self
        if not isinstance(app_id, str) or not app_id:
            self._problems.append(
                f"with_spawning_parent() takes the parent's app id (a string), got {app_id!r}."
            )
            return self
        self._spawning_parent = ParentPointer(
            app_id=app_id, partition_key=partition_key, sequence_id=sequence_id
        )
        return self

    def with_hooks(self, *hooks: Any) -> Self:
        """Objects whose hook methods (``pre_run_step``, ``post_run_step``, ...) the application
        calls; see ``turnout.core.hooks``."""
        self._hooks.extend(hooks)
        return self

    def _set_sync_state_persister(self) -> None:
        """Refuse an async persister for a sync application (``build()``): its saves could
        only run in the async methods, so fail now rather than at the first step."""
        persister = self._persister
        if persister is not None and _is_async(persister):
            raise AsyncRequiredError(
                f"you are building the sync application, but have used an async persister "
                f"({type(persister).__name__}); build it with `await builder.abuild()`, or "
                f"pass a sync persister to with_state_persister()."
            )

    def _load_from_sync_persister(self) -> Initialization | None:
        """Load the ``initialize_from`` record for ``build()`` (Burr's internal step)."""
        return drive(self._initialize(sync=True))

    async def _load_from_async_persister(self) -> Initialization | None:
        """Load the ``initialize_from`` record for ``abuild()``; a sync loader is accepted."""
        return await self._initialize(sync=False)

    async def abuild(self, *, strict: bool = False) -> Application[StateType]:
        """``build()`` for applications run with the async methods only (``arun``, ...): their
        sync methods raise ``AsyncRequiredError``; async ``post_application_create`` hooks are
        awaited."""
        initialization = await self._load_from_async_persister()
        app = self._build(strict=strict, async_only=True, initialization=initialization)
        await app._created(initialization, schema_version=self._schema_version)
        return app

    @property
    def state_schema(self) -> StateSchema | None:
        """The state schema version and migrations declared with ``with_typing(version=...)``
        (``None`` when none was): what parallel children save and load under."""
        return self._schema

    @property
    def _schema_version(self) -> int | None:
        return self._schema.version if self._schema is not None else None

    def build(self, *, strict: bool = False) -> Application[StateType]:
        """Check everything and return the ``Application``.

        Raises:
            GraphSetupError: listing every problem found.

        Args:
            strict: raise on suspicious graphs too, instead of warning (``GraphWarning``), and
                on an action changing a key outside its ``writes`` (``UndeclaredWriteError``)
                instead of applying the change with an ``UndeclaredWriteWarning``.
        """
        self._set_sync_state_persister()
        initialization = self._load_from_sync_persister()
        app = self._build(strict=strict, async_only=False, initialization=initialization)
        try:
            drive(app._created(initialization, schema_version=self._schema_version))
        except AsyncRequiredError:
            raise AsyncRequiredError(
                "a post_application_create hook awaits something asynchronous; build the "
                "application with `await builder.abuild()`"
            ) from None
        return app

    async def _initialize(self, *, sync: bool) -> Initialization | None:
        spec = self._initialize_from
        if spec is None or self._problems:
            return None
        if spec.fork_from_app_id is not None and self._app_id is None:
            self._app_id = str(uuid.uuid4())
        forks_into_itself = (
            spec.fork_from_app_id is not None
            and spec.fork_from_app_id == self._app_id
            and spec.fork_from_partition_key == self._partition_key
        )
        if forks_into_itself:
            raise GraphSetupError(
                [
                    f"initialize_from(fork_from_app_id={spec.fork_from_app_id!r}) forks into the "
                    f"same app id; give the fork its own with_identifiers(app_id=...)."
                ]
            )
        if self._app_id is None:
            self._app_id = str(uuid.uuid4())
        return await initialize(
            spec,
            app_id=self._app_id,
            partition_key=self._partition_key,
            sequence_id=self._sequence_id,
            sync=sync,
            schema=self._schema,
        )

    def _build(
        self, *, strict: bool, async_only: bool, initialization: Initialization | None
    ) -> Application[StateType]:
        actions, transitions, problems = self._graph._collect()
        problems = [*problems, *self._problems]
        names = {bound_name(a) for a in actions}
        entry = self._entrypoint
        if self._initialize_from is not None:
            if entry is not None or self._state is not None:
                problems.append(
                    "initialize_from() sets the state and the entrypoint (default_state=, "
                    "default_entrypoint=); remove with_state() and with_entrypoint()."
                )
            entry = self._initialize_from.default_entrypoint or None
        if entry is None:
            hint = f" e.g. .with_entrypoint({actions[0].name!r})" if actions else ""
            problems.append(f"no entrypoint: call .with_entrypoint(<action name>);{hint}")
        elif entry not in names:
            problems.append(
                f"the entrypoint {entry!r} is not an action; the actions are "
                f"{', '.join(map(repr, sorted(names))) or 'none'}."
            )
        if initialization is not None:
            problems.extend(resume_problems(initialization, names))
        problems.extend(persister_problems(self._schema, self._persister))
        for act in actions:
            if act.timeout is not None and not act.is_async():
                problems.append(
                    f"action {act.name!r} has timeout={act.timeout:g} but is not async: a "
                    f"running sync function cannot be interrupted. Make it `async def` or drop "
                    f"the timeout."
                )
        problems.extend(field_problems(self._typing_system, actions))
        for hook in self._hooks:
            if not any(callable(getattr(hook, name, None)) for name in HOOK_NAMES):
                problems.append(
                    f"with_hooks(): {hook!r} has none of the hook methods "
                    f"({', '.join(HOOK_NAMES)})."
                )
        if problems:
            raise GraphSetupError(problems)
        assert entry is not None
        by_name = {a.name: a for a in actions}
        graph = ApplicationGraph(
            actions, transitions, by_name[entry], typing_system=self._typing_system
        )
        if initialization is not None:
            state, sequence_id = initialization.state, initialization.sequence_id
        else:
            state = self._state if self._state is not None else State()
            sequence_id = self._sequence_id
        if self._typing_system is not None:
            state = State(state, typing_system=self._typing_system)
            self._typing_system.validate_state(state)
        check_suspicious(graph, state, strict)
        check = getattr(self._persister, "check_state", None)
        if check is not None:
            check(state)
        app = Application(
            graph=graph,
            state=state,
            app_id=self._app_id if self._app_id is not None else str(uuid.uuid4()),
            partition_key=self._partition_key,
            sequence_id=sequence_id,
            hooks=HookSet(self._hooks),
            async_only=async_only,
            tracker=self._tracker,
            state_persister=self._persister,
            state_initializer=(
                self._initialize_from.loader if self._initialize_from is not None else None
            ),
            parallel_executor_factory=self._executor_factory,
            spawning_parent_pointer=self._spawning_parent,
            strict=strict,
            builder=self,
        )
        if initialization is not None:
            app._resume_at(initialization.prior, initialization.rerun)
        return app


def _is_async(persister: Any) -> bool:
    is_async = getattr(persister, "is_async", None)
    return isinstance(persister, AsyncBaseStateSaver) or (callable(is_async) and is_async() is True)
