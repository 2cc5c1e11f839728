"""The web UI on a PostgreSQL store (``turnout ui --store postgresql://...``): the JSON API
and the pages answer what they answer on a tracking directory for the same runs, a long
history opens on its tail with a way to read it all, live mode brings a step written while an
SSE client listens, and the CLI serves the store named by ``--store``.

Skips when the server is not reachable, except under ``CI=true`` (the ``server`` fixture).
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")
pytest.importorskip("psycopg")
pytest.importorskip("psycopg_pool")
import httpx
import psycopg
from fastapi.testclient import TestClient

from tests.integrations.fastapi_ui import (
    BIG,
    LIMIT,
    PROJECT,
    counter_builder,
    free_port,
    serve_ui,
    write_data,
    write_runs,
)
from tests.integrations.test_postgres import DSN, server
from turnout.integrations.fastapi.ui import create_ui_app
from turnout.integrations.postgres_tracking import PostgresSource, PostgresTracker

__all__ = ["server"]  # a fixture, shared with test_postgres

API = f"/api/v1/projects/{PROJECT}"
# Times differ between the stores (a file's mtime, a row's commit time): compared apart.
TIMES = {"first_time", "last_time", "start", "end", "duration", "time_to_first_item"}
TIMES |= {"last_activity"}


def drop_prefix(server: psycopg.Connection[Any], name: str) -> None:
    for table in ("records", "apps"):
        server.execute(f"DROP TABLE IF EXISTS {name}_{table}")
    server.execute(f"DROP FUNCTION IF EXISTS {name}_ui_touch()")


@pytest.fixture(scope="module")
def stores(
    server: psycopg.Connection[Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, str]]:
    """The test data of ``tests/integrations/fastapi_ui`` in a directory and in PostgreSQL
    (a table prefix of this module alone, dropped afterwards)."""
    root = tmp_path_factory.mktemp("webui-pg") / "tracking"
    write_data(root)
    prefix = f"webui_{uuid.uuid4().hex[:12]}"
    write_runs(lambda tags: PostgresTracker(DSN, project=PROJECT, table_prefix=prefix, tags=tags))
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


@pytest.fixture
def prefix(server: psycopg.Connection[Any]) -> Iterator[str]:
    """A table prefix of one test alone, dropped afterwards."""
    name = f"webui_{uuid.uuid4().hex[:12]}"
    yield name
    drop_prefix(server, name)


def _timeless(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if k not in TIMES}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


def _both(clients: tuple[TestClient, TestClient], path: str) -> tuple[Any, Any]:
    files, pg = (client.get(path) for client in clients)
    assert files.status_code == pg.status_code, (path, files.text, pg.text)
    return _timeless(files.json()), _timeless(pg.json())


def _urls(files: TestClient) -> list[str]:
    """Every API URL of the test data: lists, each app, its steps, each step, a big value."""
    urls = [
        "/api/v1/projects",
        f"{API}/apps",
        f"{API}/apps?status=failed",
        f"{API}/apps?partition_key=p1",
        f"{API}/apps?partition_key=(none)",
        f"{API}/apps?tag=suite=web",
        f"{API}/apps?limit=2&offset=2",
        f"{API}/apps/counter/steps?limit=2",
        f"{API}/apps/counter/steps?after=1&limit=2",
        f"{API}/apps/counter/steps/{LIMIT - 1}/value?pointer=/history&offset=50",
    ]
    for app in files.get(f"{API}/apps").json()["apps"]:
        base = f"{API}/apps/{app['app_id']}"
        urls += [base, f"{base}/steps"]
        for step in files.get(f"{base}/steps").json()["steps"]:
            urls.append(f"{base}/steps/{step['seq']}")
    return urls


def test_the_api_answers_on_postgresql_what_it_answers_on_files(
    clients: tuple[TestClient, TestClient],
) -> None:
    urls = _urls(clients[0])
    assert len(urls) > 20
    for url in urls:
        from_files, from_pg = _both(clients, url)
        assert from_pg == from_files, url
    apps = clients[1].get(f"{API}/apps").json()
    assert [a["app_id"] for a in apps["apps"]] == ["child", "parent", "flaky", "counter"]
    assert apps["total"] == apps["matched"] == 4
    step = clients[1].get(f"{API}/apps/counter/steps/2").json()
    assert step["state_after"]["history"] == [*range(BIG), 2, 3]
    assert [(c["op"], c["key"], c["value"]) for c in step["changes"]] == [
        ("set", "count", 3),
        ("append", "history", 3),
    ]


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/projects/nothing-here/apps", "has no tracked application"),
        ("/projects/webui/apps/ghost", "'ghost' is not tracked"),
        ("/projects/webui/apps/counter/steps/99", "has no step 99 (it has steps 0 to 4)"),
    ],
    ids=["project", "app", "step"],
)
def test_what_is_missing_on_postgresql_is_a_404_that_says_so(
    clients: tuple[TestClient, TestClient], path: str, reason: str
) -> None:
    answer = clients[1].get("/api/v1" + path)
    assert answer.status_code == 404
    assert reason in answer.json()["detail"]
    if "/steps/" not in path:
        assert f"PostgreSQL tables {prefix_of(clients)}_records" in answer.json()["detail"]


def prefix_of(clients: tuple[TestClient, TestClient]) -> str:
    """The table prefix the PostgreSQL client's app reads."""
    prefix = clients[1].app.state.source.table_prefix  # type: ignore[attr-defined]
    assert isinstance(prefix, str)
    return prefix


def test_the_pages_show_a_postgresql_store(
    clients: tuple[TestClient, TestClient], stores: tuple[Path, str]
) -> None:
    _, prefix = stores
    pg = clients[1]
    home = pg.get("/").text
    assert f"{prefix}_records" in home
    assert f'href="/projects/{PROJECT}"' in home
    apps = pg.get(f"/projects/{PROJECT}?status=failed").text
    assert "1 of 4 applications" in apps
    assert ">flaky</a>" in apps
    page = pg.get(f"/projects/{PROJECT}/apps/counter/steps/2").text
    assert '<tr id="step-2" class="step selected st-completed"' in page
    assert "PostgresTracker(" in page
    assert f"table_prefix=&#39;{prefix}&#39;" in page
    assert DSN not in page  # the connection string (a password) is left for the user
    # turnout test-case reads the store too: its command names the tables, not the password.
    assert f"turnout test-case --store postgresql://... --table-prefix {prefix}" in page


def test_an_empty_postgresql_store_says_how_to_track_into_it(prefix: str) -> None:
    with TestClient(create_ui_app(DSN, table_prefix=prefix)) as client:
        assert client.get("/api/v1/projects").json() == []
        home = client.get("/").text
        assert "No tracked applications yet" in home
        assert "PostgresTracker(&#34;postgresql://...&#34;, project=&#34;my-project&#34;" in home
        assert client.get(f"/api/v1/projects/{PROJECT}/apps").status_code == 404


def test_a_long_history_opens_on_its_tail_and_reads_all_on_request(prefix: str) -> None:
    tracker = PostgresTracker(DSN, project=PROJECT, table_prefix=prefix, snapshot_every=10)
    try:
        counter_builder(tracker, "long", 300).build().run(halt_after=["report"])
    finally:
        tracker.close()
    source = PostgresSource(DSN, table_prefix=prefix, long_app=200, window=100)
    base = f"/projects/{PROJECT}/apps/long"
    try:
        with TestClient(create_ui_app(source)) as client:
            app = client.get(f"/api/v1{base}").json()
            assert app["partial"]
            assert app["last_seq"] == 300
            assert app["first_seq"] > 0
            page = client.get(base).text
            assert 'id="tail-notice"' in page
            assert f'action="{base}/read-all"' in page
            early = client.get(f"/api/v1{base}/steps/0")
            assert early.status_code == 404
            assert "Read all steps" in early.json()["detail"]
            answer = client.post(f"{base}/read-all", follow_redirects=False)
            assert answer.status_code == 303
            assert answer.headers["location"] == base
            assert not client.get(f"/api/v1{base}").json()["partial"]
            assert 'id="tail-notice"' not in client.get(base).text
            assert client.get(f"/api/v1{base}/steps/0").json()["state_before"]["count"] == 0
    finally:
        source.close()


def _listen(url: str, lines: queue.Queue[str], stop: threading.Event) -> None:
    """An SSE client: every line it reads goes to ``lines``, until the server goes away."""
    try:
        with httpx.stream("GET", url, timeout=httpx.Timeout(30.0, read=60.0)) as answer:
            lines.put(f"status {answer.status_code}")
            for line in answer.iter_lines():
                lines.put(line)
    except httpx.HTTPError as error:
        if not stop.is_set():  # the server stopping at the test's end cuts the stream
            lines.put(f"error {type(error).__name__}: {error}")


def _until(lines: queue.Queue[str], text: str, deadline: float) -> list[str]:
    seen: list[str] = []
    while not any(text in line for line in seen):
        left = deadline - time.monotonic()
        assert left > 0, f"{text!r} never arrived; got {seen}"
        try:
            seen.append(lines.get(timeout=left))
        except queue.Empty:
            continue
    return seen


def test_live_mode_brings_a_step_written_while_a_client_listens(prefix: str) -> None:
    """The server waits on LISTEN/NOTIFY, not on a poll: with a 60 s poll interval a step
    still arrives within moments of being written."""
    tracker = PostgresTracker(DSN, project=PROJECT, table_prefix=prefix)
    source = PostgresSource(DSN, table_prefix=prefix)
    stop = threading.Event()
    try:
        app = counter_builder(tracker, "live-run", limit=10).build()
        app.step()
        app.step()
        tracker.flush()
        assert source.wait_listening(10)
        with serve_ui(source, live_poll=60.0) as url:
            lines: queue.Queue[str] = queue.Queue()
            listener = threading.Thread(
                target=_listen,
                args=(f"{url}/projects/{PROJECT}/apps/live-run/live?after=1", lines, stop),
                daemon=True,
            )
            listener.start()
            assert _until(lines, "status", time.monotonic() + 20)[0] == "status 200"
            for seq in (2, 3):
                app.step()
                tracker.flush()
                # The step's row, then the summary line counting it.
                got = _until(lines, f"<b>{seq + 1}</b> steps", time.monotonic() + 20)
                assert any(f'id="step-{seq}"' in line for line in got), got
                assert "event: step" in got
            stop.set()
        listener.join(timeout=30)
        assert not listener.is_alive()
    finally:
        tracker.close()
        source.close()


def test_turnout_ui_serves_a_postgresql_store(stores: tuple[Path, str], tmp_path: Path) -> None:
    """``turnout ui --store DSN --table-prefix P`` answers from those tables."""
    _, prefix = stores
    port = free_port()
    log = tmp_path / "ui.log"
    command = [
        sys.executable, "-m", "turnout.cli", "ui", "--port", str(port),
        "--store", DSN, "--table-prefix", prefix, "--dir", str(tmp_path / "unused"),
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                url = f"http://127.0.0.1:{port}/api/v1/projects/{PROJECT}/apps"
                with urllib.request.urlopen(url) as answer:
                    page = json.loads(answer.read())
                break
            except OSError:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
        assert {a["app_id"] for a in page["apps"]} == {"child", "parent", "flaky", "counter"}
        assert f"tables {prefix}_*" in log.read_text()
        assert not (tmp_path / "unused").exists()  # no demo data for a PostgreSQL store
    finally:
        process.terminate()
        process.wait(timeout=15)
