"""The journal half of ``SQLStore``: the ``JournalStore`` of ``turnout.core.journal`` over SQL.

One table, ``<prefix>_journal``, created with the others (schema version unchanged: older code
never reads it, and ``CREATE TABLE IF NOT EXISTS`` adds it to older tables). A row is one
journaled call, keyed by (partition_key, app_id, sequence_id, call_index).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from turnout.core.errors import ConcurrencyError
from turnout.core.persistence import ParentPointer

if TYPE_CHECKING:
    from turnout.core.journal import JournalEntry
    from turnout.core.sql import Dialect, SQLConnection

__all__ = ["SQLJournal"]

T = TypeVar("T")
_COLUMNS = "partition_key, app_id, sequence_id, call_index, call_key, payload, created_at"


class SQLJournal:
    """Mixed into ``SQLStore``, which provides the connection, the dialect and ``_run``."""

    connection: SQLConnection
    dialect: Dialect
    prefix: str

    if TYPE_CHECKING:  # SQLStore's

        async def _run(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

        async def setup(self) -> None: ...

        def _parse(
            self, parse: Callable[[tuple[Any, ...]], T], row: tuple[Any, ...], table: str
        ) -> T: ...

    @property
    def journal(self) -> str:
        return f"{self.prefix}_journal"

    def journal_table(self) -> str:
        """The statement creating the journal table."""
        key, text = self.dialect.key_type, self.dialect.text_type
        return (
            f"CREATE TABLE IF NOT EXISTS {self.journal} (partition_key {key} NOT NULL, "
            f"app_id {key} NOT NULL, sequence_id BIGINT NOT NULL, call_index BIGINT NOT NULL, "
            f"call_key {text} NOT NULL, payload {text} NOT NULL, created_at {key} NOT NULL, "
            f"PRIMARY KEY (partition_key, app_id, sequence_id, call_index))"
        )

    async def journal_record(self, entry: JournalEntry) -> None:
        await self.setup()
        try:
            # One statement outside a transaction: committed (autocommit) when it returns.
            await self._run(
                f"INSERT INTO {self.journal} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                _row(entry),
            )
        except Exception as exc:
            if self.connection.is_unique_violation(exc):
                raise ConcurrencyError(
                    entry.partition_key, entry.app_id, entry.sequence_id
                ) from exc
            raise

    async def journal_entries(
        self, partition_key: str, app_id: str, sequence_id: int
    ) -> list[JournalEntry]:
        await self.setup()
        rows = await self._run(
            f"SELECT {_COLUMNS} FROM {self.journal} WHERE partition_key = ? AND app_id = ? "
            f"AND sequence_id = ? ORDER BY call_index",
            [partition_key, app_id, sequence_id],
        )
        return [self._parse(_entry, row, self.journal) for row in rows]

    async def journal_remove(
        self, partition_key: str, app_id: str, sequence_ids: Sequence[int]
    ) -> None:
        ids = list(sequence_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            await self._run(
                f"DELETE FROM {self.journal} WHERE partition_key = ? AND app_id = ? AND "
                f"sequence_id IN ({marks})",
                [partition_key, app_id, *chunk],
            )

    async def journal_delete(self, partition_key: str | None, app_id: str) -> None:
        clause = "app_id = ?" + ("" if partition_key is None else " AND partition_key = ?")
        params = [app_id] if partition_key is None else [app_id, partition_key]
        await self._run(f"DELETE FROM {self.journal} WHERE {clause}", params)

    async def journal_copy(self, parent: ParentPointer, partition_key: str, app_id: str) -> None:
        where = "partition_key = ? AND app_id = ?"
        params: list[Any] = [parent.partition_key or "", parent.app_id]
        if parent.sequence_id is not None:
            where += " AND sequence_id <= ?"
            params.append(parent.sequence_id)
        rows = await self._run(f"SELECT {_COLUMNS} FROM {self.journal} WHERE {where}", params)
        for row in rows:
            await self._run(
                f"{self.dialect.insert_ignore} INTO {self.journal} ({_COLUMNS}) VALUES "
                f"(?, ?, ?, ?, ?, ?, ?){self.dialect.on_conflict_nothing}",
                [partition_key, app_id, *row[2:]],
            )


def _row(entry: JournalEntry) -> list[Any]:
    return [
        entry.partition_key,
        entry.app_id,
        entry.sequence_id,
        entry.index,
        entry.key,
        entry.payload,
        entry.created_at.isoformat(),
    ]


def _entry(row: tuple[Any, ...]) -> JournalEntry:
    from turnout.core.journal import JournalEntry

    pk, app_id, sequence_id, index, key, payload, created_at = row
    if isinstance(payload, (bytes, bytearray)):
        payload = payload.decode("utf-8")
    if isinstance(created_at, str):
        created_at = dt.datetime.fromisoformat(created_at)
    if not isinstance(payload, str) or not isinstance(key, str):
        raise ValueError("the call key and the payload must be text")
    return JournalEntry(
        partition_key=pk,
        app_id=app_id,
        sequence_id=int(sequence_id),
        index=int(index),
        key=key,
        payload=payload,
        created_at=created_at,
    )
