"""Opt-in capture of prompts and completions on the adapters' LLM spans.

The OpenAI, LangChain and LlamaIndex adapters can record the messages a model call sends and
the messages it returns on its span: under the OpenTelemetry GenAI names
(``gen_ai.input.messages``, ``gen_ai.output.messages``: JSON text of ``[{"role", "parts"}]``, the
form the conventions allow on span attributes) and under the OpenInference names Phoenix's LLM
panel reads (``llm.input_messages.{i}.message.role``/``.content``, ``llm.output_messages...``,
``input.value``/``output.value`` with their mime types). Every hook sees them, so the local
tracker keeps them and ``turnout ui`` shows them.

Content often holds personal data, so capture is off unless one of these turns it on:

- ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` (the variable the OpenTelemetry
  GenAI instrumentations read), followed until ``capture_content(...)`` sets the process-wide
  policy (``capture_content("environment")`` follows it again);
- ``capture_content(True)``: process-wide, for every application;
- ``OpenTelemetryHook(capture_content=...)``: for the steps of the applications carrying that
  hook; it wins over the process-wide setting (``False`` there keeps content out even when the
  variable says ``true``).

A ``ContentCapture`` also bounds what is recorded (each message, and all messages of one call
in each direction, truncated with a visible marker) and may ``redact`` each message first.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass, replace
from typing import Any, Literal

from turnout.core.context import ApplicationContext

__all__ = [
    "CONTENT_ATTRIBUTES",
    "ENV_VAR",
    "TRUNCATED",
    "ContentCapture",
    "Message",
    "capture_content",
    "content_attributes",
    "content_text",
    "current_capture",
    "end_scoped",
    "is_content",
    "scoped_capture",
    "text_message",
]

ENV_VAR = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
TRUNCATED = "…[truncated {count} chars]"
"""Appended where text was cut; ``{count}`` is the number of characters left out."""
_REDACTION_FAILED = "[content withheld: the redact callback failed]"

Message = dict[str, Any]
"""A message in the GenAI shape: ``{"role": ..., "parts": [{"type": "text", "content": ...}]}``
(outputs add ``"finish_reason"``); parts may also be ``tool_call`` (``id``, ``name``,
``arguments``) and ``tool_call_response`` (``id``, ``result``)."""

# Attributes that carry message content: the hook exports them whole (the policy bounded them).
CONTENT_ATTRIBUTES = frozenset(
    {"gen_ai.input.messages", "gen_ai.output.messages", "input.value", "output.value"}
)
_MESSAGE_PREFIXES = ("llm.input_messages.", "llm.output_messages.")
_ON = {"true", "1", "yes", "on", "span_only", "span_and_event"}
_OFF = {"false", "0", "no", "off", "", "no_content", "event_only"}
logger = logging.getLogger("turnout.content")
_WARNED: set[str] = set()  # values of the variable already warned about


@dataclass(frozen=True, kw_only=True, slots=True)
class ContentCapture:
    """Whether and how the adapters record prompts and completions on LLM spans.

    Args:
        enabled: record content at all.
        max_message_chars: the most characters kept of one message's text (its text parts,
            tool arguments and tool results, each cut separately); the rest is replaced by
            ``TRUNCATED``.
        max_total_chars: the most characters kept over all messages of one call, counted
            separately for its input and its output; messages past it keep their roles and
            lose their text to the marker.
        redact: called with each message (a copy, in the GenAI shape, see ``Message``) before
            the limits apply; returns the message to record, or ``None`` to leave it out. If it
            raises, the message is recorded with its text withheld.
    """

    enabled: bool = True
    max_message_chars: int = 4_000
    max_total_chars: int = 16_000
    redact: Callable[[Message], Message | None] | None = None

    def __post_init__(self) -> None:
        for name in ("max_message_chars", "max_total_chars"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"ContentCapture({name}={value!r}): give a positive number of characters, "
                    f"e.g. ContentCapture({name}=4000)"
                )
        if self.redact is not None and not callable(self.redact):
            raise TypeError(
                f"ContentCapture(redact={self.redact!r}): give a function taking a message "
                f"dict and returning it (changed) or None"
            )


_OFF_POLICY = ContentCapture(enabled=False)
_PROCESS: list[ContentCapture] = []  # set by capture_content(); empty: the environment decides
# Set by OpenTelemetryHook(capture_content=...) for one step: (app id, sequence id, policy).
_SCOPED: ContextVar[tuple[str, int, ContentCapture] | None] = ContextVar(
    "turnout_content_capture", default=None
)


def _from_environment() -> ContentCapture:
    word = os.environ.get(ENV_VAR, "false").strip().lower()
    if word in _ON:
        return ContentCapture()
    if word not in _OFF and word not in _WARNED:
        _WARNED.add(word)
        logger.warning(
            "%s=%r is not understood; content capture stays off (set it to true or false)",
            ENV_VAR,
            word,
        )
    return _OFF_POLICY


def capture_content(
    enabled: bool | ContentCapture | Literal["environment"] | None = None,
    *,
    max_message_chars: int | None = None,
    max_total_chars: int | None = None,
    redact: Callable[[Message], Message | None] | None = None,
) -> ContentCapture:
    """Set (with any argument) and return the process-wide ``ContentCapture``.

    ``capture_content(True)`` records content from every adapter, ``capture_content(False)``
    stops it; the keyword arguments change the limits and the redaction (see
    ``ContentCapture``); a ``ContentCapture`` replaces the whole policy;
    ``capture_content("environment")`` goes back to following
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (``true``/``false``), which is what
    it does until first set. With no argument it only returns the current policy. An
    ``OpenTelemetryHook(capture_content=...)`` overrides it for the steps of its applications.
    """
    if enabled == "environment":
        _PROCESS.clear()
    elif isinstance(enabled, ContentCapture):
        _PROCESS[:] = [enabled]
    elif enabled is not None and not isinstance(enabled, bool):
        raise TypeError(
            f"capture_content({enabled!r}): give True, False, a ContentCapture(...) or "
            f"'environment' (follow {ENV_VAR})"
        )
    current = _PROCESS[0] if _PROCESS else _from_environment()
    changes: dict[str, Any] = {}
    if isinstance(enabled, bool):
        changes["enabled"] = enabled
    if max_message_chars is not None:
        changes["max_message_chars"] = max_message_chars
    if max_total_chars is not None:
        changes["max_total_chars"] = max_total_chars
    if redact is not None:
        changes["redact"] = redact
    if changes:
        current = replace(current, **changes)
        _PROCESS[:] = [current]
    return current


def is_content(key: str) -> bool:
    """Whether attribute ``key`` carries message content (bounded by the policy already)."""
    return key in CONTENT_ATTRIBUTES or key.startswith(_MESSAGE_PREFIXES)


def scoped_capture(app_id: str, sequence_id: int, policy: ContentCapture) -> object:
    """Make ``policy`` the one for the step ``(app_id, sequence_id)`` in this context; returns
    the token to give ``ContextVar.reset``. For hooks (``OpenTelemetryHook``)."""
    return _SCOPED.set((app_id, sequence_id, policy))


def end_scoped(token: object) -> None:
    """Undo ``scoped_capture``. A token from another context (a stream read elsewhere) cannot
    be reset here: the value it left names its step, so ``current_capture`` ignores it."""
    if isinstance(token, Token):
        with contextlib.suppress(ValueError, RuntimeError):
            _SCOPED.reset(token)


def current_capture() -> ContentCapture:
    """The policy for the model call being made now: the running step's hook's, if it set
    one, else the process-wide one."""
    scoped = _SCOPED.get()
    if scoped is not None:
        context = ApplicationContext.get()
        # a value left behind by a step whose reset ran in another context is ignored
        if context is not None and (context.app_id, context.sequence_id) == scoped[:2]:
            return scoped[2]
    return capture_content()


def content_text(content: Any) -> str:
    """The text of a message's content: a string, or the text of its content parts/blocks (an
    image, audio or other part is named, not copied)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        pieces = []
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                pieces.append(part["text"])
            elif isinstance(part, Mapping):
                pieces.append(f"[{part.get('type', 'part')}]")
            else:
                pieces.append(str(part))
        return "\n".join(pieces)
    return str(content)


def text_message(role: str, text: Any, **extra: Any) -> Message:
    """A message with one text part (none if ``text`` is empty or ``None``)."""
    parts = [] if text in (None, "") else [{"type": "text", "content": str(text)}]
    return {"role": role, "parts": parts, **extra}


# -- what goes on the span ----------------------------------------------------------------------


def content_attributes(
    policy: ContentCapture,
    *,
    inputs: Sequence[Message] | None = None,
    outputs: Sequence[Message] | None = None,
) -> dict[str, Any]:
    """The span attributes recording ``inputs`` and/or ``outputs`` under ``policy``: redacted,
    bounded, under the GenAI and the OpenInference names. Empty when the policy is off."""
    if not policy.enabled:
        return {}
    attributes: dict[str, Any] = {}
    for direction, messages in (("input", inputs), ("output", outputs)):
        if messages is None:
            continue
        kept, cut = _bounded(policy, [_redacted(policy, m) for m in messages])
        if cut:
            attributes[f"turnout.{direction}_content_truncated"] = True
        text = json.dumps(kept, ensure_ascii=False, default=str)
        attributes[f"gen_ai.{direction}.messages"] = text
        for i, message in enumerate(kept):
            attributes.update(_openinference(f"llm.{direction}_messages.{i}.message", message))
        only_text = len(kept) == 1 and all(p.get("type") == "text" for p in kept[0]["parts"])
        if direction == "output" and only_text:
            attributes["output.value"] = _joined(kept[0])
            attributes["output.mime_type"] = "text/plain"
        else:
            attributes[f"{direction}.value"] = text
            attributes[f"{direction}.mime_type"] = "application/json"
    return attributes


def _redacted(policy: ContentCapture, message: Message) -> Message | None:
    if policy.redact is None:
        return message
    try:
        changed = policy.redact(copy.deepcopy(message))
    except Exception:
        logger.exception("the redact callback failed; the message's text is withheld")
        return text_message(str(message.get("role", "unknown")), _REDACTION_FAILED)
    if changed is not None and not isinstance(changed, Mapping):
        logger.error("redact returned %s, not a message dict: text withheld", type(changed))
        return text_message(str(message.get("role", "unknown")), _REDACTION_FAILED)
    return None if changed is None else dict(changed)


def _bounded(policy: ContentCapture, messages: list[Message | None]) -> tuple[list[Message], bool]:
    """The messages with every text cut to the limits; whether anything was cut."""
    budget = policy.max_total_chars
    cut = False
    kept: list[Message] = []
    for message in messages:
        if message is None:
            continue
        allowance = policy.max_message_chars
        parts = []
        for part in message.get("parts") or ():
            part = dict(part) if isinstance(part, Mapping) else {"type": "text", "content": part}
            for key in ("content", "arguments", "result"):
                if key not in part or part[key] is None:
                    continue
                value = part[key] if isinstance(part[key], str) else _json(part[key])
                room = min(allowance, budget)
                if len(value) > room:
                    cut = True
                    part[key] = value[:room] + TRUNCATED.format(count=len(value) - room)
                    value = value[:room]
                allowance -= len(value)
                budget -= len(value)
            parts.append(part)
        kept.append({**message, "parts": parts})
    return kept, cut


def _json(value: Any) -> Any:
    """Structured tool arguments stay structured while they fit; cut, they become text."""
    return json.dumps(value, ensure_ascii=False, default=str)


def _joined(message: Mapping[str, Any]) -> str:
    return "".join(
        str(part.get("content", ""))
        for part in message.get("parts", ())
        if part.get("type") == "text"
    )


def _openinference(prefix: str, message: Mapping[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {f"{prefix}.role": str(message.get("role", ""))}
    text = _joined(message)
    if text:
        attributes[f"{prefix}.content"] = text
    calls = [p for p in message.get("parts", ()) if p.get("type") == "tool_call"]
    for j, call in enumerate(calls):
        where = f"{prefix}.tool_calls.{j}.tool_call"
        if call.get("id"):
            attributes[f"{where}.id"] = str(call["id"])
        attributes[f"{where}.function.name"] = str(call.get("name", ""))
        arguments = call.get("arguments")
        if arguments is not None:
            attributes[f"{where}.function.arguments"] = (
                arguments if isinstance(arguments, str) else _json(arguments)
            )
    responses = [p for p in message.get("parts", ()) if p.get("type") == "tool_call_response"]
    if responses and responses[0].get("id"):
        attributes[f"{prefix}.tool_call_id"] = str(responses[0]["id"])
    if responses and not text:
        attributes[f"{prefix}.content"] = str(responses[0].get("result", ""))
    return attributes
