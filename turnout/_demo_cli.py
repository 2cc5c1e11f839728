"""``turnout demo``: list the examples gallery, or run one example, tracked.

``turnout demo`` lists the gallery (``turnout._gallery.EXAMPLES``): each example's name, what it
shows, the extra it needs and whether that is installed. ``turnout demo NAME [--project P]
[--app-id A] [--dir DIR | --store postgresql://... [--table-prefix X]] [--offline]`` runs one
into the tracking store (default: project ``gallery`` in ``$TURNOUT_HOME`` or ``~/.turnout``),
showing what it says as it goes, then prints the ``turnout ui`` command and the URL of the
application's page. Offline by default, on the examples' fakes; with ``OPENAI_API_KEY`` set the
examples that support it use the real provider (``--offline``: never).
"""

from __future__ import annotations

import argparse
import sys
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

from turnout import _gallery
from turnout.core.errors import GalleryError, MissingExtraError, PersistenceError
from turnout.core.tracking import tracking_home

__all__ = ["DEFAULT_PROJECT", "add_demo_parser", "demo_command"]

DEFAULT_PROJECT = "gallery"
UI_URL = "http://127.0.0.1:7241"


def add_demo_parser(commands: Any) -> None:
    """Add the ``demo`` subcommand to ``turnout``'s subparsers."""
    demo = commands.add_parser(
        "demo",
        help="list the examples gallery, or run one example, tracked for turnout ui",
        description="Without NAME: list the gallery's examples, the extra each needs and "
        "whether it is installed. With NAME: run that example once, tracked, and print the "
        "link to its page in turnout ui. Offline unless OPENAI_API_KEY is set (then the "
        "examples that support it use the real provider).",
    )
    demo.add_argument("name", nargs="?", metavar="NAME", help="the example to run")
    demo.add_argument(
        "--project", default=DEFAULT_PROJECT, help=f"tracking project (default {DEFAULT_PROJECT})"
    )
    demo.add_argument("--app-id", default=None, help="the run's app id (default: NAME-<random>)")
    where = demo.add_mutually_exclusive_group()
    where.add_argument(
        "--dir", type=Path, default=None, help="tracking directory (default $TURNOUT_HOME)"
    )
    where.add_argument(
        "--store", default=None, metavar="postgresql://...", help="a PostgreSQL tracking store"
    )
    demo.add_argument(
        "--table-prefix", default="turnout_tracking", help="its tables' prefix (turnout_tracking)"
    )
    demo.add_argument(
        "--offline", action="store_true", help="the offline fakes even when OPENAI_API_KEY is set"
    )


def _listing() -> str:
    try:
        directory, _package = _gallery.examples_location()
        source = f"examples in {directory}"
    except GalleryError as exc:
        source = f"examples not found: {exc}"
    rows = [("NAME", "EXTRA", "INSTALLED", "WHAT IT SHOWS")]
    for example in _gallery.EXAMPLES:
        installed = "yes" if example.installed() else f"no: {example.install}"
        rows.append((example.name, example.extra, installed, example.summary))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"turnout demo: the examples gallery ({source})", ""]
    lines += [
        "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        + "  " + row[3]
        for row in rows
    ]  # fmt: skip
    lines += [
        "",
        "Run one, tracked: turnout demo NAME [--project P] [--dir DIR | --store postgresql://...]",
        "(offline fakes; with OPENAI_API_KEY set, the real provider where the example uses one)",
    ]
    return "\n".join(lines)


def _say(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def app_url(project: str, app_id: str, base: str = UI_URL) -> str:
    """The page of ``app_id`` in the web UI served at ``base``."""
    quote = urllib.parse.quote
    return f"{base}/projects/{quote(project, safe='')}/apps/{quote(app_id, safe='')}"


def _tracker(args: argparse.Namespace) -> Any:
    if args.store is not None:
        from turnout.integrations.postgres_tracking import PostgresTracker

        return PostgresTracker(args.store, project=args.project, table_prefix=args.table_prefix)
    from turnout.core.tracking import LocalTracker

    return LocalTracker(args.project, storage_dir=tracking_home(args.dir))


def demo_command(args: argparse.Namespace) -> int:
    """Run ``turnout demo``; the exit status (2: unknown name, 1: could not run it)."""
    if args.name is None:
        print(_listing())
        return 0
    try:
        example = _gallery.find(args.name)
    except GalleryError as exc:
        print(f"turnout demo: {exc}", file=sys.stderr)
        return 2
    app_id = args.app_id or f"{example.name}-{uuid.uuid4().hex[:8]}"
    tracker = None
    try:
        module = _gallery.load(example)
        tracker = _tracker(args)
        live = not args.offline
        print(f"turnout demo: {example.title}: {example.summary}")
        example.run(
            module, _gallery.GalleryRun(tracker=tracker, app_id=app_id, live=live, say=_say)
        )
    except (GalleryError, MissingExtraError, PersistenceError) as exc:
        print(f"\nturnout demo: {exc}", file=sys.stderr)
        return 1
    finally:
        if tracker is not None:
            tracker.close()
    if args.store is not None:
        from turnout.cli import _masked

        ui = f"turnout ui --store {_masked(args.store)}"
        if args.table_prefix != "turnout_tracking":
            ui += f" --table-prefix {args.table_prefix}"
    else:
        ui = "turnout ui" if args.dir is None else f"turnout ui --dir {args.dir}"
    print(f"\n\nturnout demo: tracked {example.name} as app {app_id!r} in project {args.project!r}")
    print(f"see it: {ui}\n  then open {app_url(args.project, app_id)}")
    return 0
