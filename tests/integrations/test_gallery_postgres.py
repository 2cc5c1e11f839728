"""``turnout demo NAME --store postgresql://...``: the example is tracked into the PostgreSQL
tables a ``PostgresTracker`` writes, and the printed command opens the UI over them (the
password masked). Skips when the server is not reachable, except under ``CI=true``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("psycopg")
pytest.importorskip("psycopg_pool")
pytest.importorskip("fastapi")  # the email assistant's extra
import psycopg

from tests.integrations.test_postgres import DSN, server
from turnout.cli import main
from turnout.integrations.postgres_tracking import PostgresTracker

__all__ = ["server"]  # a fixture


@pytest.fixture
def prefix(server: psycopg.Connection[Any]) -> Iterator[str]:
    name = f"gal_{uuid.uuid4().hex[:12]}"
    yield name
    for table in ("records", "apps"):
        server.execute(f"DROP TABLE IF EXISTS {name}_{table}")


def test_turnout_demo_tracks_into_postgres_and_prints_the_ui_command(
    prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["demo", "email_assistant", "--store", DSN, "--table-prefix", prefix,
            "--project", "pg-gallery", "--app-id", "mail"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"--table-prefix {prefix}" in out
    assert "turnout ui --store postgresql://" in out
    assert "http://127.0.0.1:7241/projects/pg-gallery/apps/mail" in out
    tracker = PostgresTracker(DSN, project="pg-gallery", table_prefix=prefix)
    try:
        loaded = tracker.load(None, "mail")
    finally:
        tracker.close()
    assert loaded is not None
    assert loaded.position == "send"
    assert "Details: Thursday; casual." in loaded.state["final_email"]
