"""A ``Store`` over SQL, written once for every SQL backend (SQLite, PostgreSQL, MySQL/MariaDB).

A backend provides a ``Dialect`` (its placeholders and column types) and a connection adapter
with three async methods; over a synchronous driver the adapter's methods never suspend, so the
same ``SQLStore`` serves sync persisters (driven without an event loop) and async ones.

Tables, named from a validated prefix (no injection through names):

* ``<prefix>_steps``: one row per step, keyed by (partition_key, app_id, sequence_id);
* ``<prefix>_apps``: one row per app, with the record it was forked from and the sequence id of
  its latest record (the row every save locks and advances, and ``delete`` removes first);
* ``<prefix>_meta``: the schema version (created on first use; ``setup`` migrates older tables);
* ``<prefix>_journal``: the journal of ``ApplicationContext.durable`` (``_sql_journal.py``).

Schema versions: 1 had no ``latest_sequence_id`` column (added, and filled from the steps, when
version 2 code first opens the tables).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from turnout.core._sql_journal import SQLJournal
from turnout.core.errors import ConcurrencyError, InvalidNameError, PersistenceError
from turnout.core.persistence import AppRow, ParentPointer, StepRecord

__all__ = ["Dialect", "SQLConnection", "SQLStore", "check_name"]

SCHEMA_VERSION = 2
T = TypeVar("T")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,40}")


def check_name(name: str, what: str = "table prefix") -> str:
    """``name`` if it is a safe SQL identifier (letters, digits, ``_``; at most 41 characters)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidNameError(
            f"{what} {name!r} is not allowed: use letters, digits and underscores, starting "
            f"with a letter or underscore, at most 41 characters (e.g. 'turnout')."
        )
    return name


@dataclass(frozen=True, kw_only=True, slots=True)
class Dialect:
    """What differs between SQL databases, for ``SQLStore``."""

    name: str
    placeholder: str  # "?" or "%s"
    key_type: str  # a type that can be part of a primary key
    text_type: str  # a type for long JSON text
    insert_ignore: str  # "INSERT OR IGNORE" / "INSERT IGNORE" / "" (then ON CONFLICT)
    on_conflict_nothing: str = ""  # " ON CONFLICT DO NOTHING" for PostgreSQL
    # Appended to the SELECT of the app row in a save: locks it until the transaction ends ("" for
    # SQLite, whose BEGIN IMMEDIATE already lets one writer in at a time).
    lock_row: str = " FOR UPDATE"
    # The database runs an UPDATE ... RETURNING inside a WITH feeding an INSERT (PostgreSQL):
    # a save that follows the app's latest record is then one statement in its transaction
    # instead of three (``SQLStore._advance``).
    one_statement_save: bool = False
    # One row if the table named by the parameter exists (compared in lower case: PostgreSQL
    # folds unquoted names), for ``is_initialized()``.
    table_exists: str = (
        "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() "
        "AND lower(table_name) = lower(?)"
    )


class SQLConnection(Protocol):
    """The adapter a backend provides over its driver's connection."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; return its rows (``[]`` for statements without rows)."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[None]:
        """Everything inside commits together or not at all (and is isolated from writers)."""
        ...

    def is_unique_violation(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the driver's duplicate-key error."""
        ...

    async def lock_setup(self) -> None:
        """Inside the setup transaction, before the tables are created: wait until no other
        connection is creating them (PostgreSQL and MySQL fail on concurrent ``CREATE TABLE IF
        NOT EXISTS``). A no-op where the transaction already serialises writers (SQLite)."""
        ...


class SQLStore(SQLJournal):
    """The ``Store`` of ``turnout.core.persistence`` over an ``SQLConnection``, and the
    ``JournalStore`` of ``turnout.core.journal``."""

    def __init__(self, connection: SQLConnection, dialect: Dialect, prefix: str = "turnout"):
        self.connection = connection
        self.dialect = dialect
        self.prefix = check_name(prefix)
        self.steps = f"{prefix}_steps"
        self.apps = f"{prefix}_apps"
        self.meta = f"{prefix}_meta"
        self._ready = False

    def _sql(self, text: str) -> str:
        return text.replace("?", self.dialect.placeholder)

    @property
    def _in(self) -> str:
        """`` in '<file>'`` for a connection to a file (SQLite), else ``""``: for messages."""
        path = getattr(self.connection, "path", None)
        return f" in {path!r}" if path else ""

    async def _run(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return await self.connection.execute(self._sql(text), params)
        except Exception as exc:
            if isinstance(exc, PersistenceError) or self.connection.is_unique_violation(exc):
                raise
            raise PersistenceError(
                f"{self.dialect.name} failed on the {self.prefix!r} tables{self._in}: "
                f"{type(exc).__name__}: {exc}. Records already saved are unchanged."
            ) from exc

    async def setup(self) -> None:
        """Create the tables if they are missing and check the schema version."""
        if self._ready:
            return
        key, text = self.dialect.key_type, self.dialect.text_type
        statements = [
            f"CREATE TABLE IF NOT EXISTS {self.meta} (name {key} NOT NULL PRIMARY KEY, "
            f"value {key} NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {self.apps} (partition_key {key} NOT NULL, "
            f"app_id {key} NOT NULL, created_at {key} NOT NULL, parent_app_id {key}, "
            f"parent_partition_key {key}, parent_sequence_id BIGINT, latest_sequence_id BIGINT, "
            f"PRIMARY KEY (partition_key, app_id))",
            f"CREATE TABLE IF NOT EXISTS {self.steps} (partition_key {key} NOT NULL, "
            f"app_id {key} NOT NULL, sequence_id BIGINT NOT NULL, position {key}, "
            f"status {key} NOT NULL, kind {key} NOT NULL, payload {text} NOT NULL, "
            f"created_at {key} NOT NULL, PRIMARY KEY (partition_key, app_id, sequence_id))",
            self.journal_table(),
        ]
        async with self.connection.transaction():
            await self.connection.lock_setup()
            for statement in statements:
                await self._run(statement)
            rows = await self._run(f"SELECT value FROM {self.meta} WHERE name = ?", ["schema"])
            if not rows:
                await self._run(
                    f"INSERT INTO {self.meta} (name, value) VALUES (?, ?)",
                    ["schema", str(SCHEMA_VERSION)],
                )
            else:
                version = self._version(rows[0][0])
                if version < SCHEMA_VERSION:
                    await self._migrate(version)
        self._ready = True

    async def initialized(self) -> bool:
        """Whether the tables exist (``setup`` created them, here or in another process)."""
        return self._ready or bool(await self._run(self.dialect.table_exists, [self.meta]))

    def _version(self, stored: Any) -> int:
        text = str(stored)
        if not text.isdigit():
            raise PersistenceError(
                f"the {self.prefix}_meta table{self._in} holds schema version {stored!r}, which "
                f"is not a version number: the tables are damaged or not turnout's. Restore them "
                f"from a backup, or use another table_name."
            )
        if int(text) > SCHEMA_VERSION:
            raise PersistenceError(
                f"the {self.prefix!r} tables{self._in} use schema version {text}, written by a "
                f"newer turnout than this one (which reads up to version {SCHEMA_VERSION}); "
                f"upgrade turnout (pip install -U turnout)."
            )
        return int(text)

    async def _migrate(self, version: int) -> None:
        """Bring version ``version`` tables to ``SCHEMA_VERSION`` (inside the setup transaction;
        MySQL commits each ALTER at once, which the setup lock keeps safe)."""
        if version < 2:
            await self._run(f"ALTER TABLE {self.apps} ADD COLUMN latest_sequence_id BIGINT")
            await self._run(
                f"UPDATE {self.apps} SET latest_sequence_id = (SELECT MAX(s.sequence_id) FROM "
                f"{self.steps} s WHERE s.partition_key = {self.apps}.partition_key AND "
                f"s.app_id = {self.apps}.app_id)"
            )
        await self._run(
            f"UPDATE {self.meta} SET value = ? WHERE name = ?", [str(SCHEMA_VERSION), "schema"]
        )

    async def insert(self, record: StepRecord, previous: int | None, app: AppRow | None) -> None:
        await self.setup()
        key = [record.partition_key, record.app_id]
        conflict = (record.partition_key, record.app_id, record.sequence_id)
        if app is None and previous is not None and self.dialect.one_statement_save:
            try:
                # In a transaction all the same: a connection found dropped at BEGIN is
                # replaced and nothing was written, which a lone write could not promise.
                async with self.connection.transaction():
                    saved = await self._advance(record, previous)
                if saved:
                    return
            except Exception as exc:
                if self.connection.is_unique_violation(exc):
                    raise ConcurrencyError(*conflict) from exc
                raise
            # Nothing written: the transaction below tells which conflict it is (or saves,
            # for an app row migrated without a latest sequence id).
        try:
            async with self.connection.transaction():
                if app is not None:
                    await self._insert_app(app)
                    if app.parent is not None and previous is None:  # a fork's first record
                        await self.journal_copy(app.parent, app.partition_key, app.app_id)
                # The app row is the lock every save of the app takes, and the row delete()
                # removes first: a save either sees the app deleted or finishes before the delete.
                rows = await self._run(
                    f"SELECT latest_sequence_id FROM {self.apps} WHERE partition_key = ? AND "
                    f"app_id = ?{self.dialect.lock_row}",
                    key,
                )
                if not rows:
                    raise ConcurrencyError(*conflict, deleted=True)
                latest = rows[0][0]
                if latest is None:  # an app row migrated without records
                    rows = await self._run(
                        f"SELECT MAX(sequence_id) FROM {self.steps} "
                        f"WHERE partition_key = ? AND app_id = ?",
                        key,
                    )
                    latest = rows[0][0] if rows else None
                latest = None if latest is None else int(latest)
                stale = latest is not None and latest >= record.sequence_id
                if stale or (previous is not None and latest != previous):
                    raise ConcurrencyError(*conflict)
                await self._run(
                    f"INSERT INTO {self.steps} (partition_key, app_id, sequence_id, position, "
                    f"status, kind, payload, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        record.partition_key,
                        record.app_id,
                        record.sequence_id,
                        record.position,
                        record.status,
                        record.kind,
                        record.payload,
                        record.created_at.isoformat(),
                    ],
                )
                await self._run(
                    f"UPDATE {self.apps} SET latest_sequence_id = ? "
                    f"WHERE partition_key = ? AND app_id = ?",
                    [record.sequence_id, *key],
                )
        except Exception as exc:
            if self.connection.is_unique_violation(exc):
                raise ConcurrencyError(*conflict) from exc
            raise

    async def _advance(self, record: StepRecord, previous: int) -> bool:
        """Save ``record`` if the app's latest sequence id is ``previous`` (and below the
        record's), in one atomic statement: the UPDATE locks the app row (a concurrent save or
        delete waits, and PostgreSQL re-checks the condition on the row it then finds) and the
        INSERT runs only if it moved the app's latest. Whether it saved."""
        rows = await self._run(
            f"WITH moved AS (UPDATE {self.apps} SET latest_sequence_id = ? "
            f"WHERE partition_key = ? AND app_id = ? AND latest_sequence_id = ? "
            f"AND latest_sequence_id < ? RETURNING 1) "
            f"INSERT INTO {self.steps} (partition_key, app_id, sequence_id, position, status, "
            f"kind, payload, created_at) SELECT ?, ?, ?, ?, ?, ?, ?, ? FROM moved RETURNING 1",
            [
                record.sequence_id, record.partition_key, record.app_id, previous,
                record.sequence_id, record.partition_key, record.app_id, record.sequence_id,
                record.position, record.status, record.kind, record.payload,
                record.created_at.isoformat(),
            ],
        )  # fmt: skip
        return bool(rows)

    async def _insert_app(self, app: AppRow) -> None:
        parent = app.parent
        await self._run(
            f"{self.dialect.insert_ignore} INTO {self.apps} (partition_key, app_id, created_at, "
            f"parent_app_id, parent_partition_key, parent_sequence_id) VALUES (?, ?, ?, ?, ?, ?)"
            f"{self.dialect.on_conflict_nothing}",
            [
                app.partition_key,
                app.app_id,
                app.created_at.isoformat(),
                parent.app_id if parent else None,
                parent.partition_key if parent else None,
                parent.sequence_id if parent else None,
            ],
        )

    async def chain(
        self, partition_key: str, app_id: str, sequence_id: int | None
    ) -> list[StepRecord]:
        await self.setup()
        where = f"FROM {self.steps} WHERE partition_key = ? AND app_id = ?"
        key = [partition_key, app_id]
        # One statement (one round trip, one snapshot of the table): the target (the latest
        # when none is given), back to the nearest snapshot at or before it.
        target, at = (f"(SELECT MAX(sequence_id) {where})", key) if sequence_id is None else (
            "?", [sequence_id]
        )  # fmt: skip
        rows = await self._run(
            f"SELECT {_COLUMNS} {where} AND sequence_id <= {target} AND sequence_id >= "
            f"COALESCE((SELECT MAX(sequence_id) {where} AND kind = ? AND sequence_id <= "
            f"{target}), 0) ORDER BY sequence_id",
            [*key, *at, *key, "snapshot", *at],
        )
        records = self._records(rows)
        if sequence_id is not None and (not records or records[-1].sequence_id != sequence_id):
            return []  # that sequence id is not stored
        return records

    def _records(self, rows: list[tuple[Any, ...]]) -> list[StepRecord]:
        return [self._parse(_record, row, self.steps) for row in rows]

    def _parse(self, parse: Callable[[tuple[Any, ...]], T], row: tuple[Any, ...], table: str) -> T:
        try:
            return parse(row)
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            raise PersistenceError(
                f"a row of the {table} table{self._in} is damaged (app id {row[1]!r}, partition "
                f"{row[0]!r}): {exc}. The other rows are intact: delete the app "
                f"(persister.delete({row[1]!r}, ...)) or repair the row."
            ) from exc

    async def app(self, partition_key: str, app_id: str) -> AppRow | None:
        await self.setup()
        rows = await self._run(
            f"SELECT {_APP_COLUMNS} FROM {self.apps} WHERE partition_key = ? AND app_id = ?",
            [partition_key, app_id],
        )
        return self._parse(_app, rows[0], self.apps) if rows else None

    async def app_ids(self, partition_key: str) -> list[str]:
        await self.setup()
        rows = await self._run(
            f"SELECT app_id FROM {self.apps} WHERE partition_key = ? "
            f"ORDER BY created_at DESC, app_id",
            [partition_key],
        )
        return [row[0] for row in rows]

    async def delete(self, partition_key: str | None, app_id: str) -> int:
        await self.setup()
        clause = "app_id = ?" + ("" if partition_key is None else " AND partition_key = ?")
        params = [app_id] if partition_key is None else [app_id, partition_key]
        async with self.connection.transaction():
            # The app rows first: that waits for a save in progress (it holds the row), and
            # makes every later save of the app fail instead of leaving orphan records.
            await self._run(f"DELETE FROM {self.apps} WHERE {clause}", params)
            rows = await self._run(f"SELECT COUNT(*) FROM {self.steps} WHERE {clause}", params)
            await self._run(f"DELETE FROM {self.steps} WHERE {clause}", params)
            await self.journal_delete(partition_key, app_id)
        return int(rows[0][0]) if rows else 0

    async def records(self, partition_key: str, app_id: str) -> list[StepRecord]:
        await self.setup()
        rows = await self._run(
            f"SELECT {_COLUMNS} FROM {self.steps} WHERE partition_key = ? AND app_id = ? "
            f"ORDER BY sequence_id",
            [partition_key, app_id],
        )
        return self._records(rows)

    async def rewrite(self, record: StepRecord) -> None:
        await self.rewrite_all([record])

    async def rewrite_all(self, records: Sequence[StepRecord]) -> None:
        """``rewrite`` each record, in order, in one transaction (``turnout migrate`` rewrites
        an app's records this way: all of them or none)."""
        await self.setup()
        async with self.connection.transaction():
            for record in records:
                await self._run(
                    f"UPDATE {self.steps} SET kind = ?, payload = ? "
                    f"WHERE partition_key = ? AND app_id = ? AND sequence_id = ?",
                    [
                        record.kind,
                        record.payload,
                        record.partition_key,
                        record.app_id,
                        record.sequence_id,
                    ],
                )

    async def remove(self, partition_key: str, app_id: str, sequence_ids: Sequence[int]) -> int:
        await self.setup()
        removed = 0
        ids = list(sequence_ids)
        async with self.connection.transaction():
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ", ".join("?" for _ in chunk)
                where = f"partition_key = ? AND app_id = ? AND sequence_id IN ({marks})"
                rows = await self._run(
                    f"SELECT COUNT(*) FROM {self.steps} WHERE {where}",
                    [partition_key, app_id, *chunk],
                )
                await self._run(
                    f"DELETE FROM {self.steps} WHERE {where}", [partition_key, app_id, *chunk]
                )
                removed += int(rows[0][0])
            await self.journal_remove(partition_key, app_id, ids)
        return removed

    async def all_apps(self, partition_key: str | None) -> list[AppRow]:
        await self.setup()
        if partition_key is None:
            rows = await self._run(f"SELECT {_APP_COLUMNS} FROM {self.apps}")
        else:
            rows = await self._run(
                f"SELECT {_APP_COLUMNS} FROM {self.apps} WHERE partition_key = ?", [partition_key]
            )
        return [self._parse(_app, row, self.apps) for row in rows]


_COLUMNS = "partition_key, app_id, sequence_id, position, status, kind, payload, created_at"
_APP_COLUMNS = (
    "partition_key, app_id, created_at, parent_app_id, parent_partition_key, parent_sequence_id, "
    "latest_sequence_id"
)


def _time(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str):
        raise ValueError(f"created_at {value!r} is not a time")
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"created_at {value!r} is not an ISO 8601 time") from None


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
        raise ValueError(f"{what} {value!r} is not a non-negative integer")
    return int(value)


def _record(row: tuple[Any, ...]) -> StepRecord:
    pk, app_id, sequence_id, position, status, kind, payload, created_at = row
    if isinstance(payload, (bytes, bytearray)):
        payload = payload.decode("utf-8")
    return StepRecord(
        partition_key=pk,
        app_id=app_id,
        sequence_id=_integer(sequence_id, "sequence_id"),
        position=position,
        status=status,
        kind=kind,
        payload=payload,
        created_at=_time(created_at),
    )


def _app(row: tuple[Any, ...]) -> AppRow:
    pk, app_id, created_at, parent_app, parent_pk, parent_seq, latest = row
    parent = None
    if parent_app is not None:
        parent = ParentPointer(
            app_id=parent_app,
            partition_key=parent_pk,
            sequence_id=None if parent_seq is None else _integer(parent_seq, "parent_sequence_id"),
        )
    return AppRow(
        partition_key=pk,
        app_id=app_id,
        created_at=_time(created_at),
        parent=parent,
        latest_sequence_id=None if latest is None else _integer(latest, "latest_sequence_id"),
    )
