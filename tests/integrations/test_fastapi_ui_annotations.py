"""Annotations in the web UI (``turnout.integrations.fastapi.ui.annotations``) on a tracking
directory and on PostgreSQL: the API's writes (JSON and htmx forms) and their cross-site
guard, the step panel, the project's page and its filters, the CSV/JSONL downloads, hostile
values escaped, stored rows checked when read back, and ``turnout annotations`` writing cases
the pytest plugin reads.

The PostgreSQL half skips when the server is not reachable, except under ``CI=true``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")

from fastapi.testclient import TestClient

from tests.integrations.fastapi_ui import PROJECT, write_data, write_runs
from turnout.cli import main
from turnout.core.trackannotations import ANNOTATIONS_NAME
from turnout.integrations.fastapi.ui import create_ui_app
from turnout.integrations.pytest._cases import read_case_file
from turnout.testing import load_cases

API = f"/api/v1/projects/{PROJECT}/annotations"
WRITE = {"X-Turnout-UI": "1"}
HTMX = {"HX-Request": "true", "content-type": "application/x-www-form-urlencoded"}
DSN = os.environ.get("TURNOUT_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
HOSTILE = '<script>alert("x")</script>'


@pytest.fixture(params=["files", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``(kind, where)``: the test data in a fresh directory or fresh PostgreSQL tables."""
    if request.param == "files":
        write_data(tmp_path / "tracking")
        yield "files", str(tmp_path / "tracking")
        return
    server = _postgres()
    from turnout.integrations.postgres_tracking import PostgresTracker

    prefix = f"annot_{uuid.uuid4().hex[:12]}"
    write_runs(lambda tags: PostgresTracker(DSN, project=PROJECT, table_prefix=prefix, tags=tags))
    try:
        yield "postgresql", f"{DSN}#{prefix}"
    finally:
        with server:
            for table in ("records", "apps", "annotations"):
                server.execute(f"DROP TABLE IF EXISTS {prefix}_{table}")
            server.execute(f"DROP FUNCTION IF EXISTS {prefix}_ui_touch()")


def _postgres() -> Any:
    """An administration connection; skips (fails under CI=true) when PostgreSQL is down."""
    pytest.importorskip("psycopg")
    import psycopg

    try:
        return psycopg.connect(DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL is not reachable at {DSN} ({exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture
def client(store: tuple[str, str]) -> Iterator[TestClient]:
    kind, where = store
    if kind == "files":
        app = create_ui_app(where)
    else:
        dsn, _, prefix = where.partition("#")
        app = create_ui_app(dsn, table_prefix=prefix)
    with TestClient(app) as client:
        yield client


def _add(client: TestClient, **fields: Any) -> dict[str, Any]:
    answer = client.post(API, json={"app_id": "counter", "seq": 1, **fields}, headers=WRITE)
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_writes_create_edit_and_delete_through_the_json_api(client: TestClient) -> None:
    made = _add(client, tags=["slow"], note="too slow", mark="bad")
    assert made["action"] == "increment"
    assert made["seq"] == 1
    edited = client.put(
        f"{API}/{made['id']}", json={"mark": "good", "expected": {"count": 2}}, headers=WRITE
    )
    assert edited.status_code == 200
    assert (edited.json()["mark"], edited.json()["tags"]) == ("good", [])
    assert client.get(API).json() == [edited.json()]
    assert client.delete(f"{API}/{made['id']}", headers=WRITE).status_code == 200
    assert client.get(API).json() == []
    gone = client.delete(f"{API}/{made['id']}", headers=WRITE)
    assert gone.status_code == 404
    assert made["id"] in gone.json()["detail"]


@pytest.mark.parametrize(
    "headers",
    [{}, {**WRITE, "Origin": "http://evil.example"}, {**WRITE, "Sec-Fetch-Site": "cross-site"}],
    ids=["no-header", "foreign-origin", "cross-site-fetch"],
)
def test_a_write_another_site_could_send_is_refused(
    client: TestClient, headers: dict[str, str]
) -> None:
    answer = client.post(API, json={"app_id": "counter", "seq": 1}, headers=headers)
    assert answer.status_code == 403
    assert client.get(API).json() == []


def test_a_same_origin_write_is_accepted(client: TestClient) -> None:
    headers = {**WRITE, "Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    answer = client.post(API, json={"app_id": "counter", "seq": 0}, headers=headers)
    assert answer.status_code == 201


def test_writes_name_the_culprit_when_refused(client: TestClient) -> None:
    missing = client.post(API, json={"app_id": "counter", "seq": 99}, headers=WRITE)
    assert missing.status_code == 404
    assert "99" in missing.json()["detail"]
    no_app = client.post(API, json={"app_id": "nobody", "seq": 0}, headers=WRITE)
    assert no_app.status_code == 404
    bad = client.post(API, json={"app_id": "counter", "seq": 0, "mark": "meh"}, headers=WRITE)
    assert bad.status_code == 422
    assert "'meh'" in bad.json()["detail"]
    unnamed = client.post(API, json={"note": "where?"}, headers=WRITE)
    assert unnamed.status_code == 422
    assert "app_id and seq" in unnamed.json()["detail"]


def test_the_htmx_form_answers_with_the_step_panel(client: TestClient) -> None:
    form = "app_id=counter&seq=2&tags=a,%20b&note=hello&mark=good&expected_kind=json"
    answer = client.post(API, content=form + "&expected=%7B%22count%22%3A3%7D", headers=HTMX)
    assert answer.status_code == 200
    assert 'id="annotations"' in answer.text
    assert "hello" in answer.text
    (made,) = client.get(API).json()
    assert (made["tags"], made["expected"]) == (["a", "b"], {"count": 3})
    broken = client.post(API, content=form + "&expected=%7Bnope", headers=HTMX)
    assert broken.status_code == 200
    assert "Not saved: the expected result is not JSON" in broken.text
    assert len(client.get(API).json()) == 1
    edit = client.get(f"/projects/{PROJECT}/apps/counter/steps/2/annotations?edit={made['id']}")
    assert f'hx-put="{API}/{made["id"]}"' in edit.text
    assert "Edit the annotation" in edit.text


def test_the_step_page_loads_its_annotations_panel(client: TestClient) -> None:
    page = client.get(f"/projects/{PROJECT}/apps/counter/steps/1")
    assert f'hx-get="/projects/{PROJECT}/apps/counter/steps/1/annotations"' in page.text
    _add(client, note="first remark")
    panel = client.get(f"/projects/{PROJECT}/apps/counter/steps/1/annotations")
    assert panel.status_code == 200
    assert "first remark" in panel.text
    other = client.get(f"/projects/{PROJECT}/apps/counter/steps/0/annotations")
    assert "first remark" not in other.text
    assert client.get(f"/projects/{PROJECT}/apps/counter/steps/99/annotations").status_code == 404


def test_the_project_page_lists_and_filters(client: TestClient) -> None:
    _add(client, tags=["x"], mark="good", note="note-one")
    _add(client, seq=2, tags=["y"], note="note-two")
    flaky = client.post(API, json={"app_id": "flaky", "seq": 0, "mark": "bad"}, headers=WRITE)
    assert flaky.status_code == 201
    page = f"/projects/{PROJECT}/annotations"
    everything = client.get(page).text
    assert "note-one" in everything
    assert "note-two" in everything
    assert "3 of 3" in everything
    by_tag = client.get(page + "?tag=x").text
    assert "note-one" in by_tag
    assert "note-two" not in by_tag
    assert "annotations.csv?tag=x" in by_tag
    by_mark = client.get(page + "?mark=none").text
    assert "note-two" in by_mark
    assert "note-one" not in by_mark
    assert "1 of 3" in client.get(page + "?app=flaky").text
    assert "1 of 3" in client.get(page + "?action=fetch").text
    listed = client.get(API, params={"action": "increment", "mark": "good"}).json()
    assert [a["note"] for a in listed] == ["note-one"]


def test_exports_download_csv_and_jsonl_with_formulas_neutralised(client: TestClient) -> None:
    _add(client, note='=HYPERLINK("http://x")', tags=["@t", "ok"], expected=-1)
    csv_answer = client.get(API + ".csv")
    assert csv_answer.headers["content-disposition"] == 'attachment; filename="annotations.csv"'
    (row,) = list(csv.DictReader(io.StringIO(csv_answer.text)))
    assert row["note"] == '\'=HYPERLINK("http://x")'
    assert row["tags"] == "'@t,ok"
    assert row["expected"] == "'-1"
    lines = client.get(API + ".jsonl").text.splitlines()
    assert [json.loads(line)["note"] for line in lines] == ['=HYPERLINK("http://x")']
    assert client.get(API + ".csv?tag=nope").text.count("\n") == 1  # the header alone


def test_hostile_values_are_escaped_in_the_panel_and_the_page(client: TestClient) -> None:
    _add(client, tags=[HOSTILE[:60]], note=HOSTILE, expected=HOSTILE)
    pages = [
        client.get(f"/projects/{PROJECT}/apps/counter/steps/1/annotations").text,
        client.get(f"/projects/{PROJECT}/annotations").text,
    ]
    for text in pages:
        assert "<script>" not in text
        assert "&lt;script&gt;" in text


def test_stored_annotations_are_checked_when_read_back(
    client: TestClient, store: tuple[str, str]
) -> None:
    made = _add(client, note="kept")
    kind, where = store
    hostile = {**made, "id": "f" * 32, "note": "x" * 1_100_000}  # over every size limit
    wrong_type = {**made, "id": "e" * 32, "tags": {"a": 1}}
    if kind == "files":
        path = Path(where) / PROJECT / ANNOTATIONS_NAME
        data = json.loads(path.read_text(encoding="utf-8"))
        data["annotations"] += [hostile, wrong_type]
        path.write_text(json.dumps(data), encoding="utf-8")
    else:
        import psycopg

        dsn, _, prefix = where.partition("#")
        with psycopg.connect(dsn, autocommit=True) as conn:
            for row in (hostile, wrong_type):
                conn.execute(
                    f"INSERT INTO {prefix}_annotations (id, project, app_id, seq, body, updated) "
                    "VALUES (%s, %s, 'counter', 1, %s::jsonb, 0)",
                    [row["id"], PROJECT, json.dumps(row)],
                )
    assert [a["note"] for a in client.get(API).json()] == ["kept"]
    assert (
        "2 stored annotations could not be read"
        in client.get(f"/projects/{PROJECT}/annotations").text
    )


def test_cli_writes_cases_that_load_cases_and_the_pytest_plugin_read(
    client: TestClient, store: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _add(client, mark="good")
    _add(client, seq=2, expected={"count": 3}, tags=["regression"])
    _add(client, seq=3, note="a remark only")
    kind, where = store
    dsn, _, prefix = where.partition("#")
    at = ["--dir", where] if kind == "files" else ["--store", dsn, "--table-prefix", prefix]
    out = tmp_path / "cases.json"
    assert main(["annotations", "cases", "--project", PROJECT, *at, "--out", str(out)]) == 0
    assert "skipped annotation" in capsys.readouterr().err
    cases = load_cases(out)
    assert [(c["action"], c["input_state"]["count"]) for c in cases] == [
        ("increment", 1),
        ("increment", 2),
    ]
    assert cases[0]["expected_state"]["count"] == 2
    assert cases[1]["expected_state"] is None
    assert cases[1]["expected_result"] == {"count": 3}
    assert read_case_file(out, action="increment") == cases
    only = tmp_path / "only.json"
    main(["annotations", "cases", "--project", PROJECT, *at, "--tag", "regression",
          "--out", str(only)])  # fmt: skip
    assert [c["expected_result"] for c in load_cases(only)] == [{"count": 3}]
    capsys.readouterr()
    assert main(["annotations", "export", "--project", PROJECT, *at, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["seq"], r["mark"]) for r in rows] == [("1", "good"), ("2", ""), ("3", "")]


def test_a_write_over_a_damaged_sidecar_is_refused_with_the_reason(tmp_path: Path) -> None:
    """The file store's sidecar, damaged, is never written over (PostgreSQL rows are checked
    one by one: see test_stored_annotations_are_checked_when_read_back)."""
    write_data(tmp_path)
    (tmp_path / PROJECT / ANNOTATIONS_NAME).write_text("[1, 2", encoding="utf-8")
    with TestClient(create_ui_app(tmp_path)) as client:
        refused = client.post(API, json={"app_id": "counter", "seq": 0}, headers=WRITE)
        assert refused.status_code == 422
        assert "repair it, or move it away" in refused.json()["detail"]
        form = client.post(API, content="app_id=counter&seq=0&note=x", headers=HTMX)
        assert "Not saved:" in form.text
        page = client.get(f"/projects/{PROJECT}/annotations").text
        assert "1 stored annotation could not be read" in page


def test_the_openapi_schema_describes_the_write_bodies(client: TestClient) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]
    body = paths["/api/v1/projects/{project}/annotations"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert schema["required"] == ["app_id", "seq"]
    assert set(schema["properties"]) == {"app_id", "seq", "tags", "note", "mark", "expected"}
    edit = paths["/api/v1/projects/{project}/annotations/{annotation_id}"]["put"]["requestBody"]
    assert "app_id" not in edit["content"]["application/json"]["schema"]["properties"]
