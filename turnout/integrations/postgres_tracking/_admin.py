"""One project of a PostgreSQL tracking store as a ``trackadmin.TrackingStore``: prune, copy.

An app is its ``<prefix>_records`` rows and its ``<prefix>_apps`` row; prune deletes both in one
transaction. A copy inserts rows the way the background writer does (``_writer``): positions on
from the app's last one, the columns SQL searches derived from the parsed payload, and the
vouches its rule gives (``_writer._vouch``), since the copy writes every row of the app itself,
in order. One app is one transaction, so an interrupted copy leaves whole apps only.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import psycopg

from turnout.core.errors import PersistenceError, TrackingAdminError
from turnout.core.trackadmin import AppActivity, StoredApp
from turnout.core.tracklog import AppRecord, EndRecord, Record
from turnout.integrations.postgres_tracking._reader import Tables, parse_payload
from turnout.integrations.postgres_tracking._writer import Row, _App, _vouch, ensure_tables

__all__ = ["PostgresTrackingStore"]


class PostgresTrackingStore:
    """One project of the tables a ``PostgresTracker`` writes, for ``turnout prune`` and
    ``turnout tracking copy`` (``turnout.core.trackadmin``); a context manager.

    Args:
        dsn: a connection string.
        project: the project's name.
        table_prefix: the tables are ``<prefix>_records`` and ``<prefix>_apps``.
    """

    def __init__(self, dsn: str, *, project: str, table_prefix: str = "turnout_tracking") -> None:
        from turnout.core.sql import check_name

        self.project = project
        self.table_prefix = check_name(table_prefix)
        self._tables = Tables(prefix=table_prefix, project=project)
        try:
            self._conn: Any = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
            ensure_tables(self._conn, self._tables)
        except psycopg.OperationalError as exc:
            raise PersistenceError(
                f"cannot reach the PostgreSQL tracking store ({self._tables.records}): {exc}. "
                f"Check that the server named by the connection string is up."
            ) from exc

    def __enter__(self) -> PostgresTrackingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    def projects(self) -> list[str]:
        """The projects with at least one app in these tables."""
        rows = self._conn.execute(f"SELECT DISTINCT project FROM {self._tables.apps}").fetchall()
        return sorted(row[0] for row in rows)

    def describe(self) -> str:
        return f"PostgreSQL {self._tables.records} (project {self.project!r})"

    def activity(self) -> list[AppActivity]:
        t = self._tables
        rows = self._conn.execute(
            f"SELECT a.app_id, a.partition_key, extract(epoch FROM a.updated_at)::float8, "
            f"count(r.id), coalesce(sum(octet_length(r.payload)), 0) FROM {t.apps} a "
            f"LEFT JOIN {t.records} r ON r.project = a.project AND r.app_id = a.app_id "
            f"WHERE a.project = %s GROUP BY a.app_id, a.partition_key, a.updated_at "
            f"ORDER BY a.updated_at DESC, a.app_id",
            [self.project],
        ).fetchall()
        return [
            AppActivity(
                app_id=app_id, partition_key=key, last_activity=at, size=int(size), rows=count
            )
            for app_id, key, at, count, size in rows
        ]

    def _rows(self, app_id: str) -> list[tuple[int, str, int]]:
        where, params = self._tables.where(app_id)
        sql = f"SELECT pos, payload, version FROM {self._tables.records} WHERE {where} ORDER BY pos"
        return list(self._conn.execute(sql, params).fetchall())

    def read(self, app_id: str) -> StoredApp | None:
        rows = self._rows(app_id)
        if not rows:
            return None
        lines: list[str] = []
        records: list[Record] = []
        bad = 0
        for _pos, payload, _version in rows:
            parsed = parse_payload(payload)
            if parsed is None:
                bad += 1
                continue
            lines.append(payload)
            records.append(parsed[1])
        first = next((r for r in records if isinstance(r, AppRecord)), None)
        where, params = self._tables.where(app_id)
        updated = self._conn.execute(
            f"SELECT extract(epoch FROM updated_at)::float8 FROM {self._tables.apps} WHERE {where}",
            params,
        ).fetchone()
        return StoredApp(
            app_id=app_id, partition_key=None if first is None else first.partition_key,
            version=max(row[2] for row in rows), lines=tuple(lines), records=tuple(records),
            bad_lines=bad, last_activity=None if updated is None else updated[0],
        )  # fmt: skip

    def write(self, app: StoredApp, *, have: int) -> None:
        if app.version < 2:
            raise TrackingAdminError(
                f"app {app.app_id!r} is a format version {app.version} log (lines without "
                f"checksums); a PostgreSQL tracking store holds checksummed lines only. Track "
                f"it anew, or keep it in a tracking directory."
            )
        t = self._tables
        writer = int.from_bytes(os.urandom(8), "big") >> 1
        with self._conn.transaction():
            existing = self._rows(app.app_id)
            if len(existing) != have:
                raise TrackingAdminError(
                    f"app {app.app_id!r} changed in {self.describe()} during the copy "
                    f"({len(existing)} rows, {have} expected); run the copy again"
                )
            state = _App(next_pos=0)
            run: str | None = None
            key = app.partition_key
            params = []
            for i, (line, record) in enumerate(zip(app.lines, app.records, strict=True)):
                if isinstance(record, AppRecord):
                    run, seq = record.run, record.sequence_id
                else:
                    seq = getattr(record, "seq", None)
                row_run = record.run if isinstance(record, EndRecord) else run
                finished = isinstance(record, EndRecord) and record.finished
                snapshot = isinstance(record, EndRecord) and record.has_snapshot
                row: Row = (
                    app.app_id, key, row_run, seq, record.KIND, finished, snapshot, app.version,
                    line, getattr(record, "time", 0.0),
                )  # fmt: skip
                pos = existing[i][0] if i < have else state.next_pos
                vouch = _vouch(state, pos, row)
                if i < have:
                    continue
                params.append(
                    (
                        t.project, app.app_id, pos, key, row_run, seq, record.KIND, finished,
                        snapshot, vouch, app.version, writer, i, line, _stamp(row[9]),
                    )
                )  # fmt: skip
            times = [float(getattr(r, "time", 0.0)) for r in app.records]
            last = max(times) if app.last_activity is None else app.last_activity
            with self._conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO {t.records} (project, app_id, pos, partition_key, run, seq, "
                    f"kind, finished, snapshot, vouch, version, writer, n, payload, created_at) "
                    f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    params,
                )
                cur.execute(
                    f"INSERT INTO {t.apps} AS a (project, app_id, partition_key, created_at, "
                    f"updated_at) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (project, app_id) DO "
                    f"UPDATE SET updated_at = GREATEST(a.updated_at, EXCLUDED.updated_at), "
                    f"partition_key = COALESCE(EXCLUDED.partition_key, a.partition_key)",
                    [t.project, app.app_id, key, _stamp(min(times)), _stamp(last)],
                )

    def delete(self, app_id: str) -> None:
        t = self._tables
        where, params = t.where(app_id)
        with self._conn.transaction():
            self._conn.execute(f"DELETE FROM {t.records} WHERE {where}", params)
            self._conn.execute(f"DELETE FROM {t.apps} WHERE {where}", params)


def _stamp(at: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(at, dt.UTC)
