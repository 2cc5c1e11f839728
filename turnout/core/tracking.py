"""The local tracker: every step of every application, appended to a log the UI reads.

``LocalTracker(project)`` is a hook. Pass it to ``ApplicationBuilder.with_tracker`` and each
application writes ``<storage_dir>/<project>/<app dir>/log.jsonl``: one JSON object per line,
appended and flushed as the application runs. The format (record kinds, checksums, version
``FORMAT_VERSION``) is owned by ``turnout.core.tracklog`` and documented in
``docs/tracking.md``. ``storage_dir`` defaults to ``$TURNOUT_HOME`` or ``~/.turnout``; the app
directory is the app id itself, or a safe encoding of it (``tracklog.app_dir_name``).

Tracking never breaks an application: a value that cannot be logged (the serde refuses it, it
is cyclic or too deep, JSON cannot hold it, its ``repr`` raises) is logged as a placeholder
naming why, with one ``TrackingWarning`` per application, and an unwritable log is reported
once through ``logging`` and then skipped. The tracker is also a loader for ``initialize_from``:
it rebuilds the state at any tracked step whose history is whole (``trackhistory``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from turnout.core._serde_fields import whole_values
from turnout.core._track_encoder import _SafeEncoder
from turnout.core._track_encoder import placeholder as placeholder  # its home before the split
from turnout.core.errors import TrackingNameError, TrackingWarning
from turnout.core.persistence import ParentPointer, PersistedStateData
from turnout.core.serde import DEFAULT_SERDE, Serde
from turnout.core.state import Change, State
from turnout.core.trackhistory import list_app_ids, load_tracked
from turnout.core.trackindex import INDEX_FILENAME, MarkWriter, find_chain
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
    is_safe_name,
    iter_raw,
)

__all__ = [
    "FORMAT_VERSION",
    "LocalTracker",
    "TrackingNameError",
    "TrackingWarning",
    "read_log",
    "tracking_home",
]

_OPEN_LOGS = 32
logger = logging.getLogger("turnout.tracking")


def tracking_home(storage_dir: str | Path | None = None) -> Path:
    """Where projects live: ``storage_dir``, else ``$TURNOUT_HOME``, else ``~/.turnout``."""
    if storage_dir is not None:
        return Path(storage_dir).expanduser()
    return Path(os.environ.get("TURNOUT_HOME") or "~/.turnout").expanduser()


def check_id(value: str, what: str) -> str:
    """``value`` if it is safe as one directory name (no path traversal, no separators)."""
    if not is_safe_name(value):
        raise TrackingNameError(
            f"{what} {value!r} cannot name a tracking directory: use letters, digits and "
            f"'_.:@+=-', starting with a letter or digit, without '..' (at most 200 characters)."
        )
    return value


def allowed_project_name(project: str, *, on_windows: bool | None = None) -> bool:
    """Whether ``project`` can name a tracking project (``check_project`` accepts it)."""
    try:
        check_project(project, on_windows=on_windows)
    except TrackingNameError:
        return False
    return True


def check_project(project: str, *, on_windows: bool | None = None) -> str:
    """``project`` if it can name a tracking project: ``check_id``'s rule and, on Windows
    (``on_windows``, by default whether this is Windows), no ``:``, which Windows file names
    cannot hold; else ``TrackingNameError`` saying why."""
    check_id(project, "project")
    if on_windows is None:
        on_windows = os.name == "nt"
    if on_windows and ":" in project:
        raise TrackingNameError(
            f"project {project!r} cannot name a tracking directory on Windows: a file name "
            f"there cannot hold ':'; use another character, e.g. {project.replace(':', '-')!r}."
        )
    return project


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
        project: the project's name (a directory under ``storage_dir``): letters, digits and
            ``_.:@+=-``, starting with a letter or digit, without ``..``, at most 200
            characters; anything else raises ``ValueError``.
        storage_dir: the root of all projects (default ``$TURNOUT_HOME`` or ``~/.turnout``).
        serde_kwargs: Burr's serialisation arguments (``LocalTrackingClient(project,
            storage_dir, serde_kwargs)``, e.g. ``{"pandas_kwargs": {"path": dir}}``), passed to
            the codecs registered Burr's way (``@serialize.register``, Burr's serde plugins).
        serde: encodes state values, inputs and results (default ``DEFAULT_SERDE``).
        snapshot_every: log the full state at every sequence id divisible by this (the app line
            holds the starting state), so the state at any step is rebuilt from a snapshot and
            at most this many deltas.
        tags: labels written on the app line of every application it tracks (e.g.
            ``{"env": "staging", "model": "small"}``); the UI shows and filters by them. Give
            different trackers (or ``copy(tags=...)``) to label applications differently.
    """

    # The app line records the state schema version (turnout.core.versions); ``load`` reports
    # it, so a resumed application migrates what an older version of its code tracked.
    stores_schema_version = True

    LOG_FILENAME = "log.jsonl"
    """The name of every application's log file (Burr's ``LocalTrackingClient.LOG_FILENAME``)."""

    def __init__(
        self,
        project: str = "default",
        storage_dir: str | Path | None = None,
        serde_kwargs: dict[str, Any] | None = None,
        *,
        serde: Serde | None = None,
        snapshot_every: int = 50,
        tags: dict[str, str] | None = None,
    ) -> None:
        self.project = check_project(project)
        self.serde_kwargs = dict(serde_kwargs or {})
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
        # Burr's serde_kwargs reach the codecs registered Burr's way (e.g. pandas_kwargs).
        self._bound_serde = (
            self.serde.with_kwargs(**self.serde_kwargs) if self.serde_kwargs else self.serde
        )
        self._encoder = _SafeEncoder(self._bound_serde)
        self._marks = MarkWriter()  # snapshot marks beside each log, for fast loads
        self._runs: dict[str, str] = {}  # app id -> the run id of its last app line
        self._begins: dict[tuple[str, int], float] = {}
        # Streams open per (app id, sequence id), with the step's end record once it came: hooks
        # end a streamed step before its stream, as on Burr, and the log keeps stream lines
        # inside their step (the end line follows the stream's end).
        self._streams: dict[tuple[str, int], EndRecord | None] = {}

    def __getstate__(self) -> dict[str, Any]:
        """What a copy sent to another process (a process pool, Ray, Dask) needs: the settings,
        not the open files or the lock; the copy opens its own files."""
        return {
            "project": self.project,
            "storage_dir": str(self.storage_dir),
            "serde": None if self.serde is DEFAULT_SERDE else self.serde,
            "serde_kwargs": self.serde_kwargs,
            "snapshot_every": self.snapshot_every,
            "tags": self.tags,
        }

    def __setstate__(self, data: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            data["project"],
            data["storage_dir"],
            data.get("serde_kwargs"),
            serde=data["serde"],
            snapshot_every=data["snapshot_every"],
            tags=data.get("tags"),
        )

    def copy(self, *, tags: dict[str, str] | None = None) -> LocalTracker:
        """A tracker writing to the same project, with its own open files (and ``tags``
        instead of this one's, when given)."""
        copied = LocalTracker(
            self.project,
            self.storage_dir,
            self.serde_kwargs,
            serde=self.serde,
            snapshot_every=self.snapshot_every,
            tags=self.tags if tags is None else tags,
        )
        copied.serde_kwargs = dict(self.serde_kwargs)  # its own dict, as given
        return copied

    @property
    def project_id(self) -> str:
        """Burr's name for ``project``."""
        return self.project

    @property
    def project_dir(self) -> Path:
        return self.storage_dir / self.project

    def log_path(self, app_id: str) -> Path:
        """The log of ``app_id``: under the app id itself when it is a safe directory name,
        else under a safe encoding of it (``turnout.core.tracklog.app_dir_name``)."""
        return self.project_dir / app_dir_name(app_id) / self.LOG_FILENAME

    # -- writing ---------------------------------------------------------------------------------

    def _write(self, app_id: str, record: Record) -> None:
        if app_id in self._broken:
            return
        try:
            line = self._encoder.line(app_id, record.to_json())
        except Exception as exc:  # never expected; still, a tracker must not break the app
            logger.warning(
                "tracking of app %r skipped a record it could not write: %r", app_id, exc
            )
            return
        try:
            with self._lock:
                fd = self._files.get(app_id)
                if fd is None:
                    fd = self._open(app_id)
                else:
                    self._files.move_to_end(app_id)
                os.write(fd, line)  # one append per line, whole or not at all
                # With O_APPEND the offset after the write is where this line ended, even
                # when other processes append to the same log.
                end = os.lseek(fd, 0, os.SEEK_CUR)
                self._marks.wrote(app_id, record, line, end, self.log_path)
        except (OSError, ValueError) as exc:
            self._broken.add(app_id)
            logger.warning("tracking of app %r stopped: cannot write its log (%s)", app_id, exc)

    def _open(self, app_id: str) -> int:
        path = self.log_path(app_id)
        burr_files = [n for n in ("metadata.json", "graph.json") if (path.parent / n).exists()]
        if burr_files:  # Burr's layout: its log.jsonl sits where ours would; never append to it
            raise ValueError(
                f"{path.parent} holds an application Burr tracked ({', '.join(burr_files)}); "
                "turnout never writes into Burr's logs: track into another directory (the "
                "default ~/.turnout, or TURNOUT_HOME) and bring Burr's runs over with "
                "`turnout import-burr`"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.fstat(fd).st_size
        if size == 0:
            os.write(fd, dump_line(FormatRecord(version=FORMAT_VERSION).to_json()))
            # A new log: marks left by an earlier one (a deleted log) name other lines.
            (path.parent / INDEX_FILENAME).unlink(missing_ok=True)
            self._marks.forget(app_id)
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
        spawning_parent_pointer: ParentPointer | None = None, schema_version: int = 1,
        **future_kwargs: Any,
    ) -> None:  # fmt: skip
        now = time.time()
        run = self._runs[app_id] = os.urandom(4).hex()
        self._write(
            app_id,
            AppRecord(
                app_id=app_id, partition_key=partition_key, time=now, sequence_id=sequence_id,
                state=self._encoder.state(app_id, state),
                graph=_graph_record(application_graph), parent=_pointer(parent_pointer),
                spawning_parent=_pointer(spawning_parent_pointer), tags=self.tags, run=run,
                schema_version=schema_version,
            ),
        )  # fmt: skip
        for kind, pointer in (("fork", parent_pointer), ("spawn", spawning_parent_pointer)):
            if pointer is not None:
                self._write(
                    pointer.app_id,
                    ChildRecord(
                        kind=kind, child_app_id=app_id, child_partition_key=partition_key,
                        seq=pointer.sequence_id, time=now,
                    ),
                )  # fmt: skip

    def pre_run_step(
        self, *, app_id: str, sequence_id: int, action: Any, inputs: dict[str, Any],
        attempt: int = 1, **future_kwargs: Any,
    ) -> None:  # fmt: skip
        now = time.time()
        self._begins[(app_id, sequence_id)] = now
        encoded = {
            k: self._encoder.value(app_id, v, f"$.inputs.{k}")
            for k, v in inputs.items()
            if not k.startswith("_")
        }
        self._write(
            app_id,
            BeginRecord(
                seq=sequence_id, action=action.name, time=now, attempt=attempt, inputs=encoded
            ),
        )

    def post_run_step(
        self, *, app_id: str, sequence_id: int, action: Any, state: State,
        result: dict[str, Any] | None, exception: BaseException | None,
        changes: tuple[Change, ...], attempt: int = 1, will_retry: bool = False,
        suspension: Any = None, **future_kwargs: Any,
    ) -> None:  # fmt: skip
        self._begins.pop((app_id, sequence_id), None)
        waiting = None
        if suspension is not None:
            status = "suspended"
            waiting = self._encoder.value(
                app_id,
                {k: suspension[k] for k in ("channel", "schema", "metadata")},
                "$.suspension",
            )
        elif exception is None:
            status = "completed"
        elif will_retry:
            status = "retrying"
        elif isinstance(exception, Exception):
            status = "failed"
        else:
            status = "cancelled"
        snapshot = None
        if (
            status in ("completed", "failed", "suspended")
            and sequence_id % self.snapshot_every == 0
        ):
            snapshot = self._encoder.state(app_id, state)
        encode = self._encoder.value
        record = EndRecord(
            seq=sequence_id, action=action.name, time=time.time(), attempt=attempt,
            status=status,
            result=encode(app_id, result, "$.result") if result is not None else None,
            error=_format_error(exception),
            changes=tuple(
                (op, key, self._encoder.field(app_id, key, v)) if op == "set" else
                (op, key, encode(app_id, list(v) if op == "extend" else v, f"$.{key}"))
                for op, key, v in whole_values(changes, state._peek)
            ),
            snapshot=snapshot, run=self._runs.get(app_id), suspension=waiting,
        )  # fmt: skip
        if (app_id, sequence_id) in self._streams:
            self._streams[(app_id, sequence_id)] = record  # written after the stream's end
            return
        self._write(app_id, record)

    def pre_start_span(self, *, app_id: str, span: Any, **future_kwargs: Any) -> None:
        self._write(
            app_id,
            SpanStartRecord(
                seq=span.sequence_id, span=span.uid, parent=_uid(span.parent), name=span.name,
                time=span.start_time, dependencies=tuple(span.dependencies or ()),
            ),
        )  # fmt: skip

    def post_end_span(
        self, *, app_id: str, span: Any, exception: BaseException | None = None,
        end_time: float | None = None, **future_kwargs: Any,
    ) -> None:  # fmt: skip
        error = f"{type(exception).__name__}: {exception}" if exception is not None else None
        self._write(
            app_id,
            SpanEndRecord(
                seq=span.sequence_id, span=span.uid, parent=_uid(span.parent),
                time=end_time or time.time(), error=error,
            ),
        )  # fmt: skip

    def do_log_attributes(
        self, *, app_id: str, action_sequence_id: int, span: Any | None,
        attributes: dict[str, Any], **future_kwargs: Any,
    ) -> None:  # fmt: skip
        for key, value in attributes.items():
            self._write(
                app_id,
                AttrRecord(
                    seq=action_sequence_id, span=span.uid if span is not None else None,
                    key=key, value=self._encoder.value(app_id, value, f"$.{key}"), time=time.time(),
                ),
            )  # fmt: skip

    def pre_start_stream(self, *, app_id: str, sequence_id: int, **future_kwargs: Any) -> None:
        self._streams[(app_id, sequence_id)] = None
        self._write(app_id, StreamStartRecord(seq=sequence_id, time=time.time()))

    def post_stream_item(
        self, *, app_id: str, sequence_id: int, item_index: int,
        first_stream_item_start_time: float, **future_kwargs: Any,
    ) -> None:  # fmt: skip
        if item_index == 0:  # the first item's time is what matters; the count comes at the end
            self._write(
                app_id, StreamFirstRecord(seq=sequence_id, time=first_stream_item_start_time)
            )

    def post_end_stream(
        self, *, app_id: str, sequence_id: int, items_streamed: int,
        exception: BaseException | None = None, **future_kwargs: Any,
    ) -> None:  # fmt: skip
        self._write(
            app_id,
            StreamEndRecord(
                seq=sequence_id,
                time=time.time(),
                items=items_streamed,
                error=_format_error(exception),
            ),
        )
        held = self._streams.pop((app_id, sequence_id), None)
        if held is not None:
            self._write(app_id, held)

    # -- loading ---------------------------------------------------------------------------------

    def list_app_ids(self, partition_key: str | None = None, **kwargs: Any) -> list[str]:
        """The tracked app ids of the project (of one partition if given), newest first."""
        return list_app_ids(self.project_dir, partition_key)

    def load(
        self, partition_key: str | None, app_id: str, sequence_id: int | None = None, **kwargs: Any
    ) -> PersistedStateData | None:
        """The state after tracked step ``sequence_id`` (the last finished one if ``None``), for
        ``initialize_from``; ``None`` if the app or the step is not in the log.

        Raises:
            PersistenceError: the log is damaged between the step and the nearest snapshot
                before it, it is in a newer format, or the state holds a value the tracker
                could only log as a placeholder.
        """
        return load_tracked(
            self.log_path(app_id), app_id, partition_key, sequence_id, self._bound_serde,
            fast=find_chain,
        )  # fmt: skip


def _close_all(files: OrderedDict[str, int]) -> None:
    while files:
        os.close(files.popitem()[1])


def read_log(path: str | Path, offset: int = 0) -> Iterator[dict[str, Any]]:
    """The records of a log from byte ``offset``, as JSON objects (a torn last line and
    malformed lines are skipped; ``turnout.core.tracklog.read_records`` gives typed records,
    where it stopped and how many lines it skipped)."""
    return iter_raw(path, offset)


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


def _uid(span: Any) -> str | None:
    return span.uid if span is not None else None


def _pointer(pointer: ParentPointer | None) -> dict[str, Any] | None:
    if pointer is None:
        return None
    return {
        "app_id": pointer.app_id,
        "partition_key": pointer.partition_key,
        "sequence_id": pointer.sequence_id,
    }


def _format_error(exception: BaseException | None) -> str | None:
    if exception is None:
        return None
    return "".join(traceback.format_exception(exception))
