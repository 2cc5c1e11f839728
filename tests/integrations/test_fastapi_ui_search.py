"""Text search and the action filter of the web UI, on a tracking directory and on PostgreSQL:
a step matches when its inputs, result, error or the state it wrote hold the text (plain,
any case); a project's search is newest first and bounded by a number of hits and a time
budget, and says when it stopped; clicking an action of the graph filters the steps table
(``?action=``) and the steps API takes the same filter.

The PostgreSQL store skips when the server is not reachable, except under ``CI=true``."""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")

from fastapi.testclient import TestClient

from tests.integrations.fastapi_ui import LIMIT, PROJECT, write_data, write_runs
from turnout.integrations.fastapi.ui import create_ui_app, search
from turnout.integrations.fastapi.ui._source import Reader, open_source

try:  # the PostgreSQL half needs psycopg; the files half runs without it
    import psycopg  # noqa: F401
    import psycopg_pool  # noqa: F401
except ImportError:

    @pytest.fixture(scope="module")
    def server() -> None:
        pytest.skip("the PostgreSQL store needs psycopg (pip install 'turnout[postgresql]')")

else:
    from tests.integrations.test_postgres import server

__all__ = ["server"]  # a fixture, shared with test_postgres

API = f"/api/v1/projects/{PROJECT}"
PAGES = f"/projects/{PROJECT}"


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("webui-search") / "tracking"
    write_data(root)
    return root


@pytest.fixture(scope="module")
def pg_prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    """The test data in PostgreSQL under a prefix of this module alone (dropped after)."""
    from tests.integrations.test_fastapi_ui_postgres import drop_prefix
    from tests.integrations.test_postgres import DSN
    from turnout.integrations.postgres_tracking import PostgresTracker

    server = request.getfixturevalue("server")
    prefix = f"search_{uuid.uuid4().hex[:12]}"
    write_runs(lambda tags: PostgresTracker(DSN, project=PROJECT, table_prefix=prefix, tags=tags))
    yield prefix
    drop_prefix(server, prefix)


@pytest.fixture(scope="module", params=["files", "postgresql"])
def store(request: pytest.FixtureRequest, storage: Path) -> tuple[str | Path, str]:
    """``(store, table prefix)``: the same runs in a directory and in PostgreSQL."""
    if request.param == "files":
        return storage, "turnout_tracking"
    from tests.integrations.test_postgres import DSN

    return DSN, request.getfixturevalue("pg_prefix")


@pytest.fixture(scope="module")
def client(store: tuple[str | Path, str]) -> Iterator[TestClient]:
    where, prefix = store
    with TestClient(create_ui_app(where, table_prefix=prefix)) as client:
        yield client


def _hits(answer: Any) -> list[tuple[str, int, str, str]]:
    assert answer.status_code == 200, answer.text
    return [(h["app_id"], h["seq"], h["action"], h["field"]) for h in answer.json()["hits"]]


def test_an_apps_search_finds_the_step_whose_result_holds_the_text_in_any_case(
    client: TestClient,
) -> None:
    answer = client.get(f"{API}/apps/counter/search", params={"q": "COUNTED to"})
    assert _hits(answer) == [("counter", LIMIT, "report", "result")]
    hit = answer.json()["hits"][0]
    assert hit["match"] == "counted to"  # as recorded, not as typed
    assert hit["before"] == ""  # the context is the string it was found in
    assert hit["after"] == f" {LIMIT}"
    assert answer.json()["stopped"] is None


def test_errors_and_failed_attempts_are_searched(client: TestClient) -> None:
    answer = client.get(f"{API}/apps/flaky/search", params={"q": "always fails"})
    assert _hits(answer) == [
        ("flaky", 1, "explode", "error"),
        ("flaky", 0, "fetch", "attempt_errors"),
    ]


def test_the_state_a_step_wrote_is_searched_not_the_state_it_inherited(client: TestClient) -> None:
    # Step 0 wrote the history list (0 .. 119); later steps carry it but did not write it.
    answer = client.get(f"{API}/apps/counter/search", params={"q": "117,118"})
    assert _hits(answer) == [("counter", 0, "increment", "changes")]
    across = client.get(f"{API}/search", params={"q": "117,118"})
    assert _hits(across) == [  # the fork did not write it either
        ("parent", 0, "increment", "changes"),
        ("counter", 0, "increment", "changes"),
    ]


def test_the_text_is_plain_not_a_pattern(client: TestClient) -> None:
    assert _hits(client.get(f"{API}/apps/counter/search", params={"q": "count.d"})) == []
    assert _hits(client.get(f"{API}/search", params={"q": "(a+)+$"})) == []


def test_a_projects_search_covers_its_apps_newest_first(client: TestClient) -> None:
    answer = client.get(f"{API}/search", params={"q": "counted to"})
    hits = _hits(answer)
    assert sorted(hits) == [
        ("child", 3, "report", "result"),
        ("counter", LIMIT, "report", "result"),
        ("parent", 2, "report", "result"),
    ]
    assert hits[0][0] == "child"  # tracked last
    body = answer.json()
    assert body["stopped"] is None
    assert body["apps_searched"] == body["apps_total"] == 4


def test_a_projects_search_stops_at_its_limit_and_says_so(client: TestClient) -> None:
    answer = client.get(f"{API}/search", params={"q": "count", "limit": 2})
    assert len(_hits(answer)) == 2
    assert answer.json()["stopped"] == "limit"
    page = client.get(f"{PAGES}/search", params={"q": "count"})
    assert 'id="search-stopped"' not in page.text  # the page's own limit (100) is not reached
    # every increment and report: counter 0..4, parent 0..2, child (forked after 1) 2..3
    assert page.text.count('class="hit ') == (LIMIT + 1) + 3 + 2


@pytest.mark.parametrize("kind", ["files", "postgresql"])
def test_quotes_and_non_ascii_are_found_as_typed(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A log holds a string JSON-escaped: the search finds the text as written, not escaped."""
    from turnout import ApplicationBuilder, State, action
    from turnout.core.tracking import LocalTracker

    @action(reads=[], writes=["said"])
    def speak(state: State, line: str) -> tuple[dict[str, str], State]:
        return {"line": line}, state.update(said=[{"quote": line}])

    tracker: Any
    if kind == "files":
        tracker, where = LocalTracker("quotes", storage_dir=tmp_path), open_source(tmp_path)
    else:
        from tests.integrations.test_postgres import DSN
        from turnout.integrations.postgres_tracking import PostgresSource, PostgresTracker

        prefix = request.getfixturevalue("pg_prefix")
        tracker = PostgresTracker(DSN, project="quotes", table_prefix=prefix)
        where = PostgresSource(DSN, table_prefix=prefix)
    app = (
        ApplicationBuilder()
        .with_actions(speak)
        .with_transitions(("speak", "speak"))
        .with_entrypoint("speak")
        .with_tracker(tracker)
        .with_identifiers(app_id="talk")
        .build()
    )
    app.step(inputs={"line": 'She said "Ça va?" and left\\'})
    app.step(inputs={"line": "nothing"})
    tracker.close()
    reader = Reader(where)
    try:
        for text in ('SAID "ça va?"', "left\\", "ÇA"):
            results = search.search_project(reader, "quotes", text)
            assert [(h.seq, h.field) for h in results.hits] == [(0, "inputs")], text
        found = search.search_project(reader, "quotes", '"Ça va?" and').hits[0]
        assert found.match == '"Ça va?" and'
    finally:
        reader.close()


def test_a_file_scan_stops_when_its_time_is_up(storage: Path) -> None:
    reader = Reader(open_source(storage))
    results = search.search_project(reader, PROJECT, "counted", budget=1e-9)
    assert results.stopped == "time"
    assert results.apps_searched < results.apps_total


def test_a_text_split_across_two_chunks_of_a_log_is_found(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_bytes(b"x" * (search._CHUNK - 3) + b"Needle" + b"x" * 10)
    deadline = float("inf")
    assert search.file_holds(log, ["needle"], deadline) is True
    assert search.file_holds(log, ["needles"], deadline) is False


@pytest.mark.parametrize(
    ("query", "reason"),
    [("", "empty"), ("   ", "empty"), ("x" * 201, "shorter part")],
    ids=["empty", "blank", "too-long"],
)
def test_a_bad_search_text_is_refused_with_the_fix(
    client: TestClient, query: str, reason: str
) -> None:
    answer = client.get(f"{API}/search", params={"q": query})
    assert answer.status_code == 422
    assert reason in answer.json()["detail"]


def test_searching_what_is_not_there_is_a_404(client: TestClient) -> None:
    assert client.get("/api/v1/projects/nope/search", params={"q": "a"}).status_code == 404
    assert client.get(f"{API}/apps/nope/search", params={"q": "a"}).status_code == 404


def test_the_search_pages_link_each_match_to_its_step(client: TestClient) -> None:
    app_page = client.get(f"{PAGES}/apps/counter")
    assert f'action="{PAGES}/apps/counter/search"' in app_page.text  # the search box
    found = client.get(f"{PAGES}/apps/counter/search", params={"q": "Counted"})
    assert f'href="{PAGES}/apps/counter/steps/{LIMIT}"' in found.text
    assert "<mark>counted</mark>" in found.text
    across = client.get(f"{PAGES}/search", params={"q": "explode always"})
    assert f'href="{PAGES}/apps/flaky/steps/1"' in across.text
    assert "1 matching step in 4 of 4 applications" in across.text
    bad = client.get(f"{PAGES}/search", params={"q": "y" * 300})
    assert bad.status_code == 200
    assert 'id="search-problem"' in bad.text


def test_the_steps_api_filters_by_action(client: TestClient) -> None:
    report = client.get(f"{API}/apps/counter/steps", params={"action": "report"}).json()
    assert [s["seq"] for s in report["steps"]] == [LIMIT]
    assert report["total"] == 1
    increments = client.get(f"{API}/apps/counter/steps", params={"action": "increment"}).json()
    assert [s["seq"] for s in increments["steps"]] == list(range(LIMIT - 1, -1, -1))


def test_each_action_of_the_graph_links_to_the_table_filtered_to_it(client: TestClient) -> None:
    page = client.get(f"{PAGES}/apps/counter").text
    assert f'href="{PAGES}/apps/counter?action=report"' in page
    assert 'class="node chosen' not in page
    filtered = client.get(f"{PAGES}/apps/counter", params={"action": "report"}).text
    assert filtered.count('<tr id="step-') == 1
    assert f'id="step-{LIMIT}"' in filtered
    assert 'id="action-filter"' in filtered
    assert 'class="node chosen' in filtered
    # a step opened from the filtered table keeps the filter in its URL
    assert f'href="{PAGES}/apps/counter/steps/{LIMIT}?action=report"' in filtered
    step = client.get(f"{PAGES}/apps/counter/steps/{LIMIT}", params={"action": "report"}).text
    assert step.count('<tr id="step-') == 1
    none = client.get(f"{PAGES}/apps/counter", params={"action": urllib.parse.quote("<b>")})
    assert "No step ran action" in none.text
