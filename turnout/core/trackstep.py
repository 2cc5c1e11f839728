r"""What a tracking UI shows of one step: ``Step`` (every attempt of a sequence id folded
together), its ``Span``\ s, the ``StateDiff`` between two states, and the token totals of a
step's ``gen_ai.usage.*`` attributes (stdlib only). ``turnout.core.trackview.AppLog`` builds
them from the records; values stay in their stored JSON form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from turnout.core.tracksnapshot import LazySnapshot

__all__ = ["Span", "StateDiff", "Step", "diff_states", "step_token_totals"]


@dataclass(kw_only=True, slots=True)
class Span:
    span_id: str
    parent: str | None
    name: str
    start: float | None
    end: float | None = None
    error: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def depth(self) -> int:
        """Nesting level, from the span id's dotted path (``"3:0.1"`` is depth 1)."""
        return self.span_id.rpartition(":")[2].count(".")


@dataclass(kw_only=True, slots=True)
class Step:
    """One sequence id of an app: every attempt of it, folded into what the UI shows."""

    seq: int
    action: str
    start: float | None
    end: float | None = None
    status: str = "running"
    attempts: int = 1
    inputs: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    error: str | None = None
    attempt_errors: list[str] = field(default_factory=list)
    changes: list[list[Any]] = field(default_factory=list)
    # Its end record's snapshot: decoded or, read lazily, its stored bytes (see ``snapshot``).
    stored_snapshot: dict[str, Any] | LazySnapshot | None = None
    base: dict[str, Any] | None = None  # the state before it, when an app line (resume) says so
    attributes: dict[str, Any] = field(default_factory=dict)
    spans: dict[str, Span] = field(default_factory=dict)
    stream_start: float | None = None
    stream_first: float | None = None
    stream_end: float | None = None
    stream_items: int | None = None
    suspension: dict[str, Any] | None = None  # status "suspended": channel, schema, metadata

    @property
    def snapshot(self) -> dict[str, Any] | None:
        """The whole state after this step when its end line holds one (decoded on demand)."""
        stored = self.stored_snapshot
        return stored.decode() if isinstance(stored, LazySnapshot) else stored

    @property
    def duration(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return self.end - self.start

    @property
    def error_summary(self) -> str | None:
        """The last line of the traceback (``ValueError: ...``)."""
        if not self.error:
            return None
        lines = [line for line in self.error.strip().splitlines() if line.strip()]
        return lines[-1] if lines else None

    @property
    def time_to_first_item(self) -> float | None:
        if self.stream_first is None or self.start is None:
            return None
        return self.stream_first - self.start


@dataclass(frozen=True, kw_only=True, slots=True)
class StateDiff:
    added: dict[str, Any]
    removed: dict[str, Any]
    changed: dict[str, tuple[Any, Any]]

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


def diff_states(before: dict[str, Any], after: dict[str, Any]) -> StateDiff:
    """The keys ``after`` added, removed and changed relative to ``before``."""
    return StateDiff(
        added={k: v for k, v in after.items() if k not in before},
        removed={k: v for k, v in before.items() if k not in after},
        changed={k: (before[k], v) for k, v in after.items() if k in before and before[k] != v},
    )


def step_token_totals(step: Step) -> dict[str, float]:
    """The numeric ``gen_ai.usage.*`` attributes logged in ``step``, summed over its spans."""
    totals: dict[str, float] = {}
    sources = [span.attributes for span in step.spans.values()]
    span_keys = {k for attrs in sources for k in attrs}
    # Attributes logged on a span appear in the step's too; count the step-level ones only once.
    sources.append({k: v for k, v in step.attributes.items() if k not in span_keys})
    for attrs in sources:
        for key, value in attrs.items():
            is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if key.startswith("gen_ai.usage.") and is_number:
                totals[key] = totals.get(key, 0) + value
    return totals
