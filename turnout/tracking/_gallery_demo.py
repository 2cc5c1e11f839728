"""The gallery's part of the demo project: one run of every gallery example whose extra is
installed, then the app ``gallery`` listing what became of each (see ``turnout.tracking.demo``).

``python -m turnout.tracking._gallery_demo DIR [--project P]`` is what ``start_gallery`` runs
in the background.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from turnout import ApplicationBuilder, State, action
from turnout.core.tracking import LocalTracker

__all__ = ["GALLERY_APP", "run_gallery", "start_gallery"]

GALLERY_APP = "gallery"
_DEMO_PROJECT = "demo"


@action(reads=[], writes=["examples"])
def list_examples(state: State, examples: list[dict[str, Any]]) -> State:
    """What became of each gallery example in this demo project."""
    return state.update(examples=examples)


def run_gallery(
    tracker: Any, *, progress: Callable[[str, str], None] | None = None
) -> list[dict[str, Any]]:
    """Run every gallery example whose extra is installed into ``tracker`` (offline, as
    ``gallery-<name>``), then the ``gallery`` app listing them; one row per example:
    ``name``, ``title``, ``status`` (``ran``, ``skipped`` or ``failed``), ``app_id`` or
    ``why``. ``progress(name, what)`` is told after each (``"ran"``, ``"skipped: needs ..."``)."""
    from turnout import _gallery
    from turnout.core.errors import GalleryError

    rows: list[dict[str, Any]] = []
    for example in _gallery.EXAMPLES:
        row: dict[str, Any] = {"name": example.name, "title": example.title}
        started = time.perf_counter()
        if not example.installed():
            row.update(status="skipped", why=f"needs {example.install}")
        else:
            app_id = f"gallery-{example.name}"
            try:
                module = _gallery.load(example)
                with contextlib.redirect_stdout(io.StringIO()):
                    example.run(module, _gallery.GalleryRun(tracker=tracker, app_id=app_id))
            except GalleryError as exc:
                row.update(status="skipped", why=str(exc))
            except Exception as exc:  # one broken example must not cost the user the others
                row.update(status="failed", why=f"{type(exc).__name__}: {exc}")
            else:
                row.update(status="ran", app_id=app_id)
        row["seconds"] = round(time.perf_counter() - started, 2)
        rows.append(row)
        if progress is not None:
            progress(example.name, f"{row['status']}: {row['why']}" if "why" in row else "ran")
    (
        ApplicationBuilder()
        .with_actions(list_examples)
        .with_transitions()
        .with_entrypoint("list_examples")
        .with_tracker(tracker)
        .with_identifiers(app_id=GALLERY_APP)
        .build()
        .step(inputs={"examples": rows})
    )
    return rows


def start_gallery(storage_dir: str | Path, project: str = _DEMO_PROJECT) -> subprocess.Popen[bytes]:
    """``run_gallery`` into ``project`` under ``storage_dir`` in a background process, which
    says on this process's stdout what became of each example. It runs in a session of its
    own, so stopping the UI with Ctrl-C does not leave the demo project half written."""
    package_root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "turnout.tracking._gallery_demo",
            str(storage_dir),
            "--project",
            project,
        ],
        env={**os.environ, "PYTHONPATH": path},
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    # Reaped when it ends (no zombie), whoever holds the handle.
    threading.Thread(target=process.wait, name="turnout-demo-gallery", daemon=True).start()
    return process


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the gallery examples into a demo project.")
    parser.add_argument("storage_dir", type=Path)
    parser.add_argument("--project", default=_DEMO_PROJECT)
    args = parser.parse_args(argv)

    def progress(name: str, what: str) -> None:
        print(f"turnout: demo project: gallery example {name}: {what}", flush=True)

    tracker = LocalTracker(args.project, storage_dir=args.storage_dir, snapshot_every=5)
    try:
        run_gallery(tracker, progress=progress)
    finally:
        tracker.close()
    return 0


if __name__ == "__main__":
    sys.exit(_main())
