"""Reading a PostgreSQL tracking store: typed records, app ids, and the chain to a state.

Column ``payload`` holds the very line a ``LocalTracker`` would append (checksummed JSON,
``tracklog``'s codec), so a row is parsed by ``tracklog.parse_line`` and a damaged one is
skipped, as in a file. The columns beside it (``kind``, ``seq``, ``run``, ``finished``,
``snapshot``, ``vouch``) are what SQL searches; the payload is what a reader trusts.

Rows of one app are ordered by ``pos``, their position in its history, unique per app: a
writer numbers its rows on from the app's last one, and a row another writer took first makes
the insert fail, so the writer learns that its rows are no longer alone (as a file tracker
learns it from the offset its append landed at).

**The chain to a state** (``fast_chain``) starts at the newest snapshot row at or before the
step that its writer *vouched* for (at most ``_TRIES`` tried): column ``vouch`` of a finished
step's row holds the position of its run's app row when every position from that row to this
one was the writer's own, every finished step took the next sequence id and named that run,
and no step began ahead (``turnout.core.trackindex``'s rule for marks, positions standing for
byte offsets).
The reader checks that the row at that position is the run's app row, rebuilds the app line a
whole replay would name the application by, and replays the app row, the snapshot row and the
rows after it through ``trackhistory.History``, the replay every store shares; it answers only
if that replay never cut the timeline back to before the snapshot. Anything else gives ``None``
and the caller replays every row (``full_chain``), which decides and words any error. Rows are
trusted for their order (the store only appends; retention only deletes): a row missing before
the snapshot does not change the state after it, for the reason ``trackindex`` gives.
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

__all__ = [
    "Tables",
    "app_ids",
    "fast_chain",
    "full_chain",
    "parse_payload",
    "read_records",
    "schema",
    "ui_schema",
]

_TRIES = 4  # vouched snapshot rows tried, newest first, before the whole history decides
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

    @property
    def channel(self) -> str:
        """The LISTEN/NOTIFY channel a row inserted into ``records`` is announced on."""
        return f"{self.prefix}_changes"

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
            pos BIGINT NOT NULL,
            partition_key TEXT,
            run TEXT,
            seq BIGINT,
            kind TEXT NOT NULL,
            finished BOOLEAN NOT NULL DEFAULT FALSE,
            snapshot BOOLEAN NOT NULL DEFAULT FALSE,
            vouch BIGINT,
            version SMALLINT NOT NULL,
            writer BIGINT NOT NULL,
            n BIGINT NOT NULL,
            payload TEXT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            UNIQUE (project, app_id, pos),
            UNIQUE (writer, n))""",
        f"CREATE INDEX IF NOT EXISTS {r}_vouched ON {r} (project, app_id, pos) "
        f"WHERE vouch IS NOT NULL",
        f"CREATE INDEX IF NOT EXISTS {r}_snapshots ON {r} (project, app_id, pos) "
        f"WHERE vouch IS NOT NULL AND snapshot",
        f"CREATE INDEX IF NOT EXISTS {r}_approws ON {r} (project, app_id, pos) WHERE kind = 'app'",
        f"CREATE INDEX IF NOT EXISTS {r}_ends ON {r} (project, app_id, seq, pos) "
        f"WHERE kind = 'end' AND finished",
        f"""CREATE TABLE IF NOT EXISTS {t.apps} (
            project TEXT NOT NULL,
            app_id TEXT NOT NULL,
            partition_key TEXT,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (project, app_id))""",
        f"CREATE INDEX IF NOT EXISTS {t.apps}_updated ON {t.apps} (project, updated_at)",
        *ui_schema(t),
    ]


def ui_schema(t: Tables) -> list[str]:
    """What the tracking UI adds to the tables (idempotent, additive; run in one transaction).

    A trigger on ``records`` announces every inserted row on ``Tables.channel`` (payload: the
    JSON array ``[project, app_id]``; PostgreSQL folds repeats within a transaction) and keeps
    a summary of each application in ``apps``' ``ui_*`` columns, so a listing is one query:
    ``ui_status`` (of its last step: running, completed or failed), ``ui_first_seq`` and
    ``ui_last_seq`` (its steps' sequence ids in this store: a fork or a resume in a new
    store starts after 0),
    ``ui_errors`` (failed or cancelled step ends of its latest fresh run), ``ui_first_time``
    and ``ui_last_time`` (epoch seconds), ``ui_tags`` and ``ui_parent`` (from its app row), and
    ``ui_whole``: the summary saw every row from the app's first (an app written before the
    trigger existed is summarised by reading its rows instead). The trigger reads only the
    columns and the status word of an end row; it casts an app row's payload to JSON inside
    its own guard, so a row it cannot read never fails the writer's insert.
    """
    r, a, fn = t.records, t.apps, f"{t.prefix}_ui_touch"
    insert = (
        f"INSERT INTO {a} (project, app_id, partition_key, created_at, updated_at, ui_whole) "
        "VALUES (NEW.project, NEW.app_id, NEW.partition_key, NEW.created_at, NEW.created_at, "
        "NEW.pos = 0) ON CONFLICT (project, app_id) DO NOTHING;"
    )
    return [
        f"ALTER TABLE {a} ADD COLUMN IF NOT EXISTS ui_status TEXT, "
        "ADD COLUMN IF NOT EXISTS ui_first_seq BIGINT, "
        "ADD COLUMN IF NOT EXISTS ui_last_seq BIGINT, "
        "ADD COLUMN IF NOT EXISTS ui_errors BIGINT NOT NULL DEFAULT 0, "
        "ADD COLUMN IF NOT EXISTS ui_first_time DOUBLE PRECISION, "
        "ADD COLUMN IF NOT EXISTS ui_last_time DOUBLE PRECISION, "
        "ADD COLUMN IF NOT EXISTS ui_tags JSONB, "
        "ADD COLUMN IF NOT EXISTS ui_parent JSONB, "
        "ADD COLUMN IF NOT EXISTS ui_whole BOOLEAN NOT NULL DEFAULT FALSE",
        f"CREATE INDEX IF NOT EXISTS {r}_children ON {r} (project, app_id, pos) "
        "WHERE kind = 'child'",
        f"""CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $body$
DECLARE
    at DOUBLE PRECISION := extract(epoch FROM NEW.created_at);
    word TEXT;
    doc JSONB;
BEGIN
    PERFORM pg_notify('{t.channel}', json_build_array(NEW.project, NEW.app_id)::text);
    IF NEW.kind NOT IN ('app', 'begin', 'end') THEN
        RETURN NULL;
    END IF;
    IF NEW.kind = 'app' THEN
        BEGIN
            doc := NEW.payload::jsonb;
        EXCEPTION WHEN others THEN
            doc := '{{}}'::jsonb;
        END;
        IF jsonb_typeof(doc) <> 'object' THEN
            doc := '{{}}'::jsonb;
        END IF;
        LOOP  -- the row is there but for an app's first batch: update first, insert if not
        UPDATE {a} SET
            ui_first_time = CASE WHEN NEW.seq IS NULL OR ui_first_time IS NULL
                THEN at ELSE ui_first_time END,
            ui_last_time = GREATEST(ui_last_time, at),
            ui_status = CASE WHEN NEW.seq IS NULL OR ui_status IS NULL
                THEN 'completed' ELSE ui_status END,
            ui_last_seq = CASE WHEN NEW.seq IS NULL THEN NULL
                ELSE LEAST(ui_last_seq, NEW.seq) END,
            ui_first_seq = CASE WHEN NEW.seq IS NULL THEN NULL
                ELSE LEAST(ui_first_seq, NEW.seq + 1) END,
            ui_errors = CASE WHEN NEW.seq IS NULL THEN 0 ELSE ui_errors END,
            ui_tags = CASE WHEN ui_tags IS NULL OR NEW.seq IS NULL THEN
                CASE WHEN jsonb_typeof(doc -> 'tags') = 'object' THEN doc -> 'tags'
                ELSE '{{}}'::jsonb END ELSE ui_tags END,
            ui_parent = CASE WHEN ui_parent IS NULL OR NEW.seq IS NULL THEN
                CASE WHEN jsonb_typeof(doc -> 'parent') = 'object'
                    THEN jsonb_build_object('kind', 'fork', 'to', doc -> 'parent')
                WHEN jsonb_typeof(doc -> 'spawning_parent') = 'object'
                    THEN jsonb_build_object('kind', 'spawn', 'to', doc -> 'spawning_parent')
                END ELSE ui_parent END
        WHERE project = NEW.project AND app_id = NEW.app_id;
        EXIT WHEN FOUND;
        {insert}
        END LOOP;
        RETURN NULL;
    END IF;
    IF NEW.kind = 'end' THEN
        -- The first "status":"..." of an end row is its own field: a quote inside a value
        -- is escaped, so no value can forge it.
        word := substring(NEW.payload from '"status":"([a-z_]+)"');
    ELSE
        word := 'running';
    END IF;
    LOOP
    UPDATE {a} SET
        ui_status = CASE WHEN word IN ('failed', 'cancelled') THEN 'failed'
            WHEN word IN ('running', 'retrying') OR word IS NULL THEN 'running'
            ELSE 'completed' END,
        ui_errors = ui_errors + CASE WHEN word IN ('failed', 'cancelled') THEN 1 ELSE 0 END,
        ui_last_seq = NEW.seq,
        ui_first_seq = COALESCE(ui_first_seq, NEW.seq),
        ui_first_time = COALESCE(ui_first_time, at),
        ui_last_time = GREATEST(ui_last_time, at)
    WHERE project = NEW.project AND app_id = NEW.app_id;
    EXIT WHEN FOUND;
    {insert}
    END LOOP;
    RETURN NULL;
END
$body$""",
        f"DROP TRIGGER IF EXISTS {fn} ON {r}",
        f"CREATE TRIGGER {fn} AFTER INSERT ON {r} FOR EACH ROW EXECUTE FUNCTION {fn}()",
    ]


def parse_payload(payload: str, *, lazy: bool = False) -> tuple[dict[str, Any], Record] | None:
    """A stored row's payload read as ``tracklog.parse_line`` reads a log line (its JSON
    object and typed record; ``lazy``: a long snapshot left in its bytes), or ``None`` if it
    is malformed."""
    return parse_line(payload.encode("utf-8", "surrogatepass"), checked=True, lazy=lazy)


def _parse(payload: str) -> Record | None:
    parsed = parse_payload(payload)
    return parsed[1] if parsed is not None else None


def read_records(
    conn: Any, t: Tables, app_id: str, after: int = -1, *, lazy: bool = False
) -> LogChunk:
    """The records of ``app_id`` in order, from the row after position ``after`` (-1: all, led
    by a ``format`` record), in ``tracklog.read_records``' form: ``offset`` is the position of
    the last row read (pass it back as ``after``), ``bad_lines`` counts rows that did not parse.
    ``lazy``: long snapshots stay unparsed until used (``tracklog.parse_line``).
    """
    where, params = t.where(app_id)
    rows = conn.execute(
        f"SELECT pos, payload, version FROM {t.records} WHERE {where} AND pos > %s ORDER BY pos",
        [*params, after],
    ).fetchall()
    records: list[Record] = []
    raws: list[dict[str, Any]] = []
    bad = 0
    version = max((row[2] for row in rows), default=FORMAT_VERSION)
    if after < 0 and rows:
        records.append(FormatRecord(version=version))
        raws.append(records[0].to_json())
    for _pos, payload, _version in rows:
        parsed = parse_payload(payload, lazy=lazy)
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
    """The chain from the nearest vouched snapshot row (see the module docstring); ``None``:
    replay every row instead."""
    where, params = t.where(app_id)
    sql = (
        f"SELECT pos, seq, run, vouch FROM {t.records} "
        f"WHERE {where} AND vouch IS NOT NULL AND snapshot"
    )
    if seq is not None:
        sql += " AND seq <= %s"
        params = [*params, seq]
    snaps = conn.execute(sql + f" ORDER BY pos DESC LIMIT {_TRIES}", params).fetchall()
    for snap_pos, snap_seq, run, vouch in snaps:
        run_app = _app_at(conn, t, app_id, vouch)
        if run_app is None or run is None or run_app.run != run or vouch >= snap_pos:
            continue
        try:
            return _replay(conn, t, app_id, seq, (snap_pos, snap_seq, run), vouch, run_app)
        except PersistenceError:  # the whole replay words the error (and may see more)
            return None
    return None


def _app_at(conn: Any, t: Tables, app_id: str, pos: int) -> AppRecord | None:
    where, params = t.where(app_id)
    row = conn.execute(
        f"SELECT payload FROM {t.records} WHERE {where} AND pos = %s AND kind = 'app'",
        [*params, pos],
    ).fetchone()
    record = _parse(row[0]) if row is not None else None
    return record if isinstance(record, AppRecord) else None


def _payloads(conn: Any, t: Tables, app_id: str, lo: int, hi: int | None) -> list[str]:
    where, params = t.where(app_id)
    sql = f"SELECT payload FROM {t.records} WHERE {where} AND {_HISTORY_KINDS} AND pos >= %s"
    params = [*params, lo]
    if hi is not None:
        sql += " AND pos <= %s"
        params.append(hi)
    return [row[0] for row in conn.execute(sql + " ORDER BY pos", params).fetchall()]


def _identity(conn: Any, t: Tables, app_id: str, app_pos: int) -> AppRecord | bool | None:
    """The app row a whole replay names the application by when it reaches position
    ``app_pos`` (the last fresh one before it, else the first); ``None`` if no row before it
    matters; ``False`` if steps ended before it with no app row: the whole replay decides."""
    where, params = t.where(app_id)
    base = f"SELECT payload FROM {t.records} WHERE {where} AND kind = 'app' AND pos < %s"
    for extra in (" AND seq IS NULL ORDER BY pos DESC LIMIT 1", " ORDER BY pos LIMIT 1"):
        row = conn.execute(base + extra, [*params, app_pos]).fetchone()
        if row is not None:
            record = _parse(row[0])
            return record if isinstance(record, AppRecord) else False
    ended = conn.execute(
        f"SELECT 1 FROM {t.records} WHERE {where} AND kind = 'end' AND pos < %s LIMIT 1",
        [*params, app_pos],
    ).fetchone()
    return None if ended is None else False


def _replay(
    conn: Any,
    t: Tables,
    app_id: str,
    seq: int | None,
    snap: tuple[int, int, str],
    app_pos: int,
    run_app: AppRecord,
) -> Chain | None:
    _snap_pos, snap_seq, run = snap
    before: AppRecord | bool | None = None
    if run_app.sequence_id is not None:
        before = _identity(conn, t, app_id, app_pos)
        if before is False:
            return None
    records = [r for r in map(_parse, _records_after(conn, t, app_id, seq, snap, app_pos)) if r]
    head = records[0] if records else None
    if not (isinstance(head, EndRecord) and head.seq == snap_seq and head.run == run):
        return None
    if not head.has_snapshot:
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
    conn: Any, t: Tables, app_id: str, seq: int | None, snap: tuple[int, int, str], app_pos: int
) -> Sequence[str]:
    """The payloads from the snapshot row on. For a step ``seq`` inside the run, the rows
    between that step's end and the run's last vouched end after it are skipped: the writer
    vouched that they are the run's next steps in order, which change neither the state at
    ``seq`` nor what the rows after them do to it, so an old step loads as fast as the
    latest."""
    snap_pos, snap_seq, run = snap
    if seq is None or seq == snap_seq:
        return _payloads(conn, t, app_id, snap_pos, None)
    where, params = t.where(app_id)
    later = conn.execute(
        f"SELECT pos FROM {t.records} WHERE {where} AND vouch = %s AND run = %s AND seq > %s "
        f"AND pos > %s ORDER BY pos DESC LIMIT 1",
        [*params, app_pos, run, seq, snap_pos],
    ).fetchone()
    if later is None:
        return _payloads(conn, t, app_id, snap_pos, None)
    end = conn.execute(
        f"SELECT pos FROM {t.records} WHERE {where} AND kind = 'end' AND finished "
        f"AND seq = %s AND run = %s AND pos > %s AND pos < %s ORDER BY pos LIMIT 1",
        [*params, seq, run, snap_pos, later[0]],
    ).fetchone()
    if end is None:
        return []  # the step is not where the writer put it: the whole replay decides
    return [
        *_payloads(conn, t, app_id, snap_pos, end[0]),
        *_payloads(conn, t, app_id, later[0], None),
    ]
