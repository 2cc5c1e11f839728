"""``turnout annotations``: a project's annotations out of a tracking store.

- ``turnout annotations cases --project P --out tests/cases.json``: a case file for
  ``turnout.testing.load_cases`` and ``@pytest.mark.file_name`` (see
  ``turnout.core.trackannotexport.annotation_cases``), merged into ``--out`` (a case of the same
  name is replaced);
- ``turnout annotations export --project P --format csv|jsonl [--out F]``.

Both filter by ``--tag``, ``--mark``, ``--action`` and ``--app-id``, and read a tracking
directory (``--dir``, default ``$TURNOUT_HOME``) or a PostgreSQL store (``--store``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from turnout.core.trackannotations import AnnotationError, AnnotationQuery, AnnotationStore
from turnout.core.trackannotexport import annotation_cases, to_csv, to_jsonl
from turnout.core.tracking import tracking_home
from turnout.core.tracksource import TrackingSource

__all__ = ["add_annotations_parser", "annotations_command"]

_PG = ("postgresql://", "postgres://")


def add_annotations_parser(commands: Any) -> None:
    """Add the ``annotations`` subcommand to ``turnout``'s subparsers."""
    parser = commands.add_parser(
        "annotations",
        help="export a project's step annotations, or turn them into test cases",
        description="Read the annotations made in the web UI (turnout ui).",
    )
    actions = parser.add_subparsers(dest="annotations_command", metavar="ACTION", required=True)
    cases = actions.add_parser(
        "cases",
        help="write annotated steps (marked good, or with an expected result) as test cases",
        description="Each annotation marked good or given an expected result becomes a case: "
        "the step's input state and inputs, and the expected result (or, for a good step, the "
        "recorded result and state).",
    )
    cases.add_argument(
        "--out",
        type=Path,
        default=Path("tests/turnout_cases.json"),
        help="JSON file of cases to merge into (default tests/turnout_cases.json)",
    )
    export = actions.add_parser("export", help="print or write the annotations as CSV or JSONL")
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.add_argument("--out", type=Path, default=None, help="file to write (default stdout)")
    for sub in (cases, export):
        sub.add_argument("--project", required=True, help="tracking project")
        where = sub.add_mutually_exclusive_group()
        where.add_argument("--dir", default=None, help="tracking directory ($TURNOUT_HOME)")
        where.add_argument("--store", default=None, metavar="postgresql://...")
        sub.add_argument("--table-prefix", default="turnout_tracking")
        sub.add_argument("--tag", default=None, help="only annotations with this tag")
        sub.add_argument("--mark", choices=("good", "bad", "none"), default=None)
        sub.add_argument("--action", default=None, help="only steps of this action")
        sub.add_argument("--app-id", default=None, help="only this application's steps")


@contextlib.contextmanager
def _source(args: argparse.Namespace) -> Iterator[tuple[TrackingSource, AnnotationStore]]:
    if args.store is not None:
        if not args.store.startswith(_PG):
            raise SystemExit(
                f"turnout annotations: --store takes a postgresql:// connection string, not "
                f"{args.store[:40]!r}"
            )
        from turnout.integrations.postgres_tracking import PostgresSource

        source = PostgresSource(args.store, table_prefix=args.table_prefix, listen=False)
        try:
            yield source, source.annotations
        finally:
            source.close()
        return
    from turnout.core.trackfiles import TrackingIndex

    index = TrackingIndex(tracking_home(args.dir))
    yield index, index.annotations


def annotations_command(args: argparse.Namespace) -> int:
    """Run ``turnout annotations cases|export``; the exit status."""
    try:
        query = AnnotationQuery(tag=args.tag, mark=args.mark, action=args.action,
                                app_id=args.app_id)  # fmt: skip
        with _source(args) as (source, store):
            found = store.list(args.project, query)
            if args.annotations_command == "export":
                text = to_csv(found) if args.format == "csv" else to_jsonl(found)
                if args.out is None:
                    sys.stdout.write(text)
                else:
                    args.out.write_text(text, encoding="utf-8", newline="")
                    print(f"wrote {len(found)} annotation(s) to {args.out}", file=sys.stderr)
                return 0
            made, skipped = annotation_cases(found, lambda app: source.app(args.project, app))
    except AnnotationError as error:
        raise SystemExit(f"turnout annotations: {error}") from error
    for reason in skipped:
        print(f"skipped {reason}", file=sys.stderr)
    out: Path = args.out
    try:
        kept = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else []
    except ValueError as error:
        raise SystemExit(f"turnout annotations: {out} is not a JSON case file: {error}") from None
    if not isinstance(kept, list):
        raise SystemExit(f"turnout annotations: {out} holds no list of cases; pick another --out")
    names = {case["name"] for case in made}
    merged = [c for c in kept if not (isinstance(c, dict) and c.get("name") in names)] + made
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(merged, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(made)} case(s) from {len(found)} annotation(s) to {out}")
    return 0
