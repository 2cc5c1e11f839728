"""The web UI's pages of an application whose state is big, from files and PostgreSQL: its
steps table and header decode no state snapshot (a snapshot is decoded when a step is opened;
one damaged by its writer leaves the steps table whole and refuses only the states built on
it), and a PostgreSQL history of big rows is opened on a tail bounded in bytes, whose states
are those of a whole read.

PostgreSQL parts skip when the server is not reachable, except under ``CI=true``.
"""

from __future__ import annotations

import binascii
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")
pytest.importorskip("psycopg")
import psycopg
from fastapi.testclient import TestClient

from tests.integrations.test_fastapi_ui_postgres import drop_prefix
from tests.integrations.test_postgres import DSN, server
from turnout import ApplicationBuilder, State, action
from turnout.core import tracksnapshot
from turnout.core.tracking import LocalTracker
from turnout.integrations.fastapi.ui import create_ui_app
from turnout.integrations.postgres_tracking import PostgresSource, PostgresTracker

__all__ = ["server"]  # a fixture, shared with test_postgres

PROJECT = "lazy"
BIG = list(range(tracksnapshot.LAZY_BYTES // 4))  # its snapshot lines are read lazily
STEPS = 30


@action(reads=["items"], writes=["items"])
def grow(state: State) -> State:
    return state.append(items=len(state["items"]))


def _run(tracker: Any, app_id: str = "big") -> None:
    try:
        app = (
            ApplicationBuilder()
            .with_actions(grow=grow)
            .with_transitions(("grow", "grow"))
            .with_state(items=BIG)
            .with_entrypoint("grow")
            .with_identifiers(app_id=app_id)
            .with_tracker(tracker)
            .build()
        )
        for _ in range(STEPS):
            app.step()
    finally:
        tracker.close()


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """One entry per snapshot decoded (``tracksnapshot._decode`` counted, its cache emptied)."""
    seen: list[int] = []
    real = tracksnapshot._decode

    def counted(line: bytes, start: int, end: int) -> dict[str, Any]:
        seen.append(end - start)
        return real(line, start, end)

    tracksnapshot._recent.cache_clear()
    monkeypatch.setattr(tracksnapshot, "_decode", counted)
    yield seen
    tracksnapshot._recent.cache_clear()


@pytest.fixture
def prefix(server: psycopg.Connection[Any]) -> Iterator[str]:
    name = f"webui_{uuid.uuid4().hex[:12]}"
    yield name
    drop_prefix(server, name)


def _check_pages(client: TestClient, decodes: list[int]) -> None:
    base = f"/projects/{PROJECT}/apps/big"
    page = client.get(base)
    assert page.status_code == 200
    assert f'id="step-{STEPS - 1}"' in page.text
    assert client.get(f"/api/v1{base}").json()["last_seq"] == STEPS - 1
    assert decodes == []  # the steps table and the header need no snapshot
    step = client.get(f"/api/v1{base}/steps/{STEPS - 2}").json()
    assert step["state_after"]["items"] == [*BIG, *range(len(BIG), len(BIG) + STEPS - 1)]
    assert decodes  # opening a step rebuilds its states from the nearest snapshot


def test_a_big_state_app_page_from_files_decodes_no_snapshot(
    tmp_path: Path, decodes: list[int]
) -> None:
    _run(LocalTracker(PROJECT, tmp_path, snapshot_every=5))
    with TestClient(create_ui_app(tmp_path)) as client:
        _check_pages(client, decodes)


def test_a_big_state_app_page_from_postgresql_decodes_no_snapshot(
    prefix: str, decodes: list[int]
) -> None:
    _run(PostgresTracker(DSN, project=PROJECT, table_prefix=prefix, snapshot_every=5))
    with TestClient(create_ui_app(DSN, table_prefix=prefix)) as client:
        _check_pages(client, decodes)


def test_a_postgresql_history_of_big_rows_opens_on_a_tail_bounded_in_bytes(prefix: str) -> None:
    _run(PostgresTracker(DSN, project=PROJECT, table_prefix=prefix, snapshot_every=5))
    whole = PostgresSource(DSN, table_prefix=prefix, listen=False)
    # Every row counts for the rows window; three snapshot rows' worth of bytes cut it first.
    tail = PostgresSource(
        DSN, table_prefix=prefix, listen=False, long_app=10, window=10_000, window_bytes=60_000
    )
    try:
        full, cut = whole.app(PROJECT, "big"), tail.app(PROJECT, "big")
        assert full is not None
        assert cut is not None
        assert not full.partial
        assert cut.partial
        seqs = [s.seq for s in cut.step_list()]
        assert 0 < seqs[0] < STEPS - 5  # a snapshot row started it, and it is not everything
        assert seqs == list(range(seqs[0], STEPS))
        for seq in seqs[1:]:
            assert cut.state_after(seq) == full.state_after(seq)
            assert cut.state_before(seq) == full.state_before(seq)
    finally:
        whole.close()
        tail.close()


DAMAGED = 25  # a snapshot step (every 5th): the steps after it rebuild from its snapshot


def _damaged(line: bytes) -> bytes:
    """The end line ``line`` (no newline) with its snapshot broken and a checksum made over
    the damage, as a faulty writer would leave it."""
    body = line[: line.rindex(b',"crc":')] + b"}"
    broken = body.replace(b'"snapshot":{"items":[', b'"snapshot":{"items":[[', 1)
    assert broken != body
    return b'%s,"crc":%d}' % (broken[:-1], binascii.crc32(broken))


def _check_damage(client: TestClient) -> None:
    base = f"/projects/{PROJECT}/apps/big"
    page = client.get(base).text
    assert f'<tr id="step-{DAMAGED}" class="step st-completed"' in page  # still listed, done
    assert f'id="step-{STEPS - 1}"' in page
    fine = client.get(f"/api/v1{base}/steps/{DAMAGED - 1}").json()
    assert fine["state_error"] is None
    assert fine["state_after"]["items"][-1] == len(BIG) + DAMAGED - 1
    later = client.get(f"/api/v1{base}/steps/{DAMAGED + 2}").json()
    assert "snapshot" in later["state_error"]
    assert later["state_after"] is None
    assert later["step"]["status"] == "completed"


def test_a_snapshot_damaged_by_its_writer_leaves_the_files_steps_table_whole(
    tmp_path: Path,
) -> None:
    _run(LocalTracker(PROJECT, tmp_path, snapshot_every=5))
    path = tmp_path / PROJECT / "big" / "log.jsonl"
    lines = path.read_bytes().split(b"\n")
    at = next(
        n for n, line in enumerate(lines)
        if b'"t":"end","seq":%d,' % DAMAGED in line and b'"snapshot":{' in line
    )  # fmt: skip
    lines[at] = _damaged(lines[at])
    path.write_bytes(b"\n".join(lines))
    with TestClient(create_ui_app(tmp_path)) as client:
        _check_damage(client)


def test_a_snapshot_damaged_by_its_writer_leaves_the_postgresql_steps_table_whole(
    prefix: str, server: psycopg.Connection[Any]
) -> None:
    _run(PostgresTracker(DSN, project=PROJECT, table_prefix=prefix, snapshot_every=5))
    row = server.execute(
        f"SELECT id, payload FROM {prefix}_records WHERE app_id = 'big' AND kind = 'end' "
        "AND seq = %s AND snapshot",
        [DAMAGED],
    ).fetchone()
    assert row is not None
    payload = _damaged(row[1].encode()).decode()
    server.execute(f"UPDATE {prefix}_records SET payload = %s WHERE id = %s", [payload, row[0]])
    with TestClient(create_ui_app(DSN, table_prefix=prefix)) as client:
        _check_damage(client)
