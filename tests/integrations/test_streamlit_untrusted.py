"""The tracking UI trusts nothing it displays (``streamlit.testing``): traced text shows as
literal text, the Fork tab's shell command is quoted, every URL parameter is checked (nothing
outside the tracking directory is read), and damaged or unreadable logs never take a page down."""

from __future__ import annotations

import json
import re
import shlex
import time
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies

pytest.importorskip("streamlit")

from tests.integrations.streamlit_ui import (
    literal,
    make_demo_dir,
    rerun,
    run_hostile_app,
    run_ui,
    tick,
    ticker,
)
from turnout import ApplicationBuilder
from turnout.core.tracking import LocalTracker
from turnout.core.tracklog import ChildRecord, dump_line
from turnout.integrations.streamlit import demo
from turnout.integrations.streamlit.index import TrackingIndex
from turnout.integrations.streamlit.params import InvalidParameterError
from turnout.integrations.streamlit.render import plain, reproduce_command


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_dir(tmp_path_factory)


# -- traced text is shown as text ------------------------------------------------------------------

PAYLOAD = (
    "![x](http://127.0.0.1:9/x.png) **bold** <img src=x onerror=alert(1)> $x$ :red[boom] "
    ":material/home: `code` [link](http://127.0.0.1:9/)"
)


def _shows_literally(markdown: str, text: str) -> bool:
    """Whether ``markdown`` shows ``text`` as literal characters (every markup one escaped)."""
    return plain(text) in markdown and text in literal(markdown)


def test_traced_text_on_the_application_page_is_literal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_hostile_app(tmp_path, PAYLOAD)
    at = run_ui(tmp_path, monkeypatch, project="hostile", app="victim", tab="Error")
    shown = [at.subheader[0].value, at.error[0].value]
    shown += [c.value for c in at.caption if "partition key" in c.value or "tags" in c.value]
    assert len(shown) == 4
    for value in shown:
        assert _shows_literally(value, PAYLOAD), value
        for markup in ("![", "**", "<img", "$x$", ":red[", ":material/", "`code`", "]("):
            assert not re.search(rf"(?<!\\){re.escape(markup)}", value), (markup, value)
    assert _shows_literally(at.error[0].value, f"ValueError: {PAYLOAD}")
    at.segmented_control(key="w_tab").set_value("Code")
    rerun(at)
    assert not at.warning  # the action is found in the logged graph by its name


def _child_line(child_app_id: str, kind: str) -> dict[str, object]:
    record = ChildRecord(
        kind=kind, child_app_id=child_app_id, child_partition_key=None, seq=0, time=time.time()
    )
    return record.to_json()


def test_traced_names_in_labels_are_literal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent_tracker = LocalTracker("labels", tmp_path)
    parent = ticker(parent_tracker, "p-1")
    parent.step()
    parent_tracker.close()
    log = tmp_path / "labels" / "p-1" / "log.jsonl"
    with log.open("ab") as out:  # a child link whose id is markup
        out.write(dump_line(_child_line("**c**", "spawn")))
    at = run_ui(tmp_path, monkeypatch)
    assert literal(at.button(key="open_project:labels").label) == "Open labels"
    at = run_ui(tmp_path, monkeypatch, project="labels", app="p-1", step="0")
    label = at.button(key="link:child:**c**").label
    assert label == "child: \\*\\*c\\*\\*"


def test_a_traced_link_to_a_path_like_id_stays_inside_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A child id such as ``../../etc`` names an application, never a path: the UI looks for
    it under its derived directory name inside the project, and says it is not there."""
    tracker = LocalTracker("links", tmp_path)
    ticker(tracker, "p-1").step()
    tracker.close()
    (tmp_path / "etc").mkdir()  # what ../../etc would reach if the id were used as a path
    (tmp_path / "etc" / "log.jsonl").write_text("{}\n")
    log = tmp_path / "links" / "p-1" / "log.jsonl"
    with log.open("ab") as out:
        out.write(dump_line(_child_line("../../etc", "fork")))
    at = run_ui(tmp_path, monkeypatch, project="links", app="p-1", step="0")
    at.button(key="link:child:../../etc").click()
    rerun(at)
    assert not at.error
    (warning,) = [literal(w.value) for w in at.warning]
    assert warning == "No tracked application '../../etc' in project 'links'."


# -- the Fork tab's shell command ------------------------------------------------------------------


def test_the_fork_tab_quotes_the_test_case_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "it's a dir; rm -rf ~ #"
    hostile_key = "'; rm -rf ~ # and spaces"
    tracker = LocalTracker("fork", root)
    app = (
        ApplicationBuilder()
        .with_actions(tick)
        .with_transitions(("tick", "tick"))
        .with_state(n=0)
        .with_entrypoint("tick")
        .with_identifiers(app_id="a-1", partition_key=hostile_key)
        .with_tracker(tracker)
        .build()
    )
    app.step()
    tracker.close()
    at = run_ui(root, monkeypatch, project="fork", app="a-1", tab="Fork")
    (command,) = [c.value for c in at.code if c.value.startswith("turnout test-case")]
    words = shlex.split(command)
    assert words[words.index("--dir") + 1] == str(root.resolve())
    assert words[words.index("--partition-key") + 1] == hostile_key
    assert words[words.index("--app-id") + 1] == "a-1"
    assert words[words.index("--sequence-id") + 1] == "0"
    snippet = next(c.value for c in at.code if "fork_from_partition_key" in c.value)
    compile(snippet, "snippet", "exec")


def test_test_case_command_quotes_every_value() -> None:
    hostile = "'; rm -rf ~ #"
    command = reproduce_command(
        storage_dir="/a dir", project="p", app_id=hostile, partition_key=f"k {hostile}", seq=3
    )
    assert shlex.split(command) == [
        "turnout", "test-case", "--dir", "/a dir", "--project", "p", "--app-id", hostile,
        "--sequence-id", "3", "--partition-key", f"k {hostile}", "--out",
        "tests/turnout_cases.json",
    ]  # fmt: skip


# -- URL parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "bad", "shown"),
    [
        ({"project": "/etc"}, "project", "'/etc'"),
        ({"project": "../demo"}, "project", "'../demo'"),
        ({"project": "demo\x00"}, "project", "'demo\\x00'"),
        ({"project": "demo", "app": "counter\x00"}, "app", "'counter\\x00'"),
        ({"project": "demo", "app": "c" * 10_000}, "app", f"{'c' * 60!r}… (10,000 characters)"),
        ({"project": "demo", "page": "abc"}, "page", "'abc'"),
        ({"project": "demo", "page": "2\n"}, "page", "'2\\n'"),
        ({"project": "demo", "page": "0"}, "page", "'0'"),
        ({"project": "demo", "app": "counter", "step": "-1"}, "step", "'-1'"),
        ({"project": "demo", "app": "counter", "step": "9" * 40}, "step", "'999"),
        ({"project": "demo", "app": "counter", "tab": "Secrets"}, "tab", "'Secrets'"),
        ({"project": "demo", "status": "x"}, "status", "'x'"),
        ({"project": "demo", "pk": "a\x00b"}, "pk", "'a\\x00b'"),
        ({"project": "demo", "tag": "t" * 10_000}, "tag", f"{'t' * 60!r}… (10,000 characters)"),
        ({"live": "yes"}, "live", "'yes'"),
    ],
    ids=[
        "absolute-project", "dotdot-project", "nul-project", "nul-app", "10kb-app",
        "page-not-a-number", "page-trailing-newline", "page-zero", "negative-step", "huge-step",
        "unknown-tab", "unknown-status", "nul-partition-key", "10kb-tag", "live-not-1",
    ],
)  # fmt: skip
def test_a_bad_url_parameter_gets_a_message_not_a_traceback(
    demo_dir: Path, monkeypatch: pytest.MonkeyPatch, params: dict[str, str], bad: str, shown: str
) -> None:
    at = run_ui(demo_dir, monkeypatch, **params)  # _ui fails on any exception the page raised
    (error,) = [literal(e.value) for e in at.error]
    assert error.startswith(f"URL parameter {bad}={shown}"), error
    assert "Fix or remove it" in error
    assert len(error) < 800  # a 10 KB value is shortened, not echoed
    assert bad not in at.query_params  # the refused value is dropped from the address


def test_a_project_outside_the_tracking_directory_is_not_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "outside"
    tracker = LocalTracker("secret", outside)
    ticker(tracker, "hidden").step()
    tracker.close()
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside / "secret", target_is_directory=True)
    for project in (str(outside / "secret"), "../outside/secret", "link"):
        at = run_ui(root, monkeypatch, project=project)
        assert not at.dataframe, project  # no application of the other directory is listed
        assert "hidden" not in str([m.value for m in at.markdown])
    assert TrackingIndex(root).projects() == []
    tracker = LocalTracker("mine", root)
    ticker(tracker, "own").step()
    tracker.close()
    (root / "mine" / "stolen").symlink_to(outside / "secret" / "hidden", target_is_directory=True)
    listing = TrackingIndex(root).listing("mine")
    assert [a.app_id for a in listing.apps] == ["own"]
    assert listing.unreadable == {"stolen": "its directory leads outside the tracking root"}
    with pytest.raises(InvalidParameterError, match="outside the tracking directory"):
        TrackingIndex(root).app("mine", "stolen")


def test_an_unknown_filter_value_shows_all_and_says_so(
    demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = run_ui(demo_dir, monkeypatch, project="demo", pk="**nobody**")
    assert set(at.dataframe[0].value["app"]) == set(demo.DEMO_APPS)
    (warning,) = at.warning
    assert "partition key '**nobody**': showing all" in literal(warning.value)
    assert "pk" not in at.query_params


# -- damaged logs ----------------------------------------------------------------------------------


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
def test_one_malformed_line_does_not_break_the_applications_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str
) -> None:
    tracker = LocalTracker("damaged", tmp_path)
    for app_id in ("good", "bad"):
        ticker(tracker, app_id).step()
    tracker.close()
    with (tmp_path / "damaged" / "bad" / "log.jsonl").open("a", encoding="utf-8") as out:
        out.write(line + "\n")
    at = run_ui(tmp_path, monkeypatch, project="damaged")
    listed = set(at.dataframe[0].value["app"])
    assert "good" in listed
    if "bad" not in listed:  # the reader raised: the app is shown as unreadable, with why
        assert any("'bad' is unreadable" in literal(w.value) for w in at.warning)
    # Its own page, and the step the damaged line recorded, render without an exception.
    for step in ("0", "1"):
        at = run_ui(tmp_path, monkeypatch, project="damaged", app="bad", step=step)
        assert literal(at.title[0].value) == "bad"


def test_skipped_malformed_lines_are_counted_on_the_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker = LocalTracker("counted", tmp_path)
    for app_id in ("good", "bad"):
        ticker(tracker, app_id).step()
    tracker.close()
    with (tmp_path / "counted" / "bad" / "log.jsonl").open("a", encoding="utf-8") as out:
        out.write("this line is not JSON\n")
    at = run_ui(tmp_path, monkeypatch, project="counted")
    assert set(at.dataframe[0].value["app"]) == {"good", "bad"}
    (warning,) = at.warning
    assert literal(warning.value).startswith("1 malformed log line(s) were skipped in bad (1):")
    at = run_ui(tmp_path, monkeypatch, project="counted", app="bad")
    assert "1 malformed line(s) of this application's log were skipped" in at.warning[0].value
    at = run_ui(tmp_path, monkeypatch, project="counted", app="good")
    assert not at.warning


def _unescape_strictly(markdown: str) -> str:
    """``markdown`` read as CommonMark reads backslash escapes; fails on an unescaped markup
    character (any ASCII punctuation) or a backslash escaping nothing."""
    out, position = [], 0
    while position < len(markdown):
        char = markdown[position]
        if char == "\\":
            escaped = markdown[position + 1 : position + 2]
            assert re.fullmatch(r"[!-/:-@\[-`{-~]", escaped), markdown
            out.append(escaped)
            position += 2
            continue
        assert not re.fullmatch(r"[!-/:-@\[-`{-~]", char), (char, markdown)
        out.append(char)
        position += 1
    return "".join(out)


@settings(max_examples=300, deadline=None)
@given(text=strategies.text())
def test_plain_makes_any_text_literal_on_one_line(text: str) -> None:
    shown = plain(text)
    assert _unescape_strictly(shown) == " ".join(text.splitlines())
    assert len(shown.splitlines()) <= 1


def test_plain_escapes_every_streamlit_markup() -> None:
    assert plain(PAYLOAD).startswith(r"\!\[x\]\(http\:\/\/127\.0\.0\.1\:9\/x\.png\) \*\*bold\*\*")
    assert r"\$x\$ \:red\[boom\] \:material\/home\:" in plain(PAYLOAD)


def test_an_app_whose_log_cannot_be_read_is_listed_as_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from turnout.integrations.streamlit import data

    tracker = LocalTracker("unreadable", tmp_path)
    for app_id in ("fine", "locked"):
        ticker(tracker, app_id).step()
    tracker.close()
    refresh = data.AppLog.refresh

    def failing(log: data.AppLog) -> int:
        if log.path.parent.name == "locked":
            raise PermissionError(13, "Permission denied", str(log.path))
        return refresh(log)

    monkeypatch.setattr(data.AppLog, "refresh", failing)
    listing = TrackingIndex(tmp_path).listing("unreadable")
    assert [a.app_id for a in listing.apps] == ["fine"]
    assert listing.unreadable["locked"].startswith("PermissionError: [Errno 13] Permission denied")
    at = run_ui(tmp_path, monkeypatch, project="unreadable")
    assert list(at.dataframe[0].value["app"]) == ["fine"]
    (warning,) = at.warning
    assert "Application 'locked' is unreadable: PermissionError" in literal(warning.value)
    at = run_ui(tmp_path, monkeypatch, project="unreadable", app="locked")
    assert "'locked' is unreadable: PermissionError" in literal(at.error[0].value)


def test_a_damaged_logged_graph_shows_what_is_whole_and_the_page_still_renders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checksummed app line whose graph holds non-objects among its actions and transitions
    (written by something other than turnout): the reader keeps the objects, the page draws."""
    from turnout.core.trackview import AppLog

    tracker = LocalTracker("damaged", tmp_path)
    ticker(tracker, "odd").step()
    tracker.close()
    log = tmp_path / "damaged" / "odd" / "log.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    app = json.loads(lines[1])
    del app["crc"]
    kept = app["graph"]["actions"][0]
    app["graph"]["actions"] = [1, "<b>x</b>", kept, None]
    app["graph"]["transitions"] = [[1, 2], "t"]
    lines[1] = dump_line(app)
    log.write_bytes(b"".join(lines))
    reader = AppLog(log)
    reader.refresh()
    graph = reader.graph
    assert graph["actions"] == [kept]
    assert graph["transitions"] == []
    at = run_ui(tmp_path, monkeypatch, project="damaged", app="odd", step="0")
    assert literal(at.title[0].value) == "odd"
