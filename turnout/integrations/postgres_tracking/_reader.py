"""Reading a PostgreSQL tracking store: typed records, app ids, and the chain to a state.

Rows hold the very lines a ``LocalTracker`` would append (checksummed JSON, ``tracklog``'s
codec), so a row is parsed by ``tracklog.parse_line`` and a damaged one is skipped, as in a file.
The columns beside the line (``kind``, ``seq``, ``run``, ``finished``, ``snapshot``) are what
SQL searches; the line is what a reader trusts.

**The chain to a state** (``fast_chain``) starts at the newest snapshot row at or before the
step (at most ``_TRIES`` tried): it replays the app row of the snapshot's run, the snapshot row
and the rows after it through ``trackhistory.History``, the replay every store shares, and
answers only when the rows between that app row and the snapshot are what an uninterrupted run
writes. One aggregate query checks that (``_clean``): no other app row, the finished steps are
exactly the next sequence ids in row order, all of that run, and no step began ahead of the
snapshot. That is the condition under which the rows before the snapshot cannot change the
state after it (``turnout.core.trackindex`` explains why, for files); the app line the whole
replay would name the application by is read separately. Anything else gives ``None`` and the
caller replays every row (``full_chain``), which decides and words any error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from turnout.core.errors import PersistenceError
from turnout.core.trackhistory import Chain, History
from turnout.core.tracklog import (
    FORMAT_VERSION,
    AppRecord,
    EndRecord,
    FormatRecord,
    LogChunk,
    Record,
    parse_line,
)

__all__ = ["Tables", "app_ids", "fast_chain", "full_chain", "read_records", "schema"]

_TRIES = 4  # snapshot rows tried, newest first, before the whole history decides
_HISTORY_KINDS = "kind IN ('app', 'begin', 'end')"  # the only kinds History looks at


@dataclass(frozen=True, kw_only=True, slots=True)
class Tables:
    """The tables of one prefix, and the project whose rows a reader reads."""

    prefix: str
    project: str

    @property
    def records(self) -> str:
        return f"{self.prefix}_records"

    @property
    def apps(self) -> str:
        return f"{self.prefix}_apps"

    def where(self, app_id: str) -> tuple[str, list[Any]]:
        """The condition and parameters selecting one app's rows."""
        return "project = %s AND app_id = %s", [self.project, app_id]

    def label(self, app_id: str) -> str:
        """How messages name an app's history."""
        return f"PostgreSQL table {self.records} (project {self.project!r}, app {app_id!r})"


def schema(t: Tables) -> list[str]:
    """The statements creating the tables and indexes (idempotent)."""
    r = t.records
    return [
        f"""CREATE TABLE IF NOT EXISTS {r} (
            id BIGSERIAL PRIMARY KEY,
            project TEXT NOT NULL,
            app_id TEXT NOT NULL,
            partition_key TEXT,
            run TEXT,
            seq BIGINT,
            kind TEXT NOT NULL,
            finished BOOLEAN NOT NULL DEFAULT FALSE,
            snapshot BOOLEAN NOT NULL DEFAULT FALSE,
            version SMALLINT NOT NULL,
            writer BIGINT NOT NULL,
            n BIGINT NOT NULL,
            line TEXT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            UNIQUE (writer, n))""",
        f"CREATE INDEX IF NOT EXISTS {r}_app ON {r} (project, app_id, id)",
        f"CREATE INDEX IF NOT EXISTS {r}_snap ON {r} (project, app_id, id) WHERE snapshot",
        f"CREATE INDEX IF NOT EXISTS {r}_approws ON {r} (project, app_id, id) WHERE kind = 'app'",
        f"CREATE INDEX IF NOT EXISTS {r}_ends ON {r} (project, app_id, seq, id) "
        f"WHERE kind = 'end' AND finished",
        f"""CREATE TABLE IF NOT EXISTS {t.apps} (
            project TEXT NOT NULL,
            app_id TEXT NOT NULL,
            partition_key TEXT,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (project, app_id))""",
        f"CREATE INDEX IF NOT EXISTS {t.apps}_updated ON {t.apps} (project, updated_at)",
    ]


def _parse(line: str) -> Record | None:
    parsed = parse_line(line.encode("utf-8", "surrogatepass"), checked=True)
    return parsed[1] if parsed is not None else None


def read_records(conn: Any, t: Tables, app_id: str, after: int = 0) -> LogChunk:
    """The records of ``app_id`` in row order, from the row after id ``after`` (0: all, led by
    a ``format`` record), in ``tracklog.read_records``' form: ``offset`` is the id of the last
    row read (pass it back as ``after``), ``bad_lines`` counts rows that did not parse."""
    where, params = t.where(app_id)
    rows = conn.execute(
        f"SELECT id, line, version FROM {t.records} WHERE {where} AND id > %s ORDER BY id",
        [*params, after],
    ).fetchall()
    records: list[Record] = []
    raws: list[dict[str, Any]] = []
    bad = 0
    version = max((row[2] for row in rows), default=FORMAT_VERSION)
    if after == 0 and rows:
        records.append(FormatRecord(version=version))
        raws.append(records[0].to_json())
    for _id, line, _version in rows:
        parsed = parse_line(line.encode("utf-8", "surrogatepass"), checked=True)
        if parsed is None:
            bad += 1
            continue
        raws.append(parsed[0])
        records.append(parsed[1])
    return LogChunk(
        records=tuple(records), raw=tuple(raws), offset=rows[-1][0] if rows else after,
        bad_lines=bad, version=version,
    )  # fmt: skip


def app_ids(conn: Any, t: Tables, partition_key: str | None) -> list[str]:
    """The app ids of the project (of one partition if given), most recently written first."""
    sql = f"SELECT app_id FROM {t.apps} WHERE project = %s"
    params: list[Any] = [t.project]
    if partition_key is not None:
        sql += " AND partition_key = %s"
        params.append(partition_key)
    rows = conn.execute(sql + " ORDER BY updated_at DESC, app_id", params).fetchall()
    return [row[0] for row in rows]


def full_chain(conn: Any, t: Tables, app_id: str, seq: int | None) -> Chain | None:
    """The chain to the state after step ``seq`` from a replay of every row of the app."""
    history = History(app_id=app_id, path=t.label(app_id))
    for record in read_records(conn, t, app_id).records:
        history.add(record)
    return history.chain(seq)


def fast_chain(conn: Any, t: Tables, app_id: str, seq: int | None) -> Chain | None:
    """The chain from the nearest snapshot row (see the module docstring); ``None``: replay
    every row instead."""
    where, params = t.where(app_id)
    sql = f"SELECT id, seq, run FROM {t.records} WHERE {where} AND snapshot"
    if seq is not None:
        sql += " AND seq <= %s"
        params = [*params, seq]
    snaps = conn.execute(sql + f" ORDER BY id DESC LIMIT {_TRIES}", params).fetchall()
    for snap_id, snap_seq, run in snaps:
        if run is None:
            continue
        found = _run_app(conn, t, app_id, run, snap_id)
        if found is None:
            continue
        app_row, run_app = found
        first = 0 if run_app.sequence_id is None else run_app.sequence_id + 1
        if not _clean(conn, t, app_id, (app_row, snap_id), run, first, snap_seq):
            continue
        try:
            return _replay(conn, t, app_id, seq, (snap_id, snap_seq, run), app_row, run_app)
        except PersistenceError:  # the whole replay words the error (and may see more)
            return None
    return None


def _run_app(
    conn: Any, t: Tables, app_id: str, run: str, before: int
) -> tuple[int, AppRecord] | None:
    where, params = t.where(app_id)
    row = conn.execute(
        f"SELECT id, line FROM {t.records} WHERE {where} AND kind = 'app' AND run = %s "
        f"AND id < %s ORDER BY id DESC LIMIT 1",
        [*params, run, before],
    ).fetchone()
    record = _parse(row[1]) if row is not None else None
    if not isinstance(record, AppRecord) or record.run != run:
        return None
    return row[0], record


def _clean(
    conn: Any, t: Tables, app_id: str, between: tuple[int, int], run: str, first: int, last: int
) -> bool:
    """Whether the rows strictly between ids ``between`` are an uninterrupted stretch of run
    ``run``: no app row, finished steps ``first`` .. ``last - 1`` in row order, each once and
    of that run, and no step begun past ``last``."""
    where, params = t.where(app_id)
    row = conn.execute(
        f"""SELECT count(*) FILTER (WHERE kind = 'app'),
                   count(*) FILTER (WHERE kind = 'end' AND finished),
                   count(*) FILTER (WHERE kind = 'end' AND finished
                                    AND (run IS DISTINCT FROM %s OR seq <> %s + n - 1)),
                   max(seq) FILTER (WHERE kind = 'begin')
            FROM (SELECT kind, finished, run, seq,
                         row_number() OVER (PARTITION BY kind = 'end' AND finished
                                            ORDER BY id) AS n
                  FROM {t.records}
                  WHERE {where} AND id > %s AND id < %s AND {_HISTORY_KINDS}) AS region""",
        [run, first, *params, between[0], between[1]],
    ).fetchone()
    apps, ends, bad, begun = row
    return apps == 0 and ends == last - first and bad == 0 and (begun is None or begun <= last)


def _lines(conn: Any, t: Tables, app_id: str, lo: int, hi: int | None) -> list[str]:
    where, params = t.where(app_id)
    sql = f"SELECT line FROM {t.records} WHERE {where} AND {_HISTORY_KINDS} AND id >= %s"
    params = [*params, lo]
    if hi is not None:
        sql += " AND id <= %s"
        params.append(hi)
    return [row[0] for row in conn.execute(sql + " ORDER BY id", params).fetchall()]


def _identity(conn: Any, t: Tables, app_id: str, app_row: int) -> AppRecord | bool | None:
    """The app row a whole replay names the application by when it reaches row ``app_row``
    (the last fresh one before it, else the first); ``None`` if no row before it matters;
    ``False`` if finished steps came before it with no app row: the whole replay decides."""
    where, params = t.where(app_id)
    base = f"SELECT line FROM {t.records} WHERE {where} AND kind = 'app' AND id < %s"
    for extra in (" AND seq IS NULL ORDER BY id DESC LIMIT 1", " ORDER BY id LIMIT 1"):
        row = conn.execute(base + extra, [*params, app_row]).fetchone()
        if row is not None:
            record = _parse(row[0])
            return record if isinstance(record, AppRecord) else False
    ended = conn.execute(
        f"SELECT 1 FROM {t.records} WHERE {where} AND kind = 'end' AND id < %s LIMIT 1",
        [*params, app_row],
    ).fetchone()
    return None if ended is None else False


def _replay(
    conn: Any,
    t: Tables,
    app_id: str,
    seq: int | None,
    snap: tuple[int, int, str],
    app_row: int,
    run_app: AppRecord,
) -> Chain | None:
    _snap_id, snap_seq, run = snap
    before: AppRecord | bool | None = None
    if run_app.sequence_id is not None:
        before = _identity(conn, t, app_id, app_row)
        if before is False:
            return None
    lines = _records_after(conn, t, app_id, seq, snap)
    records = [r for r in map(_parse, lines) if r is not None]
    head = records[0] if records else None
    if not (isinstance(head, EndRecord) and head.seq == snap_seq and head.run == run):
        return None
    if head.snapshot is None:
        return None
    history = History(app_id=app_id, path=t.label(app_id))
    history.add(FormatRecord(version=FORMAT_VERSION))
    if isinstance(before, AppRecord):
        history.add(before)
    history.add(run_app)
    starts, history.lowest_cut = history.fresh_starts, None
    for record in records:
        history.add(record)
    if history.fresh_starts == starts:  # still the snapshot's timeline, or a resume of it
        cut = history.lowest_cut
        if cut is not None and cut <= (snap_seq if seq is None else max(snap_seq, seq)):
            return None  # a later timeline went back before the snapshot (or the step)
    chain = history.chain(seq)
    if chain is None or (history.fresh_starts == starts and chain.target.seq < snap_seq):
        return None
    return chain


def _records_after(
    conn: Any, t: Tables, app_id: str, seq: int | None, snap: tuple[int, int, str]
) -> Sequence[str]:
    """The lines from the snapshot row on. For a step ``seq`` inside the run, the rows between
    that step's end and the run's last snapshot after it are skipped when they are an
    uninterrupted stretch of the run (they change neither the state at ``seq`` nor what the
    rows after them do to it): an old step loads as fast as the latest."""
    snap_id, snap_seq, run = snap
    if seq is None or seq == snap_seq:
        return _lines(conn, t, app_id, snap_id, None)
    where, params = t.where(app_id)
    later = conn.execute(
        f"SELECT id, seq FROM {t.records} WHERE {where} AND snapshot AND run = %s AND seq > %s "
        f"AND id > %s ORDER BY id DESC LIMIT 1",
        [*params, run, seq, snap_id],
    ).fetchone()
    if later is not None:
        end = conn.execute(
            f"SELECT id FROM {t.records} WHERE {where} AND kind = 'end' AND finished "
            f"AND seq = %s AND run = %s AND id > %s AND id < %s ORDER BY id LIMIT 1",
            [*params, seq, run, snap_id, later[0]],
        ).fetchone()
        if end is not None and _clean(conn, t, app_id, (end[0], later[0]), run, seq + 1, later[1]):
            return [
                *_lines(conn, t, app_id, snap_id, end[0]),
                *_lines(conn, t, app_id, later[0], None),
            ]
    return _lines(conn, t, app_id, snap_id, None)
