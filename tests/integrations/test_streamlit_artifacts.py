"""Artifact refs in the tracking UI: a ref in a state is one line (name, media type, size, short
digest) with a Download button that reads the blob from the store given by
``turnout ui --artifacts DIR`` / ``$TURNOUT_UI_ARTIFACTS`` only when clicked; missing and damaged
blobs, no store and hostile names are explained on the page."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("streamlit")

from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from tests.integrations.streamlit_ui import literal, rerun, run_ui
from turnout import ApplicationBuilder, State, action
from turnout.cli import main
from turnout.core.artifacts import ArtifactRef, LocalArtifactStore
from turnout.core.errors import ArtifactIntegrityError
from turnout.core.serde import TAG
from turnout.core.tracking import LocalTracker
from turnout.integrations.streamlit.artifact_panel import ARTIFACTS_ENV
from turnout.integrations.streamlit.artifact_refs import (
    compact,
    download_mime,
    download_name,
    find_refs,
    human_size,
    ref_line,
)

PROJECT = "arts"
CHART = b"\x89PNG" + bytes(4092)
# The MIME type and file name each deferred download was registered with, by file id.
MIMES: dict[str, str | None] = {}
NAMES: dict[str, str | None] = {}
HOSTILE = "![x](http://127.0.0.1:9/x.png) **bold** <img src=x> :red[boom]"


def _track(root: Path, app_id: str, make: Callable[[LocalArtifactStore], dict[str, Any]]) -> None:
    """Track into ``root/tracking`` one step writing what ``make`` returns (refs put into the
    store at ``root/blobs``)."""
    store = LocalArtifactStore(root / "blobs")

    @action(reads=[], writes=["chart", "pages", "note"])
    def produce(state: State) -> tuple[dict[str, Any], State]:
        written = make(store)
        return {"made": written.get("chart")}, state.update(**written)

    tracker = LocalTracker(PROJECT, root / "tracking")
    try:
        app = (
            ApplicationBuilder()
            .with_actions(produce)
            .with_transitions()
            .with_state(chart=None, pages=[], note="")
            .with_entrypoint("produce")
            .with_identifiers(app_id=app_id)
            .with_tracker(tracker)
            .build()
        )
        app.step()
    finally:
        tracker.close()


def _chart_and_pages(store: LocalArtifactStore) -> dict[str, Any]:
    chart = store.put(CHART, media_type="image/png", name="chart.png")
    page = store.put(b"page one", media_type="text/plain")
    return {"chart": chart, "pages": [page, {"n": 1}], "note": "done"}


@pytest.fixture
def tracked(tmp_path: Path) -> Path:
    _track(tmp_path, "report", _chart_and_pages)
    return tmp_path


@pytest.fixture
def deferred(monkeypatch: pytest.MonkeyPatch) -> dict[str, Callable[[], Any]]:
    """The functions download buttons registered, by their deferred file id (what the server
    calls when the button is clicked in a browser)."""
    functions: dict[str, Callable[[], Any]] = {}
    original = MediaFileManager.add_deferred

    def recording(
        self: MediaFileManager, function: Callable[[], Any], mimetype: str | None, *args: Any,
        **kw: Any,
    ) -> str:  # fmt: skip
        file_id: str = original(self, function, mimetype, *args, **kw)
        functions[file_id] = function
        MIMES[file_id] = mimetype
        NAMES[file_id] = kw.get("file_name")
        return file_id

    monkeypatch.setattr(MediaFileManager, "add_deferred", recording)
    return functions


def _open(
    root: Path, monkeypatch: pytest.MonkeyPatch, *, store: Path | None, **params: str
) -> AppTest:
    if store is None:
        monkeypatch.delenv(ARTIFACTS_ENV, raising=False)
    else:
        monkeypatch.setenv(ARTIFACTS_ENV, str(store))
    return run_ui(root / "tracking", monkeypatch, project=PROJECT, tab="State", **params)


def _texts(at: AppTest) -> list[str]:
    return [literal(m.value) for m in at.markdown]


# -- the pure helpers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "shown"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (4096, "4.0 KiB"), (5 * 2**20, "5.0 MiB")],
    ids=["zero", "bytes", "one-kib", "kib", "mib"],
)
def test_sizes_are_shown_for_people(size: int, shown: str) -> None:
    assert human_size(size) == shown


DIGEST = "ab" * 32


@pytest.mark.parametrize(
    ("name", "media_type", "offered"),
    [
        ("chart.png", "image/png", "chart.png"),
        ("report final.pdf", None, "report final.pdf"),
        ("../../etc/passwd", "text/plain", f"{DIGEST[:12]}.txt"),
        ("a/b.png", "image/png", f"{DIGEST[:12]}.png"),
        (".bashrc", None, f"{DIGEST[:12]}.bin"),
        ("x\r\nSet-Cookie: a=b", "image/png", f"{DIGEST[:12]}.png"),
        (HOSTILE, HOSTILE, f"{DIGEST[:12]}.bin"),
        (None, "application/json; charset=utf-8", f"{DIGEST[:12]}.json"),
        ("trailing.", None, f"{DIGEST[:12]}.bin"),
    ],
    ids=["plain", "space", "traversal", "slash", "dotfile", "header", "hostile", "none", "dot-end"],
)
def test_the_file_name_offered_is_the_refs_name_only_when_it_is_safe(
    name: str | None, media_type: str | None, offered: str
) -> None:
    ref = ArtifactRef(digest=DIGEST, size_bytes=1, media_type=media_type, name=name)
    assert download_name(ref) == offered


def test_a_media_type_is_sent_only_when_it_has_the_shape_of_one() -> None:
    def mime(kind: str | None) -> str:
        return download_mime(ArtifactRef(digest=DIGEST, size_bytes=1, media_type=kind))

    assert mime("image/png") == "image/png"
    assert mime("Text/Plain; charset=utf-8") == "text/plain"
    assert mime("text/html\r\nX: y") == "application/octet-stream"
    assert mime(None) == "application/octet-stream"


def test_refs_are_found_in_stored_and_live_values_with_their_place() -> None:
    ref = ArtifactRef(digest=DIGEST, size_bytes=3, name="a.txt")
    stored = {TAG: "artifact", "v": ref.to_json()}
    bad = {TAG: "artifact", "v": {"digest": "../x", "size_bytes": 3}}
    found = find_refs({"chart": stored, "pages": [1, {"cover": ref}], "bad": bad})
    assert [(f.path, f.ref) for f in found[:2]] == [("chart", ref), ("pages[1].cover", ref)]
    assert (found[2].path, found[2].ref) == ("bad", None)
    assert "64 lowercase hex" in (found[2].problem or "")
    assert find_refs({TAG: "artifact", "v": ref.to_json(), "x": 1}) == []  # not the stored form


def test_compact_replaces_each_ref_by_its_line() -> None:
    ref = ArtifactRef(digest=DIGEST, size_bytes=2048, media_type="image/png", name="c.png")
    value = {"chart": {TAG: "artifact", "v": ref.to_json()}, "n": [ref, 1]}
    line = f"artifact · c.png · image/png · 2.0 KiB · {DIGEST[:12]}"
    assert ref_line(ref) == line
    assert compact(value) == {"chart": line, "n": [line, 1]}


# -- the page ---------------------------------------------------------------------------------


def test_a_ref_in_the_state_is_one_line_with_name_type_size_and_digest(
    tracked: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _open(tracked, monkeypatch, store=tracked / "blobs", app="report")
    chart = LocalArtifactStore(tracked / "blobs").put(CHART, media_type="image/png")
    line = f"chart · artifact · chart.png · image/png · 4.0 KiB · {chart.digest[:12]}"
    assert line in _texts(at)
    page = "pages[0] · artifact · (no name) · text/plain · 8 B"
    assert any(t.startswith(page) for t in _texts(at))
    shown = json.loads(at.json[0].proto.body)  # st.json shows the line, not the tagged object
    assert shown["chart"] == f"artifact · chart.png · image/png · 4.0 KiB · {chart.digest[:12]}"
    assert shown["pages"][1] == {"n": 1}
    assert len(at.get("download_button")) == 2


def test_the_download_button_yields_the_checked_bytes_when_clicked(
    tracked: Path, monkeypatch: pytest.MonkeyPatch, deferred: dict[str, Callable[[], Any]]
) -> None:
    at = _open(tracked, monkeypatch, store=tracked / "blobs", app="report")
    button = at.get("download_button")[0]
    assert NAMES[button.proto.deferred_file_id] == "chart.png"
    assert MIMES[button.proto.deferred_file_id] == "image/png"
    assert deferred[button.proto.deferred_file_id]() == CHART
    button.click()
    rerun(at)
    assert not at.error  # the click's rerun checked the blob: intact, nothing to say


def test_drawing_a_page_of_refs_reads_no_blob(
    tracked: Path, monkeypatch: pytest.MonkeyPatch, deferred: dict[str, Callable[[], Any]]
) -> None:
    reads: list[str] = []
    original_get, original_open = LocalArtifactStore.get, LocalArtifactStore.open

    def get(self: LocalArtifactStore, ref: ArtifactRef, *, verify: bool = True) -> bytes:
        reads.append(ref.digest)
        return original_get(self, ref, verify=verify)

    def open_(self: LocalArtifactStore, ref: ArtifactRef) -> Any:
        reads.append(ref.digest)
        return original_open(self, ref)

    monkeypatch.setattr(LocalArtifactStore, "get", get)
    monkeypatch.setattr(LocalArtifactStore, "open", open_)
    at = _open(tracked, monkeypatch, store=tracked / "blobs", app="report")
    at.radio(key="w_state_view").set_value("diff")
    rerun(at)
    assert len(at.get("download_button")) == 2
    assert reads == []
    deferred[at.get("download_button")[1].proto.deferred_file_id]()
    assert len(reads) == 1


def test_a_missing_blob_is_explained_and_offers_no_button(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def gone(store: LocalArtifactStore) -> dict[str, Any]:
        ref = store.put(b"soon deleted", name="gone.txt")
        store.delete(ref)
        return {"chart": ref}

    _track(tmp_path, "gone", gone)
    at = _open(tmp_path, monkeypatch, store=tmp_path / "blobs", app="gone")
    assert at.get("download_button") == []
    (warning,) = [w.value for w in at.warning if "has no blob" in w.value]
    assert warning.startswith("chart: the artifact store has no blob")


def test_a_damaged_blob_is_explained_when_its_download_is_asked(
    tracked: Path, monkeypatch: pytest.MonkeyPatch, deferred: dict[str, Callable[[], Any]]
) -> None:
    at = _open(tracked, monkeypatch, store=tracked / "blobs", app="report")
    chart = LocalArtifactStore(tracked / "blobs").put(CHART)
    (blob,) = (tracked / "blobs").rglob(chart.digest[2:])
    blob.write_bytes(b"\x89PNG" + b"\xff" * 4092)  # same size, other bytes
    button = at.get("download_button")[0]
    with pytest.raises(ArtifactIntegrityError):  # the download itself is refused
        deferred[button.proto.deferred_file_id]()
    button.click()
    rerun(at)
    (error,) = [e.value for e in at.error]
    assert error.startswith("chart: the blob is damaged and was not downloaded")
    assert "Traceback" not in error


def test_without_a_store_the_page_says_how_to_configure_one(
    tracked: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _open(tracked, monkeypatch, store=None, app="report")
    assert at.get("download_button") == []
    (info,) = [i.value for i in at.info if "artifact store" in i.value]
    assert "`turnout ui --artifacts DIR`" in info
    assert ARTIFACTS_ENV in info
    assert any(t.startswith("chart · artifact · chart.png") for t in _texts(at))


def test_a_store_directory_that_does_not_exist_is_reported_not_created(
    tracked: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tracked / "no-such-store"
    at = _open(tracked, monkeypatch, store=missing, app="report")
    assert at.get("download_button") == []
    assert any("does not exist" in i.value for i in at.info)
    assert not missing.exists()


def test_a_hostile_name_and_media_type_are_shown_as_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deferred: dict[str, Callable[[], Any]]
) -> None:
    def hostile(store: LocalArtifactStore) -> dict[str, Any]:
        return {HOSTILE: store.put(b"payload", media_type=HOSTILE, name=HOSTILE)}

    _track(tmp_path, "hostile", lambda store: {"chart": hostile(store)})
    at = _open(tmp_path, monkeypatch, store=tmp_path / "blobs", app="hostile")
    (row,) = [m.value for m in at.markdown if "artifact" in m.value and "payload" not in m.value]
    assert literal(row).startswith(f"chart.{HOSTILE} · artifact · {HOSTILE} · {HOSTILE} · 7 B")
    assert re.search(r"(?<!\\)[!<*\[:]", row) is None  # every markup character escaped
    button = at.get("download_button")[0]
    digest = LocalArtifactStore(tmp_path / "blobs").put(b"payload").digest
    assert NAMES[button.proto.deferred_file_id] == f"{digest[:12]}.bin"
    assert MIMES[button.proto.deferred_file_id] == "application/octet-stream"
    assert deferred[button.proto.deferred_file_id]() == b"payload"


def test_the_diff_shows_a_written_ref_as_its_line_and_offers_it(
    tracked: Path, monkeypatch: pytest.MonkeyPatch, deferred: dict[str, Callable[[], Any]]
) -> None:
    at = _open(tracked, monkeypatch, store=tracked / "blobs", app="report")
    at.radio(key="w_state_view").set_value("diff")
    rerun(at)
    diff = "".join(m.value for m in at.markdown if "turnout-diff" in m.value)
    assert "artifact · chart.png · image/png · 4.0 KiB" in diff
    assert TAG not in diff
    assert NAMES[at.get("download_button")[0].proto.deferred_file_id] == "chart.png"


def test_a_ref_returned_as_a_result_is_offered_on_the_inputs_tab(
    tracked: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _open(tracked, monkeypatch, store=tracked / "blobs", app="report")
    at.segmented_control(key="w_tab").set_value("Inputs & Result")
    rerun(at)
    texts = _texts(at)
    assert any(t.startswith("result.made · artifact · chart.png") for t in texts), texts
    assert json.loads(at.json[1].proto.body)["made"].startswith("artifact · chart.png")


# -- turnout ui --artifacts -------------------------------------------------------------------


def test_turnout_ui_passes_the_artifact_store_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands: list[list[str]] = []
    monkeypatch.setattr(os, "execv", lambda path, command: commands.append(command))
    monkeypatch.setattr(
        subprocess,
        "run",
        lambda command, check: commands.append(command) or subprocess.CompletedProcess(command, 0),
    )
    (tmp_path / "blobs").mkdir()
    args = ["ui", "--dir", str(tmp_path), "--no-demo", "--artifacts", str(tmp_path / "blobs")]
    assert main(args) == 0
    command = commands[-1]
    assert command[command.index("--artifacts") + 1] == str((tmp_path / "blobs").resolve())


def test_turnout_ui_refuses_an_artifact_store_that_is_not_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["ui", "--dir", str(tmp_path), "--no-demo", "--artifacts", str(tmp_path / "nope")]
    assert main(args) == 2
    assert "--artifacts" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()


def test_the_diff_table_escapes_a_hostile_ref_name_media_type_and_key() -> None:
    """The diff is rendered with unsafe_allow_html: a ref's traced name and media type, and a
    traced key, must reach it as text, never as markup."""
    from turnout.integrations.streamlit.data import StateDiff
    from turnout.integrations.streamlit.render import diff_html

    hostile = '<img src=x onerror="alert(1)"><script>alert(2)</script>\n\n![x](http://e/x.png)'
    stored = {
        TAG: "artifact",
        "v": {"digest": "a" * 64, "size_bytes": 7, "media_type": hostile, "name": hostile},
    }
    page = diff_html(StateDiff(added={hostile: stored}, removed={}, changed={"k": (1, stored)}))
    assert "<img" not in page
    assert "<script" not in page
    assert "\n" not in page  # a blank line would end the HTML block and hand the rest to markdown
    assert "&lt;img src=x" in page
