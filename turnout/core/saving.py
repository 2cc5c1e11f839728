"""Wiring persistence into applications: the saving hook and ``initialize_from``.

``PersisterHook`` (``PersisterHookAsync`` for async persisters) saves a record after every step's
final attempt: ``completed``, or ``failed`` with the state the step left (unchanged, or the error
routed by ``on_exception``). A cancelled or interrupted step (``CancelledError``,
``KeyboardInterrupt``) saves nothing: half a step is never recorded. The hook passes the step's
delta with the sequence id it applies to whenever the state it started from is the one last
saved, so the persister can store the delta alone, and always the sequence id it saved last, so
the persister refuses a save after another writer's or after the app was deleted.

``Initialization`` is what ``initialize_from`` resolves at build time: which record to load,
where to resume, what the fork's parent is. A record written under an older state schema version
than the application declares is migrated here (``turnout.core.versions``); the first save after
a migration is then a snapshot, so no delta ever applies to a state of another version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from turnout.core.errors import AsyncRequiredError, InvalidRecordError, PersistenceError
from turnout.core.persistence import STATUSES, ParentPointer, PersistedStateData
from turnout.core.state import Change, State
from turnout.core.versions import StateSchema, migrate_state

__all__ = [
    "Initialization",
    "InitializeFrom",
    "PersisterHook",
    "PersisterHookAsync",
    "initialize",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class Initialization:
    """The outcome of ``initialize_from``: the state to start with and where."""

    state: State
    sequence_id: int | None
    entrypoint: str
    prior: str | None  # resume after this action (its transitions decide the next one)
    rerun: str | None  # resume by running this action again (it failed, or suspended)
    loaded: PersistedStateData | None  # the record, if the state is exactly its state
    loader: Any
    parent: ParentPointer | None
    source: str = ""  # the loaded record, for messages: "app 'x' (partition None) at sequence id 3"
    migrated_from: int | None = None  # the record's schema version, when it was migrated
    suspended: bool = False  # the record is a suspended step (turnout.core.suspension)


class _Saver:
    """What the sync and async hooks share: deciding what to save."""

    def __init__(self, persister: Any) -> None:
        self.persister = persister
        self._last_state: State | None = None
        self._last_sequence_id: int | None = None
        self._before: State | None = None
        self._parent: ParentPointer | None = None
        self._first = True
        self._schema_version = 1

    def created(
        self, state: State, initialization: Initialization | None, schema_version: int
    ) -> None:
        self._schema_version = schema_version
        if initialization is None:
            return
        self._parent = initialization.parent
        loaded = initialization.loaded
        same_store = initialization.loader is self.persister
        if loaded is not None and same_store and initialization.parent is None:
            if initialization.migrated_from is None:
                # identical to the stored record: deltas may follow it
                self._last_state = state
            # else: the stored record is of another schema version, so the next save is a
            # snapshot (no _last_state), still conditional on the record it follows.
            self._last_sequence_id = loaded.sequence_id
            self._first = False

    def before(self, state: State) -> None:
        self._before = state

    def arguments(
        self, *, app_id: str, partition_key: str | None, sequence_id: int, action: Any,
        state: State, changes: tuple[Change, ...], exception: BaseException | None,
        will_retry: bool, suspended: bool = False,
    ) -> tuple[tuple[Any, ...], dict[str, Any]] | None:  # fmt: skip
        if will_retry:
            return None
        if exception is not None and not isinstance(exception, Exception):
            return None  # cancelled or interrupted: no half-done step is saved
        chained = self._last_state is not None and self._before is self._last_state
        args = (
            partition_key,
            app_id,
            sequence_id,
            action.name,
            state,
            "failed" if exception is not None else "suspended" if suspended else "completed",
        )
        # previous_sequence_id is always the record this application saved last: the store
        # refuses the save if that is no longer the app's latest (another writer, or a delete).
        kwargs: dict[str, Any] = {
            "changes": changes if chained else None,
            "previous_sequence_id": self._last_sequence_id,
            "parent": self._parent,
            "first": self._first,
        }
        if self._schema_version != 1:  # persisters that know no versions never see the keyword
            kwargs["schema_version"] = self._schema_version
        return args, kwargs

    def saved(self, state: State, sequence_id: int) -> None:
        self._last_state = state
        self._last_sequence_id = sequence_id
        self._first = False


class PersisterHook:
    """Saves every step to a synchronous persister (``with_state_persister`` adds it)."""

    def __init__(self, persister: Any) -> None:
        self.persister = persister
        self._saver = _Saver(persister)

    def post_application_create(
        self, *, state: State, initialization: Initialization | None = None,
        schema_version: int = 1, **future_kwargs: Any,
    ) -> None:  # fmt: skip
        self._saver.created(state, initialization, schema_version)

    def pre_run_step(self, *, state: State, **future_kwargs: Any) -> None:
        self._saver.before(state)

    def post_run_step(self, **payload: Any) -> None:
        call = self._saver.arguments(**_step_fields(payload))
        if call is not None:
            args, kwargs = call
            self.persister.save(*args, **kwargs)
            self._saver.saved(payload["state"], payload["sequence_id"])


class PersisterHookAsync:
    """Saves every step to an asynchronous persister."""

    def __init__(self, persister: Any) -> None:
        self.persister = persister
        self._saver = _Saver(persister)

    def post_application_create(
        self, *, state: State, initialization: Initialization | None = None,
        schema_version: int = 1, **future_kwargs: Any,
    ) -> None:  # fmt: skip
        self._saver.created(state, initialization, schema_version)

    def pre_run_step(self, *, state: State, **future_kwargs: Any) -> None:
        self._saver.before(state)

    async def post_run_step(self, **payload: Any) -> None:
        call = self._saver.arguments(**_step_fields(payload))
        if call is not None:
            args, kwargs = call
            await self.persister.save(*args, **kwargs)
            self._saver.saved(payload["state"], payload["sequence_id"])


def _step_fields(payload: dict[str, Any]) -> dict[str, Any]:
    names = (
        "app_id",
        "partition_key",
        "sequence_id",
        "action",
        "state",
        "changes",
        "exception",
        "will_retry",
    )
    fields = {name: payload[name] for name in names}
    fields["suspended"] = payload.get("suspension") is not None
    return fields


@dataclass(frozen=True, kw_only=True, slots=True)
class InitializeFrom:
    """What ``ApplicationBuilder.initialize_from`` was given."""

    loader: Any
    resume_at_next_action: bool
    default_state: dict[str, Any]
    default_entrypoint: str
    fork_from_app_id: str | None
    fork_from_partition_key: str | None
    fork_from_sequence_id: int | None
    override_state_values: dict[str, Any] | None


async def initialize(
    spec: InitializeFrom,
    *,
    app_id: str,
    partition_key: str | None,
    sequence_id: int | None,
    sync: bool,
    schema: StateSchema | None = None,
) -> Initialization:
    """Load the record ``spec`` points at and decide where the application starts.

    Resuming loads ``(partition_key, app_id, sequence_id)`` (the latest when no sequence id was
    given); forking loads the ``fork_from_*`` record into a new app id and remembers it as the
    parent. With ``resume_at_next_action`` a completed record resumes after its action and a
    failed one runs its action again; without it the run starts at ``default_entrypoint``.
    Nothing found: ``default_state`` at ``default_entrypoint``. A record of an older state
    schema version than ``schema``'s is migrated (``SchemaVersionError`` for a newer one).
    """
    forking = spec.fork_from_app_id is not None
    target = (
        (spec.fork_from_partition_key, spec.fork_from_app_id, spec.fork_from_sequence_id)
        if forking
        else (partition_key, app_id, sequence_id)
    )
    loaded = spec.loader.load(*target)
    if not isinstance(loaded, PersistedStateData) and loaded is not None:
        if not hasattr(loaded, "__await__"):
            loaded = _from_mapping(loaded, spec.loader, target)
        elif sync:
            getattr(loaded, "close", lambda: None)()
            raise AsyncRequiredError(
                f"you are building the sync application, but have used an async initializer: "
                f"{type(spec.loader).__name__}.load is async. Build the application with "
                f"`await builder.abuild()`, or pass a sync loader to initialize_from()."
            )
        else:
            loaded = await loaded
            if loaded is not None and not isinstance(loaded, PersistedStateData):
                loaded = _from_mapping(loaded, spec.loader, target)
    if loaded is None:
        return Initialization(
            state=State(spec.default_state),
            sequence_id=None,
            entrypoint=spec.default_entrypoint,
            prior=None,
            rerun=None,
            loaded=None,
            loader=spec.loader,
            parent=None,
        )
    source = (
        f"app {loaded.app_id!r} (partition {loaded.partition_key!r}) at sequence id "
        f"{loaded.sequence_id}"
    )
    state = loaded.state
    stored = getattr(loaded, "schema_version", 1)  # a subclass's record may predate the field
    code = schema or StateSchema()
    migrated_from = None
    if stored != code.version:
        state = State(migrate_state(state.get_all(), stored, code, source=source))
        migrated_from = stored
    if spec.override_state_values:
        state = State(state).update(**spec.override_state_values)
    parent = (
        ParentPointer(
            app_id=loaded.app_id,
            partition_key=loaded.partition_key,
            sequence_id=loaded.sequence_id,
        )
        if forking
        else None
    )
    resume = spec.resume_at_next_action
    if resume and loaded.status not in STATUSES:
        raise PersistenceError(
            f"initialize_from(): the record of {source} has status {loaded.status!r}, which "
            f"turnout does not know (it writes {' or '.join(map(repr, STATUSES))}), so where to "
            f"resume is unknown: the record was not written by turnout, or is damaged. Start at "
            f"the default entrypoint with initialize_from(..., resume_at_next_action=False), or "
            f"fix the record's status."
        )
    return Initialization(
        state=state,
        sequence_id=loaded.sequence_id,
        entrypoint=spec.default_entrypoint,
        prior=loaded.position if resume and loaded.status == "completed" else None,
        rerun=loaded.position if resume and loaded.status in ("failed", "suspended") else None,
        loaded=None if spec.override_state_values else loaded,
        loader=spec.loader,
        parent=parent,
        source=source,
        migrated_from=migrated_from,
        suspended=resume and loaded.status == "suspended",
    )


def _from_mapping(record: Any, loader: Any, target: tuple[Any, ...]) -> PersistedStateData:
    """A record from a third-party loader returning Burr's dict shape; the identifiers it
    leaves out are those it was asked for (``target``: partition key, app id, sequence id)."""
    import datetime as dt

    state = record.get("state")
    if state is None:
        raise InvalidRecordError(
            f"{type(loader).__name__}.load{target!r} returned {record!r}, a record whose "
            f"'state' is missing (but value for state was None): return None from load() when "
            f"there is nothing stored, and the application starts from default_state."
        )
    return PersistedStateData(
        partition_key=record.get("partition_key", target[0]),
        app_id=record.get("app_id", target[1]),
        sequence_id=record["sequence_id"],
        position=record.get("position"),
        state=state if isinstance(state, State) else State(state),
        created_at=record.get("created_at") or dt.datetime.now(dt.UTC),
        status=record.get("status", "completed"),
    )
