"""The web UI's JSON API (``turnout.integrations.fastapi.ui``) and its pages, through
FastAPI's ``TestClient`` on data tracked by real applications (``tests/integrations/fastapi_ui``):
projects, apps (paged, filtered), an app, its steps (paged both ways), one step (states, delta,
retries, spans), big values paged, 404s with reasons, and the CLI's wiring."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")

from fastapi.testclient import TestClient

from tests.integrations.fastapi_ui import BIG, LIMIT, PROJECT, free_port, write_data
from turnout import _gallery
from turnout.core.tracking import LocalTracker
from turnout.integrations.fastapi.ui import create_ui_app
from turnout.integrations.fastapi.ui.app import CSP
from turnout.integrations.fastapi.ui.server import allowed_hosts, prepare

API = f"/api/v1/projects/{PROJECT}"


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("webui") / "tracking"
    write_data(root)
    return root


@pytest.fixture(scope="module")
def client(storage: Path) -> Iterator[TestClient]:
    with TestClient(create_ui_app(storage)) as client:
        yield client


def test_projects_lists_the_project_with_its_app_count(client: TestClient) -> None:
    answer = client.get("/api/v1/projects")
    assert answer.status_code == 200
    assert [(p["name"], p["app_count"]) for p in answer.json()] == [(PROJECT, 4)]


def test_apps_are_sorted_by_last_activity_with_links_and_tags(client: TestClient) -> None:
    page = client.get(f"{API}/apps").json()
    apps = {a["app_id"]: a for a in page["apps"]}
    assert [a["app_id"] for a in page["apps"]] == ["child", "parent", "flaky", "counter"]
    assert page["total"] == page["matched"] == 4
    assert apps["counter"]["status"] == "completed"
    assert apps["counter"]["step_count"] == LIMIT + 1
    assert apps["flaky"]["status"] == "failed"
    assert apps["flaky"]["error_count"] == 1
    assert apps["child"]["parent"] == {
        "app_id": "parent", "partition_key": None, "sequence_id": 1, "kind": "fork",
    }  # fmt: skip
    assert [c["app_id"] for c in apps["parent"]["children"]] == ["child"]
    assert apps["child"]["tags"] == {"suite": "web"}
    assert page["partition_keys"] == ["(none)", "p1"]
    assert page["tags"] == ["suite=web"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=failed", ["flaky"]),
        ("partition_key=p1", ["child"]),
        ("partition_key=(none)", ["parent", "flaky", "counter"]),
        ("tag=suite=web", ["child"]),
        ("limit=2", ["child", "parent"]),
        ("limit=2&offset=2", ["flaky", "counter"]),
        ("status=running", []),
    ],
    ids=["status", "partition", "no-partition", "tag", "first-page", "second-page", "none"],
)
def test_apps_filter_and_page(client: TestClient, query: str, expected: list[str]) -> None:
    page = client.get(f"{API}/apps?{query}").json()
    assert [a["app_id"] for a in page["apps"]] == expected


def test_an_app_has_its_summary_graph_and_run_counts(client: TestClient) -> None:
    app = client.get(f"{API}/apps/counter").json()
    assert app["summary"]["app_id"] == "counter"
    assert {a["name"] for a in app["graph"]["actions"]} == {"increment", "report"}
    assert {(t["from"], t["to"], t["condition"]) for t in app["graph"]["transitions"]} == {
        ("increment", "increment", f"count < {LIMIT}"),
        ("increment", "report", "default"),
    }
    assert app["run_counts"] == {"increment": LIMIT, "report": 1}
    assert (app["first_seq"], app["last_seq"]) == (0, LIMIT)


def test_steps_page_from_the_newest_and_from_a_sequence_id(client: TestClient) -> None:
    newest = client.get(f"{API}/apps/counter/steps?limit=2").json()
    assert [s["seq"] for s in newest["steps"]] == [LIMIT, LIMIT - 1]
    assert newest["order"] == "newest-first"
    assert newest["total"] == LIMIT + 1
    older = client.get(f"{API}/apps/counter/steps?limit=2&before={newest['older']}").json()
    assert [s["seq"] for s in older["steps"]] == [LIMIT - 2, LIMIT - 3]
    after = client.get(f"{API}/apps/counter/steps?after=1&limit=2").json()
    assert after["order"] == "oldest-first"
    assert [s["seq"] for s in after["steps"]] == [2, 3]
    assert after["newer"] == 3  # step 4 is still after this page


def test_a_step_has_states_around_it_and_its_recorded_delta(client: TestClient) -> None:
    step = client.get(f"{API}/apps/counter/steps/2").json()
    assert step["step"]["action"] == "increment"
    assert step["step"]["status"] == "completed"
    assert step["state_before"]["count"] == 2
    assert step["state_after"]["count"] == 3
    assert step["state_after"]["history"] == [*range(BIG), 2, 3]
    ops = [(c["op"], c["key"], c["value"]) for c in step["changes"]]
    assert ops == [("set", "count", 3), ("append", "history", 3)]
    assert step["changes"][0]["previous"] == 2
    assert step["changes"][0]["had_previous"]
    assert [s["name"] for s in step["spans"]] == ["work"]
    assert step["spans"][0]["attributes"] == {"previous": 2}


def test_a_retried_then_failed_app_shows_attempts_and_tracebacks(client: TestClient) -> None:
    fetched = client.get(f"{API}/apps/flaky/steps/0").json()
    assert fetched["step"]["attempts"] == 2
    assert fetched["step"]["status"] == "completed"
    assert len(fetched["attempt_errors"]) == 1
    assert "the first call always fails" in fetched["attempt_errors"][0]
    failed = client.get(f"{API}/apps/flaky/steps/1").json()
    assert failed["step"]["status"] == "failed"
    assert failed["error"].startswith("Traceback")
    assert failed["step"]["error_summary"] == "ValueError: explode always fails"
    assert failed["state_after"] == failed["state_before"] == {"fetched": True}


def test_a_big_list_pages_through_every_item(client: TestClient) -> None:
    url = f"{API}/apps/counter/steps/{LIMIT - 1}/value?pointer=/history"
    seen: list[int] = []
    offset = 0
    while True:
        page = client.get(f"{url}&offset={offset}&limit=50").json()
        assert page["kind"] == "list"
        seen += [item["value"] for item in page["items"]]
        offset += 50
        if offset >= page["total"]:
            break
    assert seen == [*range(BIG), *range(2, LIMIT + 1)]  # step LIMIT - 1 appended 2..LIMIT


def test_a_fork_and_its_parent_link_each_other(client: TestClient) -> None:
    child = client.get(f"{API}/apps/child").json()["summary"]
    assert child["parent"]["app_id"] == "parent"
    assert child["partition_key"] == "p1"
    parent_step = client.get(f"{API}/apps/parent/steps").json()["steps"]
    assert [c["app_id"] for s in parent_step for c in s["children"]] == ["child"]


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/projects/nothing-here/apps", "has no tracked application"),
        ("/projects/.hidden/apps", "'.hidden' is not a tracked project name"),
        ("/projects/webui/apps/ghost", "'ghost' is not tracked"),
        ("/projects/webui/apps/counter/steps/99", "has no step 99 (it has steps 0 to 4)"),
        ("/projects/webui/apps/counter/steps/1/value?pointer=/nope", "nothing at '/nope'"),
    ],
    ids=["project", "traversal", "app", "step", "pointer"],
)
def test_what_is_missing_is_a_404_that_says_so(client: TestClient, path: str, reason: str) -> None:
    api = client.get("/api/v1" + path)
    assert api.status_code == 404
    assert reason in api.json()["detail"]
    page = client.get(path.replace("/apps?", "?").removesuffix("/apps"))
    assert page.status_code == 404
    assert "Not found" in page.text


def test_the_openapi_schema_documents_every_route(client: TestClient) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]
    assert set(paths) == {
        "/api/v1/projects",
        "/api/v1/projects/{project}/apps",
        "/api/v1/projects/{project}/apps/{app_id}",
        "/api/v1/projects/{project}/apps/{app_id}/steps",
        "/api/v1/projects/{project}/apps/{app_id}/steps/{seq}",
        "/api/v1/projects/{project}/apps/{app_id}/steps/{seq}/value",
        "/api/v1/projects/{project}/apps/{app_id}/search",
        "/api/v1/projects/{project}/search",
        "/api/v1/projects/{project}/annotations",
        "/api/v1/projects/{project}/annotations.csv",
        "/api/v1/projects/{project}/annotations.jsonl",
        "/api/v1/projects/{project}/annotations/{annotation_id}",
        "/api/v1/projects/{project}/annotations.cases.json",
        "/api/v1/projects/{project}/apps/{app_id}/timeline",
        "/api/v1/projects/{project}/apps/{app_id}/waiting",
        "/api/v1/projects/{project}/apps/{app_id}/steps/{seq}/artifacts",
        "/api/v1/projects/{project}/apps/{app_id}/steps/{seq}/test-case",
        "/api/v1/projects/{project}/apps/{app_id}/insights",
        "/api/v1/projects/{project}/insights",
        "/api/v1/prices",
    }


def test_an_app_id_with_a_slash_is_reachable(tmp_path: Path) -> None:
    from tests.integrations.fastapi_ui import counter_builder
    from turnout.core.tracking import LocalTracker

    tracker = LocalTracker(PROJECT, storage_dir=tmp_path)
    counter_builder(tracker, "team/a b?c", 1).build().run(halt_after=["report"])
    tracker.close()
    quoted = urllib.parse.quote("team/a b?c", safe="")
    with TestClient(create_ui_app(tmp_path)) as client:
        assert client.get(f"{API}/apps/{quoted}").json()["summary"]["app_id"] == "team/a b?c"
        assert client.get(f"{API}/apps/{quoted}/steps/0").json()["step"]["seq"] == 0
        page = client.get(f"/projects/{PROJECT}/apps/{quoted}/steps/0")
        assert page.status_code == 200
        assert f'href="/projects/{PROJECT}/apps/{quoted}' in page.text


def test_pages_carry_the_content_security_policy(client: TestClient) -> None:
    for path in ("/", f"/projects/{PROJECT}", f"/projects/{PROJECT}/apps/counter/steps/1"):
        answer = client.get(path)
        assert answer.status_code == 200
        assert answer.headers["content-security-policy"] == CSP
        assert "script-src 'self'" in CSP
        assert "unsafe-inline" not in CSP


def test_a_chosen_step_is_highlighted_not_coloured_as_a_failure(client: TestClient) -> None:
    page = client.get(f"/projects/{PROJECT}/apps/flaky/steps/0").text
    assert '<tr id="step-0" class="step selected st-completed"' in page
    assert '<tr id="step-1" class="step st-failed"' in page
    failed = client.get(f"/projects/{PROJECT}/apps/flaky/steps/1").text
    assert '<tr id="step-1" class="step selected st-failed"' in failed
    assert '<pre class="traceback">Traceback' in failed


def test_a_big_list_on_the_step_page_links_to_its_next_items(client: TestClient) -> None:
    page = client.get(f"/projects/{PROJECT}/apps/counter/steps/1").text
    assert f"{BIG + 1 - 50} more items" in page
    assert "value?state=after&pointer=%2Fhistory&offset=50" in page
    more = client.get(f"/projects/{PROJECT}/apps/counter/steps/1/value?pointer=/history&offset=50")
    assert more.status_code == 200
    assert "showing 51\u2013100" in more.text


def test_an_htmx_step_click_gets_the_step_panel_and_graph_only(client: TestClient) -> None:
    url = f"/projects/{PROJECT}/apps/counter/steps/2"
    click = client.get(url, headers={"HX-Request": "true", "HX-Target": "step-panel"}).text
    assert click.lstrip().startswith('<section class="panel" id="step-panel" data-seq="2">')
    assert '<svg class="graph" id="graph" hx-swap-oob="true"' in click
    assert 'id="steps"' not in click
    assert "<html" not in click
    partial = client.get(url, headers={"HX-Request": "true"}).text
    assert partial.lstrip().startswith('<div id="app-main"')
    assert "<html" not in partial
    restore = client.get(url, headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in restore.text


def test_host_names_outside_the_allowed_list_are_refused(storage: Path) -> None:
    with TestClient(create_ui_app(storage, allowed_hosts=allowed_hosts("127.0.0.1"))) as client:
        assert client.get("/", headers={"host": "127.0.0.1:7241"}).status_code == 200
        assert client.get("/", headers={"host": "evil.example"}).status_code == 400


def test_prepare_runs_the_demo_into_an_empty_directory_only(tmp_path: Path) -> None:
    prepare(tmp_path / "empty", demo=False)
    assert list((tmp_path / "empty").iterdir()) == []
    prepare(tmp_path / "demo", demo=True)
    with TestClient(create_ui_app(tmp_path / "demo")) as client:
        names = [p["name"] for p in client.get("/api/v1/projects").json()]
        assert names == ["demo"]
        assert client.get("/projects/demo").status_code == 200
    # The gallery examples follow in a background process, listed by the app "gallery" last.
    tracker = LocalTracker("demo", storage_dir=tmp_path / "demo")
    deadline = time.monotonic() + 180
    while (listing := tracker.load(None, "gallery")) is None:
        assert time.monotonic() < deadline, "the gallery never finished"
        time.sleep(0.1)
    rows = listing.state["examples"]
    assert [row["name"] for row in rows] == [example.name for example in _gallery.EXAMPLES]
    assert {row["status"] for row in rows} <= {"ran", "skipped"}


def test_turnout_ui_serves_the_api_on_the_given_port(storage: Path, tmp_path: Path) -> None:
    """``turnout ui --no-demo --port P --dir D`` answers on 127.0.0.1:P and stops on
    SIGTERM."""
    port = free_port()
    log = tmp_path / "ui.log"
    command = [
        sys.executable, "-m", "turnout.cli", "ui", "--no-demo",
        "--port", str(port), "--dir", str(storage),
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/projects") as answer:
                    projects = json.loads(answer.read())
                break
            except OSError:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
        assert [p["name"] for p in projects] == [PROJECT]
        assert f"http://127.0.0.1:{port}" in log.read_text()
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_the_steps_table_pages_and_a_deep_link_opens_the_page_of_its_step(tmp_path: Path) -> None:
    from tests.integrations.fastapi_ui import counter_builder
    from turnout.core.tracking import LocalTracker

    tracker = LocalTracker(PROJECT, storage_dir=tmp_path)
    counter_builder(tracker, "long", 130).build().run(halt_after=["report"])  # steps 0..130
    tracker.close()
    base = f"/projects/{PROJECT}/apps/long"
    with TestClient(create_ui_app(tmp_path)) as client:
        newest = client.get(base).text
        assert 'id="step-130"' in newest
        assert 'id="step-31"' in newest
        assert 'id="step-30"' not in newest
        assert f'href="{base}?top=30"' in newest  # the older page
        older = client.get(f"{base}?top=30").text
        assert 'id="step-30"' in older
        assert 'id="step-0"' in older
        assert 'id="step-31"' not in older
        deep = client.get(f"{base}/steps/5").text
        assert '<tr id="step-5" class="step selected' in deep
        assert f'href="{base}/steps/6?top=55"' in deep  # step links keep the page they are on


def test_the_web_ui_does_not_import_streamlit() -> None:
    """The web UI reads files and PostgreSQL through the store-agnostic reader: importing it,
    building an app and reading a directory loads no Streamlit module."""
    probe = (
        "import sys, tempfile\n"
        "import turnout.integrations.fastapi.ui as ui\n"
        "from fastapi.testclient import TestClient\n"
        "with TestClient(ui.create_ui_app(tempfile.mkdtemp())) as client:\n"
        "    assert client.get('/api/v1/projects').json() == []\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'streamlit'"
        " or m.startswith('turnout.integrations.streamlit')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert out.strip() == "[]"


def test_the_applications_page_pages_by_50_and_keeps_its_filters(tmp_path: Path) -> None:
    from tests.integrations.fastapi_ui import counter_builder
    from turnout.core.tracking import LocalTracker

    tracker = LocalTracker(PROJECT, storage_dir=tmp_path)
    for number in range(55):
        counter_builder(tracker, f"app-{number:02d}", 1).build().run(halt_after=["report"])
    tracker.close()
    with TestClient(create_ui_app(tmp_path)) as client:
        first = client.get(f"/projects/{PROJECT}?status=completed").text
        assert first.count('<a class="applink" href="/projects/') == 50
        assert "55 of 55 applications" in first
        assert f'href="/projects/{PROJECT}?offset=50&amp;status=completed"' in first
        second = client.get(f"/projects/{PROJECT}?offset=50&status=completed").text
        assert second.count('<a class="applink" href="/projects/') == 5
        assert 'id="apps"' in second
        assert 'rel="next"' not in second
        assert "<option selected>completed</option>" in second


def test_a_long_log_opens_on_its_tail_and_reads_all_on_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``tracktail.LONG_LOG`` bytes a log is read from its tail first; the page says so
    and its button reads every step (as the Streamlit page does)."""
    from tests.integrations.fastapi_ui import counter_builder
    from turnout.core import tracktail
    from turnout.core.tracking import LocalTracker

    tracker = LocalTracker(PROJECT, storage_dir=tmp_path, snapshot_every=10)
    counter_builder(tracker, "long", 300).build().run(halt_after=["report"])
    tracker.close()
    size = (tmp_path / PROJECT / "long" / "log.jsonl").stat().st_size
    monkeypatch.setattr(tracktail, "LONG_LOG", size // 2)
    monkeypatch.setattr(tracktail, "WINDOW", size // 5)
    base = f"/projects/{PROJECT}/apps/long"
    with TestClient(create_ui_app(tmp_path)) as client:
        app = client.get(f"/api/v1{base}").json()
        assert app["partial"]
        assert 0 < app["first_seq"] < 300
        assert app["last_seq"] == 300
        page = client.get(base).text
        assert 'id="tail-notice"' in page
        assert f"from step {app['first_seq']}" in page
        early = client.get(f"/api/v1{base}/steps/0")
        assert early.status_code == 404
        assert "Read all steps" in early.json()["detail"]
        answer = client.post(f"{base}/read-all", follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"] == base
        assert client.get(f"/api/v1{base}").json()["first_seq"] == 0
        assert 'id="tail-notice"' not in client.get(base).text
        assert client.get(f"/api/v1{base}/steps/0").json()["state_after"]["count"] == 1
