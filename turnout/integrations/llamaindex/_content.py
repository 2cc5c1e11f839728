"""LlamaIndex chat messages and responses in the GenAI shape, for opt-in content capture."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from turnout.integrations._content import Message, text_message

__all__ = ["genai_message", "genai_messages"]

# LlamaIndex roles (MessageRole values) -> GenAI roles.
_ROLES = {"chatbot": "assistant", "model": "assistant", "function": "tool", "developer": "system"}


def genai_messages(messages: Sequence[Any]) -> list[Message]:
    """A chat call's ``ChatMessage`` list as GenAI messages."""
    return [genai_message(m) for m in messages]


def genai_message(message: Any, finish_reason: str | None = None) -> Message:
    """One ``ChatMessage`` (an output one gets ``finish_reason``)."""
    role = getattr(message, "role", "user")
    role = str(getattr(role, "value", role))
    role = _ROLES.get(role, role)
    text = getattr(message, "content", None) or ""
    extra = {} if finish_reason is None else {"finish_reason": finish_reason}
    kwargs = getattr(message, "additional_kwargs", None) or {}
    if role == "tool":
        part = {"type": "tool_call_response", "id": kwargs.get("tool_call_id"), "result": text}
        return {"role": role, "parts": [part], **extra}
    built = text_message(role, text, **extra)
    for call in kwargs.get("tool_calls") or ():
        function = _get(call, "function") or {}
        built["parts"].append(
            {
                "type": "tool_call",
                "id": _get(call, "id"),
                "name": _get(function, "name"),
                "arguments": _get(function, "arguments"),
            }
        )
    return built


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, Mapping) else getattr(value, key, None)
