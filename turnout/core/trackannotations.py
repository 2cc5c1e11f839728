"""Annotations on tracked steps, and the store that keeps them (stdlib only).

An ``Annotation`` is what a reviewer says about one step of a tracked application: tags, a
note, a ``good``/``bad`` mark and the result the step should have produced (any JSON value;
text is a JSON string). Annotations are kept beside the trace, never inside it: the tracker's
log is append-only and written by the application, while annotations are edited afterwards by
people, so they live in their own place in each store:

- files (``FileAnnotations``): one sidecar file per project, ``<root>/<project>/`` +
  ``ANNOTATIONS_NAME``, a JSON document rewritten atomically (a temporary file, then
  ``os.replace``) under a lock, so a reader sees the old or the new file, never half of one;
- PostgreSQL: a ``<prefix>_annotations`` table
  (``turnout.integrations.postgres_tracking.PostgresAnnotations``).

Both implement ``AnnotationStore``; a tracking source offers its store as its ``annotations``
attribute. What a store gives back is untrusted (anyone who can write the file or the table
wrote it): ``Annotation.from_json`` checks every field's type and size and refuses the rest, and
a store skips (and counts) what it refuses. Nothing read is ever called or imported.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from turnout.core.errors import TurnoutError
from turnout.core.trackbase import check_id

__all__ = [
    "ANNOTATIONS_NAME",
    "EVERY_ANNOTATION",
    "MARKS",
    "MAX_EXPECTED",
    "MAX_NOTE",
    "MAX_TAG",
    "MAX_TAGS",
    "Annotation",
    "AnnotationError",
    "AnnotationFields",
    "AnnotationQuery",
    "AnnotationStore",
    "FileAnnotations",
]

ANNOTATIONS_NAME = ".turnout-annotations.json"
MARKS = ("good", "bad")
MAX_NOTE = 10_000  # characters
MAX_TAG = 64  # characters per tag
MAX_TAGS = 20
MAX_EXPECTED = 100_000  # characters of the expected result's JSON text
MAX_ID = 1_000  # characters of an app id or action name
MAX_FILE = 64 * 1024 * 1024  # bytes of a sidecar file read back
_VERSION = 1
_REPAIR = "no annotation is written over it; repair it, or move it away to start afresh"


class AnnotationError(TurnoutError, ValueError):
    """An annotation was refused: a field too long, of the wrong type, or unknown."""


@dataclass(frozen=True, kw_only=True, slots=True)
class AnnotationFields:
    """What a reviewer writes on a step; checked when made (``AnnotationError``).

    Attributes:
        tags: short labels (at most ``MAX_TAGS``, each 1 to ``MAX_TAG`` characters, no
            commas: a form writes them comma-separated); kept sorted and unique.
        note: free text, at most ``MAX_NOTE`` characters.
        mark: ``"good"``, ``"bad"`` or ``None``.
        expected: the result the step should have produced: any JSON value (``None``: none),
            at most ``MAX_EXPECTED`` characters as JSON.
    """

    tags: tuple[str, ...] = ()
    note: str = ""
    mark: str | None = None
    expected: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.tags, tuple) or not all(isinstance(t, str) for t in self.tags):
            raise AnnotationError(f"tags={self.tags!r}: tags are a tuple of strings")
        tags = tuple(sorted({t.strip() for t in self.tags if t.strip()}))
        if len(tags) > MAX_TAGS:
            raise AnnotationError(f"{len(tags)} tags: an annotation has at most {MAX_TAGS}")
        for tag in tags:
            if len(tag) > MAX_TAG or "," in tag:
                raise AnnotationError(
                    f"tag {tag[:MAX_TAG]!r}…: a tag has at most {MAX_TAG} characters and no comma"
                )
        object.__setattr__(self, "tags", tags)
        if not isinstance(self.note, str) or len(self.note) > MAX_NOTE:
            raise AnnotationError(f"the note is a string of at most {MAX_NOTE:,} characters")
        if self.mark is not None and self.mark not in MARKS:
            raise AnnotationError(f"mark={self.mark!r}: a mark is 'good', 'bad' or None")
        try:
            text = json.dumps(self.expected, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as error:
            raise AnnotationError(
                f"the expected result is not plain JSON ({error}): pass dicts, lists, strings, "
                "finite numbers, booleans and None"
            ) from error
        if len(text) > MAX_EXPECTED:
            raise AnnotationError(
                f"the expected result is {len(text):,} characters as JSON: at most {MAX_EXPECTED:,}"
            )


@dataclass(frozen=True, kw_only=True, slots=True)
class Annotation:
    """One annotation of one step (``seq``) of one application of a project.

    Attributes:
        id: the store's id for it (a random hex string).
        project, app_id, partition_key, seq, action: the step it is about.
        fields: what the reviewer wrote.
        created, updated: UNIX times.
    """

    id: str
    project: str
    app_id: str
    partition_key: str | None
    seq: int
    action: str
    fields: AnnotationFields
    created: float
    updated: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "project": self.project, "app_id": self.app_id,
            "partition_key": self.partition_key, "seq": self.seq, "action": self.action,
            "tags": list(self.fields.tags), "note": self.fields.note, "mark": self.fields.mark,
            "expected": self.fields.expected, "created": self.created, "updated": self.updated,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: Any) -> Annotation:
        """The annotation ``to_json`` wrote; ``AnnotationError`` for anything else."""
        if not isinstance(data, dict):
            raise AnnotationError("an annotation is a JSON object")
        tags = data.get("tags")
        if not isinstance(tags, list):
            raise AnnotationError("field 'tags' is not a list")
        seq = data.get("seq")
        if type(seq) is not int or seq < 0:
            raise AnnotationError("field 'seq' is not a step's sequence id")
        return cls(
            id=_text(data, "id", 64),
            project=_text(data, "project", MAX_ID),
            app_id=_text(data, "app_id", MAX_ID),
            partition_key=None
            if data.get("partition_key") is None
            else _text(data, "partition_key", MAX_ID),
            seq=seq,
            action=_text(data, "action", MAX_ID),
            fields=AnnotationFields(
                tags=tuple(tags),
                note=data.get("note", ""),
                mark=data.get("mark"),
                expected=data.get("expected"),
            ),
            created=_time(data, "created"),
            updated=_time(data, "updated"),
        )


def _text(data: dict[str, Any], key: str, limit: int) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value or len(value) > limit or "\x00" in value:
        raise AnnotationError(f"field {key!r} is not a string of 1 to {limit:,} characters")
    return value


def _time(data: dict[str, Any], key: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AnnotationError(f"field {key!r} is not a time")
    return float(value)


def new_annotation(
    *,
    project: str,
    app_id: str,
    partition_key: str | None,
    seq: int,
    action: str,
    fields: AnnotationFields,
    now: float | None = None,
) -> Annotation:
    """A new annotation with a fresh id (checked as one read back would be)."""
    at = time.time() if now is None else now
    made = Annotation(
        id=uuid.uuid4().hex, project=project, app_id=app_id, partition_key=partition_key,
        seq=seq, action=action, fields=fields, created=at, updated=at,
    )  # fmt: skip
    return Annotation.from_json(made.to_json())


@dataclass(frozen=True, kw_only=True, slots=True)
class AnnotationQuery:
    """Which annotations of a project to list (every ``None`` field: any)."""

    tag: str | None = None
    mark: str | None = None
    action: str | None = None
    app_id: str | None = None
    seq: int | None = None

    def __post_init__(self) -> None:
        if self.mark is not None and self.mark not in (*MARKS, "none"):
            raise AnnotationError(
                f"AnnotationQuery(mark={self.mark!r}): a mark filter is 'good', 'bad' or 'none'"
            )

    def matches(self, annotation: Annotation) -> bool:
        mark = annotation.fields.mark or "none"
        return (
            (self.tag is None or self.tag in annotation.fields.tags)
            and (self.mark is None or mark == self.mark)
            and (self.action is None or annotation.action == self.action)
            and (self.app_id is None or annotation.app_id == self.app_id)
            and (self.seq is None or annotation.seq == self.seq)
        )


EVERY_ANNOTATION = AnnotationQuery()
"""The query that selects every annotation of a project."""


def select_annotations(
    annotations: Iterable[Annotation], query: AnnotationQuery
) -> list[Annotation]:
    """The annotations ``query`` selects, by application, step, then creation time."""
    chosen = [a for a in annotations if query.matches(a)]
    return sorted(chosen, key=lambda a: (a.app_id, a.seq, a.created, a.id))


@runtime_checkable
class AnnotationStore(Protocol):
    """Where a tracking store keeps its annotations; see the module docstring.

    Every method raises ``AnnotationError`` for a refused value and ``KeyError`` for an id
    the project does not hold.
    """

    def list(self, project: str, query: AnnotationQuery = ...) -> list[Annotation]: ...

    def get(self, project: str, annotation_id: str) -> Annotation: ...

    def add(self, annotation: Annotation) -> Annotation: ...

    def update(self, project: str, annotation_id: str, fields: AnnotationFields) -> Annotation: ...

    def delete(self, project: str, annotation_id: str) -> Annotation: ...

    def refused(self, project: str) -> int:
        """How many stored entries of ``project`` were refused (malformed) when last read."""
        ...


@dataclass(kw_only=True, slots=True)
class _Loaded:
    mtime_ns: int
    size: int
    items: dict[str, Annotation] = field(default_factory=dict)
    refused: int = 0
    damaged: str | None = None  # why the file as a whole could not be read


class FileAnnotations:
    """The annotations of a tracking directory: one sidecar JSON file per project.

    Args:
        root: the tracking directory (``LocalTracker``'s ``storage_dir``). Project names are
            checked by the caller (``TrackingIndex.annotations`` checks them).

    One process writes a directory's annotations at a time: the lock is per instance, and two
    processes editing the same project at once could each miss the other's last change.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        self._cache: dict[str, _Loaded] = {}

    def path(self, project: str) -> Path:
        """The project's sidecar file (``AnnotationError`` for a name no tracker writes)."""
        try:
            check_id(project, "project")
        except ValueError as error:
            raise AnnotationError(str(error)) from error
        return self.root / project / ANNOTATIONS_NAME

    def refused(self, project: str) -> int:
        """How many stored entries of ``project`` were refused when last read."""
        with self._lock:
            return self._load(project).refused

    def list(self, project: str, query: AnnotationQuery = EVERY_ANNOTATION) -> list[Annotation]:
        with self._lock:
            return select_annotations(self._load(project).items.values(), query)

    def get(self, project: str, annotation_id: str) -> Annotation:
        with self._lock:
            return self._item(self._load(project), project, annotation_id)

    def add(self, annotation: Annotation) -> Annotation:
        with self._lock:
            loaded = self._writable(annotation.project)
            loaded.items[annotation.id] = annotation
            self._save(annotation.project, loaded)
            return annotation

    def update(self, project: str, annotation_id: str, fields: AnnotationFields) -> Annotation:
        with self._lock:
            loaded = self._writable(project)
            changed = replace(
                self._item(loaded, project, annotation_id), fields=fields, updated=time.time()
            )
            loaded.items[annotation_id] = changed
            self._save(project, loaded)
            return changed

    def delete(self, project: str, annotation_id: str) -> Annotation:
        with self._lock:
            loaded = self._writable(project)
            gone = self._item(loaded, project, annotation_id)
            del loaded.items[annotation_id]
            self._save(project, loaded)
            return gone

    @staticmethod
    def _item(loaded: _Loaded, project: str, annotation_id: str) -> Annotation:
        found = loaded.items.get(annotation_id)
        if found is None:
            raise KeyError(f"project {project!r} has no annotation {annotation_id!r}")
        return found

    def _writable(self, project: str) -> _Loaded:
        loaded = self._load(project)
        if loaded.damaged is not None:
            raise AnnotationError(
                f"{self.path(project)} cannot be read ({loaded.damaged}): {_REPAIR}"
            )
        return loaded

    def _load(self, project: str) -> _Loaded:
        path = self.path(project)
        try:
            stat = path.stat()
        except OSError:  # no file (yet, or any more): no annotations
            cached = self._cache.get(project)
            if cached is None or cached.size != -1:
                cached = self._cache[project] = _Loaded(mtime_ns=-1, size=-1)
            return cached
        cached = self._cache.get(project)
        if cached is not None and (cached.mtime_ns, cached.size) == (
            stat.st_mtime_ns,
            stat.st_size,
        ):
            return cached
        loaded = _Loaded(mtime_ns=stat.st_mtime_ns, size=stat.st_size)
        data = None
        if stat.st_size > MAX_FILE:
            loaded.damaged = f"it is {stat.st_size:,} bytes, over {MAX_FILE:,}"
        else:
            try:
                data = json.loads(path.read_bytes())
            except (OSError, ValueError, RecursionError) as error:
                loaded.damaged = f"it is not JSON ({type(error).__name__})"
        entries = data.get("annotations") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            # A damaged file: nothing in it is shown (and it is said), and nothing is written
            # over it, so what it held can still be repaired by hand.
            loaded.damaged = loaded.damaged or "it holds no list of annotations"
            loaded.refused += 1
            entries = []
        for entry in entries:
            try:
                annotation = Annotation.from_json(entry)
            except AnnotationError:
                loaded.refused += 1
                continue
            if annotation.project == project:
                loaded.items[annotation.id] = annotation
            else:
                loaded.refused += 1
        self._cache[project] = loaded
        return loaded

    def _save(self, project: str, loaded: _Loaded) -> None:
        path = self.path(project)
        if loaded.damaged is not None:
            # Checked before the change too (``_writable``); kept here as the last guard.
            raise AnnotationError(f"{path} cannot be read ({loaded.damaged}): {_REPAIR}")
        items = sorted(loaded.items.values(), key=lambda a: (a.created, a.id))
        body = json.dumps(
            {"version": _VERSION, "annotations": [a.to_json() for a in items]},
            ensure_ascii=False,
            indent=1,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{ANNOTATIONS_NAME}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        try:
            temporary.write_text(body, encoding="utf-8")
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        stat = path.stat()
        loaded.mtime_ns, loaded.size = stat.st_mtime_ns, stat.st_size
