"""The local tracker: every step of every application, appended to a log the UI reads.

``LocalTracker(project)`` is a hook. Pass it to ``ApplicationBuilder.with_tracker`` and each
application writes ``<storage_dir>/<project>/<app_id>/log.jsonl``: one JSON object per line,
appended and flushed as the application runs (format version ``FORMAT_VERSION``, documented in
``docs/tracking.md``). ``storage_dir`` defaults to ``$TURNOUT_HOME`` or ``~/.turnout``.

Line types (field ``t``): ``format`` (first line), ``app`` (graph, identity, links, initial
state), ``begin`` / ``end`` (each attempt of a step: inputs; result, error, state changes, a full
snapshot every ``snapshot_every`` steps), ``span_start`` / ``span_end``, ``attr``,
``stream_start`` / ``stream_first`` / ``stream_end``, and ``child`` (written in a parent's log when
an app forks from it, kind ``fork``, or when one of its steps spawns a child application, kind
``spawn``).

Tracking never breaks an application: values that cannot be encoded are logged as their
``repr``, and an unwritable log is reported once through ``logging`` and then skipped. A line cut
short by a killed process is ignored by readers. The tracker is also a loader for
``initialize_from``: it rebuilds the state at any tracked step.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import threading
import time
import traceback
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from turnout.core.errors import PersistenceError, SerdeError
from turnout.core.persistence import ParentPointer, PersistedStateData
from turnout.core.serde import DEFAULT_SERDE, Serde
from turnout.core.state import Change, State, apply_changes

__all__ = ["FORMAT_VERSION", "LocalTracker", "read_log", "tracking_home"]

FORMAT_VERSION = 1
_OPEN_LOGS = 32
REPR = "repr"  # the tag of a value logged as its repr because it could not be encoded
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@+=-]{0,199}$")
logger = logging.getLogger("turnout.tracking")


def tracking_home(storage_dir: str | Path | None = None) -> Path:
    """Where projects live: ``storage_dir``, else ``$TURNOUT_HOME``, else ``~/.turnout``."""
    if storage_dir is not None:
        return Path(storage_dir).expanduser()
    return Path(os.environ.get("TURNOUT_HOME") or "~/.turnout").expanduser()


def check_id(value: str, what: str) -> str:
    """``value`` if it is safe as one directory name (no path traversal, no separators)."""
    if not isinstance(value, str) or not _NAME.match(value) or ".." in value:
        raise ValueError(
            f"{what} {value!r} cannot name a tracking directory: use letters, digits and "
            f"'_.:@+=-', starting with a letter or digit, without '..' (at most 200 characters)."
        )
    return value


def _check_tags(tags: Any) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        raise TypeError(
            f"LocalTracker(tags=...) takes a dict of strings to strings, got {tags!r}; e.g. "
            f'tags={{"env": "staging"}}'
        )
    return dict(tags)


class LocalTracker:
    """Track applications into a project directory; see the module docstring.

    Args:
        project: the project's name (a directory under ``storage_dir``).
        storage_dir: the root of all projects (default ``$TURNOUT_HOME`` or ``~/.turnout``).
        serde: encodes state values, inputs and results (default ``DEFAULT_SERDE``).
        snapshot_every: log the full state at every sequence id divisible by this (the app line
            holds the starting state), so the state at any step is rebuilt from a snapshot and
            at most this many deltas.
        tags: labels written on the app line of every application it tracks (e.g.
            ``{"env": "staging", "model": "small"}``); the UI shows and filters by them. Give
            different trackers (or ``copy(tags=...)``) to label applications differently.
    """

    def __init__(
        self,
        project: str = "default",
        storage_dir: str | Path | None = None,
        *,
        serde: Serde | None = None,
        snapshot_every: int = 50,
        tags: dict[str, str] | None = None,
    ) -> None:
        self.project = check_id(project, "project")
        self.tags = _check_tags(tags)
        self.storage_dir = tracking_home(storage_dir)
        self.serde = serde or DEFAULT_SERDE
        self.snapshot_every = snapshot_every
        # Raw descriptors opened with O_APPEND, at most _OPEN_LOGS at a time (least recently
        # used closed first): one os.write per line is one atomic append, and a tracker that
        # serves many apps never runs the process out of descriptors.
        self._files: OrderedDict[str, int] = OrderedDict()
        weakref.finalize(self, _close_all, self._files)
        self._lock = threading.Lock()
        self._broken: set[str] = set()
        self._begins: dict[tuple[str, int], float] = {}

    def __getstate__(self) -> dict[str, Any]:
        """What a copy sent to another process (a process pool, Ray, Dask) needs: the settings,
        not the open files or the lock; the copy opens its own files."""
        return {
            "project": self.project,
            "storage_dir": str(self.storage_dir),
            "serde": None if self.serde is DEFAULT_SERDE else self.serde,
            "snapshot_every": self.snapshot_every,
            "tags": self.tags,
        }

    def __setstate__(self, data: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            data["project"],
            data["storage_dir"],
            serde=data["serde"],
            snapshot_every=data["snapshot_every"],
            tags=data.get("tags"),
        )

    def copy(self, *, tags: dict[str, str] | None = None) -> LocalTracker:
        """A tracker writing to the same project, with its own open files (and ``tags``
        instead of this one's, when given)."""
        return LocalTracker(
            self.project,
            self.storage_dir,
            serde=self.serde,
            snapshot_every=self.snapshot_every,
            tags=self.tags if tags is None else tags,
        )

    @property
    def project_dir(self) -> Path:
        return self.storage_dir / self.project

    def log_path(self, app_id: str) -> Path:
        return self.project_dir / check_id(app_id, "app id") / "log.jsonl"

    # -- writing ---------------------------------------------------------------------------------

    def _encode(self, value: Any, path: str = "$") -> Any:
        try:
            return self.serde.encode(value, path)
        except SerdeError:
            return {"__turnout__": REPR, "v": repr(value)[:10_000]}

    def _encode_state(self, state: State) -> dict[str, Any]:
        """Key by key, so one value that cannot be encoded spoils only its own key."""
        return {key: self._encode(value, f"$.{key}") for key, value in state.get_all().items()}

    def _decode(self, data: Any) -> Any:
        if isinstance(data, dict) and data.get("__turnout__") == REPR:
            return data["v"]  # only its repr was logged: that text is what can be rebuilt
        return self.serde.decode(data)

    def _decode_state(self, data: dict[str, Any]) -> State:
        return State({key: self._decode(value) for key, value in data.items()})

    def _write(self, app_id: str, record: dict[str, Any]) -> None:
        if app_id in self._broken:
            return
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=repr) + "\n"
        try:
            with self._lock:
                fd = self._files.get(app_id)
                if fd is None:
                    fd = self._open(app_id)
                else:
                    self._files.move_to_end(app_id)
                os.write(fd, line.encode("utf-8"))  # one append per line, whole or not at all
        except (OSError, ValueError) as exc:
            self._broken.add(app_id)
            logger.warning("tracking of app %r stopped: cannot write its log (%s)", app_id, exc)

    def _open(self, app_id: str) -> int:
        path = self.log_path(app_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.fstat(fd).st_size
        if size == 0:
            os.write(fd, f'{{"t":"format","version":{FORMAT_VERSION}}}\n'.encode())
        else:
            with open(path, "rb") as existing:
                existing.seek(size - 1)
                torn = existing.read(1) != b"\n"
            if torn:
                os.write(fd, b"\n")  # a line cut short by a killed writer must not swallow ours
        self._files[app_id] = fd
        while len(self._files) > _OPEN_LOGS:
            os.close(self._files.popitem(last=False)[1])
        return fd

    def close(self) -> None:
        """Close the open log files (they reopen if the application goes on)."""
        with self._lock:
            _close_all(self._files)

    def post_application_create(
        self, *, app_id: str, partition_key: str | None, state: State, application_graph: Any,
        sequence_id: int | None = None, parent_pointer: ParentPointer | None = None,
        spawning_parent_pointer: ParentPointer | None = None, **future_kwargs: Any,
    ) -> None:  # fmt: skip
        check_id(app_id, "app id")  # at build time: an id that cannot name a log is refused
        graph = application_graph
        self._write(
            app_id,
            {
                "t": "app",
                "app_id": app_id,
                "partition_key": partition_key,
                "time": time.time(),
                "sequence_id": sequence_id,
                "state": self._encode_state(state),
                "graph": _graph_record(graph),
                "parent": _pointer(parent_pointer),
                "spawning_parent": _pointer(spawning_parent_pointer),
                **({"tags": self.tags} if self.tags else {}),
            },
        )
        for kind, pointer in (("fork", parent_pointer), ("spawn", spawning_parent_pointer)):
            if pointer is not None:
                self._write(
                    pointer.app_id,
                    {
                        "t": "child",
                        "kind": kind,
                        "child_app_id": app_id,
                        "child_partition_key": partition_key,
                        "seq": pointer.sequence_id,
                        "time": time.time(),
                    },
                )

    def pre_run_step(
        self, *, app_id: str, sequence_id: int, action: Any, inputs: dict[str, Any],
        attempt: int = 1, **future_kwargs: Any,
    ) -> None:  # fmt: skip
        now = time.time()
        self._begins[(app_id, sequence_id)] = now
        self._write(
            app_id,
            {
                "t": "begin",
                "seq": sequence_id,
                "action": action.name,
                "time": now,
                "attempt": attempt,
                "inputs": {
                    k: self._encode(v, f"$.inputs.{k}")
                    for k, v in inputs.items()
                    if not k.startswith("_")
                },
            },
        )

    def post_run_step(
        self, *, app_id: str, sequence_id: int, action: Any, state: State,
        result: dict[str, Any] | None, exception: BaseException | None,
        changes: tuple[Change, ...], attempt: int = 1, will_retry: bool = False,
        **future_kwargs: Any,
    ) -> None:  # fmt: skip
        self._begins.pop((app_id, sequence_id), None)
        if exception is None:
            status = "completed"
        elif will_retry:
            status = "retrying"
        elif isinstance(exception, Exception):
            status = "failed"
        else:
            status = "cancelled"
        record: dict[str, Any] = {
            "t": "end",
            "seq": sequence_id,
            "action": action.name,
            "time": time.time(),
            "attempt": attempt,
            "status": status,
            "result": self._encode(result) if result is not None else None,
            "error": _format_error(exception),
            "changes": [
                [op, key, self._encode(list(v) if op == "extend" else v, f"$.{key}")]
                for op, key, v in changes
            ],
        }
        if status in ("completed", "failed") and sequence_id % self.snapshot_every == 0:
            record["snapshot"] = self._encode_state(state)
        self._write(app_id, record)

    def _span(self, kind: str, app_id: str, span: Any, **extra: Any) -> None:
        parent = span.parent.uid if span.parent is not None else None
        self._write(
            app_id,
            {"t": kind, "seq": span.sequence_id, "span": span.uid, "parent": parent, **extra},
        )

    def pre_start_span(self, *, app_id: str, span: Any, **future_kwargs: Any) -> None:
        if span.dependencies:
            self._span(
                "span_start", app_id, span, name=span.name, time=span.start_time,
                dependencies=list(span.dependencies),
            )  # fmt: skip
        else:
            self._span("span_start", app_id, span, name=span.name, time=span.start_time)

    def post_end_span(
        self, *, app_id: str, span: Any, exception: BaseException | None = None,
        end_time: float | None = None, **future_kwargs: Any,
    ) -> None:  # fmt: skip
        error = f"{type(exception).__name__}: {exception}" if exception is not None else None
        self._span("span_end", app_id, span, time=end_time or time.time(), error=error)

    def do_log_attributes(
        self, *, app_id: str, action_sequence_id: int, span: Any | None,
        attributes: dict[str, Any], **future_kwargs: Any,
    ) -> None:  # fmt: skip
        for key, value in attributes.items():
            self._write(
                app_id,
                {
                    "t": "attr",
                    "seq": action_sequence_id,
                    "span": span.uid if span is not None else None,
                    "key": key,
                    "value": self._encode(value),
                    "time": time.time(),
                },
            )

    def pre_start_stream(self, *, app_id: str, sequence_id: int, **future_kwargs: Any) -> None:
        self._write(app_id, {"t": "stream_start", "seq": sequence_id, "time": time.time()})

    def post_stream_item(
        self, *, app_id: str, sequence_id: int, item_index: int,
        first_stream_item_start_time: float, **future_kwargs: Any,
    ) -> None:  # fmt: skip
        if item_index == 0:  # the first item's time is what matters; the count comes at the end
            self._write(
                app_id,
                {"t": "stream_first", "seq": sequence_id, "time": first_stream_item_start_time},
            )

    def post_end_stream(
        self, *, app_id: str, sequence_id: int, items_streamed: int,
        exception: BaseException | None = None, **future_kwargs: Any,
    ) -> None:  # fmt: skip
        self._write(
            app_id,
            {
                "t": "stream_end",
                "seq": sequence_id,
                "time": time.time(),
                "items": items_streamed,
                "error": _format_error(exception),
            },
        )

    # -- loading ---------------------------------------------------------------------------------

    def list_app_ids(self, partition_key: str | None = None, **kwargs: Any) -> list[str]:
        """The tracked app ids of the project (of one partition if given), newest first."""
        found: list[tuple[float, str]] = []
        if not self.project_dir.is_dir():
            return []
        for log in self.project_dir.glob("*/log.jsonl"):
            app = next((r for r in read_log(log) if r.get("t") == "app"), None)
            if app is None or (partition_key is not None and app["partition_key"] != partition_key):
                continue
            found.append((log.stat().st_mtime, app["app_id"]))
        return [app_id for _, app_id in sorted(found, reverse=True)]

    def load(
        self, partition_key: str | None, app_id: str, sequence_id: int | None = None, **kwargs: Any
    ) -> PersistedStateData | None:
        """The state after tracked step ``sequence_id`` (the last finished one if ``None``), for
        ``initialize_from``; ``None`` if the app or the step is not in the log."""
        path = self.log_path(app_id)
        if not path.is_file():
            return None
        state: State | None = None
        app: dict[str, Any] | None = None
        resumed: dict[str, Any] | None = None
        last: dict[str, Any] | None = None
        for record in read_log(path):
            kind = record.get("t")
            if kind == "app":
                if app is None or record.get("sequence_id") is None:
                    # The first app line, or the app id reused for a fresh run: start over.
                    app, resumed, last = record, None, None
                    state = self._decode_state(record["state"])
                else:
                    # A resume: its state (with any override_state_values) is where its next
                    # step starts, so it applies once a later step is read.
                    resumed = record
            elif kind == "end" and record.get("status") in ("completed", "failed"):
                if sequence_id is not None and record["seq"] > sequence_id:
                    break
                if resumed is not None:
                    state, resumed = self._decode_state(resumed["state"]), None
                if state is None:
                    raise PersistenceError(f"the log of app {app_id!r} has no app line")
                if "snapshot" in record:
                    state = self._decode_state(record["snapshot"])
                else:
                    changes = [
                        Change(op, key, self._decode(value)) for op, key, value in record["changes"]
                    ]
                    state = apply_changes(state, changes)
                last = record
        if app is None or last is None or state is None:
            return None
        if sequence_id is not None and last["seq"] != sequence_id:
            return None
        if app.get("partition_key") != partition_key and partition_key is not None:
            return None
        return PersistedStateData(
            partition_key=app.get("partition_key"),
            app_id=app_id,
            sequence_id=last["seq"],
            position=last["action"],
            state=state,
            created_at=dt.datetime.fromtimestamp(last["time"], dt.timezone.utc),
            status=last["status"],
            parent=_parent(app.get("parent")),
        )


def _close_all(files: OrderedDict[str, int]) -> None:
    while files:
        os.close(files.popitem()[1])


def read_log(path: str | Path, offset: int = 0) -> Iterator[dict[str, Any]]:
    """The records of a log from byte ``offset``; a last line cut short is skipped."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        for raw in handle:
            if not raw.endswith(b"\n"):
                return  # torn: a writer was killed mid-line (or is writing it now)
            try:
                record = json.loads(raw)
            except ValueError:
                continue  # a line damaged mid-file; the rest of the log is still good
            if isinstance(record, dict):
                yield record


def _graph_record(graph: Any) -> dict[str, Any]:
    from turnout.core.retry import ExceptionCondition

    actions = []
    for act in graph.actions:
        declared = act.inputs
        required, optional = (
            declared if isinstance(declared, tuple) and len(declared) == 2 else (declared, [])
        )
        actions.append(
            {
                "name": act.name,
                "reads": list(act.reads),
                "writes": list(act.writes),
                "inputs": [i for i in required if not i.startswith("__")],
                "optional_inputs": [i for i in optional if not i.startswith("__")],
                "tags": list(act.tags),
                "streaming": bool(act.streaming),
                "async": bool(act.is_async()),
                "source": act.get_source(),
            }
        )
    transitions = [
        {
            "from": t.from_.name,
            "to": t.to.name,
            "condition": t.condition.name,
            "on_exception": isinstance(t.condition, ExceptionCondition),
        }
        for t in graph.transitions
    ]
    return {"entrypoint": graph.entrypoint.name, "actions": actions, "transitions": transitions}


def _pointer(pointer: ParentPointer | None) -> dict[str, Any] | None:
    if pointer is None:
        return None
    return {
        "app_id": pointer.app_id,
        "partition_key": pointer.partition_key,
        "sequence_id": pointer.sequence_id,
    }


def _parent(data: dict[str, Any] | None) -> ParentPointer | None:
    if not data:
        return None
    return ParentPointer(
        app_id=data["app_id"],
        partition_key=data.get("partition_key"),
        sequence_id=data.get("sequence_id"),
    )


def _format_error(exception: BaseException | None) -> str | None:
    if exception is None:
        return None
    return "".join(traceback.format_exception(exception))
