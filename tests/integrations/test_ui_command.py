"""``turnout ui``: the README's first command. Its ``--help`` tells the truth (every option, what
the UI is, the extra it needs); on an empty directory it runs the demo applications and serves
the web UI over them; it answers only this machine's Host names plus those ``--allow-host`` and
``$TURNOUT_UI_ALLOW_HOSTS`` add; ``--web`` is still accepted (deprecated, a no-op); a bad
``--artifacts`` stops it with the reason."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")
pytest.importorskip("uvicorn")

from tests.integrations.ui_command import get, turnout_ui
from turnout.cli import main
from turnout.core.trackfiles import TrackingIndex
from turnout.tracking import demo

OPTIONS = (
    "--port",
    "--host",
    "--dir",
    "--store",
    "--table-prefix",
    "--allow-host",
    "--artifacts",
    "--serve-url",
    "--prices",
    "--no-demo",
    "--web",
)


def _help() -> str:
    done = subprocess.run(
        [sys.executable, "-m", "turnout.cli", "ui", "--help"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return " ".join(done.stdout.split())  # argparse wraps lines: compare words


def test_help_names_every_option_what_the_ui_is_and_its_extra() -> None:
    shown = _help()
    listed = set(re.findall(r"(--[a-z][a-z-]+)", shown))
    assert listed == {*OPTIONS, "--help"}
    assert "a web application" in shown
    assert 'pip install "turnout[ui]"' in shown
    assert "--web deprecated, does nothing" in shown
    assert "Streamlit" not in shown
    top = subprocess.run(
        [sys.executable, "-m", "turnout.cli", "--help"],
        capture_output=True, text=True, check=False, timeout=60,
    ).stdout  # fmt: skip
    shown = " ".join(top.split())
    assert "serve the tracking UI, a web app on http://127.0.0.1:7241" in shown
    assert '(needs: pip install "turnout[ui]")' in shown


def test_turnout_ui_runs_the_demo_into_an_empty_directory_and_serves_it(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    with turnout_ui(root, tmp_path / "ui.log") as port:
        status, projects = get(port, "/")
        assert status == 200
        assert re.search(r'<a [^>]*href="/projects/demo"[^>]*>demo</a>', projects)
        status, apps = get(port, "/projects/demo")
        assert status == 200
        for app_id in ("counter", "chatbot", "approval-invalid-decision", "simulation"):
            assert f'href="/projects/demo/apps/{app_id}"' in apps
        status, page = get(port, "/projects/demo/apps/chatbot/steps/1")
        assert status == 200
        assert "Step 1" in page
    log = (tmp_path / "ui.log").read_text()
    assert "running the demo apps" in log
    assert f"http://127.0.0.1:{port}" in log
    listed = {a.app_id: a for a in TrackingIndex(root).apps(demo.DEMO_PROJECT)}
    assert set(listed) == set(demo.DEMO_APPS)
    assert listed["approval-invalid-decision"].status == "failed"
    assert listed["approval-routed-failure"].error_count == 1
    assert [c.app_id for c in listed["parent"].children] == ["parent-fork"]


def test_only_allowed_host_names_are_answered(tmp_path: Path) -> None:
    root = tmp_path / "tracking"
    root.mkdir()
    options = ("--no-demo", "--allow-host", "proxy.example")
    env = {"TURNOUT_UI_ALLOW_HOSTS": "other.example, third.example"}
    with turnout_ui(root, tmp_path / "ui.log", *options, env=env) as port:
        for host in ("localhost", f"127.0.0.1:{port}", "proxy.example", "third.example:443"):
            assert get(port, "/", host)[0] == 200, host
        status, body = get(port, "/", "evil.example")
        assert status == 400
        assert "Invalid host header" in body
    assert list(root.iterdir()) == []  # --no-demo: nothing written


def test_web_is_a_deprecated_no_op(tmp_path: Path) -> None:
    root = tmp_path / "tracking"
    root.mkdir()
    with turnout_ui(root, tmp_path / "ui.log", "--web", "--no-demo") as port:
        assert get(port, "/api/v1/projects") == (200, "[]")
    assert "--web is deprecated and does nothing" in (tmp_path / "ui.log").read_text()


def test_an_artifacts_option_that_is_not_a_directory_stops_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-dir"
    assert main(["ui", "--no-demo", "--dir", str(tmp_path), "--artifacts", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"--artifacts {str(missing)!r} is not a directory" in err
    assert "LocalArtifactStore" in err
    assert not missing.exists()
