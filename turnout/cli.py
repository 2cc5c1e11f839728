"""The ``turnout`` command.

``turnout ui [--port 7241] [--host 127.0.0.1] [--dir DIR] [--no-demo]`` opens the tracking UI
over ``DIR`` (default ``$TURNOUT_HOME`` or ``~/.turnout``). On a directory with no tracked
application it first runs the demo applications into a ``demo`` project (``--no-demo`` skips
that). The UI binds 127.0.0.1 unless ``--host`` says otherwise; it has no authentication, so
expose it to a network only behind something that has.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from turnout.core.errors import MissingExtraError
from turnout.core.tracking import tracking_home

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="turnout", description="turnout: state-machine applications, tracked."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    ui = commands.add_parser(
        "ui",
        help='open the tracking UI in the browser (needs: pip install "turnout[start]")',
        description="Open the tracking UI (Streamlit) over a tracking directory.",
    )
    ui.add_argument("--port", type=int, default=7241, help="port to serve on (default 7241)")
    ui.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1: this machine only; the UI has no login)",
    )
    ui.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="tracking directory (default $TURNOUT_HOME or ~/.turnout)",
    )
    ui.add_argument(
        "--no-demo",
        action="store_true",
        help="do not generate the demo project when the directory is empty",
    )
    return parser


def ui_command(storage_dir: Path, *, port: int, host: str, demo: bool) -> list[str]:
    """Prepare ``storage_dir`` (demo data if empty) and return the Streamlit command to run;
    raises ``MissingExtraError`` without Streamlit."""
    from turnout.integrations.streamlit import demo as demo_module

    storage_dir.mkdir(parents=True, exist_ok=True)
    if demo and demo_module.is_empty(storage_dir):
        print(f"turnout: no tracked applications in {storage_dir}; running the demo apps…")
        demo_module.generate(storage_dir)
    script = Path(demo_module.__file__).with_name("app.py")
    return [
        sys.executable, "-m", "streamlit", "run", str(script),
        "--server.port", str(port),
        "--server.address", host,
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--", "--dir", str(storage_dir),
    ]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command != "ui":
        parser.print_help()
        return 0 if args.command is None else 2
    storage_dir = tracking_home(args.dir).resolve()
    try:
        command = ui_command(storage_dir, port=args.port, host=args.host, demo=not args.no_demo)
    except MissingExtraError as exc:
        print(f"turnout ui: {exc}", file=sys.stderr)
        return 1
    print(f"turnout ui: http://{args.host}:{args.port}  (tracking directory {storage_dir})")
    sys.stdout.flush()
    if os.name == "posix":
        # Become the Streamlit server: one process to stop, no orphan when this one is killed.
        os.execv(command[0], command)
    try:
        return subprocess.run(command, check=False).returncode
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
