"""Artifacts in the web UI: a step's refs are listed with name, type and size, and download
from the ``--artifacts`` store as an attachment under a safe name, checked against the digest;
a missing or damaged blob, a store not configured and a bad ref each get a page saying so."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")
from fastapi.testclient import TestClient

from tests.integrations.test_postgres import server
from turnout import ApplicationBuilder, State, action
from turnout.core.artifacts import LocalArtifactStore
from turnout.core.tracking import LocalTracker
from turnout.integrations.fastapi.ui import create_ui_app
from turnout.integrations.fastapi.ui.artifacts import download_name

__all__ = ["server"]  # a fixture, shared with test_postgres

PROJECT = "blobs"
CHART = b"\x89PNG fake chart bytes" * 10
REPORT = b"<script>alert(1)</script> a report"


def write(tmp_path: Path, tracker: Any = None) -> tuple[Path, Path, dict[str, str]]:
    """An application whose step writes two refs (one with a hostile name), tracked into
    ``tmp_path / "tracking"`` (or by ``tracker``)."""
    blobs = tmp_path / "blobs"
    store = LocalArtifactStore(blobs)
    chart = store.put(CHART, media_type="image/png", name="chart.png")
    report = store.put(REPORT, media_type="text/html", name="../../etc/<b>passwd</b>")

    @action(reads=[], writes=["chart", "files"])
    def make(state: State) -> tuple[dict[str, object], State]:
        return {"report": report}, state.update(chart=chart, files=[report])

    root = tmp_path / "tracking"
    (
        ApplicationBuilder()
        .with_actions(make)
        .with_transitions(("make", "make"))
        .with_entrypoint("make")
        .with_tracker(tracker or LocalTracker(PROJECT, storage_dir=root))
        .with_identifiers(app_id="maker")
        .build()
        .step()
    )
    return root, blobs, {"chart": chart.digest, "report": report.digest}


STEP = f"/projects/{PROJECT}/apps/maker/steps/0"


def links(html: str) -> list[str]:
    return re.findall(r'<a class="download" href="([^"]+)"', html)


def test_refs_are_listed_and_download_checked_as_attachments(tmp_path: Path) -> None:
    root, blobs, digests = write(tmp_path)
    with TestClient(create_ui_app(root, artifacts=blobs)) as client:
        page = client.get(STEP)
        assert page.status_code == 200
        assert "chart.png" in page.text
        assert "image/png" in page.text
        assert "210 B" in page.text
        assert "<b>passwd</b>" not in page.text  # escaped
        # The result's ref, then the chart (the delta); the report in the delta is listed once.
        hrefs = links(page.text)
        assert hrefs == [f"{STEP}/artifacts/0", f"{STEP}/artifacts/1"]
        report = client.get(hrefs[0])
        assert report.status_code == 200
        assert report.content == REPORT
        disposition = report.headers["content-disposition"]
        assert disposition.startswith('attachment; filename="')
        assert f'filename="{digests["report"][:12]}.html"' in disposition  # the unsafe name
        assert "passwd" not in disposition
        chart = client.get(hrefs[1])
        assert chart.content == CHART
        assert chart.headers["content-type"] == "image/png"
        assert 'filename="chart.png"' in chart.headers["content-disposition"]
        assert client.get(f"{STEP}/artifacts/7").status_code == 404


def blob_file(blobs: Path, digest: str) -> Path:
    return next(p for p in blobs.rglob("*") if p.is_file() and p.name.endswith(digest[2:]))


def test_a_missing_or_damaged_blob_is_explained(tmp_path: Path) -> None:
    root, blobs, digests = write(tmp_path)
    chart_file = next(p for p in blobs.rglob("*") if p.is_file() and digests["chart"][2:] in p.name)
    chart_file.write_bytes(b"tampered" + CHART[8:])
    report_file = next(
        p for p in blobs.rglob("*") if p.is_file() and digests["report"][2:] in p.name
    )
    report_file.unlink()
    with TestClient(create_ui_app(root, artifacts=blobs)) as client:
        damaged = client.get(f"{STEP}/artifacts/1")
        assert damaged.status_code == 409
        assert "damaged" in damaged.text
        assert b"tampered" not in damaged.content
        missing = client.get(f"{STEP}/artifacts/0")
        assert missing.status_code == 404
        assert "has no blob" in missing.text


def test_without_a_store_refs_are_listed_without_links(tmp_path: Path) -> None:
    root, _blobs, _digests = write(tmp_path)
    with TestClient(create_ui_app(root)) as client:
        page = client.get(STEP)
        assert "chart.png" in page.text
        assert links(page.text) == []
        assert "--artifacts DIR" in page.text
        answer = client.get(f"{STEP}/artifacts/1")
        assert answer.status_code == 404
        assert "no artifact store is configured" in answer.text
    with pytest.raises(ValueError, match="is not a directory"):
        create_ui_app(root, artifacts=tmp_path / "nope")


def test_download_names_are_plain_file_names() -> None:
    from turnout.core.artifacts import ArtifactRef

    digest = "ab" * 32
    assert download_name(ArtifactRef(digest=digest, size_bytes=1, name="a b.txt")) == "a b.txt"
    for name in ("../x", ".hidden", "a/b", 'q"uote', "x" * 200, None):
        ref = ArtifactRef(digest=digest, size_bytes=1, media_type="text/plain", name=name)
        assert download_name(ref) == f"{digest[:12]}.txt"


def test_refs_tracked_in_postgresql_download_too(tmp_path: Path, server: Any) -> None:
    import uuid

    from tests.integrations.test_fastapi_ui_postgres import drop_prefix
    from tests.integrations.test_postgres import DSN
    from turnout.integrations.postgres_tracking import PostgresTracker

    prefix = f"blobs_{uuid.uuid4().hex[:12]}"
    tracker = PostgresTracker(DSN, project=PROJECT, table_prefix=prefix)
    try:
        _root, blobs, _digests = write(tmp_path, tracker)
        assert tracker.flush(30)
    finally:
        tracker.close()
    try:
        with TestClient(create_ui_app(DSN, table_prefix=prefix, artifacts=blobs)) as client:
            hrefs = links(client.get(STEP).text)
            assert len(hrefs) == 2
            assert client.get(hrefs[1]).content == CHART
    finally:
        drop_prefix(server, prefix)


def test_turnout_ui_passes_artifacts_and_checks_serve_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--artifacts DIR`` reaches the web UI (its step offers downloads); a bad
    ``--serve-url`` stops the command with a clear message, with or without the deprecated
    ``--web``."""
    import subprocess
    import sys
    import time
    import urllib.request

    from tests.integrations.fastapi_ui import free_port
    from turnout.cli import main

    root, blobs, _digests = write(tmp_path)
    port = free_port()
    log = tmp_path / "ui.log"
    command = [
        sys.executable, "-m", "turnout.cli", "ui", "--no-demo", "--port", str(port),
        "--dir", str(root), "--artifacts", str(blobs), "--serve-url", "http://127.0.0.1:9",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{STEP}/artifacts/1") as got:
                    body = got.read()
                break
            except OSError:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
        assert body == CHART
    finally:
        process.terminate()
        process.wait(timeout=15)
    base = ["ui", "--no-demo", "--dir", str(root)]
    assert main([*base, "--serve-url", "ftp://x"]) == 2
    assert "is not the base URL of a turnout serve server" in capsys.readouterr().err
    assert main([*base, "--web", "--serve-url", "ftp://x"]) == 2
    err = capsys.readouterr().err
    assert "--web is deprecated and does nothing" in err
    assert "is not the base URL of a turnout serve server" in err
