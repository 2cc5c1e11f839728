"""The JSON routes of the views that began as HTML pages (timeline, waiting, artifacts) answer
what the pages show, and the test-case downloads (a step's case file, the annotations' cases)
are what ``turnout test-case`` and ``turnout annotations cases`` write, and run under
``turnout.testing.assert_case``."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")
from fastapi.testclient import TestClient

from tests.integrations.fastapi_ui import LIMIT, PROJECT, increment, write_data
from turnout import ApplicationBuilder, ApplicationContext, State, action
from turnout._annotations_cli import annotations_command
from turnout.cli import test_case_command as write_test_case
from turnout.core.artifacts import LocalArtifactStore
from turnout.core.tracking import LocalTracker
from turnout.integrations.fastapi.ui import create_ui_app
from turnout.integrations.fastapi.ui.annotations import WRITE_HEADER
from turnout.testing import assert_case, load_cases

API = f"/api/v1/projects/{PROJECT}"
SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("views") / "tracking"
    write_data(root)
    return root


@pytest.fixture(scope="module")
def client(storage: Path) -> Any:
    with TestClient(create_ui_app(storage)) as client:
        yield client


def test_the_timeline_route_gives_the_bars_the_page_draws(client: TestClient) -> None:
    view = client.get(f"{API}/apps/counter/timeline").json()
    (lane,) = view["lanes"]
    assert lane["app_id"] == "counter"
    assert [b["seq"] for b in lane["bars"]] == list(range(LIMIT + 1))
    assert {b["status"] for b in lane["bars"]} == {"completed"}
    assert (view["start"], view["end"]) == (0.0, 1.0)
    page = client.get(f"/projects/{PROJECT}/apps/counter/timeline").text
    drawn = re.findall(r'href="/projects/webui/apps/counter/steps/(\d+)"><g class="tbar', page)
    assert [int(s) for s in drawn] == [b["seq"] for b in lane["bars"]]
    zoomed = client.get(f"{API}/apps/counter/timeline?start=0.5&end=1").json()
    assert (zoomed["start"], zoomed["end"]) == (0.5, 1.0)
    assert zoomed["lanes"][0]["hidden"] > 0
    assert client.get(f"{API}/apps/counter/timeline?start=2").status_code == 422
    assert client.get(f"{API}/apps/ghost/timeline").status_code == 404


def test_the_openapi_schema_lists_every_new_route(client: TestClient) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]
    app = "/api/v1/projects/{project}/apps/{app_id}"
    for path in (
        f"{app}/timeline", f"{app}/waiting", f"{app}/steps/{{seq}}/artifacts",
        f"{app}/steps/{{seq}}/test-case", f"{app}/insights", "/api/v1/projects/{project}/insights",
        "/api/v1/prices", "/api/v1/projects/{project}/annotations.cases.json",
    ):  # fmt: skip
        assert "get" in paths[path], path
    timeline = paths[f"{app}/timeline"]["get"]["responses"]["200"]["content"]
    assert timeline["application/json"]["schema"] == {"$ref": "#/components/schemas/Timeline"}


@action(reads=[], writes=["answer"])
def wait_for(state: State, __context: ApplicationContext) -> State:
    answer = __context.suspend("<review>", schema=SCHEMA, metadata={"draft": "<i>hi</i>"})
    return state.update(answer=answer)


def test_the_waiting_route_gives_the_channel_schema_and_metadata(tmp_path: Path) -> None:
    (
        ApplicationBuilder()
        .with_actions(wait_for)
        .with_transitions(("wait_for", "wait_for"))
        .with_entrypoint("wait_for")
        .with_tracker(LocalTracker("waits", storage_dir=tmp_path))
        .with_identifiers(app_id="asker")
        .build()
        .step()
    )
    with TestClient(create_ui_app(tmp_path)) as client:
        answer = client.get("/api/v1/projects/waits/apps/asker/waiting").json()
        assert answer == {
            "seq": 0, "action": "wait_for", "channel": "<review>", "schema": SCHEMA,
            "metadata": {"draft": "<i>hi</i>"}, "schema_problem": None,
        }  # fmt: skip
        page = client.get("/projects/waits/apps/asker/waiting").text
        assert '<code id="channel">&lt;review&gt;</code>' in page
    done = client.get(f"{API}/apps/counter/waiting")
    assert done.status_code == 404


def test_the_artifacts_route_lists_the_refs_the_panel_lists(tmp_path: Path) -> None:
    blobs = LocalArtifactStore(tmp_path / "blobs")
    chart = blobs.put(b"png bytes" * 4, media_type="image/png", name="chart.png")
    bad_name = blobs.put(b"<b>x</b>", media_type="text/html", name="<b>a</b>.html")

    @action(reads=[], writes=["chart"])
    def make(state: State) -> tuple[dict[str, object], State]:
        return {"file": bad_name}, state.update(chart=chart)

    root = tmp_path / "tracking"
    (
        ApplicationBuilder()
        .with_actions(make)
        .with_transitions(("make", "make"))
        .with_entrypoint("make")
        .with_tracker(LocalTracker("blobs", storage_dir=root))
        .with_identifiers(app_id="maker")
        .build()
        .step()
    )
    url = "/api/v1/projects/blobs/apps/maker/steps/0/artifacts"
    with TestClient(create_ui_app(root, artifacts=tmp_path / "blobs")) as client:
        refs = client.get(url).json()
        assert [(r["number"], r["path"], r["name"], r["size_bytes"]) for r in refs] == [
            (0, "result.file", "<b>a</b>.html", 8),
            (1, "changes.chart", "chart.png", 36),
        ]
        assert refs[1]["digest"] == chart.digest
        assert refs[1]["download"] == "/projects/blobs/apps/maker/steps/0/artifacts/1"
        assert client.get(refs[1]["download"]).content == b"png bytes" * 4
        page = client.get("/projects/blobs/apps/maker/steps/0").text
        assert re.findall(r'<a class="download" href="([^"]+)"', page) == [
            r["download"] for r in refs
        ]
    with TestClient(create_ui_app(root)) as client:
        assert [r["download"] for r in client.get(url).json()] == [None, None]


def test_a_steps_case_download_is_what_turnout_test_case_writes(
    client: TestClient, storage: Path, tmp_path: Path
) -> None:
    answer = client.get(f"{API}/apps/counter/steps/2/test-case")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["content-disposition"] == (
        'attachment; filename="turnout_case_counter_2.json"'
    )
    out = tmp_path / "cases.json"
    write_test_case(storage, PROJECT, "counter", 2, None, out, [])
    assert answer.json() == json.loads(out.read_text())
    downloaded = tmp_path / "downloaded.json"
    downloaded.write_bytes(answer.content)
    (case,) = load_cases(downloaded, "increment")
    assert case["input_state"]["count"] == 2
    assert case["expected_state"]["count"] == 3
    assert_case(increment, case)  # the recorded step runs again to the same state


def test_the_step_panel_offers_the_download_for_completed_steps_only(
    client: TestClient,
) -> None:
    page = client.get(f"/projects/{PROJECT}/apps/counter/steps/1").text
    link = f'href="/api/v1/projects/{PROJECT}/apps/counter/steps/1/test-case"'
    assert f'id="download-case" class="download" {link}' in page
    failed = client.get(f"/projects/{PROJECT}/apps/flaky/steps/1").text
    assert 'id="download-case"' not in failed
    refused = client.get(f"{API}/apps/flaky/steps/1/test-case")
    assert refused.status_code == 409
    assert "step 1 is failed" in refused.json()["detail"]
    assert client.get(f"{API}/apps/counter/steps/99/test-case").status_code == 404


def test_annotation_cases_download_is_what_turnout_annotations_cases_writes(
    storage: Path, tmp_path: Path
) -> None:
    with TestClient(create_ui_app(storage)) as client:
        made = [
            {"app_id": "counter", "seq": 1, "mark": "good", "tags": ["ok"]},
            {"app_id": "counter", "seq": 2, "expected": {"n": 1}, "tags": ["odd"]},
            {"app_id": "parent", "seq": 0, "note": "nothing to test"},
        ]
        for body in made:
            reply = client.post(f"{API}/annotations", json=body, headers={WRITE_HEADER: "1"})
            assert reply.status_code == 201, reply.text
        answer = client.get(f"{API}/annotations.cases.json")
        assert answer.status_code == 200
        assert answer.headers["x-turnout-skipped"] == "1"
        assert "attachment" in answer.headers["content-disposition"]
        only_good = client.get(f"{API}/annotations.cases.json?mark=good").json()
        page = client.get(f"/projects/{PROJECT}/annotations").text
        assert f'id="export-cases" href="{API}/annotations.cases.json"' in page
    out = tmp_path / "cases.json"
    args = argparse.Namespace(
        annotations_command="cases", project=PROJECT, dir=str(storage), store=None,
        table_prefix="turnout_tracking", tag=None, mark=None, action=None, app_id=None, out=out,
    )  # fmt: skip
    assert annotations_command(args) == 0
    assert answer.json() == json.loads(out.read_text())
    assert [c["expected_result"] for c in answer.json()] == [{}, {"n": 1}]  # recorded, given
    assert [c["annotation"]["tags"] for c in only_good] == [["ok"]]
