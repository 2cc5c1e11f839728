"""Chat-completions messages in the GenAI shape, for opt-in content capture on ``chat`` spans."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from turnout.integrations._content import Message, content_text

__all__ = ["genai_messages", "genai_reply"]


def genai_messages(messages: Sequence[Mapping[str, Any]]) -> list[Message]:
    """The request's messages (chat-completions shape, system first) as GenAI messages."""
    converted: list[Message] = []
    for message in messages:
        role = str(message.get("role", "user"))
        parts: list[dict[str, Any]] = []
        if role == "tool":
            parts.append(
                {
                    "type": "tool_call_response",
                    "id": message.get("tool_call_id"),
                    "result": content_text(message.get("content")),
                }
            )
        else:
            text = content_text(message.get("content"))
            if text:
                parts.append({"type": "text", "content": text})
            parts.extend(_calls(message.get("tool_calls") or ()))
        converted.append({"role": role, "parts": parts})
    return converted


def genai_reply(
    content: str, tool_calls: Sequence[Mapping[str, Any]], finish_reason: str | None
) -> Message:
    """The model's answer as one GenAI output message."""
    parts: list[dict[str, Any]] = [{"type": "text", "content": content}] if content else []
    parts.extend(_calls(tool_calls))
    return {"role": "assistant", "parts": parts, "finish_reason": finish_reason or "stop"}


def _calls(calls: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    parts = []
    for call in calls:
        function = call.get("function") or {}
        parts.append(
            {
                "type": "tool_call",
                "id": call.get("id"),
                "name": function.get("name"),
                "arguments": _arguments(function.get("arguments")),
            }
        )
    return parts


def _arguments(arguments: Any) -> Any:
    """Tool arguments as the model sent them: a JSON object decoded, anything else as is."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments
