"""Rewriting stored records in place to the current state schema version (``turnout migrate``).

``migrate(persister, schema)`` looks at every app of a persister (or of one partition, or some
app ids) and says which records were written under an older state schema version than
``schema.version``; with ``apply=True`` it rewrites them. ``amigrate`` is the same for async
persisters. The ``turnout migrate`` command calls it with a ``StateSchema`` it imports.

How an app is rewritten: its whole history is replayed, the state after every old record is
migrated (``turnout.core.versions.migrate_state``) and, if the schema has a typing system,
validated; then each old record is replaced by a full snapshot at the new version. A delta
recorded under an old version is never replayed on a migrated snapshot, and a delta cannot be
re-expressed in another version's terms, so every rewritten record is a snapshot (the history
takes more room afterwards; ``persister.prune(keep_last=N)`` trims it).

Safe to stop and run again:

* an app's records are computed before any is written, so a migration that fails writes nothing
  of that app;
* the SQL stores rewrite an app in one transaction; other stores rewrite its records one at a
  time from the newest to the oldest, so at every moment each sequence id rebuilds either
  entirely from old records or from its own new snapshot;
* records already at the current version are left alone: a second run changes nothing.

Any record newer than ``schema.version`` refuses the whole run (``SchemaVersionError``) before
anything is written. Run it while no application writes to the apps being migrated.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from turnout.core._chain import DELTA, SNAPSHOT, check_whole, snapshot_version
from turnout.core.engine import drive
from turnout.core.errors import SchemaVersionError, UnsupportedOperationError
from turnout.core.persistence import AppRow, StepRecord, StorePersister
from turnout.core.state import State
from turnout.core.typing import typing_system_for
from turnout.core.versions import StateSchema, migrate_state

__all__ = ["AppMigration", "MigrationReport", "Progress", "amigrate", "migrate"]

Progress = Callable[[int, int, str], None]
"""Called after each app: ``(apps done, apps in all, the app just done)``."""


@dataclass(frozen=True, kw_only=True, slots=True)
class AppMigration:
    """What ``migrate`` found (and did) for one app.

    Attributes:
        partition_key: the app's partition (``None`` for none).
        app_id: the app.
        records: how many records it has.
        old: how many of them are of an older version than the schema's.
        versions: every version its records are in, ascending.
        rewritten: whether its old records were rewritten (``apply=True``).
    """

    partition_key: str | None
    app_id: str
    records: int
    old: int
    versions: tuple[int, ...]
    rewritten: bool = False

    def describe(self, version: int) -> str:
        """One line: the app, and what its records are (or were) migrated from."""
        name = f"app {self.app_id!r} (partition {self.partition_key!r})"
        if not self.old:
            return f"{name}: {self.records} records, all at version {version}"
        verb = "rewrote" if self.rewritten else "would rewrite"
        olds = ", ".join(str(v) for v in self.versions if v < version)
        return f"{name}: {verb} {self.old} of {self.records} records, version {olds} -> {version}"


@dataclass(frozen=True, kw_only=True, slots=True)
class MigrationReport:
    """The outcome of ``migrate``: one ``AppMigration`` per app looked at."""

    version: int
    applied: bool
    apps: tuple[AppMigration, ...]

    @property
    def pending(self) -> tuple[AppMigration, ...]:
        """The apps with records of an older version (rewritten, if ``applied``)."""
        return tuple(app for app in self.apps if app.old)

    def summary(self) -> str:
        pending = self.pending
        records = sum(app.old for app in pending)
        if not pending:
            return f"{len(self.apps)} apps, all at version {self.version}: nothing to do"
        done = "rewrote" if self.applied else "would rewrite (dry run; --apply writes)"
        return (
            f"{len(self.apps)} apps, {len(pending)} with older records: {done} {records} "
            f"records to version {self.version}"
        )


def migrate(
    persister: Any,
    schema: StateSchema,
    *,
    apply: bool = False,
    partition_key: str | None = None,
    app_ids: Collection[str] | None = None,
    progress: Progress | None = None,
) -> MigrationReport:
    """Rewrite the records of a synchronous persister to ``schema.version`` (see the module
    docstring); without ``apply`` only report what would change.

    Args:
        persister: one of turnout's persisters (SQLite, PostgreSQL, MySQL, Redis, in-memory).
        schema: the current version and the migrations to it.
        apply: write; otherwise nothing is changed.
        partition_key: only the apps of this partition (default: every partition).
        app_ids: only these apps.
        progress: called after each app.

    Raises:
        SchemaVersionError: a record is newer than ``schema.version``, older than its oldest
            migration, or a migration failed; nothing of that app (or, for a newer record,
            of any app) was written.
    """
    return drive(_run(_core(persister), schema, apply, partition_key, app_ids, progress))


async def amigrate(
    persister: Any,
    schema: StateSchema,
    *,
    apply: bool = False,
    partition_key: str | None = None,
    app_ids: Collection[str] | None = None,
    progress: Progress | None = None,
) -> MigrationReport:
    """``migrate`` for an asynchronous persister."""
    work = _run(_core(persister), schema, apply, partition_key, app_ids, progress)
    call: Callable[[Coroutine[Any, Any, MigrationReport]], Any] | None = getattr(
        persister, "_call", None
    )
    if call is None:  # pragma: no cover - every AsyncPersister has it
        return await work
    result: MigrationReport = await call(work)
    return result


def _core(persister: Any) -> StorePersister:
    core = getattr(persister, "core", None)
    if not isinstance(core, StorePersister):
        raise UnsupportedOperationError(
            f"turnout migrate rewrites the records of turnout's persisters (SQLite, PostgreSQL, "
            f"MySQL, Redis, in-memory); {type(persister).__name__} keeps its own, so migrate "
            f"its states with your own code (turnout.core.versions.migrate_state)."
        )
    return core


async def _run(
    core: StorePersister,
    schema: StateSchema,
    apply: bool,
    partition_key: str | None,
    app_ids: Collection[str] | None,
    progress: Progress | None,
) -> MigrationReport:
    store = core.store
    apps = [
        app
        for app in await store.all_apps(partition_key)
        if app_ids is None or app.app_id in app_ids
    ]
    apps.sort(key=lambda a: (a.partition_key, a.app_id))
    # First look at every app: a record newer than this code refuses the run before any write.
    found: list[AppMigration] = []
    for app in apps:
        records = await store.records(app.partition_key, app.app_id)
        versions = _versions(records)
        found.append(_found(app, records, versions, schema.version))
    newer = [(a, max(a.versions)) for a in found if a.versions and max(a.versions) > schema.version]
    if newer:
        shown = "; ".join(f"app {a.app_id!r} (partition {a.partition_key!r}) has version {v}"
                          for a, v in newer[:5])  # fmt: skip
        raise SchemaVersionError(
            f"turnout migrate: {len(newer)} apps have records newer than version "
            f"{schema.version} ({shown}): they were written by newer code. Nothing was "
            f"written; migrate with the newer code's StateSchema."
        )
    done: list[AppMigration] = []
    for index, (app, entry) in enumerate(zip(apps, found, strict=True), 1):
        if apply and entry.old:
            await _rewrite(core, app, schema)
            entry = AppMigration(
                partition_key=entry.partition_key, app_id=entry.app_id, records=entry.records,
                old=entry.old, versions=entry.versions, rewritten=True,
            )  # fmt: skip
        done.append(entry)
        if progress is not None:
            progress(index, len(apps), entry.app_id)
    return MigrationReport(version=schema.version, applied=apply, apps=tuple(done))


def _found(
    app: AppRow, records: Sequence[StepRecord], versions: Sequence[int], current: int
) -> AppMigration:
    return AppMigration(
        partition_key=app.partition_key or None,
        app_id=app.app_id,
        records=len(records),
        old=sum(1 for v in versions if v < current),
        versions=tuple(sorted(set(versions))),
    )


def _versions(records: Sequence[StepRecord]) -> list[int]:
    """The schema version of each record (a delta's is its snapshot's), checking that every
    run of a snapshot and its deltas is whole; states are not decoded here."""
    out: list[int] = []
    for segment in _segments(records):
        first = segment[0]
        check_whole(segment, partition_key=first.partition_key or None, app_id=first.app_id)
        try:
            version = snapshot_version(first.payload)
        except ValueError as exc:
            raise SchemaVersionError(
                f"the snapshot of app {first.app_id!r} (partition {first.partition_key!r}) at "
                f"sequence id {first.sequence_id} is unreadable ({exc}); nothing was written."
            ) from exc
        out.extend(version for _ in segment)
    return out


def _segments(records: Sequence[StepRecord]) -> list[list[StepRecord]]:
    """``records`` cut before each snapshot (a leading delta stays first: ``check_whole``
    names it)."""
    segments: list[list[StepRecord]] = []
    for record in records:
        if record.kind != DELTA or not segments:
            segments.append([record])
        else:
            segments[-1].append(record)
    return segments


async def _rewrite(core: StorePersister, app: AppRow, schema: StateSchema) -> None:
    store = core.store
    records = await store.records(app.partition_key, app.app_id)
    typing = typing_system_for(schema.typing) if isinstance(schema.typing, type) else schema.typing
    validate = getattr(typing, "validate_state", None)
    rewritten: list[StepRecord] = []
    for segment in _segments(records):
        check_whole(segment, partition_key=app.partition_key or None, app_id=app.app_id)
        for record, state, version in core.codec.replay(segment):
            if version == schema.version:
                break  # a segment is in one version: its snapshot's
            source = (
                f"app {app.app_id!r} (partition {app.partition_key or None!r}) at sequence id "
                f"{record.sequence_id}"
            )
            migrated = State(migrate_state(state.get_all(), version, schema, source=source))
            if validate is not None:
                try:
                    validate(State(migrated, typing_system=typing))
                except Exception as exc:
                    raise SchemaVersionError(
                        f"the state of {source}, migrated from version {version} to "
                        f"{schema.version}, does not fit the schema's typing: {exc}. Nothing "
                        f"of this app was written; fix the migrations."
                    ) from exc
            rewritten.append(
                StepRecord(
                    partition_key=record.partition_key, app_id=record.app_id,
                    sequence_id=record.sequence_id, position=record.position,
                    status=record.status, kind=SNAPSHOT,
                    payload=core.codec.snapshot(migrated, schema.version),
                    created_at=record.created_at,
                )
            )  # fmt: skip
    # Newest first: were the writing stopped half-way, every sequence id would still rebuild
    # wholly from old records or from its own new snapshot.
    rewritten.reverse()
    rewrite_all = getattr(store, "rewrite_all", None)
    if rewrite_all is not None:
        await rewrite_all(rewritten)
        return
    for record in rewritten:
        await store.rewrite(record)
