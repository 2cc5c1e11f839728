"""The ``turnout`` command.

``turnout ui [--port 7241] [--host 127.0.0.1] [--dir DIR | --store postgresql://... [--table-prefix
P]] [--no-demo] [--allow-host NAME ...] [--artifacts DIR] [--serve-url URL]`` serves the tracking
UI, the web application of ``turnout.integrations.fastapi.ui`` (``pip install "turnout[ui]"``),
over ``DIR`` (default ``$TURNOUT_HOME`` or ``~/.turnout``), or over the PostgreSQL tables a
``PostgresTracker`` writes (``--store``; the connection string reaches the server through its
environment, not its command line, so other users do not see a password); ``--artifacts`` (or
``$TURNOUT_UI_ARTIFACTS``) names a ``LocalArtifactStore`` directory the UI downloads the blobs of
artifact refs from; ``--serve-url`` names a ``turnout serve`` server a waiting application's
answer form can send to. On a directory with no tracked application it first runs the demo
applications into a ``demo`` project (``--no-demo`` skips that). The UI binds 127.0.0.1 unless
``--host`` says otherwise and answers only requests whose ``Host`` header names this machine or
the bound address; ``--allow-host`` (or ``$TURNOUT_UI_ALLOW_HOSTS``, comma-separated) adds the
names a reverse proxy forwards. It has no authentication, so expose it to a network only behind
something that has. ``--web`` is accepted and ignored (deprecated: the web UI is the only one).

``turnout import-burr [--from DIR] [--dir DIR] [--project P ...]`` converts Burr's tracking logs
(default ``~/.burr``) into turnout's tracking directory, so old runs show in ``turnout ui`` (see
``turnout.core.burr_tracking``); it is idempotent and prints what it converted and skipped.

``turnout migrate MODULE:ATTR (--sqlite PATH | --postgres CONNINFO) [--apply]`` rewrites stored
states to the current state schema version (see ``turnout._migrate_cli``).

``turnout prune (--older-than 30d | --keep-last N) [--apply]`` and ``turnout tracking copy FROM
TO --project P`` remove old applications and copy projects between tracking directories and
PostgreSQL (see ``turnout._tracking_cli``).

``turnout export-otel --project P [--app-id A ...] [--endpoint URL] [--header K=V ...]`` replays
tracked applications to an OpenTelemetry OTLP/HTTP endpoint (see
``turnout.integrations.opentelemetry.export_tracked``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from turnout._annotations_cli import add_annotations_parser, annotations_command
from turnout._migrate_cli import add_migrate_parser, migrate_command
from turnout._tracking_cli import add_tracking_parsers, prune_command, tracking_command
from turnout.core.errors import MissingExtraError, PersistenceError
from turnout.core.tracking import tracking_home

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="turnout", description="turnout: state-machine applications, tracked."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    ui = commands.add_parser(
        "ui",
        help="serve the tracking UI, a web app on http://127.0.0.1:7241 (needs: pip install "
        '"turnout[ui]")',
        description="Serve the tracking UI: a web application (FastAPI, server-rendered pages "
        "with htmx, a JSON API under /api/v1) over a tracking directory or a PostgreSQL "
        "tracking store. Its pages: projects, applications, an application's steps, graph and "
        "timeline, a step's state, diff, inputs, result, errors and spans, search, "
        "annotations, waiting applications, artifacts, and live mode. On an empty directory "
        "it first runs the demo applications. It never changes a trace (annotations are kept "
        "beside them), binds 127.0.0.1 and has no login. Needs: pip install "
        '"turnout[ui]" (the "start" extra installs it), and "turnout[ui,postgres]" for '
        "--store.",
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
        "--store",
        default=None,
        metavar="DSN",
        help="read a PostgreSQL tracking store (postgresql://user@host:5432/db, the tables a "
        "PostgresTracker writes) instead of a directory",
    )
    ui.add_argument(
        "--table-prefix",
        default="turnout_tracking",
        help="with --store: the tracker's table_prefix (default turnout_tracking)",
    )
    ui.add_argument(
        "--allow-host",
        action="append",
        default=[],
        dest="allow_hosts",
        metavar="NAME",
        help="also answer requests for this Host name, e.g. the name a reverse proxy serves "
        "the UI under (repeatable; '*' allows any; also $TURNOUT_UI_ALLOW_HOSTS, "
        "comma-separated). By default only 127.0.0.1, localhost, ::1 and the bound address",
    )
    ui.add_argument(
        "--artifacts",
        type=Path,
        default=None,
        metavar="DIR",
        help="a LocalArtifactStore directory: the artifact refs a step holds get a download "
        "link reading their blob from it (also $TURNOUT_UI_ARTIFACTS)",
    )
    ui.add_argument(
        "--serve-url",
        default=None,
        metavar="URL",
        help="the base URL of a `turnout serve` server of the same applications; a waiting "
        "application's answer form then posts the answer to its resume route",
    )
    ui.add_argument(
        "--no-demo",
        action="store_true",
        help="do not generate the demo project when the directory is empty",
    )
    ui.add_argument(
        "--web",
        action="store_true",
        help="deprecated, does nothing: the web UI is the only tracking UI (this option "
        "goes in the next release)",
    )
    case = commands.add_parser(
        "test-case",
        help="write a tracked step to a JSON file of test cases (see turnout.testing)",
        description="Turn a tracked step into a test case: the state it started from, its "
        "inputs, and the result and state it produced.",
    )
    case.add_argument("--project", required=True, help="tracking project")
    case.add_argument("--app-id", required=True, help="tracked application id")
    case.add_argument("--sequence-id", type=int, required=True, help="the step's sequence id")
    case.add_argument("--partition-key", default=None, help="the application's partition key")
    case.add_argument(
        "--dir", type=Path, default=None, help="tracking directory (default $TURNOUT_HOME)"
    )
    case.add_argument(
        "--out",
        type=Path,
        default=Path("tests/turnout_cases.json"),
        help="JSON file of cases to append to (default tests/turnout_cases.json)",
    )
    case.add_argument(
        "--register-module",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE and allow loading its enums, dataclasses and pydantic models from "
        "the log (Serde.register_module); repeatable. Nothing else in a log is ever loaded.",
    )
    burr = commands.add_parser(
        "import-burr",
        help="convert Burr's tracking logs (~/.burr) so they show in turnout ui",
        description="Convert Burr's tracking logs into turnout's tracking directory. Apps "
        "already there are skipped, so running it again is safe; Burr's files are only read.",
    )
    burr.add_argument(
        "--from",
        dest="burr_dir",
        type=Path,
        default=Path("~/.burr"),
        help="Burr's storage directory (default ~/.burr)",
    )
    burr.add_argument(
        "--dir", type=Path, default=None, help="tracking directory (default $TURNOUT_HOME)"
    )
    burr.add_argument(
        "--project",
        action="append",
        dest="projects",
        default=None,
        help="only this project (repeatable; default: every project)",
    )
    add_migrate_parser(commands)
    add_tracking_parsers(commands)
    add_annotations_parser(commands)
    _add_serve_parser(commands)
    export = commands.add_parser(
        "export-otel",
        help="replay tracked applications to an OTLP endpoint (needs: pip install "
        '"turnout[opentelemetry]")',
        description="Send tracked applications to an OpenTelemetry (OTLP/HTTP) endpoint as "
        "traces, with their original times, tree and attributes.",
    )
    export.add_argument("--project", required=True, help="tracking project")
    export.add_argument(
        "--app-id",
        action="append",
        dest="app_ids",
        default=None,
        help="application to export (repeat for several; default: every app of the project)",
    )
    export.add_argument(
        "--dir", type=Path, default=None, help="tracking directory (default $TURNOUT_HOME)"
    )
    export.add_argument(
        "--endpoint",
        default=None,
        help="OTLP/HTTP traces URL (default $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else "
        "http://localhost:4318/v1/traces)",
    )
    export.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="HTTP header, e.g. authentication (repeatable; default $OTEL_EXPORTER_OTLP_HEADERS)",
    )
    export.add_argument(
        "--compression", choices=["none", "gzip", "deflate"], default=None, help="body encoding"
    )
    export.add_argument(
        "--store",
        default=None,
        metavar="postgresql://...",
        help="read a PostgreSQL tracking store (PostgresTracker) instead of --dir",
    )
    export.add_argument(
        "--table-prefix", default="turnout_tracking", help="its tables' prefix (turnout_tracking)"
    )
    export.add_argument("--service-name", default="turnout", help="service.name (turnout)")
    export.add_argument(
        "--timeout", type=float, default=10.0, help="seconds per request (default 10)"
    )
    return parser


def export_otel_command(args: argparse.Namespace) -> int:
    """``turnout export-otel``: replay tracked applications to an OTLP endpoint."""
    headers = {}
    for header in args.header:
        key, sep, value = header.partition("=")
        if not sep or not key.strip():
            print(
                f"turnout export-otel: --header {header!r} is not KEY=VALUE; "
                f"write e.g. --header 'Authorization=Bearer <token>'",
                file=sys.stderr,
            )
            return 2
        headers[key.strip()] = value.strip()
    store = None
    try:
        from turnout.integrations.opentelemetry import export_tracked

        if args.store is not None:
            from turnout.integrations.postgres_tracking import PostgresTracker

            store = PostgresTracker(
                args.store, project=args.project, table_prefix=args.table_prefix
            )
        summary = export_tracked(
            args.project, args.app_ids, storage_dir=args.dir, endpoint=args.endpoint,
            headers=headers or None, compression=args.compression, timeout=args.timeout,
            service_name=args.service_name, store=store,
        )  # fmt: skip
    except (MissingExtraError, FileNotFoundError, ConnectionError, PersistenceError) as exc:
        print(f"turnout export-otel: {exc}", file=sys.stderr)
        return 1
    finally:
        if store is not None:
            store.close()
    print(
        f"turnout export-otel: exported {summary.spans} spans of {len(summary.apps)} "
        f"application(s) to {summary.endpoint}"
    )
    return 0


def test_case_command(
    storage_dir: Path, project: str, app_id: str, sequence_id: int, partition_key: str | None,
    out: Path, register_modules: Sequence[str],
) -> dict[str, Any]:  # fmt: skip
    """Append the tracked step to ``out``; return the case written. ``register_modules`` are
    imported and registered with the tracker's serde, so their types load from the log."""
    from turnout.core.errors import PersistenceError
    from turnout.core.tracking import LocalTracker
    from turnout.core.tracklog import AppRecord, BeginRecord, EndRecord, read_records

    tracker = LocalTracker(project, storage_dir)
    for name in register_modules:
        try:
            tracker.serde.register_module(importlib.import_module(name))
        except ImportError as exc:
            raise SystemExit(f"turnout test-case: --register-module {name!r}: {exc}") from exc
    try:
        after = tracker.load(partition_key, app_id, sequence_id)
        before = tracker.load(partition_key, app_id, sequence_id - 1) if sequence_id > 0 else None
    except PersistenceError as exc:
        hint = ""
        if "has not registered" in str(exc):
            hint = " (from this command: --register-module <the module>)"
        raise SystemExit(f"turnout test-case: {exc}{hint}") from exc
    if after is None:
        raise SystemExit(
            f"turnout test-case: no finished step {sequence_id} of app {app_id!r} in project "
            f"{project!r} under {storage_dir}"
        )
    begin: BeginRecord | None = None
    end: EndRecord | None = None
    first: AppRecord | None = None
    for record in read_records(tracker.log_path(app_id)).records:
        if isinstance(record, AppRecord) and first is None:
            first = record
        elif isinstance(record, BeginRecord) and record.seq == sequence_id:
            begin = record
        elif isinstance(record, EndRecord) and record.seq == sequence_id:
            end = record
    serde = tracker.serde
    start_state = before.state.get_all() if before else serde.decode(first.state if first else {})
    case = {
        "name": f"{app_id}-{sequence_id}-{after.position}",
        "action": after.position,
        "input_state": serde.encode(start_state),
        "inputs": begin.inputs if begin else {},
        "expected_state": serde.encode(after.state.get_all()),
        "expected_result": end.result if end else None,
    }
    cases: list[dict[str, Any]] = json.loads(out.read_text()) if out.is_file() else []
    cases = [c for c in cases if c.get("name") != case["name"]] + [case]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(cases, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return case


def _masked(dsn: str) -> str:
    """``dsn`` with its password (if any) replaced by ``***``."""
    parts = urllib.parse.urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _check_store(dsn: str, table_prefix: str) -> str | None:
    """Why ``--store``/``--table-prefix`` cannot be read (``None``: they can)."""
    if not dsn.startswith(("postgresql://", "postgres://")):
        return (
            f"--store {_masked(dsn)!r} is not a PostgreSQL connection string: pass "
            "postgresql://user@host:5432/db (a tracking directory goes in --dir)."
        )
    try:
        from turnout.core.sql import check_name
        from turnout.integrations.postgres_tracking import PostgresSource
    except MissingExtraError as exc:
        return str(exc)
    try:
        check_name(table_prefix)
    except ValueError as exc:
        return f"--table-prefix {table_prefix!r}: {exc}"
    source = PostgresSource(dsn, table_prefix=table_prefix, listen=False)
    try:
        source.projects()
    except PersistenceError as exc:
        return f"{exc} (--store {_masked(dsn)})"
    finally:
        source.close()
    return None


_TEST_TEMPLATE = """\
import pytest
from turnout.testing import assert_case, load_cases

from your_module import {action}  # the action the case was recorded from


@pytest.mark.parametrize(
    "case", load_cases("{path}", action="{action}"), ids=lambda case: case["name"]
)
def test_{action}(case):
    assert_case({action}, case)"""


def import_burr_command(burr_dir: Path, target: Path | None, projects: list[str] | None) -> int:
    """``turnout import-burr``: convert with a progress bar on stderr, then print the summary."""
    from turnout.core.burr_tracking import import_burr_tracking

    if not burr_dir.expanduser().is_dir():
        print(
            f"turnout import-burr: {burr_dir} is not a directory; give Burr's storage "
            f"directory with --from DIR (LocalTrackingClient's storage_dir, default ~/.burr).",
            file=sys.stderr,
        )
        return 2

    def progress(done: int, total: int, name: str) -> None:
        filled = 30 * done // total
        bar = "#" * filled + "." * (30 - filled)
        print(f"\r[{bar}] {done}/{total} {name[:60]:<60}", end="", file=sys.stderr, flush=True)

    summary = import_burr_tracking(burr_dir, target, projects=projects, progress=progress)
    print(file=sys.stderr)
    print(f"turnout import-burr into {tracking_home(target)}: {summary}")
    return 0


def _add_serve_parser(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help='serve applications over HTTP (needs: pip install "turnout[serve]")',
        description="Serve the applications a factory describes over HTTP (FastAPI, uvicorn).",
    )
    serve.add_argument("factory", help="module:attribute of the application factory")
    serve.add_argument(
        "--db", required=True, help="sqlite:///path/app.db or postgresql://user@host:5432/db"
    )
    serve.add_argument("--table", default="turnout", help="table prefix (default turnout)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument(
        "--on-busy", choices=["reject", "enqueue", "interrupt"], default="reject",
        help="a request for an app another request drives (default reject: 409)",
    )  # fmt: skip
    serve.add_argument(
        "--forwarded-allow-ips", default=None,
        help="proxies (comma-separated IPs, or *) whose X-Forwarded-* headers are trusted "
        "(default: uvicorn's, 127.0.0.1 or $FORWARDED_ALLOW_IPS)",
    )  # fmt: skip
    serve.add_argument(
        "--no-proxy-headers", dest="proxy_headers", action="store_false",
        help="ignore X-Forwarded-For/-Proto even from trusted proxies",
    )  # fmt: skip


def _serve_command(args: argparse.Namespace) -> int:
    try:
        from turnout.integrations.fastapi.server import run
    except MissingExtraError as exc:
        print(f"turnout serve: {exc}", file=sys.stderr)
        return 1
    run(
        args.factory, db=args.db, table=args.table, host=args.host, port=args.port,
        workers=args.workers, on_busy=args.on_busy, proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips,
    )  # fmt: skip
    return 0


def _ui_command(args: argparse.Namespace, storage_dir: Path) -> int:
    """``turnout ui``: the web UI (``turnout.integrations.fastapi.ui``) in this process."""
    try:
        from turnout.integrations.fastapi.ui.server import run_ui
        from turnout.integrations.fastapi.ui.waiting import check_serve_url
    except MissingExtraError as exc:
        print(f"turnout ui: {exc}", file=sys.stderr)
        return 1
    try:
        check_serve_url(args.serve_url)
    except ValueError as exc:
        print(f"turnout ui: --serve-url: {exc}", file=sys.stderr)
        return 2
    artifacts = args.artifacts or os.environ.get("TURNOUT_UI_ARTIFACTS") or None
    if artifacts is not None and not Path(artifacts).is_dir():
        print(
            f"turnout ui: $TURNOUT_UI_ARTIFACTS {str(artifacts)!r} is not a directory: name the "
            "directory of the LocalArtifactStore the application wrote to.",
            file=sys.stderr,
        )
        return 2
    where = (
        f"tracking directory {storage_dir}"
        if args.store is None
        else f"PostgreSQL {_masked(args.store)}, tables {args.table_prefix}_*"
    )
    # With --store, run_ui reads the store from the environment main() set.
    print(f"turnout ui: http://{args.host}:{args.port}  ({where})")
    sys.stdout.flush()
    run_ui(
        storage_dir, host=args.host, port=args.port, demo=not args.no_demo,
        allow_hosts=args.allow_hosts,
        artifacts=None if artifacts is None else Path(artifacts).resolve(),
        serve_url=args.serve_url,
    )  # fmt: skip
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "test-case":
        case = test_case_command(
            tracking_home(args.dir), args.project, args.app_id, args.sequence_id,
            args.partition_key, args.out, args.register_module,
        )  # fmt: skip
        print(f"wrote case {case['name']!r} to {args.out}; test it with:\n")
        print(_TEST_TEMPLATE.format(path=args.out, action=case["action"]))
        return 0
    if args.command == "export-otel":
        return export_otel_command(args)
    if args.command == "migrate":
        return migrate_command(args)
    if args.command == "prune":
        return prune_command(args)
    if args.command == "tracking":
        return tracking_command(args)
    if args.command == "annotations":
        return annotations_command(args)
    if args.command == "import-burr":
        return import_burr_command(args.burr_dir, args.dir, args.projects)
    if args.command == "serve":
        return _serve_command(args)
    if args.command != "ui":
        parser.print_help()
        return 0 if args.command is None else 2
    if args.store is not None:
        problem = _check_store(args.store, args.table_prefix)
        if problem:
            print(f"turnout ui: {problem}", file=sys.stderr)
            return 2
        # Read by run_ui from the environment: a password stays off the command line (and out
        # of `ps`).
        os.environ["TURNOUT_UI_STORE"] = args.store
        os.environ["TURNOUT_UI_TABLE_PREFIX"] = args.table_prefix
    storage_dir = tracking_home(args.dir).resolve()
    artifacts = None if args.artifacts is None else args.artifacts.resolve()
    if artifacts is not None and not artifacts.is_dir():
        print(
            f"turnout ui: --artifacts {str(args.artifacts)!r} is not a directory: pass the "
            "directory of the LocalArtifactStore the application wrote to.",
            file=sys.stderr,
        )
        return 2
    if args.web:
        print(
            "turnout ui: --web is deprecated and does nothing (the web UI is the only tracking "
            "UI): drop it",
            file=sys.stderr,
        )
    return _ui_command(args, storage_dir)


if __name__ == "__main__":
    sys.exit(main())
