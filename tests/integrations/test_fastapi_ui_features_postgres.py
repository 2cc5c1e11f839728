"""The web UI's cost insights, view routes and test-case downloads on a PostgreSQL store answer
what they answer on a tracking directory for the same runs, and ``turnout test-case --store``
writes the case ``turnout test-case --dir`` writes.

Skips when the server is not reachable, except under ``CI=true`` (the ``server`` fixture).
"""

from __future__ import annotations

import json
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

from tests.integrations.fastapi_ui import PROJECT, write_data, write_runs
from tests.integrations.fastapi_ui_tokens import HOSTILE, write_token_runs
from tests.integrations.fastapi_ui_tokens import PROJECT as COSTS
from tests.integrations.test_fastapi_ui_postgres import drop_prefix
from tests.integrations.test_postgres import DSN, server
from turnout.cli import main
from turnout.core.tracking import LocalTracker
from turnout.integrations.fastapi.ui import create_ui_app
from turnout.integrations.postgres_tracking import PostgresTracker

__all__ = ["server"]  # a fixture, shared with test_postgres

TIMES = {"mean_duration", "p50_duration", "p95_duration", "max_duration", "start", "duration",
         "last_time", "over_time", "left", "width", "run_start", "run_end", "window_start",
         "window_end"}  # fmt: skip


def _timeless(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if k not in TIMES}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


@pytest.fixture(scope="module")
def stores(
    server: psycopg.Connection[Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, str]]:
    """The web UI's test data and the token runs, in a directory and in PostgreSQL."""
    root = tmp_path_factory.mktemp("features-pg") / "tracking"
    write_data(root)
    write_token_runs(LocalTracker(COSTS, storage_dir=root))
    prefix = f"feat_{uuid.uuid4().hex[:12]}"
    write_runs(lambda tags: PostgresTracker(DSN, project=PROJECT, table_prefix=prefix, tags=tags))
    write_token_runs(PostgresTracker(DSN, project=COSTS, table_prefix=prefix))
    yield root, prefix
    drop_prefix(server, prefix)


@pytest.fixture(scope="module")
def clients(stores: tuple[Path, str]) -> Iterator[tuple[TestClient, TestClient]]:
    root, prefix = stores
    with (
        TestClient(create_ui_app(root)) as files,
        TestClient(create_ui_app(DSN, table_prefix=prefix)) as pg,
    ):
        yield files, pg


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/projects/{COSTS}/insights",
        f"/api/v1/projects/{COSTS}/apps/chat/insights",
        f"/api/v1/projects/{PROJECT}/insights",
        f"/api/v1/projects/{PROJECT}/apps/parent/timeline",
        f"/api/v1/projects/{PROJECT}/apps/counter/steps/2/artifacts",
        f"/api/v1/projects/{PROJECT}/apps/counter/steps/2/test-case",
        f"/api/v1/projects/{PROJECT}/apps/child/steps/3/test-case",
    ],
    ids=["project-costs", "app-costs", "project-no-tokens", "timeline", "artifacts",
         "case", "forked-case"],
)  # fmt: skip
def test_postgresql_answers_what_files_answer(
    clients: tuple[TestClient, TestClient], path: str
) -> None:
    files, pg = (client.get(path) for client in clients)
    assert files.status_code == pg.status_code == 200, (files.text, pg.text)
    assert _timeless(pg.json()) == _timeless(files.json())


def test_postgresql_insights_price_and_escape_like_files(
    clients: tuple[TestClient, TestClient],
) -> None:
    view = clients[1].get(f"/api/v1/projects/{COSTS}/apps/chat/insights").json()
    assert view["totals"]["unpriced_tokens"] == 300
    assert {m["model"] for m in view["models"]} == {"gpt-4o-2024-08-06", HOSTILE}
    page = clients[1].get(f"/projects/{COSTS}/apps/chat/insights").text
    assert HOSTILE not in page
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;&amp;model" in page


def test_turnout_test_case_reads_a_postgresql_store(
    stores: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, prefix = stores
    from_dir, from_pg = tmp_path / "dir.json", tmp_path / "pg.json"
    ids = ["--project", PROJECT, "--app-id", "counter", "--sequence-id", "2"]
    assert main(["test-case", "--dir", str(root), *ids, "--out", str(from_dir)]) == 0
    store = ["--store", DSN, "--table-prefix", prefix]
    assert main(["test-case", *store, *ids, "--out", str(from_pg)]) == 0
    assert "wrote case 'counter-2-increment'" in capsys.readouterr().out
    assert json.loads(from_pg.read_text()) == json.loads(from_dir.read_text())
    with pytest.raises(SystemExit, match="no application 'ghost' in project"):
        main(["test-case", *store, "--project", PROJECT, "--app-id", "ghost",
              "--sequence-id", "0", "--out", str(from_pg)])  # fmt: skip
    with pytest.raises(SystemExit, match=r"no completed step 1 .*step 1 is failed"):
        main(["test-case", *store, "--project", PROJECT, "--app-id", "flaky",
              "--sequence-id", "1", "--out", str(from_pg)])  # fmt: skip
    with pytest.raises(SystemExit, match="has partition key 'p1', not 'p2'"):
        main(["test-case", *store, "--project", PROJECT, "--app-id", "child",
              "--sequence-id", "2", "--partition-key", "p2", "--out", str(from_pg)])  # fmt: skip
    unreachable = "postgresql://me:secret@127.0.0.1:1/none"
    with pytest.raises(SystemExit) as refused:
        main(["test-case", "--store", unreachable, *ids, "--out", str(from_pg)])
    assert "secret" not in str(refused.value)
    assert "me:***@127.0.0.1:1" in str(refused.value)
    assert len(json.loads(from_pg.read_text())) == 1  # nothing written by the refusals
