"""The served chatbot example in a real browser: its script as a uvicorn process on a free
port, its page driven by headless Chromium (Playwright, Debian's ``/usr/bin/chromium``).

A person sends a message, sees the reply stream in, sends a second message while the first
reply is still streaming (the page shows it queued: the example's ``on_busy`` is ``enqueue``),
and sees both replies whole, each once. The first reply is held before its last token until
the test creates a file (``--hold-until-file``), so nothing depends on timing. Markup typed
by the person is shown as text.

Without Playwright or Chromium the test skips, except under ``CI=true``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integrations.browser import CHROMIUM, CHROMIUM_ARGS, require_browser

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("sse_starlette")

require_browser()
from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

from examples.chatbot_served.application import ScriptedModel  # noqa: E402
from tests.test_example_chatbot_served import ChatServer  # noqa: E402

TIMEOUT_MS = 30_000
TRAP = "127.0.0.1:9"  # the discard port: an injected image would be fetched from here

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ChatServer]:
    started = ChatServer(tmp_path)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def page(server: ChatServer) -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser.new_context(viewport={"width": 900, "height": 1000}).new_page()
        finally:
            browser.close()


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    directory = Path(os.environ.get("TURNOUT_ARTIFACTS") or tmp_path / "artifacts")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _replies(*prompts: str) -> list[str]:
    conversation: list[dict[str, str]] = []
    out = []
    for prompt in prompts:
        conversation.append({"role": "user", "content": prompt})
        out.append(ScriptedModel().reply(conversation))
        conversation.append({"role": "assistant", "content": out[-1]})
    return out


def _send(page: Page, text: str) -> None:
    page.get_by_placeholder("Say something").fill(text)
    page.get_by_role("button", name="Send").click()


def test_a_second_message_typed_while_a_reply_streams_is_queued_then_both_replies_stream(
    page: Page, server: ChatServer, artifacts: Path
) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(server.url)
    expect(page.locator("#policy")).to_contain_text("enqueue", timeout=TIMEOUT_MS)
    first, second = _replies("hello", "what next?")

    _send(page, "hello")
    replies = page.locator("li.assistant")
    # Streaming, held before its last token: all but the last word are on the page.
    expect(replies.nth(0)).to_have_text(first.rsplit(" ", 1)[0] + " ", timeout=TIMEOUT_MS)
    expect(replies.nth(0)).to_have_attribute("data-state", "streaming")

    _send(page, "what next?")
    queued = page.locator("li.user").nth(1)
    expect(queued).to_contain_text("what next?")
    expect(queued.locator(".tag")).to_have_text("queued")
    page.screenshot(path=str(artifacts / "chatbot-1-queued.png"), full_page=True)

    server.release()
    expect(replies.nth(0)).to_have_text(first, timeout=TIMEOUT_MS)
    expect(replies.nth(1)).to_have_text(second, timeout=TIMEOUT_MS)
    expect(replies.nth(1)).to_have_attribute("data-state", "done")
    expect(replies.nth(0)).to_have_attribute("data-state", "done")
    expect(queued.locator(".tag")).to_have_count(0)
    assert replies.count() == 2  # each reply once, though both streams carried both
    expect(page.locator("#error")).to_have_text("")
    page.screenshot(path=str(artifacts / "chatbot-2-answered.png"), full_page=True)
    assert errors == []


def test_markup_in_a_message_is_shown_as_text_and_fetches_nothing(
    page: Page, server: ChatServer
) -> None:
    server.release()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(server.url)
    hostile = f"<img src=http://{TRAP}/x.png> <b>bold</b>"
    _send(page, hostile)
    expect(page.locator("li.assistant").nth(0)).to_have_attribute(
        "data-state", "done", timeout=TIMEOUT_MS
    )
    expect(page.locator("li.user").nth(0)).to_have_text(hostile)
    expect(page.locator("li.assistant").nth(0)).to_have_text(_replies(hostile)[0])
    assert page.locator("img").count() == 0
    assert page.locator("li b").count() == 0
    assert [u for u in requested if TRAP in u] == []
