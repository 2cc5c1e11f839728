"""A PostgreSQL tracking store as a tracking UI reads it: ``PostgresSource``.

``PostgresSource(dsn, table_prefix=...)`` is a ``turnout.core.tracksource.TrackingSource``
over the tables ``PostgresTracker`` writes, for every project in them:

- ``projects()`` and ``app_page()`` are queries on ``<prefix>_apps``, whose ``ui_*`` summary
  columns a trigger keeps current (``_reader.ui_schema``; the source adds it to tables created
  before it existed): a page of a 10,000-application project reads 50 rows, plus the child
  rows of those 50. An application written before the trigger existed is summarised from its
  rows (``ui_whole`` is false).
- ``read()`` gives an application's rows after a position (``_reader.read_records``), so the
  UI's ``AppLog`` reads them as it reads a file: incrementally.
- Changes are pushed: a listener thread ``LISTEN``\\ s on the tables' channel (the trigger
  ``NOTIFY``\\ s every inserted row's project and app id) and bumps a ``ChangeCounter``;
  ``wait`` returns when a notification arrives, and a log that was not notified since it was
  last read is not queried again (``app_log``). While the listener is disconnected, every
  read queries (and it reconnects).

Nothing is decoded: rows are parsed by ``tracklog`` and values stay in their stored JSON form.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from turnout.core.errors import PersistenceError
from turnout.core.sql import check_name
from turnout.core.tracklog import (
    FORMAT_VERSION,
    AppRecord,
    ChildRecord,
    FormatRecord,
    LogChunk,
)
from turnout.core.tracksource import (
    ALL_FIRST_PAGE,
    STATUSES,
    AppPage,
    AppQuery,
    AppSummary,
    ChangeCounter,
    ChildLink,
    ProjectSummary,
)
from turnout.core.trackview import AppLog
from turnout.integrations.postgres_tracking._annotations import PostgresAnnotations
from turnout.integrations.postgres_tracking._reader import (
    Tables,
    parse_payload,
    read_records,
    ui_schema,
)

__all__ = ["PostgresSource"]

_SETUP_LOCK = 0x7475726E6F7569  # pg_advisory_xact_lock key of the UI's schema additions
_LISTEN_RETRY = 1.0  # seconds between attempts to reconnect the listener
_KEPT = 64  # application logs kept parsed


class PostgresSource:
    """The tables of one prefix as a tracking source; see the module docstring.

    Args:
        dsn: a PostgreSQL connection string (``postgresql://user@host:5432/db``).
        table_prefix: the tracker's ``table_prefix`` (tables ``<prefix>_records`` and
            ``<prefix>_apps``).
        listen: follow the store's notifications (``False``: every read queries).
        long_app: an application of more rows than this is read from its tail first
            (``AppLog.open_window``), ``window`` rows of it, or fewer when their stored
            payloads pass ``window_bytes`` (big states make big snapshot rows).
    """

    pushes = True

    def __init__(
        self,
        dsn: str,
        *,
        table_prefix: str = "turnout_tracking",
        listen: bool = True,
        long_app: int = 40_000,
        window: int = 8_000,
        window_bytes: int = 4_000_000,
    ) -> None:
        self.dsn = dsn
        self._long, self._window_rows, self._window_bytes = long_app, window, window_bytes
        self.table_prefix = check_name(table_prefix)
        self._all = Tables(prefix=self.table_prefix, project="")
        self._lock = threading.Lock()
        # The query connection lives in a holder a finalizer closes: a source dropped without
        # close() (a discarded cache entry) leaves no connection open behind it.
        self._held: list[Any] = [None]
        weakref.finalize(self, _close_held, self._held)
        self._ready = False
        self._changes = ChangeCounter()
        self._connected_at = 0  # the counter when the listener last (re)connected
        self._logs: dict[tuple[str, str], AppLog] = {}
        self._logs_lock = threading.Lock()
        self._listening = threading.Event()
        self._closing = threading.Event()
        self._listener: threading.Thread | None = None
        # Reviewers' annotations: their own table, beside (never in) the tracker's rows.
        self.annotations = PostgresAnnotations(dsn, table_prefix=self.table_prefix)
        if listen:
            self._listener = threading.Thread(
                target=self._listen, name="turnout-ui-listen", daemon=True
            )
            self._listener.start()

    @property
    def location(self) -> str:
        return f"PostgreSQL tables {self._all.records} and {self._all.apps}"

    # -- connections -----------------------------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        with self._lock:
            try:
                if self._held[0] is None or self._held[0].closed:
                    self._held[0] = psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)
                    self._ready = False
                if not self._ready:
                    self._prepare(self._held[0])
                    self._ready = True
                yield self._held[0]
            except psycopg.OperationalError as exc:
                _close_held(self._held)
                raise PersistenceError(
                    f"cannot read tracking from PostgreSQL ({self._all.records}): {exc}. Check "
                    "that the server named by --store is up."
                ) from exc

    def _prepare(self, conn: Any) -> None:
        """Add the UI's trigger and columns to tables made before them (once, under a lock)."""
        t = self._all
        found = conn.execute(
            "SELECT to_regclass(%s), to_regclass(%s)", [t.records, t.apps]
        ).fetchone()
        if None in found:
            return  # no tracker wrote here yet: its tables, when made, come with the trigger
        installed = conn.execute(
            "SELECT 1 FROM pg_trigger WHERE tgname = %s AND tgrelid = %s::regclass",
            [f"{t.prefix}_ui_touch", t.records],
        ).fetchone()
        if installed is not None:
            return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [_SETUP_LOCK])
            for statement in ui_schema(t):
                conn.execute(statement)

    def _tables_exist(self, conn: Any) -> bool:
        found = conn.execute(
            "SELECT to_regclass(%s), to_regclass(%s)", [self._all.records, self._all.apps]
        ).fetchone()
        return None not in found

    def close(self) -> None:
        """Stop the listener and close the connections."""
        self._closing.set()
        if self._listener is not None:
            self._listener.join(timeout=5)
        with self._lock:
            _close_held(self._held)
        self.annotations.close()

    # -- changes ---------------------------------------------------------------------------------

    def _listen(self) -> None:
        while not self._closing.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f'LISTEN "{self._all.channel}"')
                    self._changes.bump()  # what happened while not listening is unknown
                    self._connected_at = self._changes.total()
                    self._listening.set()
                    while not self._closing.is_set():
                        for note in conn.notifies(timeout=0.5, stop_after=200):
                            self._changes.bump(_key(note.payload))
            except psycopg.Error:  # down or dropped: read by querying until it is back
                pass
            self._listening.clear()
            self._changes.bump()
            self._closing.wait(_LISTEN_RETRY)

    @property
    def listening(self) -> bool:
        """The listener is connected: a log not notified since its last read is current."""
        return self._listening.is_set()

    def wait_listening(self, timeout: float) -> bool:
        """Wait until the listener is connected (``False`` after ``timeout`` seconds)."""
        return self._listening.wait(timeout)

    def changes(self) -> int:
        return self._changes.total()

    def changes_of(self, project: str, app_id: str) -> int:
        """The change counter at the last notification for this application."""
        return self._changes.of((project, app_id))

    def wait(self, since: int, timeout: float) -> int:
        """Until a change is notified after ``since`` (or ``timeout`` seconds passed)."""
        return self._changes.wait(since, timeout)

    # -- questions -------------------------------------------------------------------------------

    def projects(self) -> list[ProjectSummary]:
        with self._connection() as conn:
            if not self._tables_exist(conn):
                return []
            rows = conn.execute(
                f"SELECT project, count(*), extract(epoch FROM max(updated_at))::float8 "
                f"FROM {self._all.apps} GROUP BY project ORDER BY 3 DESC, 1"
            ).fetchall()
        return [ProjectSummary(name=p, app_count=n, last_activity=at) for p, n, at in rows]

    def find_text(
        self, project: str, text: str, *, limit: int = 100, timeout: float = 2.0
    ) -> tuple[list[str], bool]:
        """The ids of ``project``'s applications with a record holding ``text``
        (case-insensitively, as plain text), most recently written first, at most ``limit``;
        and whether the query ran out of ``timeout`` seconds (then no id is returned).

        One query over the records' stored lines, the text JSON-escaped as a line holds it.
        A hit may lie in a key or a name rather than a step's values: the caller confirms it
        on the parsed steps.
        """
        forms = sorted({json.dumps(text.lower(), ensure_ascii=a)[1:-1] for a in (False, True)})
        condition = " OR ".join("strpos(lower(payload), %s) > 0" for _ in forms)
        with self._connection() as conn:
            if not self._tables_exist(conn):
                return [], False
            try:
                with conn.transaction():
                    conn.execute(
                        "SELECT set_config('statement_timeout', %s, true)",
                        [str(max(1, int(timeout * 1000)))],
                    )
                    rows = conn.execute(
                        f"SELECT app_id FROM {self._all.records} WHERE project = %s "
                        f"AND ({condition}) GROUP BY app_id ORDER BY max(id) DESC LIMIT %s",
                        [project, *forms, limit],
                    ).fetchall()
            except psycopg.errors.QueryCanceled:
                return [], True
        return [app_id for (app_id,) in rows], False

    def app_page(self, project: str, query: AppQuery = ALL_FIRST_PAGE) -> AppPage:
        """One page of ``project``'s apps: one query on the apps table (see the module
        docstring), the children of the page's apps, and the summary of any app the trigger
        did not see whole, read from its rows."""
        with self._connection() as conn:
            if not self._tables_exist(conn):
                return AppPage(apps=(), total=0, matched=0)
            return self._app_page(conn, project, query)

    def _app_page(self, conn: Any, project: str, query: AppQuery) -> AppPage:
        a = self._all.apps
        where, params = ["project = %s"], [project]
        if query.status is not None:
            where.append("ui_whole AND ui_status = %s")
            params.append(query.status)
        if query.partition_keys is not None:
            keys = [k for k in query.partition_keys if k is not None]
            either = ["partition_key = ANY(%s)"]
            if None in query.partition_keys:
                either.append("partition_key IS NULL")
            where.append(f"({' OR '.join(either)})")
            params.append(keys)  # type: ignore[arg-type]
        if query.tag is not None:
            key, _, value = query.tag.partition("=")
            where.append("ui_whole AND ui_tags ->> %s = %s")
            params += [key, value]
        condition = " AND ".join(where)
        total, partial = conn.execute(
            f"SELECT count(*), count(*) FILTER (WHERE NOT ui_whole) FROM {a} WHERE project = %s",
            [project],
        ).fetchone()
        matched = conn.execute(f"SELECT count(*) FROM {a} WHERE {condition}", params).fetchone()[0]
        limit = "" if query.limit is None else f" LIMIT {int(query.limit)}"
        rows = conn.execute(
            f"SELECT app_id, partition_key, ui_status, ui_first_seq, ui_last_seq, ui_errors, "
            f"ui_first_time, ui_last_time, ui_tags, ui_parent, ui_whole FROM {a} WHERE {condition} "
            f"ORDER BY updated_at DESC, app_id{limit} OFFSET {int(query.offset)}",
            params,
        ).fetchall()
        keys = [
            row[0]
            for row in conn.execute(
                f"SELECT DISTINCT partition_key FROM {a} WHERE project = %s", [project]
            ).fetchall()
        ]
        tags = [
            f"{k}={v}"
            for k, v in conn.execute(
                f"SELECT DISTINCT t.key, t.value FROM {a}, jsonb_each_text(ui_tags) AS t "
                f"WHERE project = %s AND jsonb_typeof(ui_tags) = 'object'",
                [project],
            ).fetchall()
        ]
        children = self._children(conn, project, [row[0] for row in rows])
        apps, unreadable = [], {}
        for row in rows:
            try:
                apps.append(self._summary(conn, project, row, children.get(row[0], ())))
            # One application whatever its rows hold is listed as unreadable with the reason.
            except Exception as error:
                unreadable[row[0]] = f"{type(error).__name__}: {error}"
        return AppPage(
            apps=tuple(apps),
            total=total,
            matched=matched,
            partition_keys=tuple(sorted(keys, key=lambda k: (k is not None, k or ""))),
            tags=tuple(sorted(tags)),
            unreadable=unreadable,
            pending=partial if query.status is not None or query.tag is not None else 0,
        )

    def _children(self, conn: Any, project: str, app_ids: list[str]) -> dict[str, list[ChildLink]]:
        out: dict[str, list[ChildLink]] = {}
        if not app_ids:
            return out
        rows = conn.execute(
            f"SELECT app_id, payload FROM {self._all.records} WHERE project = %s "
            f"AND app_id = ANY(%s) AND kind = 'child' ORDER BY app_id, pos",
            [project, app_ids],
        ).fetchall()
        for app_id, payload in rows:
            parsed = parse_payload(payload)
            record = parsed[1] if parsed is not None else None
            if not isinstance(record, ChildRecord):
                continue
            links = out.setdefault(app_id, [])
            if all(link.app_id != record.child_app_id for link in links):  # a resumed child
                links.append(
                    ChildLink(
                        app_id=record.child_app_id,
                        partition_key=record.child_partition_key,
                        sequence_id=record.seq,
                        kind=record.kind,
                    )
                )
        return out

    def _summary(self, conn: Any, project: str, row: tuple[Any, ...], children: Any) -> AppSummary:
        app_id, key, status, first_seq, last_seq, errors, first, last, tags, parent, whole = row
        if not whole or status not in STATUSES:
            return self._summary_from_rows(conn, project, app_id)
        link = None
        if isinstance(parent, dict) and isinstance(parent.get("to"), dict):
            to = parent["to"]
            seq = to.get("sequence_id")
            link = ChildLink(
                app_id=str(to.get("app_id")),
                partition_key=None if to.get("partition_key") is None else str(to["partition_key"]),
                sequence_id=seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
                kind=str(parent.get("kind")),
            )
        return AppSummary(
            project=project,
            app_id=app_id,
            partition_key=key,
            status=status,
            step_count=0 if last_seq is None or first_seq is None else last_seq - first_seq + 1,
            error_count=int(errors),
            first_time=first,
            last_time=last,
            parent=link,
            children=tuple(children),
            tags={str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {},
        )

    def _summary_from_rows(self, conn: Any, project: str, app_id: str) -> AppSummary:
        t = Tables(prefix=self.table_prefix, project=project)
        log = AppLog.over(
            lambda after: read_records(conn, t, app_id, -1 if after is None else after, lazy=True),
            app_id=app_id,
            label=t.label(app_id),
        )
        log.refresh()
        return log.summary(project)

    def read(
        self, project: str, app_id: str, after: int | None = None, *, lazy: bool = False
    ) -> LogChunk | None:
        """The rows of ``app_id`` after position ``after`` (``None``: all, led by a
        ``format`` record); ``None`` if the project has no such application. ``lazy``: long
        snapshots stay unparsed until used (what the UI's logs ask for)."""
        t = Tables(prefix=self.table_prefix, project=project)
        with self._connection() as conn:
            if not self._tables_exist(conn):
                return None
            chunk = read_records(conn, t, app_id, -1 if after is None else after, lazy=lazy)
            if after is None and not chunk.records:
                return None
            return chunk

    def app(self, project: str, app_id: str) -> AppLog | None:
        """The application's log (kept, at most ``_KEPT`` of them), refreshed: while the
        listener is connected, rows are queried only when a notification named the
        application since its last read."""
        key = (project, app_id)
        with self._logs_lock:
            log = self._logs.pop(key, None)
            if log is None:
                log = AppLog.over(
                    self._feed(project, app_id), app_id=app_id, label=self.label(project, app_id)
                )
                window = self._window(project, app_id)
                if window is not None:
                    log.open_window(*window)
            self._logs[key] = log  # the most recently used last
            while len(self._logs) > _KEPT:
                self._logs.pop(next(iter(self._logs)))
        log.refresh()
        return log if log.records_read else None

    def _window(self, project: str, app_id: str) -> tuple[LogChunk, int] | None:
        """For an application of more than ``long_app`` rows: its head (a ``format``
        record, its first app row and the app row of the run the tail belongs to) and the
        position before the last snapshot row about ``window`` rows from its end, the tail's
        start (``turnout.core.tracktail`` gives the same for a file, and why a snapshot)."""
        t = Tables(prefix=self.table_prefix, project=project)
        where, params = t.where(app_id)
        with self._connection() as conn:
            if not self._tables_exist(conn):
                return None
            last = conn.execute(
                f"SELECT max(pos) FROM {t.records} WHERE {where}", params
            ).fetchone()[0]
            if last is None or last < self._long:
                return None
            # The earliest of the last `window` rows whose stored payloads, with the rows
            # after it, stay within `window_bytes` (a stored size: nothing is decompressed).
            near = conn.execute(
                f"SELECT min(pos) FROM (SELECT pos, sum(pg_column_size(payload)) OVER "
                f"(ORDER BY pos DESC) AS bytes FROM {t.records} WHERE {where} AND pos > %s) "
                f"AS tail WHERE bytes <= %s",
                [*params, last - self._window_rows, self._window_bytes],
            ).fetchone()[0]
            snap = conn.execute(
                f"SELECT pos, run FROM {t.records} WHERE {where} AND kind = 'end' AND snapshot "
                f"AND pos <= %s ORDER BY pos DESC LIMIT 1",
                [*params, max(last - self._window_rows, near or last)],
            ).fetchone()
            if snap is None:
                return None
            apps = conn.execute(
                f"(SELECT pos, payload, version FROM {t.records} WHERE {where} AND kind = 'app' "
                f"ORDER BY pos LIMIT 1) UNION (SELECT pos, payload, version FROM {t.records} "
                f"WHERE {where} AND kind = 'app' AND run = %s AND pos < %s "
                f"ORDER BY pos DESC LIMIT 1) ORDER BY pos",
                [*params, *params, snap[1], snap[0]],
            ).fetchall()
        version = max((row[2] for row in apps), default=FORMAT_VERSION)
        records: list[Any] = [FormatRecord(version=version)]
        raws: list[dict[str, Any]] = [records[0].to_json()]
        for _pos, payload, _version in apps:
            parsed = parse_payload(payload)
            if parsed is not None and isinstance(parsed[1], AppRecord):
                raws.append(parsed[0])
                records.append(parsed[1])
        if len(records) == 1:
            return None  # no readable app row: read the whole history, which words it
        start = snap[0] - 1
        head = LogChunk(records=tuple(records), raw=tuple(raws), offset=start, bad_lines=0,
                        version=version)  # fmt: skip
        return head, start

    def _feed(self, project: str, app_id: str) -> Any:
        seen = [-1]  # the change counter when the rows were last read

        def feed(after: int | None) -> LogChunk | None:
            current = self._changes.of((project, app_id))
            quiet = self.listening and seen[0] >= self._connected_at and current <= seen[0]
            if after is not None and quiet:
                return None  # nothing was notified for it: no query
            seen[0] = self._changes.total()
            return self.read(project, app_id, after, lazy=True)

        return feed

    def label(self, project: str, app_id: str) -> str:
        """How messages name an application's history in this store."""
        return Tables(prefix=self.table_prefix, project=project).label(app_id)


def _close_held(held: list[Any]) -> None:
    conn, held[0] = held[0], None
    if conn is not None:
        conn.close()


def _key(payload: str) -> tuple[str, str] | None:
    try:
        project, app_id = json.loads(payload)
    except (ValueError, TypeError):
        return None
    return (str(project), str(app_id))
