"""Suspend a step on a named channel; resume it, later or elsewhere, with the answer.

``ApplicationContext.suspend(channel, schema=None, metadata=None)`` inside an action ends the
step as **suspended**: the state stays the step's entry state, the persister saves the step with
status ``"suspended"`` and position the action, hooks' ``post_run_step`` get ``suspension=`` (a
``SuspensionRecord``), and ``step``/``run``/``iterate`` return ``(action, record, state)``.
``Application.resume(channel, value)`` checks the answer (the channel, then the value against
the schema) and runs the action again from its start, with the same inputs and entry state;
the same ``suspend`` call then returns the answer. Each ``suspend`` call of a step is numbered
(0, 1, ...): answers are kept by (channel, call number), so an action may wait several times.

Across processes the suspension lives in the persister's journal (``turnout.core.journal``),
next to the step's record, at negative call indexes that ``durable`` calls never use:

* ``(app, sequence id, -1)``: the suspension (channel, schema, metadata, inputs, call number,
  the answers given to the step's earlier ``suspend`` calls), written before the record;
* ``(app, sequence id, -2 - n)``: the answer to call ``n``, written — committed, conditionally —
  by ``resume`` before the action runs again, so a crash after ``resume`` accepted an answer
  does not lose it, and a second answer to the same suspension is refused.

Applications without a persister, or with one that keeps no journal, hold the suspension in the
process only; a fresh process cannot resume them (``resume`` says so).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from turnout.core.errors import (
    AnswerValidationError,
    ConcurrencyError,
    InvalidRecordError,
    SuspensionError,
    UnsupportedOperationError,
)
from turnout.core.json_schema import check_schema, validate

if TYPE_CHECKING:
    from turnout.core.context import StepScope
    from turnout.core.journal import JournalEntry, _Access
    from turnout.core.saving import Initialization

__all__ = ["SuspensionRecord"]

RECORD_INDEX = -1  # the journal index of a step's suspension


def answer_index(call_index: int) -> int:
    """The journal index of the answer to a step's ``call_index``-th ``suspend``."""
    return -2 - call_index


@dataclass(frozen=True, kw_only=True, slots=True)
class SuspensionRecord(Mapping[str, Any]):
    """A suspended step: which channel waits for what. Also readable as a mapping
    (``result["channel"]``), as it stands in the result slot of ``(action, result, state)``.

    Attributes:
        channel: the name the step waits on; ``resume`` must name it.
        schema: the JSON Schema (subset, see ``turnout.core.json_schema``) the answer must fit,
            or ``None`` (any answer the persister's serde can store).
        metadata: what the action attached for whoever answers (a question, a draft, ...).
        action: the suspended action's name. ``sequence_id``: the step's.
        inputs: the step's inputs; the action runs again with them.
        call_index: which ``suspend`` call of the step this is (0 for the first).
        answers: the answers given to the step's earlier ``suspend`` calls, in order, as
            ``{"channel": ..., "value": ...}``.
    """

    app_id: str
    partition_key: str | None
    sequence_id: int
    action: str
    channel: str
    schema: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    call_index: int = 0
    answers: tuple[dict[str, Any], ...] = ()
    created_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    model: Any = field(default=None, repr=False, compare=False)  # a pydantic class, in-process

    def __getitem__(self, key: str) -> Any:
        if key in _FIELDS:
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(_FIELDS)

    def __len__(self) -> int:
        return len(_FIELDS)


_FIELDS = ("channel", "schema", "metadata", "action", "sequence_id", "inputs", "call_index")


class _Suspended(BaseException):
    """Raised by ``suspend`` to end the step; a ``BaseException`` so that an action's
    ``except Exception`` does not swallow it (nor a ``RetryPolicy`` retry it)."""

    def __init__(self, *, channel: str, schema: Any, model: Any, metadata: dict[str, Any],
                 call_index: int) -> None:  # fmt: skip
        super().__init__(f"suspended on channel {channel!r}")
        self.channel = channel
        self.schema = schema
        self.model = model
        self.metadata = metadata
        self.call_index = call_index


# -- inside the action ---------------------------------------------------------------------------


def suspend_call(scope: StepScope, channel: str, schema: Any, metadata: Any) -> Any:
    """``ApplicationContext.suspend``: the answer when the step has one, else end the step."""
    if not isinstance(channel, str) or not channel:
        raise TypeError(f"suspend() takes a non-empty str channel first, got {channel!r}")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise TypeError(f"suspend(metadata=...) takes a mapping, got {metadata!r}")
    index = scope.next_suspend()
    answers = scope.answers
    model = schema if _is_model(schema) else None
    if index < len(answers):
        given = answers[index]
        if given["channel"] != channel:
            raise SuspensionError(
                f"step {scope.sequence_id} of app {scope.app.app_id!r} asked suspend("
                f"{channel!r}) as its suspend call #{index}, but the answer given there was for "
                f"channel {given['channel']!r}: on a resume the action must make the same "
                f"suspend calls in the same order; decide them from the state or the inputs."
            )
        value = given["value"]
        if model is not None and not isinstance(value, model):
            value = _pydantic().validate_answer(model, value)
        return value
    schema_json = model.model_json_schema() if model is not None else schema
    if schema_json is not None:
        check_schema(schema_json)
    raise _Suspended(
        channel=channel, schema=schema_json, model=model, metadata=dict(metadata or {}),
        call_index=index,
    )  # fmt: skip


def record_of(scope: StepScope, signal: _Suspended) -> SuspensionRecord:
    """The suspension of the step ``scope`` ended with ``signal``."""
    injected = scope.spec.injected or {}
    return SuspensionRecord(
        app_id=scope.app.app_id,
        partition_key=scope.app.partition_key,
        sequence_id=scope.sequence_id,
        action=scope.action_name,
        channel=signal.channel,
        schema=signal.schema,
        metadata=signal.metadata,
        inputs={k: v for k, v in scope.kwargs.items() if k not in injected},
        call_index=signal.call_index,
        answers=tuple(scope.answers[: signal.call_index]),
        model=signal.model,
    )


# -- the journal ---------------------------------------------------------------------------------


def journal_of(persister: Any) -> _Access | None:
    """The persister's journal, or ``None`` when it keeps none (the suspension then lives in
    the process only)."""
    from turnout.core.journal import journal_for

    try:
        return journal_for(persister, "suspend()")
    except UnsupportedOperationError:
        return None


async def save_record(access: _Access, record: SuspensionRecord) -> None:
    """Journal the suspension, before the step's record is saved."""
    payload = {
        "action": record.action,
        "channel": record.channel,
        "schema": record.schema,
        "metadata": record.metadata,
        "inputs": record.inputs,
        "call_index": record.call_index,
        "answers": list(record.answers),
    }
    entry = _entry(record, RECORD_INDEX, "suspension", access.serde.dumps(payload))
    # A ConcurrencyError: the same step suspended before and the process died before its
    # record was saved, so the step ran again at the same sequence id. The first one stays.
    with contextlib.suppress(ConcurrencyError):
        await access.arun(access.store.journal_record(entry))


async def save_answer(access: _Access, record: SuspensionRecord, value: Any) -> Any:
    """Journal the answer (committed); what the action will get (the value as stored)."""
    payload = access.serde.dumps(value)
    entry = _entry(record, answer_index(record.call_index), f"answer:{record.channel}", payload)
    try:
        await access.arun(access.store.journal_record(entry))
    except ConcurrencyError:
        raise SuspensionError(
            f"the suspension of app {record.app_id!r} at sequence id {record.sequence_id} on "
            f"channel {record.channel!r} was answered already (by another process, or another "
            f"Application object): nothing changed. Build the application again with "
            f"initialize_from(...) to continue from where that answer led."
        ) from None
    return access.serde.loads(payload)


def _entry(record: SuspensionRecord, index: int, key: str, payload: str) -> JournalEntry:
    from turnout.core.journal import JournalEntry

    return JournalEntry(
        partition_key=record.partition_key or "",
        app_id=record.app_id,
        sequence_id=record.sequence_id,
        index=index,
        key=key,
        payload=payload,
        created_at=dt.datetime.now(dt.UTC),
    )


async def load_pending(app: Any, initialization: Initialization) -> None:
    """Set up ``app`` (built with ``initialize_from`` on a suspended record) from the journal:
    its pending suspension, or the answer already given to it."""
    sequence_id = initialization.sequence_id
    assert sequence_id is not None
    access = journal_of(initialization.loader)
    if access is None:
        app._suspension_missing = (
            f"the record of {initialization.source} is a suspended step, but its persister, "
            f"{type(initialization.loader).__name__}, keeps no journal, where the suspension "
            f"(channel, schema, answer) is stored: resume it in the process that suspended it, "
            f"or use a persister that keeps one (SQLitePersister, PostgreSQLPersister, "
            f"MySQLPersister, RedisPersister)"
        )
        return
    parent = initialization.parent
    source_pk = (parent.partition_key if parent is not None else app.partition_key) or ""
    source_app = parent.app_id if parent is not None else app.app_id
    store = access.store
    entries = await access.arun(store.journal_entries(source_pk, source_app, sequence_id))
    stored = next((e for e in entries if e.index == RECORD_INDEX), None)
    if stored is None:
        app._suspension_missing = (
            f"the record of {initialization.source} is a suspended step, but its journal holds "
            f"no suspension: it was deleted or written by other code"
        )
        return
    record = _decode(access, stored, app, sequence_id)
    own = await access.arun(store.journal_entries(app.partition_key or "", app.app_id, sequence_id))
    answer = next((e for e in own if e.index == answer_index(record.call_index)), None)
    if answer is None:
        app._suspension = record
        return
    # Answered, and the process stopped before the step ran again: it runs with the answer.
    given = {"channel": record.channel, "value": access.serde.loads(answer.payload)}
    app._answers = (*record.answers, given)
    app._answered = record


def _decode(access: _Access, entry: JournalEntry, app: Any, sequence_id: int) -> SuspensionRecord:
    data = access.serde.loads(entry.payload)
    try:
        channel = data["channel"]
        schema = data["schema"]
        answers = tuple(data["answers"])
        ok = (
            isinstance(channel, str)
            and (schema is None or isinstance(schema, dict))
            and isinstance(data["metadata"], dict)
            and isinstance(data["inputs"], dict)
            and isinstance(data["call_index"], int)
            and all(isinstance(a, dict) and isinstance(a.get("channel"), str) for a in answers)
        )
    except (KeyError, TypeError):
        ok = False
    if not ok:
        raise InvalidRecordError(
            f"the suspension journaled for app {app.app_id!r} at sequence id {sequence_id} is "
            f"malformed: {entry.payload[:200]!r}"
        )
    return SuspensionRecord(
        app_id=app.app_id,
        partition_key=app.partition_key,
        sequence_id=sequence_id,
        action=str(data["action"]),
        channel=channel,
        schema=schema,
        metadata=data["metadata"],
        inputs=data["inputs"],
        call_index=data["call_index"],
        answers=answers,
        created_at=entry.created_at,
    )


# -- resume --------------------------------------------------------------------------------------


def check_answer(app: Any, channel: str, value: Any) -> tuple[SuspensionRecord, Any]:
    """The pending suspension and the checked answer; ``SuspensionError`` (nothing changed)
    when the app is not suspended, waits on another channel, or the value does not fit."""
    pending: SuspensionRecord | None = app._suspension
    if pending is None:
        missing = getattr(app, "_suspension_missing", None)
        if missing is not None:
            raise UnsupportedOperationError(f"resume({channel!r}, ...): {missing}.")
        answered = getattr(app, "_answered", None)
        if answered is not None:
            raise SuspensionError(
                f"resume({channel!r}, ...): the suspension of app {app.app_id!r} on channel "
                f"{answered.channel!r} was answered already; run the application (app.run()) to "
                f"continue with that answer."
            )
        raise SuspensionError(
            f"resume({channel!r}, ...): application {app.app_id!r} is not suspended (no action "
            f"called __context.suspend(...) in its last step); run it with app.run()."
        )
    if channel != pending.channel:
        raise SuspensionError(
            f"resume({channel!r}, ...): application {app.app_id!r} waits on channel "
            f"{pending.channel!r} (action {pending.action!r}, sequence id "
            f"{pending.sequence_id}), not {channel!r}; nothing changed. Call "
            f"app.resume({pending.channel!r}, <answer>)."
        )
    if hasattr(value, "model_dump") and callable(value.model_dump):
        value = value.model_dump(mode="json")
    try:
        if pending.model is not None:
            _pydantic().validate_answer(pending.model, value)
        elif pending.schema is not None:
            check_schema(pending.schema)
            validate(value, pending.schema)
    except AnswerValidationError as exc:
        raise AnswerValidationError(
            f"resume({channel!r}, ...): {exc}; nothing changed. The schema of channel "
            f"{channel!r} is app.suspension.schema.",
            path=exc.path,
        ) from None
    return pending, value


def _is_model(schema: Any) -> bool:
    return isinstance(schema, type) and callable(getattr(schema, "model_json_schema", None))


def _pydantic() -> Any:
    from turnout.core.typing import load_typing_adapter

    return load_typing_adapter("pydantic")
