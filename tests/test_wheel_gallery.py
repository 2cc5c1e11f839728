"""The gallery works from an installed wheel: the wheel carries ``examples/`` as
``turnout._examples``; with no extras installed ``turnout demo`` lists every example as not
installed (naming the install), the demo project still starts and lists them as skipped; with
an extra's library importable, ``turnout demo NAME`` runs the example from the wheel.

The wheel is built from this checkout (hatchling, no build isolation: no network) and unpacked
into a fresh virtual environment without pip; nothing is downloaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from turnout import _gallery

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("hatchling", reason="building the wheel needs hatchling (the dev extra)")
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(out), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (built,) = out.glob("turnout-*.whl")
    return built


@pytest.fixture(scope="module")
def bare(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment holding the unpacked wheel and nothing else; its python."""
    home = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=False).create(home)
    python = home / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(purelib)
    return python


def _run(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OPENAI_API_KEY")}
    return subprocess.run(
        [str(python), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip


def test_the_wheel_carries_every_gallery_example(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "turnout/_examples/__init__.py" in names
    for example in _gallery.EXAMPLES:
        assert f"turnout/_examples/{example.directory}/application.py" in names
    assert not any("__pycache__" in name for name in names)


def test_without_extras_the_listing_and_the_demo_say_what_to_install(
    bare: Path, tmp_path: Path
) -> None:
    listing = _run(bare, "-m", "turnout.cli", "demo", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert "turnout/_examples" in listing.stdout  # the wheel's copy, not a checkout's
    for example in _gallery.EXAMPLES:
        assert f"no: {example.install}" in listing.stdout
    refused = _run(bare, "-m", "turnout.cli", "demo", "chatbot", "--dir", "t", cwd=tmp_path)
    assert refused.returncode == 1
    assert 'pip install "turnout[openai]"' in refused.stderr
    code = (
        "import json, sys\nfrom turnout.tracking import demo\nfrom turnout.core.tracking import "
        "LocalTracker\ndemo.generate(sys.argv[1], gallery=True)\n"
        "state = LocalTracker('demo', storage_dir=sys.argv[1]).load(None, 'gallery').state\n"
        "print(json.dumps(state['examples']))"
    )
    made = _run(bare, "-c", code, str(tmp_path / "home"), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    rows = json.loads(made.stdout)
    assert [row["status"] for row in rows] == ["skipped"] * len(_gallery.EXAMPLES)


def test_with_the_extra_importable_demo_runs_the_example_from_the_wheel(
    bare: Path, tmp_path: Path
) -> None:
    pytest.importorskip("openai")
    # The libraries of this environment, behind the wheel's own turnout on sys.path.
    site = bare.parent.parent / "lib"
    (pth,) = site.glob("python*/site-packages")
    (pth / "zz_libraries.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    try:
        ran = _run(
            bare, "-m", "turnout.cli", "demo", "adventure_game", "--dir", "t", "--app-id", "a",
            cwd=tmp_path,
        )  # fmt: skip
        where = _run(bare, "-c", "import turnout; print(turnout.__file__)", cwd=tmp_path)
    finally:
        (pth / "zz_libraries.pth").unlink()
    assert ran.returncode == 0, ran.stderr
    assert str(pth) in where.stdout  # the wheel's turnout ran, not this checkout's
    assert "you have won" in ran.stdout
    assert "/projects/gallery/apps/a" in ran.stdout
    assert (tmp_path / "t" / "gallery" / "a" / "log.jsonl").is_file()
