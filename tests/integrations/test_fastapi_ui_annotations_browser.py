"""Annotations in headless Chromium (Debian's, through Playwright): on a step's page a reviewer
adds an annotation with the htmx form, edits it, sees it on the project's annotations page
(filtered by tag), downloads the CSV, and deletes it, with no script error or CSP violation.

Without Playwright or Chromium the test skips, except under ``CI=true`` (a failure)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integrations.browser import (
    chromium,
    watched_tab,
)

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")
from playwright.sync_api import Page, expect

from tests.integrations.fastapi_ui import PROJECT, serve_ui, write_data
from turnout.core.trackannotations import ANNOTATIONS_NAME

pytestmark = pytest.mark.slow
TIMEOUT_MS = 15_000


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    root = tmp_path / "tracking"
    write_data(root)
    return root


@pytest.fixture
def page(storage: Path) -> Iterator[tuple[Page, str, list[str]]]:
    """A fresh page on a served UI, its base URL, and the console errors it logs."""
    with (
        serve_ui(storage) as url,
        chromium() as browser,
        watched_tab(
            browser, width=1400, height=1000, timeout_ms=TIMEOUT_MS, accept_downloads=True
        ) as (tab, errors),
    ):
        yield tab, url, errors


def test_a_reviewer_annotates_edits_lists_exports_and_deletes(
    page: tuple[Page, str, list[str]], storage: Path
) -> None:
    tab, url, errors = page
    tab.goto(f"{url}/projects/{PROJECT}/apps/counter/steps/1")
    panel = tab.locator("#annotations")
    form = panel.locator("form.annotate")
    expect(form).to_be_visible()
    # The panel loads into its own box: the step panel and the steps table stay around it.
    expect(tab.locator("#step-panel h2")).to_contain_text("Step 1")
    expect(tab.locator("#step-1")).to_have_class(re.compile(r"\bselected\b"))
    form.locator("select[name=mark]").select_option("bad")
    form.locator("input[name=tags]").fill("slow, <b>bold</b>")
    form.locator("textarea[name=note]").fill("should not <i>repeat</i>")
    form.locator("textarea[name=expected]").fill('{"count": 2}')
    form.locator("select[name=expected_kind]").select_option("json")
    form.locator("button[type=submit]").click()
    expect(panel.locator("summary")).to_have_text("Annotations (1)")
    expect(panel.locator("pre.note")).to_have_text("should not <i>repeat</i>")
    stored = json.loads((storage / PROJECT / ANNOTATIONS_NAME).read_text(encoding="utf-8"))
    (saved,) = stored["annotations"]
    assert (saved["mark"], saved["expected"]) == ("bad", {"count": 2})

    panel.get_by_role("button", name="edit").click()
    editing = tab.locator("#annotations form.annotate")
    expect(editing.locator("h4")).to_have_text("Edit the annotation")
    expect(editing.locator("textarea[name=note]")).to_have_value("should not <i>repeat</i>")
    editing.locator("select[name=mark]").select_option("good")
    editing.locator("button[type=submit]").click()
    expect(tab.locator("#annotations .mark")).to_have_text("good")
    expect(tab).to_have_url(f"{url}/projects/{PROJECT}/apps/counter/steps/1")
    expect(tab.locator("#step-panel h2")).to_contain_text("Step 1")

    tab.goto(f"{url}/projects/{PROJECT}")
    tab.locator("#annotations-link").click()
    expect(tab.locator("#annotation-list tbody tr")).to_have_count(1)
    tab.locator("select[name=tag]").select_option("slow")
    tab.get_by_role("button", name="filter").click()
    expect(tab).to_have_url(f"{url}/projects/{PROJECT}/annotations?tag=slow&mark=&action=&app=")
    expect(tab.locator("#annotation-list .chip").first).to_have_text("<b>bold</b>")
    with tab.expect_download() as download:
        tab.locator("#export-csv").click()
    exported = Path(download.value.path()).read_text(encoding="utf-8")
    assert "should not <i>repeat</i>" in exported
    tab.go_back()
    expect(tab).to_have_url(f"{url}/projects/{PROJECT}/annotations")

    tab.goto(f"{url}/projects/{PROJECT}/apps/counter/steps/1")
    tab.once("dialog", lambda dialog: dialog.accept())
    tab.locator("#annotations").get_by_role("button", name="delete").click()
    expect(tab.locator("#annotations summary")).to_have_text("Annotations (0)")
    assert json.loads((storage / PROJECT / ANNOTATIONS_NAME).read_text())["annotations"] == []
    assert errors == []
