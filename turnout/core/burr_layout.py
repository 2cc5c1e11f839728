"""Reading what Burr's SQL persisters wrote, so a migrated application resumes where it was.

Burr keeps one table, named by its ``table_name`` (``burr_state`` by default), with one row per
step: ``partition_key`` (``""`` for none), ``app_id``, ``sequence_id``, ``position``,
``status``, ``state`` (the whole state as JSON, with Burr's control keys ``__SEQUENCE_ID`` and
``__PRIOR_STEP`` inside it) and ``created_at``. turnout's own tables are ``<prefix>_steps``,
``<prefix>_apps`` and ``<prefix>_meta``, so a table named exactly ``<prefix>`` with those
columns is Burr's.

``BurrReadingPersister`` puts that table behind turnout's rules, read-only: a load that finds
nothing in turnout's tables falls back to Burr's rows; ``list_app_ids`` lists both; the first
save of an app resumed from Burr's rows is a full snapshot in turnout's tables (Burr's rows are
never changed), after which turnout's records take over. ``delete`` and ``prune`` touch
turnout's tables only.

Values Burr tagged with ``__burr_serde__`` (pydantic models, LangChain messages, pickles) are
decoded by the decoder the loading process registered for their key
(``@turnout.core.serde.deserializer.register(key)``, Burr's API) and fields by their
``register_field_serde`` pair; a tag with no registered decoder names a class to build from stored
data, which turnout never does, so such values load as the stored dicts, with one
``PersistenceWarning`` per load naming where they are.
"""

from __future__ import annotations

import datetime as dt
import json
import warnings
from collections.abc import Sequence
from typing import Any, Protocol

from turnout.core._burr_serde import KEY as BURR_SERDE_KEY
from turnout.core._burr_serde import decode_registered
from turnout.core.errors import (
    ConcurrencyError,
    PersistenceError,
    PersistenceWarning,
    SerdeError,
)
from turnout.core.persistence import PersistedStateData, Status, StorePersister
from turnout.core.sql import Dialect, SQLConnection
from turnout.core.state import CONTROL_KEYS, Change, State

__all__ = [
    "BURR_CONTROL_KEYS",
    "BURR_DEFAULT_TABLE",
    "BurrReadingPersister",
    "BurrSource",
    "BurrTable",
    "burr_record",
    "burr_state",
]

BURR_CONTROL_KEYS = CONTROL_KEYS  # the keys Burr stores in its states; turnout computes them
_COLUMNS = "position, state, sequence_id, status, created_at"
# Burr's PostgreSQL persister stores a None partition key as NULL, its SQLite one as "".
_PARTITION = "(partition_key = ? OR (partition_key IS NULL AND CAST(? AS TEXT) = ''))"


def burr_state(stored: Any, *, where: str) -> State:
    """The state of one of Burr's records (JSON text, or the decoded JSON of a ``JSONB``
    column), without Burr's control keys."""
    data = json.loads(stored) if isinstance(stored, (str, bytes)) else stored
    if not isinstance(data, dict):
        raise PersistenceError(
            f"the Burr record {where} holds {type(data).__name__} {str(data)[:80]!r} where a "
            f"state (a JSON object) belongs: the row is damaged or not Burr's. Repair or remove "
            f"the row; the other records still load."
        )
    try:
        state = decode_registered(
            {key: value for key, value in data.items() if key not in BURR_CONTROL_KEYS}
        )
    except SerdeError as exc:
        raise PersistenceError(
            f"the Burr record {where} could not be decoded: {exc}. The row is damaged, or a "
            f"decoder registered for it cannot read it; repair or remove the row (the other "
            f"records still load)."
        ) from exc
    tagged = sorted(_tagged(state, "$"))
    if tagged:
        shown = ", ".join(f"{path} ({tag})" for path, tag in tagged[:5])
        more = f" and {len(tagged) - 5} more" if len(tagged) > 5 else ""
        warnings.warn(
            f"the Burr record {where} holds values Burr's serde tagged: {shown}{more}. turnout "
            f"loaded them as the stored dicts; rebuild them in your action (e.g. "
            f"MyModel.model_validate(value)) or convert the record.",
            PersistenceWarning,
            stacklevel=4,
        )
    return State(state)


def _tagged(value: Any, path: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if isinstance(value, dict):
        if BURR_SERDE_KEY in value:
            return [(path, str(value[BURR_SERDE_KEY]))]
        for key, item in value.items():
            found += _tagged(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _tagged(item, f"{path}[{index}]")
    return found


def burr_time(value: Any) -> dt.datetime:
    """``created_at`` of a Burr row (SQLite's ``CURRENT_TIMESTAMP`` text, or a driver's naive
    ``datetime``; both UTC) as an aware time."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return dt.datetime.fromtimestamp(0, dt.UTC)
    if not isinstance(value, dt.datetime):
        return dt.datetime.fromtimestamp(0, dt.UTC)
    return value if value.utcoffset() is not None else value.replace(tzinfo=dt.UTC)


class BurrSource(Protocol):
    """Where Burr's records are read from (a SQL table, Redis keys); partition keys use ``""``
    for none."""

    async def load(
        self, partition_key: str, app_id: str, sequence_id: int | None
    ) -> PersistedStateData | None: ...

    async def app_ids(self, partition_key: str) -> list[str]: ...


def burr_record(
    *,
    partition_key: str,
    app_id: str,
    sequence_id: Any,
    position: Any,
    stored_state: Any,
    status: Any,
    created_at: Any,
    source: str,
) -> PersistedStateData:
    """One of Burr's records as turnout's ``PersistedStateData`` (``source`` names where it was
    read, for messages)."""
    where = (
        f"of app {app_id!r} (partition {partition_key or None!r}) at sequence id {sequence_id} "
        f"in {source}"
    )
    return PersistedStateData(
        partition_key=partition_key or None,
        app_id=app_id,
        sequence_id=int(sequence_id),
        position=position,
        state=burr_state(stored_state, where=where),
        created_at=burr_time(created_at),
        status=status,
    )


BURR_DEFAULT_TABLE = "burr_state"


class BurrTable:
    """Burr's state table, read through the connection of a SQL persister.

    ``table`` is the persister's ``table_name``; when that names no table of Burr's layout,
    ``fallback`` (Burr's default ``burr_state``, given by persisters left at turnout's default
    prefix) is tried, so ``SQLitePersister("burr.db")`` finds what Burr's
    ``SQLitePersister("burr.db")`` wrote.
    """

    def __init__(
        self,
        connection: SQLConnection,
        dialect: Dialect,
        table: str,
        *,
        fallback: str | None = None,
    ) -> None:
        self.connection = connection
        self.dialect = dialect
        self.table = table  # validated by the persister (check_name); fallback is a constant
        self._candidates = [table] + ([fallback] if fallback and fallback != table else [])
        self._present: bool | None = None

    async def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        text = sql.replace("?", self.dialect.placeholder)
        try:
            return await self.connection.execute(text, params)
        except PersistenceError:
            raise
        except Exception as exc:
            raise PersistenceError(
                f"{self.dialect.name} failed reading Burr's table {self.table!r}: "
                f"{type(exc).__name__}: {exc}. Nothing was changed."
            ) from exc

    async def present(self) -> bool:
        """Whether the table exists and has Burr's columns (checked once)."""
        if self._present is None:
            self._present = False
            for name in self._candidates:
                self.table = name
                exists = await self._rows(self.dialect.table_exists, [name])
                if exists and await self._has_columns():
                    self._present = True
                    break
            else:
                self.table = self._candidates[0]
        return self._present

    async def _has_columns(self) -> bool:
        try:
            await self.connection.execute(
                f"SELECT partition_key, app_id, {_COLUMNS} FROM {self.table} WHERE 1 = 0", ()
            )
        except Exception:  # a table of that name with other columns: not Burr's
            return False
        return True

    async def load(
        self, partition_key: str, app_id: str, sequence_id: int | None
    ) -> PersistedStateData | None:
        if not await self.present():
            return None
        query = f"SELECT {_COLUMNS} FROM {self.table} WHERE {_PARTITION} AND app_id = ?"
        params: list[Any] = [partition_key, partition_key, app_id]
        if sequence_id is None:
            query += " ORDER BY sequence_id DESC LIMIT 1"
        else:
            query += " AND sequence_id = ? ORDER BY created_at DESC LIMIT 1"
            params.append(sequence_id)
        rows = await self._rows(query, params)
        if not rows:
            return None
        position, stored, number, status, created_at = rows[0]
        return burr_record(
            partition_key=partition_key,
            app_id=app_id,
            sequence_id=number,
            position=position,
            stored_state=stored,
            status=status,
            created_at=created_at,
            source=f"table {self.table!r}",
        )

    async def app_ids(self, partition_key: str) -> list[str]:
        if not await self.present():
            return []
        rows = await self._rows(
            f"SELECT app_id, MAX(created_at) AS latest FROM {self.table} WHERE {_PARTITION} "
            f"GROUP BY app_id ORDER BY latest DESC, app_id",
            [partition_key, partition_key],
        )
        return [row[0] for row in rows]


class BurrReadingPersister(StorePersister):
    """``StorePersister`` that also reads Burr's table (see the module docstring)."""

    def __init__(self, *args: Any, burr: BurrSource, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.burr = burr
        self._resumed: set[tuple[str, str]] = set()

    async def load(
        self, partition_key: str | None, app_id: str, sequence_id: int | None = None
    ) -> PersistedStateData | None:
        found = await super().load(partition_key, app_id, sequence_id)
        if found is not None:
            return found
        record = await self.burr.load(partition_key or "", app_id, sequence_id)
        if record is not None and (
            sequence_id is None or sequence_id == await self._latest(partition_key, app_id)
        ):
            self._resumed.add((partition_key or "", app_id))
        return record

    async def _latest(self, partition_key: str | None, app_id: str) -> int | None:
        latest = await self.burr.load(partition_key or "", app_id, None)
        return None if latest is None else latest.sequence_id

    async def list_app_ids(self, partition_key: str | None) -> list[str]:
        ours = await super().list_app_ids(partition_key)
        theirs = await self.burr.app_ids(partition_key or "")
        return ours + [app_id for app_id in theirs if app_id not in ours]

    async def save(
        self,
        partition_key: str | None,
        app_id: str,
        sequence_id: int,
        position: str | None,
        state: State,
        status: Status,
        *,
        changes: Sequence[Change] | None = None,
        previous_sequence_id: int | None = None,
        parent: Any = None,
        first: bool = False,
        schema_version: int = 1,
    ) -> None:
        key = (partition_key or "", app_id)
        if key in self._resumed:
            # The record this app resumed from is Burr's: turnout's tables have no row for the
            # app yet, so this save starts its history there, as a full snapshot.
            changes, previous_sequence_id, first = None, None, True
        try:
            await super().save(
                partition_key,
                app_id,
                sequence_id,
                position,
                state,
                status,
                changes=changes,
                previous_sequence_id=previous_sequence_id,
                parent=parent,
                first=first,
                schema_version=schema_version,
            )
        except ConcurrencyError as exc:
            # An app resumed from one of Burr's older records (not its latest) has no row in
            # turnout's tables: the store calls that "deleted", but the truth is that Burr's
            # history goes on past this sequence id.
            if exc.deleted and await self.burr.load(key[0], app_id, None) is not None:
                raise ConcurrencyError(partition_key, app_id, sequence_id) from None
            raise
        self._resumed.discard(key)
