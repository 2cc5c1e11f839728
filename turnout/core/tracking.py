"""The local tracker: every step of every application, appended to a log the UI reads.

``LocalTracker(project)`` is a hook. Pass it to ``ApplicationBuilder.with_tracker`` and each
application writes ``<storage_dir>/<project>/<app dir>/log.jsonl``: one JSON object per line,
appended and flushed as the application runs. The format (record kinds, checksums, version
``FORMAT_VERSION``) is owned by ``turnout.core.tracklog`` and documented in
``docs/tracking.md``. ``storage_dir`` defaults to ``$TURNOUT_HOME`` or ``~/.turnout``; the app
directory is the app id itself, or a safe encoding of it (``tracklog.app_dir_name``).

Turning hook calls into records is ``turnout.core.trackbase.RecordingTracker``'s, shared with
the PostgreSQL tracker; this module is the file store: the sink (one atomic append per record,
snapshot marks beside each log) and the reader (``load`` from the nearest marked snapshot).

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
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from turnout.core._track_encoder import placeholder as placeholder  # its home before the split
from turnout.core.errors import TrackingNameError, TrackingWarning
from turnout.core.serde import DEFAULT_SERDE, Serde
from turnout.core.trackbase import RecordingTracker
from turnout.core.trackbase import allowed_project_name as allowed_project_name
from turnout.core.trackbase import check_id as check_id
from turnout.core.trackbase import check_project as check_project
from turnout.core.trackhistory import Chain, full_chain, list_app_ids
from turnout.core.trackindex import INDEX_FILENAME, MarkWriter, find_chain
from turnout.core.tracklog import (
    FORMAT_VERSION,
    FormatRecord,
    Record,
    app_dir_name,
    dump_line,
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


class LocalTracker(RecordingTracker):
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
        super().__init__(
            project, serde_kwargs, serde=serde, snapshot_every=snapshot_every, tags=tags
        )
        self.storage_dir = tracking_home(storage_dir)
        # Raw descriptors opened with O_APPEND, at most _OPEN_LOGS at a time (least recently
        # used closed first): one os.write per line is one atomic append, and a tracker that
        # serves many apps never runs the process out of descriptors.
        self._files: OrderedDict[str, int] = OrderedDict()
        weakref.finalize(self, _close_all, self._files)
        self._lock = threading.Lock()
        self._broken: set[str] = set()
        self._marks = MarkWriter()  # snapshot marks beside each log, for fast loads

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
        return super().copy(tags=tags)

    def _replica(self, tags: dict[str, str]) -> LocalTracker:
        copied = LocalTracker(
            self.project,
            self.storage_dir,
            self.serde_kwargs,
            serde=self.serde,
            snapshot_every=self.snapshot_every,
            tags=tags,
        )
        copied.serde_kwargs = dict(self.serde_kwargs)  # its own dict, as given
        return copied

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

    # -- loading ---------------------------------------------------------------------------------

    def list_app_ids(self, partition_key: str | None = None, **kwargs: Any) -> list[str]:
        """The tracked app ids of the project (of one partition if given), newest first."""
        return list_app_ids(self.project_dir, partition_key)

    def _find_chain(self, app_id: str, sequence_id: int | None) -> Chain | None:
        path = self.log_path(app_id)
        if not path.is_file():
            return None
        chain = find_chain(path, app_id, sequence_id)  # from the nearest marked snapshot
        return chain if chain is not None else full_chain(path, app_id, sequence_id)

    def _where(self, app_id: str) -> str:
        return f"its tracking log {self.log_path(app_id)}"


def _close_all(files: OrderedDict[str, int]) -> None:
    while files:
        os.close(files.popitem()[1])


def read_log(path: str | Path, offset: int = 0) -> Iterator[dict[str, Any]]:
    """The records of a log from byte ``offset``, as JSON objects (a torn last line and
    malformed lines are skipped; ``turnout.core.tracklog.read_records`` gives typed records,
    where it stopped and how many lines it skipped)."""
    return iter_raw(path, offset)
