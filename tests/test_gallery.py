"""The examples gallery (``turnout._gallery``) and ``turnout demo``: every entry is a real
example that runs tracked and offline, the listing tells what is installed, unknown names and
missing extras get errors that say what to type, and the docs page has a card per example."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from turnout import _gallery
from turnout.cli import main
from turnout.core.errors import GalleryError, MissingExtraError
from turnout.core.tracking import LocalTracker
from turnout.core.tracklog import EndRecord, read_records

ROOT = Path(__file__).resolve().parents[1]
NAMES = [example.name for example in _gallery.EXAMPLES]


class _GraphTracker(LocalTracker):
    """A ``LocalTracker`` that also keeps the graph of each application it saw created."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.graphs: dict[str, Any] = {}

    def post_application_create(self, **kwargs: Any) -> None:
        self.graphs[kwargs["app_id"]] = kwargs["application_graph"]
        super().post_application_create(**kwargs)


def _ended(tracker: LocalTracker, app_id: str) -> list[tuple[str, str]]:
    """``(action, status)`` of every step the log of ``app_id`` records as ended."""
    records = read_records(tracker.log_path(app_id)).records
    return [(r.action, r.status) for r in records if isinstance(r, EndRecord)]


def test_every_entry_is_an_example_with_a_readme_and_an_existing_extra() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert len(set(NAMES)) == len(NAMES)
    for example in _gallery.EXAMPLES:
        folder = ROOT / "examples" / example.directory
        assert (folder / "application.py").is_file(), example.name
        assert example.install in (folder / "README.md").read_text(), example.name
        assert example.extra in extras, example.name
        assert example.steps, example.name


def test_the_examples_come_from_the_checkout_next_to_turnout() -> None:
    assert _gallery.examples_location() == (ROOT / "examples", "examples")


@pytest.mark.parametrize("example", _gallery.EXAMPLES, ids=NAMES)
def test_each_example_runs_tracked_offline_through_its_steps(
    example: _gallery.Example, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run as the demo project runs it (offline even with a key set): every step it lists is
    in the log, ended without an error."""
    for library in example.needs:
        pytest.importorskip(library)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-used")  # live=False must not reach the API
    said: list[str] = []
    tracker = _GraphTracker("gallery", storage_dir=tmp_path)
    try:
        run = _gallery.GalleryRun(tracker=tracker, app_id=f"g-{example.name}", say=said.append)
        example.run(_gallery.load(example), run)
    finally:
        tracker.close()
    ended = _ended(tracker, f"g-{example.name}")
    assert {action for action, _ in ended} >= set(example.steps)
    assert {status for _, status in ended} <= {"completed", "suspended"}
    assert "".join(said).strip()  # it says what happens, for `turnout demo`
    readme = (ROOT / "examples" / example.directory / "README.md").read_text(encoding="utf-8")
    drawn = [block.split("```", 1)[0].strip() for block in readme.split("```mermaid\n")[1:]]
    graph = tracker.graphs[f"g-{example.name}"]
    assert graph.to_mermaid().strip() in drawn  # the README draws the graph that ran
    assert f"turnout demo {example.name}" in readme


def test_find_accepts_names_and_directories_and_suggests_close_names() -> None:
    assert _gallery.find("email_assistant") is _gallery.find("email_assistant_served")
    with pytest.raises(GalleryError, match="did you mean adventure_game") as caught:
        _gallery.find("adventure")
    assert "chatbot, rag_chatbot" in str(caught.value)
    with pytest.raises(GalleryError, match="no gallery example is called 'zzz'; `turnout demo`"):
        _gallery.find("zzz")


def test_an_example_whose_extra_is_missing_names_the_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    example = _gallery.find("chatbot")
    gone = _gallery.Example(**{**_fields(example), "needs": ("no_such_module_xyz",)})
    assert gone.missing() == ["no_such_module_xyz"]
    with pytest.raises(MissingExtraError, match=re.escape('pip install "turnout[openai]"')):
        _gallery.load(gone)


def _fields(example: _gallery.Example) -> dict[str, object]:
    return {name: getattr(example, name) for name in _gallery.Example.__dataclass_fields__}


def _swap(monkeypatch: pytest.MonkeyPatch, name: str, **changes: object) -> None:
    examples = tuple(
        _gallery.Example(**{**_fields(e), **changes}) if e.name == name else e
        for e in _gallery.EXAMPLES
    )
    monkeypatch.setattr(_gallery, "EXAMPLES", examples)


def test_turnout_demo_lists_every_example_with_its_extra_and_whether_installed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _swap(monkeypatch, "rag_chatbot", needs=("no_such_module_xyz",))
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert f"examples in {ROOT / 'examples'}" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    for example in _gallery.EXAMPLES:
        assert example.extra in rows[example.name]
        assert example.summary in rows[example.name]
    assert 'no: pip install "turnout[llamaindex]"' in rows["rag_chatbot"]


def test_turnout_demo_name_runs_it_tracked_and_prints_the_ui_link(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("openai")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    argv = ["demo", "multi_agent", "--dir", str(tmp_path), "--project", "p", "--app-id", "team"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "A: " in out  # the team's answer, as it went
    assert f"see it: turnout ui --dir {tmp_path}" in out
    assert "http://127.0.0.1:7241/projects/p/apps/team" in out
    ended = _ended(LocalTracker("p", storage_dir=tmp_path), "team")
    assert [action for action, _ in ended][-1] == "deliver"
    agents = sorted(p.name for p in (tmp_path / "p").iterdir() if p.name.startswith("team-"))
    assert agents
    assert all(re.fullmatch(r"team-\d+-(planner|researcher-\d+|writer)", a) for a in agents)


def test_turnout_demo_unknown_name_exits_2_with_a_suggestion(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "multiagent"]) == 2
    assert "did you mean multi_agent?" in capsys.readouterr().err


def test_turnout_demo_missing_extra_exits_1_naming_the_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _swap(monkeypatch, "email_assistant", needs=("no_such_module_xyz",))
    assert main(["demo", "email_assistant", "--dir", str(tmp_path)]) == 1
    assert 'pip install "turnout[serve]"' in capsys.readouterr().err
    assert not (tmp_path / "gallery").exists()  # nothing was tracked


def test_the_gallery_page_has_a_card_with_screenshot_and_command_per_example() -> None:
    page = (ROOT / "docs" / "gallery.md").read_text()
    for example in _gallery.EXAMPLES:
        assert f"turnout demo {example.name}" in page, example.name
        image = f"img/gallery/{example.name}.png"
        assert image in page, example.name
        assert (ROOT / "docs" / image).is_file(), example.name
    nav = (ROOT / "mkdocs.yml").read_text()
    assert "gallery.md" in nav


def test_the_rag_chatbot_retrieves_the_document_each_question_is_about(tmp_path: Path) -> None:
    pytest.importorskip("llama_index")
    said: list[str] = []
    tracker = LocalTracker("gallery", storage_dir=tmp_path)
    try:
        example = _gallery.find("rag_chatbot")
        run = _gallery.GalleryRun(tracker=tracker, app_id="rag", say=said.append)
        example.run(_gallery.load(example), run)
    finally:
        tracker.close()
    topics = re.findall(r"retrieved (\w+)", "".join(said))
    assert topics == ["cats", "volcanoes", "bread"]


@pytest.mark.parametrize("offline", [False, True], ids=["key-set", "key-set-offline"])
def test_with_a_key_turnout_demo_talks_to_the_configured_provider_unless_offline(
    offline: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """``OPENAI_API_KEY`` set: the chatbot's requests go to the provider the openai client is
    configured for (here a local server standing in for the API, by ``OPENAI_BASE_URL``), with
    ``OPENAI_MODEL``; ``--offline`` keeps them on the example's own fake."""
    pytest.importorskip("openai")
    from turnout.testing import FakeOpenAIServer

    seen: list[str] = []

    def provider(request: Any) -> str:
        seen.append(request.model)
        return "the provider's answer"

    with FakeOpenAIServer(provider) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_MODEL", "provider-model")
        argv = ["demo", "chatbot", "--dir", str(tmp_path), *(["--offline"] if offline else [])]
        assert main(argv) == 0
    out = capsys.readouterr().out
    if offline:
        assert seen == []
        assert "Set OPENAI_API_KEY for a real model." in out  # the example's fake said it
    else:
        assert seen == ["provider-model"] * 3  # one request per turn
        assert out.count("the provider's answer") == 3


def test_without_the_examples_turnout_demo_says_where_they_come_from(tmp_path: Path) -> None:
    """A turnout with neither ``turnout/_examples`` (a wheel) nor ``examples/`` beside it (a
    checkout): the listing and a run say how to get them."""
    pytest.importorskip("fastapi")  # the email assistant's extra: installed, so this is asked
    shutil.copytree(
        ROOT / "turnout", tmp_path / "turnout", ignore=shutil.ignore_patterns("__pycache__")
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    run = [sys.executable, "-m", "turnout.cli", "demo"]
    listing = subprocess.run(
        run, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert listing.returncode == 0, listing.stderr
    assert "examples not found: the gallery's examples are not installed next to turnout" in (
        listing.stdout
    )
    refused = subprocess.run(
        [*run, "email_assistant", "--dir", str(tmp_path / "t")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "install turnout from a wheel" in refused.stderr
    assert "run from a source checkout" in refused.stderr
