"""Everything traced is text on the web UI's pages: an application whose id, partition key,
tag, action name, span name, attribute, state keys and values, inputs and error all hold HTML
and script shows them escaped on every page (and in the live stream), never as markup."""

from __future__ import annotations

import json
import re
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")

from fastapi.testclient import TestClient

from turnout import ApplicationBuilder, State, TracerFactory, action
from turnout.core.tracking import LocalTracker
from turnout.integrations.fastapi.ui import create_ui_app
from turnout.integrations.fastapi.ui._source import Reader
from turnout.integrations.fastapi.ui.live import render_changes

PROJECT = "hostile"
SCRIPT = "<script>alert(1)</script>"
IMG = '<img src=x onerror="alert(2)">'
PAYLOAD = f"{SCRIPT}{IMG}&amp;"
ESCAPED_SCRIPT = "&lt;script&gt;alert(1)&lt;/script&gt;"


def _track(root: Path) -> str:
    """The hostile application, tracked under ``root``; its app id."""

    @action(reads=["n"], writes=["n", PAYLOAD, "items"])
    def first(state: State, note: str, __tracer: TracerFactory) -> tuple[dict[str, str], State]:
        with __tracer(PAYLOAD) as span:
            span.log_attributes(**{PAYLOAD: PAYLOAD})
        return {PAYLOAD: PAYLOAD}, state.update(
            n=1, **{PAYLOAD: [PAYLOAD] * 60}, items={PAYLOAD: {"deep": PAYLOAD}}
        )

    @action(reads=["n"], writes=["n"])
    def second(state: State) -> State:
        raise ValueError(PAYLOAD)

    tracker = LocalTracker(PROJECT, root, tags={PAYLOAD: PAYLOAD})
    app_id = f"victim{PAYLOAD}"
    app = (
        ApplicationBuilder()
        .with_actions(**{PAYLOAD: first, "second": second})
        .with_transitions((PAYLOAD, "second"))
        .with_state(n=0)
        .with_entrypoint(PAYLOAD)
        .with_identifiers(app_id=app_id, partition_key=PAYLOAD)
        .with_tracker(tracker)
        .build()
    )
    try:
        app.step(inputs={"note": PAYLOAD})
        with pytest.raises(ValueError, match="alert"):
            app.step()
    finally:
        tracker.close()
    return app_id


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("hostile")
    return root, _track(root)


class _Elements(HTMLParser):
    """Every start tag of a document, with its attributes, as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _assert_inert(html: str) -> None:
    """No traced markup survived as markup: no image, no event handler, and no script but
    the page's own static files."""
    parser = _Elements()
    parser.feed(html)
    assert SCRIPT not in html
    for tag, attrs in parser.tags:
        assert tag != "img", attrs
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        if tag == "script":
            assert (attrs.get("src") or "").startswith("/static/"), attrs


def test_every_page_shows_hostile_values_as_text(hostile: tuple[Path, str]) -> None:
    root, app_id = hostile
    quoted = urllib.parse.quote(app_id, safe="")
    base = f"/projects/{PROJECT}/apps/{quoted}"
    pages = [
        "/",
        f"/projects/{PROJECT}",
        base,
        f"{base}/steps/0",
        f"{base}/steps/1",
        f"{base}/steps/0/value?state=after&pointer={urllib.parse.quote('/' + PAYLOAD, safe='')}",
        f"{base}/steps/7",  # the 404 page repeats the app id
        f"{base}?action={urllib.parse.quote(PAYLOAD, safe='')}",  # the graph's filter
        f"{base}/search?q=alert",  # matches shown in context
        f"/projects/{PROJECT}/search?q={urllib.parse.quote(SCRIPT, safe='')}",
        f"{base}/timeline",
    ]
    with TestClient(create_ui_app(root)) as client:
        for path in pages:
            answer = client.get(path)
            assert answer.status_code in (200, 404), path
            _assert_inert(answer.text)
            if path != "/":
                assert ESCAPED_SCRIPT in answer.text, path


def test_the_step_page_escapes_each_traced_field(hostile: tuple[Path, str]) -> None:
    root, app_id = hostile
    base = f"/projects/{PROJECT}/apps/{urllib.parse.quote(app_id, safe='')}"
    with TestClient(create_ui_app(root)) as client:
        step0 = client.get(f"{base}/steps/0").text
        step1 = client.get(f"{base}/steps/1").text
    # the action name, the span's name, the tag and the partition key
    assert re.search(f'<a class="steplink action" href="{re.escape(base)}/steps/0"[^>]*>', step0)
    assert f'hx-swap="outerHTML show:none">{ESCAPED_SCRIPT}' in step0
    assert f"<title>{ESCAPED_SCRIPT}" in step0  # the span in the waterfall
    assert f'<span class="tag">{ESCAPED_SCRIPT}' in step0
    assert f"partition key <code>{ESCAPED_SCRIPT}" in step0
    # a state key (the delta's and the state's), the error's traceback
    assert f"<code>{ESCAPED_SCRIPT}" in step0
    assert f"<dt>{ESCAPED_SCRIPT}" in step0
    traceback = r'<pre class="traceback">Traceback[^<]*ValueError: ' + re.escape(ESCAPED_SCRIPT)
    assert re.search(traceback, step1)


def test_the_api_returns_hostile_values_unchanged(hostile: tuple[Path, str]) -> None:
    """JSON is data, not markup: the API gives the values as they were traced."""
    root, app_id = hostile
    with TestClient(create_ui_app(root)) as client:
        step = client.get(
            f"/api/v1/projects/{PROJECT}/apps/{urllib.parse.quote(app_id, safe='')}/steps/0"
        )
    assert step.headers["content-type"] == "application/json"
    assert step.json()["inputs"] == {"note": PAYLOAD}
    assert json.loads(step.text)["step"]["action"] == PAYLOAD


def test_live_rows_escape_what_they_show(hostile: tuple[Path, str]) -> None:
    root, app_id = hostile
    app = create_ui_app(root)
    source: Reader = app.state.source
    log = source.app(PROJECT, app_id)
    assert log is not None
    rows, summary = render_changes(
        app.state.templates.env, source, log, project=PROJECT, app_id=app_id, new=log.step_list()
    )
    for html in (rows, summary):
        _assert_inert(html)
        assert ESCAPED_SCRIPT in html


def test_annotations_of_a_hostile_step_show_as_text(hostile: tuple[Path, str]) -> None:
    """An annotation full of markup, on the hostile app's step (its action name is markup too),
    is text in the step's panel, its edit form and the project's annotations page."""
    root, app_id = hostile
    quoted = urllib.parse.quote(app_id, safe="")
    with TestClient(create_ui_app(root)) as client:
        made = client.post(
            f"/api/v1/projects/{PROJECT}/annotations",
            json={"app_id": app_id, "seq": 0, "tags": [SCRIPT, IMG], "note": PAYLOAD,
                  "expected": {PAYLOAD: PAYLOAD}},
            headers={"X-Turnout-UI": "1"},
        )  # fmt: skip
        assert made.status_code == 201, made.text
        panel = f"/projects/{PROJECT}/apps/{quoted}/steps/0/annotations"
        for path in (
            panel,
            f"{panel}?edit={made.json()['id']}",
            f"/projects/{PROJECT}/annotations",
        ):
            answer = client.get(path)
            assert answer.status_code == 200, path
            _assert_inert(answer.text)
            assert ESCAPED_SCRIPT in answer.text, path


def test_artifacts_and_a_waiting_apps_form_escape_what_they_show(tmp_path: Path) -> None:
    """A ref's name and media type, a suspension's channel, metadata and schema (property
    names, titles, descriptions, enum values, defaults) hold markup: all shown as text."""
    from turnout import ApplicationContext
    from turnout.core.artifacts import LocalArtifactStore

    store = LocalArtifactStore(tmp_path / "blobs")
    ref = store.put(b"x", media_type=PAYLOAD, name=PAYLOAD)
    schema = {
        "type": "object",
        "title": PAYLOAD,
        "properties": {
            PAYLOAD: {"type": "string", "description": PAYLOAD, "default": PAYLOAD},
            "pick": {"enum": [PAYLOAD, 1], "title": PAYLOAD},
            "more": {"type": "object", "properties": {PAYLOAD: {"type": "boolean"}}},
        },
    }

    @action(reads=[], writes=["blob"])
    def hold(state: State) -> State:
        return state.update(blob=ref)

    @action(reads=[], writes=["answer"])
    def wait(state: State, __context: ApplicationContext) -> State:
        answer = __context.suspend(PAYLOAD, schema=schema, metadata={PAYLOAD: PAYLOAD})
        return state.update(answer=answer)

    root = tmp_path / "tracking"
    tracker = LocalTracker(PROJECT, root)
    app = (
        ApplicationBuilder()
        .with_actions(hold, wait)
        .with_transitions(("hold", "wait"))
        .with_entrypoint("hold")
        .with_identifiers(app_id="waiter")
        .with_tracker(tracker)
        .build()
    )
    try:
        app.step()
        app.step()
    finally:
        tracker.close()
    base = f"/projects/{PROJECT}/apps/waiter"
    with TestClient(create_ui_app(root, artifacts=tmp_path / "blobs")) as client:
        for path in (base, f"{base}/steps/0", f"{base}/waiting"):
            page = client.get(path)
            assert page.status_code == 200, path
            _assert_inert(page.text)
            assert ESCAPED_SCRIPT in page.text, path
        answered = client.post(f"{base}/waiting", data={"f.1": json.dumps(PAYLOAD)})
        assert answered.status_code == 200
        _assert_inert(answered.text)
        download = client.get(f"{base}/steps/0/artifacts/0")
        assert download.status_code == 200
        assert download.headers["content-type"] == "application/octet-stream"
        assert "<" not in download.headers["content-disposition"]
