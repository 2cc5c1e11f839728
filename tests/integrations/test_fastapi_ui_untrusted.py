"""The tracking UI trusts no log it reads: a child id shaped like a path names an application,
never a file; a project or application directory leading outside the tracking directory is
neither listed nor read; a malformed, skipped or unreadable log, or a damaged logged graph, never
takes a page down, and the pages say what was skipped and why; the commands a step page
offers quote every traced value."""

from __future__ import annotations

import html
import json
import re
import shlex
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")
from fastapi.testclient import TestClient

from turnout import ApplicationBuilder, State, action
from turnout.core import trackview
from turnout.core.trackfiles import InvalidParameterError, TrackingIndex
from turnout.core.tracking import LocalTracker
from turnout.core.tracklog import ChildRecord, dump_line
from turnout.integrations.fastapi.ui import create_ui_app


@action(reads=["n"], writes=["n"])
def tick(state: State) -> State:
    return state.update(n=state["n"] + 1)


def _tick(root: Path, project: str, *app_ids: str) -> None:
    """One step of a ticking application per id, tracked under ``root/project``."""
    tracker = LocalTracker(project, root)
    try:
        for app_id in app_ids:
            (
                ApplicationBuilder()
                .with_actions(tick)
                .with_transitions(("tick", "tick"))
                .with_state(n=0)
                .with_entrypoint("tick")
                .with_identifiers(app_id=app_id)
                .with_tracker(tracker)
                .build()
                .step()
            )
    finally:
        tracker.close()


def _append(log: Path, line: str | bytes) -> None:
    with log.open("ab") as out:
        out.write(line if isinstance(line, bytes) else line.encode() + b"\n")


def test_a_child_id_shaped_like_a_path_names_an_application_not_a_file(tmp_path: Path) -> None:
    """A logged child ``../../etc`` is linked as one percent-encoded id, and following the link
    says there is no such application (nothing at ``tmp_path/etc`` is read)."""
    _tick(tmp_path, "links", "p-1")
    (tmp_path / "etc").mkdir()  # what ../../etc would reach if the id were used as a path
    (tmp_path / "etc" / "log.jsonl").write_text("{}\n")
    child = ChildRecord(
        kind="fork", child_app_id="../../etc", child_partition_key=None, seq=0, time=time.time()
    )
    _append(tmp_path / "links" / "p-1" / "log.jsonl", dump_line(child.to_json()))
    link = "/projects/links/apps/" + urllib.parse.quote("../../etc", safe="")
    with TestClient(create_ui_app(tmp_path)) as client:
        page = client.get("/projects/links/apps/p-1")
        assert page.status_code == 200
        assert f'href="{link}"' in page.text
        missing = client.get(link)
        assert missing.status_code == 404
        assert "../../etc" in missing.text
        assert client.get("/api/v1/projects/links/apps/p-1").json()["summary"]["children"][0][
            "app_id"
        ] == ("../../etc")


def test_a_directory_leading_outside_the_tracking_directory_is_not_listed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    _tick(outside, "secret", "hidden")
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside / "secret", target_is_directory=True)
    _tick(root, "mine", "own")
    (root / "mine" / "stolen").symlink_to(outside / "secret" / "hidden", target_is_directory=True)
    with TestClient(create_ui_app(root)) as client:
        assert [p["name"] for p in client.get("/api/v1/projects").json()] == ["mine"]
        for project in ("link", "%2E%2E", urllib.parse.quote("../outside/secret", safe="")):
            page = client.get(f"/projects/{project}")
            assert page.status_code in (404, 422), project
            assert "hidden" not in page.text
        apps = client.get("/projects/mine")
        assert "own" in apps.text
        assert "Application <code>stolen</code> is unreadable: its directory leads outside" in (
            apps.text
        )
        assert client.get("/projects/mine/apps/stolen").status_code in (404, 422)
    with pytest.raises(InvalidParameterError, match="outside the tracking directory"):
        TrackingIndex(root).app("mine", "stolen")


@pytest.mark.parametrize(
    "line",
    [
        '{"t": "begin", "seq": "x", "action": "tick", "time": 1.0}',
        '{"t": "end", "action": "tick", "status": "completed", "time": 1.0}',
        '{"t": "end", "seq": 1, "status": "completed", "changes": "set", "time": 1.0}',
        '{"t": "begin", "seq": [], "time": 1.0}',
    ],
    ids=["seq-not-a-number", "no-seq", "changes-a-string", "seq-a-list"],
)
def test_one_malformed_line_does_not_break_a_page(tmp_path: Path, line: str) -> None:
    _tick(tmp_path, "damaged", "good", "bad")
    _append(tmp_path / "damaged" / "bad" / "log.jsonl", line)
    with TestClient(create_ui_app(tmp_path)) as client:
        apps = client.get("/projects/damaged")
        assert apps.status_code == 200
        assert "/projects/damaged/apps/good" in apps.text
        assert "/projects/damaged/apps/bad" in apps.text or "<code>bad</code> is unreadable" in (
            apps.text
        )
        for path in ("", "/steps/0"):
            page = client.get(f"/projects/damaged/apps/bad{path}")
            assert page.status_code in (200, 404), (path, page.text)
            assert "Internal Server Error" not in page.text


def test_skipped_malformed_lines_are_counted_on_the_pages(tmp_path: Path) -> None:
    _tick(tmp_path, "counted", "good", "bad")
    _append(tmp_path / "counted" / "bad" / "log.jsonl", "this line is not JSON")
    with TestClient(create_ui_app(tmp_path)) as client:
        apps = client.get("/projects/counted").text
        assert apps.count("1 bad lines") == 1
        bad = client.get("/projects/counted/apps/bad").text
        assert "1 malformed log lines were skipped" in bad
        assert "malformed" not in client.get("/projects/counted/apps/good").text


def test_an_app_whose_log_cannot_be_read_is_listed_as_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tick(tmp_path, "unreadable", "fine", "locked")
    refresh = trackview.AppLog.refresh

    def failing(log: trackview.AppLog) -> int:
        if log.path is not None and log.path.parent.name == "locked":
            raise PermissionError(13, "Permission denied", str(log.path))
        return refresh(log)

    monkeypatch.setattr(trackview.AppLog, "refresh", failing)
    with TestClient(create_ui_app(tmp_path), raise_server_exceptions=False) as client:
        apps = client.get("/projects/unreadable")
        assert apps.status_code == 200
        assert "/projects/unreadable/apps/fine" in apps.text
        assert "Application <code>locked</code> is unreadable: PermissionError" in apps.text
        api: Any = client.get("/api/v1/projects/unreadable/apps").json()
        assert [a["app_id"] for a in api["apps"]] == ["fine"]
        assert api["unreadable"]["locked"].startswith("PermissionError: [Errno 13]")


def test_a_damaged_logged_graph_keeps_what_is_whole_and_the_page_renders(tmp_path: Path) -> None:
    """A checksum-less app line whose graph holds non-objects among its actions and transitions
    (written by something other than turnout): the reader keeps the objects, the page draws."""
    _tick(tmp_path, "damaged", "odd")
    log = tmp_path / "damaged" / "odd" / "log.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    app = json.loads(lines[1])
    del app["crc"]
    kept = app["graph"]["actions"][0]
    app["graph"]["actions"] = [1, "<b>x</b>", kept, None]
    app["graph"]["transitions"] = [[1, 2], "t"]
    lines[1] = dump_line(app)
    log.write_bytes(b"".join(lines))
    with TestClient(create_ui_app(tmp_path)) as client:
        page = client.get("/projects/damaged/apps/odd/steps/0")
        assert page.status_code == 200
        assert "<b>x</b>" not in page.text
        graph = client.get("/api/v1/projects/damaged/apps/odd").json()["graph"]
        assert [a["name"] for a in graph["actions"]] == [kept["name"]]
        assert graph["transitions"] == []


def test_the_step_pages_commands_quote_every_value(tmp_path: Path) -> None:
    """The test-case command is one shell word per value and the fork snippet valid Python,
    whatever the directory and partition key hold."""
    root = tmp_path / "it's a dir; rm -rf ~ #"
    hostile_key = "'; rm -rf ~ # and spaces"
    tracker = LocalTracker("fork", root)
    try:
        (
            ApplicationBuilder()
            .with_actions(tick)
            .with_transitions(("tick", "tick"))
            .with_state(n=0)
            .with_entrypoint("tick")
            .with_identifiers(app_id="a-1", partition_key=hostile_key)
            .with_tracker(tracker)
            .build()
            .step()
        )
    finally:
        tracker.close()
    with TestClient(create_ui_app(root)) as client:
        page = client.get("/projects/fork/apps/a-1/steps/0").text
    blocks = [html.unescape(b) for b in re.findall(r'<pre class="code">(.*?)</pre>', page, re.S)]
    (command,) = [b for b in blocks if b.startswith("turnout test-case")]
    words = shlex.split(command)
    assert words[words.index("--dir") + 1] == str(root.resolve())
    assert words[words.index("--partition-key") + 1] == hostile_key
    assert words[words.index("--app-id") + 1] == "a-1"
    assert words[words.index("--sequence-id") + 1] == "0"
    (snippet,) = [b for b in blocks if "fork_from_partition_key" in b]
    compile(snippet, "snippet", "exec")
    assert f"fork_from_partition_key={hostile_key!r}" in snippet
