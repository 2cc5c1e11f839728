"""The served email assistant example in a real browser: its script started as a uvicorn process
on a free port, its page driven by headless Chromium (Playwright, Debian's ``/usr/bin/chromium``).

The person types a request, sees the draft stream in token by token, answers the clarifying
questions, sees the revision stream in, approves, and sees the sent email. A request holding
HTML is shown as text and makes the browser fetch nothing. Screenshots go under
``$TURNOUT_ARTIFACTS`` (default: the test's ``tmp_path/artifacts``).

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

from examples.email_assistant_served.application import DraftingModel  # noqa: E402
from tests.served_script import ServedScript  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "email_assistant_served" / "application.py"
TIMEOUT_MS = 30_000
REQUEST = "Invite the team to the launch review"
TRAP = "127.0.0.1:9"  # the discard port: an injected image would be fetched from here
HOSTILE = f"<img src=http://{TRAP}/x.png> <b>bold</b> Invite the team"

pytestmark = pytest.mark.slow


def _server(db: Path) -> ServedScript:
    # A small delay per token: the page gets the draft in many chunks, as a person would.
    return ServedScript(SCRIPT, ["--db", str(db), "--token-delay", "0.005"])


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = _server(tmp_path_factory.mktemp("assistant") / "assistant.db")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def page(url: str) -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser.new_context(viewport={"width": 1000, "height": 1100}).new_page()
        finally:
            browser.close()


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    directory = Path(os.environ.get("TURNOUT_ARTIFACTS") or tmp_path / "artifacts")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _tokens(request: str, answers: list[str] | None = None) -> int:
    return len(list(DraftingModel().words(request, answers or [], [])))


def test_a_person_drafts_answers_approves_and_sees_the_sent_email(
    page: Page, url: str, artifacts: Path
) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(url)
    expect(page.get_by_role("heading", name="Email assistant")).to_be_visible(timeout=TIMEOUT_MS)

    page.get_by_label("What should the email say?").fill(REQUEST)
    page.get_by_role("button", name="Draft it").click()
    # Every token arrived as its own event: the page counted them one by one.
    status = page.locator("#status")
    expect(status).to_have_text(f"draft 1: streamed {_tokens(REQUEST)} tokens", timeout=TIMEOUT_MS)
    expect(page.locator("#draft")).to_contain_text(f"About your request: {REQUEST}")

    expect(page.get_by_role("heading", name="The assistant asks")).to_be_visible()
    page.get_by_label("Which day should the email propose?").fill("Thursday")
    page.get_by_label("Should the tone be formal or casual?").fill("casual")
    page.screenshot(path=str(artifacts / "assistant-1-questions.png"), full_page=True)
    page.get_by_role("button", name="Send answers").click()

    answers = ["Thursday", "casual"]
    expect(status).to_have_text(
        f"draft 2: streamed {_tokens(REQUEST, answers)} tokens", timeout=TIMEOUT_MS
    )
    expect(page.locator("#draft")).to_contain_text("Details: Thursday; casual.")
    expect(page.get_by_role("heading", name="Approve this draft?")).to_be_visible()
    expect(page.get_by_role("heading", name="The assistant asks")).to_be_hidden()
    draft = "".join(DraftingModel().words(REQUEST, answers, []))
    page.screenshot(path=str(artifacts / "assistant-2-approval.png"), full_page=True)
    page.get_by_role("button", name="Approve and send").click()

    sent = page.get_by_label("Sent email")
    expect(sent).to_be_visible(timeout=TIMEOUT_MS)
    expect(sent).to_contain_text("Details: Thursday; casual.")
    assert sent.text_content() == draft
    expect(page.get_by_role("heading", name="Approve this draft?")).to_be_hidden()
    expect(page.locator("#error")).to_have_text("")
    page.screenshot(path=str(artifacts / "assistant-3-sent.png"), full_page=True)
    assert errors == []


def test_requested_changes_stream_a_revision_with_the_feedback(page: Page, url: str) -> None:
    page.goto(url)
    page.get_by_label("What should the email say?").fill("A formal reminder for Friday")
    page.get_by_role("button", name="Draft it").click()
    # Nothing left open: straight to approval.
    expect(page.get_by_role("heading", name="Approve this draft?")).to_be_visible(
        timeout=TIMEOUT_MS
    )
    page.get_by_label("Changes (to request a revision)").fill("mention the agenda")
    page.get_by_role("button", name="Request changes").click()
    expect(page.locator("#status")).to_contain_text("draft 2: streamed", timeout=TIMEOUT_MS)
    expect(page.locator("#draft")).to_contain_text("Revised as asked: mention the agenda.")
    expect(page.get_by_role("heading", name="Approve this draft?")).to_be_visible()


def test_markup_in_the_request_is_shown_as_text_and_fetches_nothing(page: Page, url: str) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(url)
    page.get_by_label("What should the email say?").fill(HOSTILE)
    page.get_by_role("button", name="Draft it").click()
    expect(page.get_by_role("heading", name="The assistant asks")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("#draft")).to_contain_text(f"About your request: {HOSTILE}")
    assert page.locator("img").count() == 0
    assert page.locator("#draft b").count() == 0
    assert [u for u in requested if TRAP in u] == []
