"""Annotations in PostgreSQL: ``PostgresAnnotations``, a ``<prefix>_annotations`` table.

The table is created on first use (``CREATE TABLE IF NOT EXISTS``, under an advisory lock):
the tracker's own tables are not touched. One row per annotation; the row's ``body`` holds
``Annotation.to_json()`` and is checked again by ``Annotation.from_json`` when read (a row
that fails is skipped and counted), so a row written by hand cannot smuggle in anything the
UI would not accept from a form.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from typing import Any

import psycopg

from turnout.core.errors import PersistenceError
from turnout.core.sql import check_name
from turnout.core.trackannotations import (
    EVERY_ANNOTATION,
    Annotation,
    AnnotationError,
    AnnotationFields,
    AnnotationQuery,
    select_annotations,
)

__all__ = ["PostgresAnnotations"]

_MAX_ROW = 1_000_000  # bytes of a stored row's body (a valid one is at most ~150 kB)
_SETUP_LOCK = 0x7475726E616E6E  # pg_advisory_xact_lock key of the annotations table


class PostgresAnnotations:
    """The annotations of one table prefix's tracking store; an ``AnnotationStore``.

    Args:
        dsn: a PostgreSQL connection string.
        table_prefix: the tracker's ``table_prefix`` (the table is ``<prefix>_annotations``).
    """

    def __init__(self, dsn: str, *, table_prefix: str = "turnout_tracking") -> None:
        self.dsn = dsn
        self.table = f"{check_name(table_prefix)}_annotations"
        self._lock = threading.Lock()
        self._held: list[Any] = [None]
        weakref.finalize(self, _close, self._held)
        self._refused: dict[str, int] = {}  # by project: rows refused by the last list()

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        with self._lock:
            try:
                if self._held[0] is None or self._held[0].closed:
                    conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)
                    self._held[0] = conn
                    with conn.transaction():
                        conn.execute("SELECT pg_advisory_xact_lock(%s)", [_SETUP_LOCK])
                        conn.execute(
                            f"CREATE TABLE IF NOT EXISTS {self.table} ("
                            "id TEXT PRIMARY KEY, project TEXT NOT NULL, app_id TEXT NOT NULL, "
                            "seq INTEGER NOT NULL, body JSONB NOT NULL, "
                            "updated DOUBLE PRECISION NOT NULL)"
                        )
                        conn.execute(
                            f"CREATE INDEX IF NOT EXISTS {self.table}_project "
                            f"ON {self.table} (project, app_id, seq)"
                        )
                yield self._held[0]
            except psycopg.OperationalError as exc:
                _close(self._held)
                raise PersistenceError(
                    f"cannot reach the annotations table {self.table} in PostgreSQL: {exc}. "
                    "Check that the server named by --store is up."
                ) from exc

    def refused(self, project: str) -> int:
        """How many rows of ``project`` the last ``list`` refused (malformed or too big)."""
        return self._refused.get(project, 0)

    def close(self) -> None:
        with self._lock:
            _close(self._held)

    def list(self, project: str, query: AnnotationQuery = EVERY_ANNOTATION) -> list[Annotation]:
        # A row too big to be an annotation is not even fetched (it counts as refused).
        sql = (
            f"SELECT CASE WHEN octet_length(body::text) <= %s THEN body::text END "
            f"FROM {self.table} WHERE project = %s"
        )
        params: list[Any] = [_MAX_ROW, project]
        if query.app_id is not None:
            sql += " AND app_id = %s"
            params.append(query.app_id)
        if query.seq is not None:
            sql += " AND seq = %s"
            params.append(query.seq)
        with self._connection() as conn:
            rows = conn.execute(sql, params).fetchall()
        found, refused = [], 0
        for (body,) in rows:
            annotation = _parse(body, project)
            if annotation is None:
                refused += 1
            else:
                found.append(annotation)
        if query.app_id is None:
            self._refused[project] = refused
        return select_annotations(found, query)

    def get(self, project: str, annotation_id: str) -> Annotation:
        with self._connection() as conn:
            row = conn.execute(
                f"SELECT CASE WHEN octet_length(body::text) <= %s THEN body::text END "
                f"FROM {self.table} WHERE project = %s AND id = %s",
                [_MAX_ROW, project, annotation_id],
            ).fetchone()
        annotation = None if row is None else _parse(row[0], project)
        if annotation is None:
            raise KeyError(f"project {project!r} has no annotation {annotation_id!r}")
        return annotation

    def add(self, annotation: Annotation) -> Annotation:
        with self._connection() as conn:
            conn.execute(
                f"INSERT INTO {self.table} (id, project, app_id, seq, body, updated) "
                "VALUES (%s, %s, %s, %s, %s::jsonb, %s)",
                [
                    annotation.id,
                    annotation.project,
                    annotation.app_id,
                    annotation.seq,
                    json.dumps(annotation.to_json()),
                    annotation.updated,
                ],
            )
        return annotation

    def update(self, project: str, annotation_id: str, fields: AnnotationFields) -> Annotation:
        changed = replace(self.get(project, annotation_id), fields=fields, updated=time.time())
        with self._connection() as conn:
            done = conn.execute(
                f"UPDATE {self.table} SET body = %s::jsonb, updated = %s "
                "WHERE project = %s AND id = %s",
                [json.dumps(changed.to_json()), changed.updated, project, annotation_id],
            )
        if done.rowcount != 1:
            raise KeyError(f"project {project!r} has no annotation {annotation_id!r}")
        return changed

    def delete(self, project: str, annotation_id: str) -> Annotation:
        gone = self.get(project, annotation_id)
        with self._connection() as conn:
            conn.execute(
                f"DELETE FROM {self.table} WHERE project = %s AND id = %s",
                [project, annotation_id],
            )
        return gone


def _parse(body: str | None, project: str) -> Annotation | None:
    if body is None:
        return None
    try:
        annotation = Annotation.from_json(json.loads(body))
    except (AnnotationError, ValueError, RecursionError):
        return None
    return annotation if annotation.project == project else None


def _close(held: list[Any]) -> None:
    conn, held[0] = held[0], None
    if conn is not None:
        with suppress(psycopg.Error):
            conn.close()
