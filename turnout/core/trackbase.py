"""The store-independent half of every tracker: hook calls turned into tracking records.

``RecordingTracker`` receives the hooks a tracker receives (application created, step begin
and end, spans, attributes, stream markers) and turns each into a record of
``turnout.core.tracklog`` (``AppRecord``, ``BeginRecord``, ``EndRecord`` with the step's changes
and, every ``snapshot_every`` steps, the whole state, ...), with the fork/spawn links a child
application leaves under its parent. A store derives from it and supplies only its sink and its
reader:

- ``_write(app_id, record)``: keep one record of ``app_id`` (never raising: tracking never
  breaks an application);
- ``_find_chain(app_id, sequence_id)``: the ``trackhistory.Chain`` that rebuilds a step (or
  ``None``), which ``load`` decodes for ``initialize_from``; ``_where(app_id)`` names the store
  in ``load``'s errors;
- ``list_app_ids`` and ``_replica(tags)``, the tracker ``copy()`` gives a child application.

``turnout.core.tracking.LocalTracker`` (files) and
``turnout.integrations.postgres_tracking.PostgresTracker`` (PostgreSQL) are the two stores.
Values are encoded on the caller's thread into fresh containers (``_SafeEncoder``), so a
record, once made, is an immutable snapshot a store may turn into its line later.
"""

from __future__ import annotations

import os
import time
import traceback
from typing import Any, Self

from turnout.core._serde_fields import whole_values
from turnout.core._track_encoder import _SafeEncoder
from turnout.core.errors import TrackingNameError
from turnout.core.persistence import ParentPointer, PersistedStateData
from turnout.core.serde import DEFAULT_SERDE, Serde
from turnout.core.state import Change, State
from turnout.core.trackhistory import Chain, load_chain
from turnout.core.tracklog import (
    AppRecord,
    AttrRecord,
    BeginRecord,
    ChildRecord,
    EndRecord,
    Record,
    SpanEndRecord,
    SpanStartRecord,
    StreamEndRecord,
    StreamFirstRecord,
    StreamStartRecord,
    is_safe_name,
)

__all__ = ["RecordingTracker", "allowed_project_name", "check_id", "check_project"]


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


def _check_tags(tags: Any, owner: str) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        raise TypeError(
            f"{owner}(tags=...) takes a dict of strings to strings, got {tags!r}; e.g. "
            f'tags={{"env": "staging"}}'
        )
    return dict(tags)


class RecordingTracker:
    """Hook calls in, tracking records out; a store supplies the sink and the reader (see the
    module docstring).

    Args:
        project: the project's name: letters, digits and ``_.:@+=-``, starting with a letter
            or digit, without ``..``, at most 200 characters; else ``TrackingNameError``.
        serde_kwargs: Burr's serialisation arguments, passed to the codecs registered Burr's
            way (``@serialize.register``, Burr's serde plugins).
        serde: encodes state values, inputs and results (default ``DEFAULT_SERDE``).
        snapshot_every: record the full state at every sequence id divisible by this (the app
            record holds the starting state), so the state at any step is rebuilt from a
            snapshot and at most this many deltas.
        tags: labels written on the app record of every application it tracks.
    """

    # The app record holds the state schema version (turnout.core.versions); ``load`` reports
    # it, so a resumed application migrates what an older version of its code tracked.
    stores_schema_version = True

    def __init__(
        self,
        project: str = "default",
        serde_kwargs: dict[str, Any] | None = None,
        *,
        serde: Serde | None = None,
        snapshot_every: int = 50,
        tags: dict[str, str] | None = None,
    ) -> None:
        self.project = check_project(project)
        self.serde_kwargs = dict(serde_kwargs or {})
        self.tags = _check_tags(tags, type(self).__name__)
        self.serde = serde or DEFAULT_SERDE
        self.snapshot_every = snapshot_every
        # Burr's serde_kwargs reach the codecs registered Burr's way (e.g. pandas_kwargs).
        self._bound_serde = (
            self.serde.with_kwargs(**self.serde_kwargs) if self.serde_kwargs else self.serde
        )
        self._encoder = _SafeEncoder(self._bound_serde)
        self._runs: dict[str, str] = {}  # app id -> the run id of its last app record
        self._begins: dict[tuple[str, int], float] = {}
        # Streams open per (app id, sequence id), with the step's end record once it came: hooks
        # end a streamed step before its stream, as on Burr, and the store keeps stream records
        # inside their step (the end record follows the stream's end).
        self._streams: dict[tuple[str, int], EndRecord | None] = {}

    # -- what a store supplies -------------------------------------------------------------------

    def _write(self, app_id: str, record: Record) -> None:
        """Keep ``record`` of ``app_id``; never raises."""
        raise NotImplementedError(f"{type(self).__name__} must define _write(app_id, record)")

    def _find_chain(self, app_id: str, sequence_id: int | None) -> Chain | None:
        """The chain rebuilding step ``sequence_id`` (the last finished one if ``None``) of
        ``app_id``, or ``None`` if the app or the step is not tracked."""
        raise NotImplementedError(f"{type(self).__name__} must define _find_chain(...)")

    def _where(self, app_id: str) -> str:
        """The store of ``app_id``, as ``load``'s errors name it."""
        return f"the tracking store of {type(self).__name__}"

    def _replica(self, tags: dict[str, str]) -> Self:
        """A tracker of the same store and settings, labelled with ``tags``."""
        raise NotImplementedError(f"{type(self).__name__} must define _replica(tags)")

    def list_app_ids(self, partition_key: str | None = None, **kwargs: Any) -> list[str]:
        """The tracked app ids of the project (of one partition if given), newest first."""
        raise NotImplementedError(f"{type(self).__name__} must define list_app_ids(...)")

    # -- copies and loading ----------------------------------------------------------------------

    def copy(self, *, tags: dict[str, str] | None = None) -> Self:
        """A tracker writing to the same store and project (with ``tags`` instead of this
        one's, when given): what a parallel action gives each child application."""
        return self._replica(self.tags if tags is None else tags)

    @property
    def project_id(self) -> str:
        """Burr's name for ``project``."""
        return self.project

    def load(
        self, partition_key: str | None, app_id: str, sequence_id: int | None = None, **kwargs: Any
    ) -> PersistedStateData | None:
        """The state after tracked step ``sequence_id`` (the last finished one if ``None``), for
        ``initialize_from``; ``None`` if the app or the step is not tracked.

        Raises:
            PersistenceError: the history is damaged between the step and the nearest snapshot
                before it, it is in a newer format, or the state holds a value the tracker
                could only record as a placeholder.
        """
        chain = self._find_chain(app_id, sequence_id)
        if chain is None:
            return None
        return load_chain(
            chain, app_id, partition_key, self._bound_serde, where=self._where(app_id)
        )

    # -- the hooks -------------------------------------------------------------------------------

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
