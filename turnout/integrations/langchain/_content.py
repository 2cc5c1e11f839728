"""LangChain messages and generations in the GenAI shape, for opt-in content capture."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from turnout.integrations._content import Message, content_text, text_message

__all__ = ["genai_inputs", "genai_outputs", "genai_prompts"]

# LangChain message types -> GenAI roles.
_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}
_ROLES |= {"function": "tool", "developer": "system"}


def genai_inputs(batches: Sequence[Sequence[BaseMessage]]) -> list[Message]:
    """A chat model run's messages (its first prompt: LangChain batches one per call)."""
    return [_message(m) for m in (batches[0] if batches else ())]


def genai_prompts(prompts: Sequence[str]) -> list[Message]:
    """A text-completion run's prompt(s), as user messages."""
    return [text_message("user", prompt) for prompt in prompts]


def genai_outputs(response: LLMResult) -> list[Message]:
    """One output message per generation (choice) of the run's first prompt."""
    first: Iterable[Any] = response.generations[0] if response.generations else ()
    messages = []
    for generation in first:
        info = generation.generation_info or {}
        finish = str(info.get("finish_reason") or "stop")
        if isinstance(generation, ChatGeneration):
            meta = generation.message.response_metadata or {}
            finish = str(meta.get("finish_reason") or finish)
            message = _message(generation.message)
            messages.append({**message, "finish_reason": finish})
        else:
            messages.append(text_message("assistant", generation.text, finish_reason=finish))
    return messages


def _message(message: BaseMessage) -> Message:
    role = _ROLES.get(message.type, str(getattr(message, "role", message.type)))
    text = content_text(message.content)
    if role == "tool":
        result = {"type": "tool_call_response", "result": text}
        return {"role": role, "parts": [{**result, "id": getattr(message, "tool_call_id", None)}]}
    parts: list[dict[str, Any]] = [{"type": "text", "content": text}] if text else []
    for call in getattr(message, "tool_calls", None) or ():
        parts.append(
            {
                "type": "tool_call",
                "id": call.get("id"),
                "name": call.get("name"),
                "arguments": call.get("args"),
            }
        )
    return {"role": role, "parts": parts}
