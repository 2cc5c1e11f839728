"""Captured prompts and completions in ``turnout ui``: the local tracker keeps them, and the
web UI's span view shows them in full as escaped text blocks."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("openai")

from turnout import ApplicationBuilder
from turnout.core.tracking import LocalTracker
from turnout.integrations.openai import chat_action
from turnout.integrations.opentelemetry import capture_content
from turnout.testing import FakeOpenAIServer

PROJECT = "content"
HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)">'
PROMPT = f"First line of a long prompt {HOSTILE}\n" + "and more words " * 20
ANSWER = "A reply\nover two lines"


class _Tags(HTMLParser):
    """The start tags of a page and their attribute names, as a browser parses them."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append((tag, [name for name, _ in attrs]))


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One OpenAI chat step tracked with content capture on; the tracking root."""
    import openai

    root = tmp_path_factory.mktemp("content-ui")
    capture_content(True)
    try:
        with FakeOpenAIServer(lambda request: ANSWER) as server:
            client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
            tracker = LocalTracker(PROJECT, root)
            app = (
                ApplicationBuilder()
                .with_actions(ask=chat_action(client, model="m"))
                .with_transitions()
                .with_entrypoint("ask")
                .with_state(messages=[{"role": "user", "content": PROMPT}])
                .with_identifiers(app_id="chat")
                .with_tracker(tracker)
                .build()
            )
            app.step()
            tracker.close()
            client.close()
    finally:
        capture_content("environment")
    return root


def test_the_web_ui_shows_content_as_escaped_text_blocks(tracked: Path) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("jinja2")
    from fastapi.testclient import TestClient

    from turnout.integrations.fastapi.ui import create_ui_app

    with TestClient(create_ui_app(tracked)) as client:
        page = client.get(f"/projects/{PROJECT}/apps/chat/steps/0").text
    blocks = dict(
        re.findall(
            r'<details class="spantext" open><summary>([^<]+) <span class="muted">'
            r'\(\d+ characters\)</span></summary><pre class="code">([^<]*)</pre>',
            page,
        )
    )
    tags = _Tags()
    tags.feed(page)
    assert "<script>alert" not in page
    assert not [t for t in tags.seen if t[0] == "img" or any(a.startswith("on") for a in t[1])]
    # the JSON of the messages, whole and escaped (the quotes as entities)
    sent = blocks["gen_ai.input.messages"].replace("&#34;", '"').replace("&lt;", "<")
    sent = sent.replace("&gt;", ">").replace("&#39;", "'").replace("&amp;", "&")
    assert json.loads(sent)[0]["parts"][0]["content"] == PROMPT
    # multi-line text keeps its lines; short attributes stay in the attribute tree
    assert blocks["output.value"] == ANSWER
    assert "gen_ai.request.model" not in blocks
    assert re.search(r"<dt>gen_ai.request.model</dt>", page)
