"""Waiting applications in the web UI: a suspended application shows its channel and a form
built from the channel's schema; a submitted answer is checked against the schema and given as
an ``app.resume`` snippet, and, with ``serve_url``, posted to a real ``turnout serve`` server
whose application then resumes (its tracking log shows the step completed)."""

from __future__ import annotations

import asyncio
import html
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")
pytest.importorskip("sse_starlette")
import httpx
from fastapi.testclient import TestClient

from tests.integrations import serve_app
from tests.integrations.fastapi_ui import STARTUP_S, free_port
from tests.integrations.test_postgres import server
from turnout import ApplicationBuilder, ApplicationContext, State, action
from turnout.core.tracking import LocalTracker
from turnout.integrations.fastapi.ui import create_ui_app
from turnout.integrations.fastapi.ui._answer_form import FormError, build_fields, read_answer

__all__ = ["server"]  # a fixture, shared with test_postgres

PROJECT = "waits"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "approved": {"type": "boolean", "description": "send the <b>mail</b>?"},
        "reason": {"type": "string", "minLength": 2},
        "score": {"type": "number", "minimum": 0},
        "count": {"type": "integer"},
        "tone": {"enum": ["warm", "dry", 3]},
        "to": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "zip": {"type": "integer"}},
            "required": ["name"],
        },
        "tags": {"type": "array", "items": {"type": "string"}},
        "extra": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    },
    "required": ["approved", "score"],
}
PAGE = f"/projects/{PROJECT}/apps/asker/waiting"


@action(reads=[], writes=["answer"])
def ask(state: State, __context: ApplicationContext) -> State:
    answer = __context.suspend("review<1>", schema=SCHEMA, metadata={"draft": "<i>hello</i>"})
    return state.update(answer=answer)


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("waiting") / "tracking"
    app = (
        ApplicationBuilder()
        .with_actions(ask)
        .with_transitions(("ask", "ask"))
        .with_entrypoint("ask")
        .with_tracker(LocalTracker(PROJECT, storage_dir=root))
        .with_identifiers(app_id="asker")
        .build()
    )
    app.step()
    return root


FILLED = {
    "f.0": "true",
    "f.1": "ok <script>",
    "f.2": "2.5",
    "f.3": "7",
    "f.4": '"dry"',
    "f.5.0": "Ann",
    "f.5.1": "",
    "f.6": "a\n\n b \n",
    "f.7": "null",
}


def test_the_app_page_says_it_waits_and_the_form_follows_the_schema(storage: Path) -> None:
    with TestClient(create_ui_app(storage)) as client:
        app_page = client.get(f"/projects/{PROJECT}/apps/asker")
        assert 'id="waiting-notice"' in app_page.text
        assert "review&lt;1&gt;" in app_page.text
        page = client.get(PAGE)
        assert page.status_code == 200
        text = page.text
        assert '<code id="channel">review&lt;1&gt;</code>' in text
        assert "hello" in text  # the metadata, escaped
        assert "<i>hello</i>" not in text
        assert "<b>mail</b>" not in text
        assert re.search(r'<input type="checkbox" id="in-f.0" name="f.0"', text)
        assert re.search(r'<input type="text" inputmode="decimal" id="in-f.2"', text)
        assert re.search(r'<select id="in-f.4" name="f.4">', text)
        assert re.search(r"<fieldset class=\"answer-object\"><legend>to</legend>", text)
        assert re.search(r'<textarea id="in-f.6" name="f.6" rows="4">', text)
        assert re.search(r'<textarea id="in-f.7" name="f.7" rows="6">', text)  # anyOf: JSON
        assert 'id="send"' not in text  # no serve_url


def test_a_checked_answer_gives_the_resume_snippet(storage: Path) -> None:
    with TestClient(create_ui_app(storage)) as client:
        page = client.post(PAGE, data={**FILLED, "send": "0"})
        assert page.status_code == 200, page.text
        shown = re.search(r'<details class="box" open id="answer">.*?<pre class="code">(.*?)</pre>',
                          page.text, flags=re.S)  # fmt: skip
        assert shown is not None
        answer = json.loads(html.unescape(shown.group(1)))
        assert answer == {
            "approved": True, "reason": "ok <script>", "score": 2.5, "count": 7, "tone": "dry",
            "to": {"name": "Ann"}, "tags": ["a", "b"], "extra": None,
        }  # fmt: skip
        assert "app.resume(&#39;review&lt;1&gt;&#39;, value)" in page.text
        assert "ok &lt;script&gt;" in page.text
        assert "ok <script>" not in page.text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"f.2": "lots"}, "$.score: &#39;lots&#39; is not a number"),
        ({"f.2": ""}, "$.score: is required"),
        ({"f.2": "-1"}, "$.score"),
        ({"f.1": "x"}, "$.reason"),
        ({"f.4": '"loud"'}, "$.tone: pick one of the listed values"),
        ({"f.5.1": "12a"}, "$.to.zip: &#39;12a&#39; is not an integer"),
        ({"f.7": "{oops"}, "$.extra: is not valid JSON"),
        ({"f.7": "5"}, "$.extra"),
    ],
)
def test_a_bad_answer_is_answered_naming_the_field(
    storage: Path, change: dict[str, str], message: str
) -> None:
    with TestClient(create_ui_app(storage)) as client:
        page = client.post(PAGE, data={**FILLED, **change})
        assert page.status_code == 422
        error = re.search(r'<p class="warning" id="answer-error" role="alert">(.*?)</p>', page.text)
        assert error is not None
        assert message in error.group(1)
        assert 'id="snippet"' not in page.text


def test_a_form_posted_from_another_site_is_answered(storage: Path) -> None:
    with TestClient(create_ui_app(storage)) as client:
        other = client.post(PAGE, data=FILLED, headers={"Origin": "http://evil.example"})
        assert other.status_code == 403
        fetched = client.post(PAGE, data=FILLED, headers={"Sec-Fetch-Site": "cross-site"})
        assert fetched.status_code == 403


def test_an_app_that_does_not_wait_has_no_form(tmp_path: Path) -> None:
    from tests.integrations.fastapi_ui import write_data

    write_data(tmp_path)
    with TestClient(create_ui_app(tmp_path)) as client:
        assert 'id="waiting-notice"' not in client.get("/projects/webui/apps/counter").text
        missing = client.get("/projects/webui/apps/counter/waiting")
        assert missing.status_code == 404
        assert "is not waiting" in missing.text
    with pytest.raises(ValueError, match="serve_url"):
        create_ui_app(tmp_path, serve_url="ftp://nope")


def test_a_form_without_a_schema_is_one_json_field() -> None:
    spec = build_fields(None)
    assert spec.kind == "json"
    assert read_answer(spec, {"f": '{"a": [1]}'}) == {"a": [1]}
    with pytest.raises(FormError, match="is required"):
        read_answer(spec, {"f": " "})
    scalar = build_fields({"type": "integer"})
    assert read_answer(scalar, {"f": "12"}) == 12


# -- end to end: the answer posted to a real `turnout serve` server ---------------------------


@contextmanager
def serve_with_tracking(tmp_path: Path, root: Path) -> Iterator[str]:
    """serve_app's applications, tracked into ``root``, served by uvicorn in a thread."""
    import uvicorn
    from fastapi import FastAPI

    from turnout.core.sqlite import AsyncSQLitePersister
    from turnout.integrations.fastapi import serve

    def factory(builder: Any) -> Any:
        return serve_app.factory(builder).with_tracker(LocalTracker(PROJECT, storage_dir=root))

    persister = AsyncSQLitePersister(str(tmp_path / "serve.db"))
    app = FastAPI()
    app.include_router(serve(factory, persister=persister))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                       timeout_graceful_shutdown=1)
    )  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the serve server did not start on port {port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        asyncio.run(persister.close())


def test_the_answer_is_posted_to_the_serve_server_and_the_app_resumes(tmp_path: Path) -> None:
    root = tmp_path / "tracking"
    with serve_with_tracking(tmp_path, root) as url:
        app_id = httpx.post(f"{url}/apps", json={}).json()["app_id"]
        ran = httpx.post(
            f"{url}/apps/{app_id}/run",
            json={"inputs": {"message": "approve"}, "halt_after": ["reply", "approve"]},
            timeout=30,
        )
        assert ran.status_code == 200, ran.text
        with TestClient(create_ui_app(root, serve_url=url + "/")) as client:
            page = client.get(f"/projects/{PROJECT}/apps/{app_id}/waiting")
            assert page.status_code == 200, page.text
            assert 'id="send"' in page.text
            answered = client.post(f"/projects/{PROJECT}/apps/{app_id}/waiting", data={"send": "1"})
            assert answered.status_code == 200  # a boolean left unticked is false: valid
            sent = re.search(r'<div class="box (\w+)" id="sent"><p>POST (.*?) → HTTP (\d+)',
                             answered.text)  # fmt: skip
            assert sent is not None
            assert sent.groups() == ("ok", f"{url}/apps/{app_id}/resume", "200")
            state = httpx.get(f"{url}/apps/{app_id}").json()
            assert state["suspension"] is None
            assert state["state"]["history"][-1] == "approved: False"
            # The UI reads the tracking log again: the app no longer waits.
            after = client.get(f"/projects/{PROJECT}/apps/{app_id}/waiting")
            assert after.status_code == 404


def test_a_waiting_app_tracked_in_postgresql(server: Any) -> None:
    import uuid

    from tests.integrations.test_fastapi_ui_postgres import drop_prefix
    from tests.integrations.test_postgres import DSN
    from turnout.integrations.postgres_tracking import PostgresTracker

    prefix = f"waiting_{uuid.uuid4().hex[:12]}"
    tracker = PostgresTracker(DSN, project=PROJECT, table_prefix=prefix)
    try:
        (
            ApplicationBuilder()
            .with_actions(ask)
            .with_transitions(("ask", "ask"))
            .with_entrypoint("ask")
            .with_tracker(tracker)
            .with_identifiers(app_id="asker")
            .build()
            .step()
        )
        assert tracker.flush(30)
    finally:
        tracker.close()
    try:
        with TestClient(create_ui_app(DSN, table_prefix=prefix)) as client:
            page = client.get(PAGE)
            assert page.status_code == 200, page.text
            assert '<code id="channel">review&lt;1&gt;</code>' in page.text
            answered = client.post(PAGE, data={**FILLED, "send": "0"})
            assert answered.status_code == 200
            assert "app.resume(&#39;review&lt;1&gt;&#39;, value)" in answered.text
    finally:
        drop_prefix(server, prefix)


def test_the_snippet_is_python_that_rebuilds_the_answer() -> None:
    import ast

    from turnout.integrations.fastapi.ui.waiting import resume_snippet

    value = {"a": [1, 2.5, None, True], "b": "x'\"\n<y>", "c": {"d": False}}
    snippet = resume_snippet("ch'1", value)
    tree = ast.parse(snippet)
    assigned = tree.body[0]
    assert isinstance(assigned, ast.Assign)
    assert ast.literal_eval(assigned.value) == value
    assert snippet.rstrip().endswith('app.resume("ch\'1", value)')
