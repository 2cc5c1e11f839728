"""The demo project ``turnout ui`` writes on its first start (``turnout.tracking.demo``): the
built-in applications, then one run of every gallery example whose extra is installed, and the
``gallery`` application saying what became of each (run, or skipped with the install)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from turnout import _gallery
from turnout.core.tracking import LocalTracker
from turnout.tracking import demo


def _listing(root: Path) -> list[dict[str, Any]]:
    state = LocalTracker(demo.DEMO_PROJECT, storage_dir=root).load(None, demo.GALLERY_APP)
    assert state is not None
    return list(state.state["examples"])


def _apps(root: Path) -> set[str]:
    return {p.name for p in (root / demo.DEMO_PROJECT).iterdir() if p.is_dir()}


def test_without_gallery_only_the_built_in_apps_run(tmp_path: Path) -> None:
    assert demo.generate(tmp_path) == list(demo.DEMO_APPS)
    assert _apps(tmp_path) == set(demo.DEMO_APPS)


@pytest.mark.slow
def test_the_gallery_runs_every_installed_example_into_the_demo_project(tmp_path: Path) -> None:
    installed = [e for e in _gallery.EXAMPLES if e.installed()]
    seen: list[tuple[str, str]] = []
    ran = demo.generate(tmp_path, gallery=True, progress=lambda n, s: seen.append((n, s)))
    expected = {f"gallery-{e.name}" for e in installed}
    assert expected <= set(ran) <= _apps(tmp_path)
    assert demo.GALLERY_APP in ran
    assert set(demo.DEMO_APPS) <= set(ran)
    rows = {row["name"]: row for row in _listing(tmp_path)}
    assert list(rows) == [e.name for e in _gallery.EXAMPLES]
    for example in installed:
        assert rows[example.name]["status"] == "ran", rows[example.name]
        assert rows[example.name]["app_id"] == f"gallery-{example.name}"
    assert seen == [
        (name, "ran" if row["status"] == "ran" else f"{row['status']}: {row['why']}")
        for name, row in rows.items()
    ]


def test_without_their_extras_the_examples_are_skipped_and_listed_with_the_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As from a wheel installed without extras: the demo still starts, and says what the
    missing examples need."""
    for example in _gallery.EXAMPLES:
        for module in example.needs:
            monkeypatch.setitem(sys.modules, module, None)  # find_spec: not installed
    ran = demo.generate(tmp_path, gallery=True)
    assert ran == [*demo.DEMO_APPS, demo.GALLERY_APP]
    assert not any(app.startswith("gallery-") for app in _apps(tmp_path))
    for row, example in zip(_listing(tmp_path), _gallery.EXAMPLES, strict=True):
        assert row["status"] == "skipped"
        assert row["why"] == f"needs {example.install}"


def test_an_example_that_fails_is_listed_as_failed_and_the_others_still_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(module: Any, run: _gallery.GalleryRun) -> None:
        raise RuntimeError("the model server is down")

    examples = [
        _gallery.Example(
            name="broken", directory="counter", title="Broken", summary="fails", extra="openai",
            needs=(), steps=("x",), live=False, run=broken,
        ),
        _gallery.find("email_assistant"),
    ]  # fmt: skip
    pytest.importorskip("fastapi")
    monkeypatch.setattr(_gallery, "EXAMPLES", tuple(examples))
    ran = demo.generate(tmp_path, gallery=True)
    assert "gallery-email_assistant" in ran
    assert "gallery-broken" not in ran
    rows = _listing(tmp_path)
    assert rows[0]["status"] == "failed"
    assert rows[0]["why"] == "RuntimeError: the model server is down"
    assert rows[1]["status"] == "ran"


@pytest.mark.slow
def test_start_gallery_runs_it_in_a_background_process_of_its_own_session(tmp_path: Path) -> None:
    """What ``turnout ui``'s first start does after the built-in apps: the UI starts at once,
    the gallery's apps follow; Ctrl-C on the UI (its process group) does not reach it."""
    process = demo.start_gallery(tmp_path)
    # A session (and process group) of its own; it runs for seconds, so it is still there.
    assert os.getsid(process.pid) == process.pid
    assert process.wait(timeout=300) == 0
    rows = _listing(tmp_path)
    assert [row["name"] for row in rows] == [e.name for e in _gallery.EXAMPLES]
    for row, example in zip(rows, _gallery.EXAMPLES, strict=True):
        assert row["status"] == ("ran" if example.installed() else "skipped")
