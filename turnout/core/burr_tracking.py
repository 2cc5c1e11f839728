"""Converting Burr's tracking logs into turnout's, so old runs show in ``turnout ui``.

Burr's local tracker writes ``<burr_dir>/<project>/<app_id>/`` with ``log.jsonl`` (one JSON
object per line: ``begin_entry``/``end_entry`` with the whole state after each step, spans,
attributes and stream events), ``graph.json`` and ``metadata.json``. ``import_burr_tracking``
writes each such app as a turnout log under ``<turnout_dir>/<project>/`` (the format of
``turnout.core.tracklog``): the app line carries the graph, the partition key and the tag
``imported_from=burr`` and the fork's or spawning parent's pointer; every finished step stores
its whole state as a snapshot, without Burr's ``__SEQUENCE_ID`` and ``__PRIOR_STEP`` keys; Burr's
``children.jsonl`` (forks and spawned children) become turnout's child links.

It is idempotent: an app whose turnout log already exists is skipped (imported before, or
tracked by turnout under the same id), and a log is written to a temporary file and renamed into
place, so an interrupted import never leaves a half log that would be skipped next time. Burr's
files are only read. Lines turnout cannot use (malformed JSON, unknown kinds) are counted.
``read_burr_log`` reads one Burr log as turnout's records without writing anything (the
Streamlit explorer's ``load_state_from_log_file`` uses it).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turnout.core.burr_layout import BURR_CONTROL_KEYS
from turnout.core.errors import TrackingNameError
from turnout.core.tracking import check_id, tracking_home
from turnout.core.tracklog import (
    FORMAT_VERSION,
    AppRecord,
    AttrRecord,
    BeginRecord,
    ChildRecord,
    EndRecord,
    FormatRecord,
    Record,
    SpanEndRecord,
    SpanStartRecord,
    StreamEndRecord,
    StreamFirstRecord,
    StreamStartRecord,
    app_dir_name,
    dump_line,
)

__all__ = ["BurrImportSummary", "import_burr_tracking", "read_burr_log"]

IMPORTED_TAG = {"imported_from": "burr"}
_SPAN_KINDS = frozenset(
    {"begin_span", "end_span", "attribute", "begin_stream", "first_item_stream", "end_stream"}
)


@dataclass(kw_only=True, slots=True)
class BurrImportSummary:
    """What ``import_burr_tracking`` did: apps converted (``project/app_id``) and their steps,
    apps skipped with why, and Burr log lines it could not use."""

    converted: list[str] = field(default_factory=list)
    steps: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    bad_lines: int = 0

    def __str__(self) -> str:
        lines = [
            f"converted {len(self.converted)} app(s) ({self.steps} steps), skipped "
            f"{len(self.skipped)}, unusable Burr log lines: {self.bad_lines}"
        ]
        lines += [f"  skipped {name}: {why}" for name, why in sorted(self.skipped.items())]
        return "\n".join(lines)


def burr_apps(burr_dir: str | Path, projects: list[str] | None = None) -> list[Path]:
    """The app directories (``<project>/<app_id>`` holding a ``log.jsonl``) under ``burr_dir``."""
    root = Path(burr_dir).expanduser()
    found = sorted(log.parent for log in root.glob("*/*/log.jsonl"))
    return [app for app in found if projects is None or app.parent.name in projects]


def import_burr_tracking(
    burr_dir: str | Path = "~/.burr",
    turnout_dir: str | Path | None = None,
    *,
    projects: list[str] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> BurrImportSummary:
    """Convert Burr's tracking logs under ``burr_dir`` into turnout logs under ``turnout_dir``
    (default ``$TURNOUT_HOME`` or ``~/.turnout``); see the module docstring.

    Args:
        burr_dir: Burr's storage directory (``LocalTrackingClient(storage_dir=...)``).
        turnout_dir: where turnout's tracker and ``turnout ui`` read.
        projects: only these projects (default: all).
        progress: called as ``progress(done, total, "project/app_id")`` after each app.
    """
    summary = BurrImportSummary()
    apps = burr_apps(burr_dir, projects)
    home = tracking_home(turnout_dir)
    for done, app_dir in enumerate(apps, 1):
        project, app_id = app_dir.parent.name, app_dir.name
        name = f"{project}/{app_id}"
        try:
            check_id(project, "project")
        except TrackingNameError:
            summary.skipped[name] = f"the project name {project!r} cannot name a turnout project"
        else:
            target = home / project / app_dir_name(app_id) / "log.jsonl"
            if target.exists():
                summary.skipped[name] = f"{target} exists (imported before, or tracked by turnout)"
            else:
                # Burr's files are untrusted input: one this importer cannot read is skipped
                # with the reason, and the apps after it are still converted.
                try:
                    steps, bad = _convert(app_dir, app_id, target)
                except (AttributeError, KeyError, TypeError, ValueError, OverflowError) as exc:
                    summary.skipped[name] = (
                        f"its files cannot be read ({type(exc).__name__}: {exc})"
                    )
                else:
                    summary.converted.append(name)
                    summary.steps += steps
                    summary.bad_lines += bad
        if progress is not None:
            progress(done, len(apps), name)
    return summary


def _convert(app_dir: Path, app_id: str, target: Path) -> tuple[int, int]:
    """Write the turnout log of one Burr app; the steps written and the lines skipped."""
    lines, bad = _burr_lines(app_dir / "log.jsonl")
    metadata = _json_file(app_dir / "metadata.json")
    records: list[Record] = [FormatRecord(version=FORMAT_VERSION)]
    run = os.urandom(4).hex()
    first = next((line for line in lines if line.get("type") == "begin_entry"), None)
    first_seq = first.get("sequence_id") if first is not None else None
    records.append(
        AppRecord(
            app_id=app_id,
            partition_key=metadata.get("partition_key"),
            time=_time(first.get("start_time")) if first is not None else 0.0,
            sequence_id=first_seq - 1 if isinstance(first_seq, int) and first_seq > 0 else None,
            state={},
            graph=_graph(_json_file(app_dir / "graph.json")),
            parent=_pointer(metadata.get("parent_pointer")),
            spawning_parent=_pointer(metadata.get("spawning_parent_pointer")),
            tags=dict(IMPORTED_TAG),
            run=run,
        )
    )
    children = app_dir / "children.jsonl"
    if children.exists():
        child_lines, child_bad = _burr_lines(children)
        lines += child_lines
        bad += child_bad
    converted, unusable = _records(lines, run)
    records += converted
    steps = sum(isinstance(record, EndRecord) for record in converted)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{run}.partial")
    partial.write_bytes(b"".join(dump_line(r.to_json()) for r in records))
    os.replace(partial, target)
    return steps, bad + unusable


def read_burr_log(path: str | Path) -> tuple[list[Record], int]:
    """The lines of one Burr ``log.jsonl`` as turnout's records, in order (steps' begin and end,
    spans, attributes, stream events; each finished step's whole state is its ``EndRecord``'s
    snapshot, without Burr's control keys), and how many lines could not be used (not JSON, an
    unknown kind, a missing or ill-typed field). Values stay as Burr stored them (JSON)."""
    lines, bad = _burr_lines(Path(path))
    records, unusable = _records(lines, os.urandom(4).hex())
    return records, bad + unusable


def _records(lines: list[dict[str, Any]], run: str) -> tuple[list[Record], int]:
    """Burr's ``lines`` as turnout records, and the number of lines turnout's reader would
    refuse (counted, never written)."""
    records: list[Record] = []
    bad = 0
    parents: dict[str, str | None] = {}
    for line in lines:
        try:
            record = _record(line, parents, run)
            if record is not None:
                record = type(record).from_json(record.to_json())
        except (AttributeError, KeyError, TypeError, ValueError, OverflowError):
            record = None
        if record is None:
            bad += 1
        else:
            records.append(record)
    return records, bad


def _record(line: dict[str, Any], parents: dict[str, str | None], run: str) -> Record | None:
    kind = line.get("type")
    if kind == "begin_entry":
        inputs = {k: v for k, v in (line.get("inputs") or {}).items() if not k.startswith("_")}
        return BeginRecord(
            seq=line["sequence_id"],
            action=line["action"],
            time=_time(line["start_time"]),
            inputs=inputs,
        )
    if kind == "end_entry":
        state = {k: v for k, v in line["state"].items() if k not in BURR_CONTROL_KEYS}
        error = line.get("exception")
        return EndRecord(
            seq=line["sequence_id"],
            action=line["action"],
            time=_time(line["end_time"]),
            status="failed" if error else "completed",
            result=line.get("result"),
            error=str(error) if error else None,
            snapshot=state,
            run=run,
        )
    if kind == "child_application_data":
        child = line["child"]
        return ChildRecord(
            kind="spawn" if line.get("event_type") == "spawn_start" else "fork",
            child_app_id=child["app_id"],
            child_partition_key=child.get("partition_key"),
            seq=line.get("sequence_id"),
            time=_time(line.get("event_time")),
        )
    if kind not in _SPAN_KINDS:
        return None
    seq: int = line["action_sequence_id"]
    if kind == "begin_span":
        parents[line["span_id"]] = line.get("parent_span_id")
        return SpanStartRecord(
            seq=seq,
            span=line["span_id"],
            parent=line.get("parent_span_id"),
            name=line["span_name"],
            time=_time(line["start_time"]),
            dependencies=tuple(line.get("span_dependencies") or ()),
        )
    if kind == "end_span":
        span = line["span_id"]
        return SpanEndRecord(
            seq=seq, span=span, parent=parents.get(span), time=_time(line["end_time"])
        )
    if kind == "attribute":
        return AttrRecord(
            seq=seq,
            span=line.get("span_id"),
            key=line["key"],
            value=line.get("value"),
            time=_time(line.get("time_logged")),
        )
    if kind == "begin_stream":
        return StreamStartRecord(seq=seq, time=_time(line["stream_init_time"]))
    if kind == "first_item_stream":
        return StreamFirstRecord(seq=seq, time=_time(line["first_item_time"]))
    if kind == "end_stream":
        items = int(line.get("items_streamed") or 0)
        return StreamEndRecord(seq=seq, time=_time(line["end_time"]), items=items)
    return None


def _pointer(pointer: Any) -> dict[str, Any] | None:
    """A parent pointer of Burr's metadata in the shape of turnout's app line."""
    if not isinstance(pointer, dict) or not isinstance(pointer.get("app_id"), str):
        return None
    sequence_id = pointer.get("sequence_id")
    return {
        "app_id": pointer["app_id"],
        "partition_key": pointer.get("partition_key"),
        "sequence_id": sequence_id if isinstance(sequence_id, int) else None,
    }


def _graph(graph: dict[str, Any]) -> dict[str, Any]:
    """Burr's ``graph.json`` in the shape of turnout's app line."""
    actions = [
        {
            "name": act.get("name", "?"),
            "reads": list(act.get("reads") or []),
            "writes": list(act.get("writes") or []),
            "inputs": [i for i in act.get("inputs") or [] if not i.startswith("__")],
            "optional_inputs": [
                i for i in act.get("optional_inputs") or [] if not i.startswith("__")
            ],
            "tags": [],
            "streaming": False,
            "async": False,
            "source": act.get("code") or "",
        }
        for act in graph.get("actions") or []
        if isinstance(act, dict)
    ]
    transitions = [
        {
            "from": t.get("from_"),
            "to": t.get("to"),
            "condition": t.get("condition", "default"),
            "on_exception": False,
        }
        for t in graph.get("transitions") or []
        if isinstance(t, dict)
    ]
    return {"entrypoint": graph.get("entrypoint"), "actions": actions, "transitions": transitions}


def _burr_lines(path: Path) -> tuple[list[dict[str, Any]], int]:
    lines, bad = [], 0
    for raw in _read_lines(path):
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nested past json's limit
            bad += 1
            continue
        if isinstance(data, dict):
            lines.append(data)
        else:
            bad += 1
    return lines, bad


def _read_lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as file:
        for raw in file:
            if raw.strip():
                yield raw


def _json_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _time(value: Any) -> float:
    """Seconds since the epoch of one of Burr's times (ISO text; naive ones are local time, as
    Burr wrote ``datetime.now()``)."""
    if not isinstance(value, str):
        return 0.0
    try:
        return dt.datetime.fromisoformat(value).timestamp()
    except (ValueError, OverflowError, OSError):  # not a time: the record keeps no time
        return 0.0
