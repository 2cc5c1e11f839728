"""LlamaIndex objects as plain data for state, and their JSON serde.

Actions store responses and nodes as plain dicts (``response_to_dict``, ``node_to_dict``), which
need no serde at all. Values a user keeps as LlamaIndex objects -- ``ChatMessage`` chat history,
nodes, ``NodeWithScore`` -- are registered with turnout's serde by ``register_serde`` (called on
``DEFAULT_SERDE`` when this adapter is imported), so they persist and track as JSON, not pickles.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.schema import BaseNode, Document, NodeWithScore, QueryBundle
from llama_index.core.storage.docstore.utils import json_to_doc
from pydantic import BaseModel
from pydantic_core import PydanticSerializationError

from turnout.core.serde import DEFAULT_SERDE, Serde

__all__ = [
    "node_to_dict",
    "register_serde",
    "response_to_dict",
    "to_chat_message",
    "to_document",
    "to_output",
]


def node_to_dict(node: NodeWithScore | BaseNode) -> dict[str, Any]:
    """``{"text", "score", "id", "metadata"}`` for a node (``score`` is ``None`` for a bare node).

    Args:
        node: a ``NodeWithScore`` (from a retriever or a response) or any ``BaseNode``.
    """
    if isinstance(node, NodeWithScore):
        inner, score = node.node, node.score
    else:
        inner, score = node, None
    return {
        "text": inner.get_content(),
        "score": score,
        "id": inner.node_id,
        "metadata": dict(inner.metadata),
    }


def response_to_dict(response: Any) -> dict[str, Any]:
    """``{"response": text, "source_nodes": [node_to_dict(...), ...]}`` for a query or chat
    response (``Response``, ``AgentChatResponse``, or a streaming one already consumed)."""
    text = getattr(response, "response", None)
    if text is None:
        text = getattr(response, "response_txt", None)
    sources = getattr(response, "source_nodes", None) or []
    return {
        "response": "" if text is None else str(text),
        "source_nodes": [node_to_dict(node) for node in sources],
    }


def to_output(value: Any) -> Any:
    """``value`` made plain data: LlamaIndex responses and nodes, chat messages
    (``{"role", "content"}``), an agent's ``AgentOutput`` (``{"response", "agent",
    "tool_calls", "structured_response"}``) and other pydantic models (their JSON fields),
    also inside lists and dicts."""
    if isinstance(value, NodeWithScore | BaseNode):
        return node_to_dict(value)
    if isinstance(value, ChatMessage):
        return {"role": value.role.value, "content": value.content}
    if hasattr(value, "source_nodes") and hasattr(value, "response"):
        return response_to_dict(value)
    if isinstance(value, BaseModel) and hasattr(value, "current_agent_name"):
        return _agent_output(value)
    if isinstance(value, BaseModel):
        try:
            return value.model_dump(mode="json")
        except (PydanticSerializationError, TypeError, ValueError):
            return value
    if isinstance(value, Mapping):
        return {key: to_output(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_output(item) for item in value]
    return value


def _agent_output(value: Any) -> dict[str, Any]:
    """An agent's ``AgentOutput`` as plain data."""
    reply = getattr(value, "response", None)
    calls = [
        {
            "tool_name": getattr(call, "tool_name", None),
            "tool_kwargs": to_output(getattr(call, "tool_kwargs", None)),
            "tool_id": getattr(call, "tool_id", None),
        }
        for call in getattr(value, "tool_calls", None) or []
    ]
    return {
        "response": reply.content if isinstance(reply, ChatMessage) else to_output(reply),
        "agent": getattr(value, "current_agent_name", None),
        "tool_calls": calls,
        "structured_response": to_output(getattr(value, "structured_response", None)),
    }


def to_chat_message(value: Any, *, owner: str = "chat history") -> ChatMessage:
    """A ``ChatMessage`` from a ``ChatMessage`` or a ``{"role": ..., "content": ...}`` dict."""
    if isinstance(value, ChatMessage):
        return value
    if isinstance(value, Mapping) and "role" in value:
        return ChatMessage(role=MessageRole(value["role"]), content=value.get("content"))
    raise TypeError(
        f"{owner}: {value!r} is not a chat message; keep ChatMessage objects or "
        f'{{"role": "user", "content": "..."}} dicts in the history list'
    )


def to_document(value: Any, *, owner: str) -> Document | BaseNode:
    """A ``Document`` from a node, a string or a ``{"text", "metadata", "id"}`` dict."""
    if isinstance(value, BaseNode):
        return value
    if isinstance(value, str):
        return Document(text=value)
    if isinstance(value, Mapping) and isinstance(value.get("text"), str):
        extra = {"id_": str(value["id"])} if value.get("id") is not None else {}
        return Document(text=value["text"], metadata=dict(value.get("metadata") or {}), **extra)
    raise TypeError(
        f"{owner}: the document {value!r} is not understood; give Document objects, strings, "
        f'or {{"text": ..., "metadata": {{...}}}} dicts'
    )


def to_query(value: Any, *, owner: str) -> str | QueryBundle:
    """The query string (or ``QueryBundle``) an engine or retriever receives."""
    if isinstance(value, str | QueryBundle):
        return value
    raise TypeError(
        f"{owner}: the input is {value!r} ({type(value).__name__}); a query must be a str or a "
        f"QueryBundle -- point input= at the state key holding the question"
    )


def _encode_message(message: ChatMessage) -> Any:
    return message.model_dump(mode="json")


def _encode_node(node: BaseNode) -> Any:
    # to_json, not to_dict: the dict holds enums and other values JSON has no form for.
    kind: Any = node.get_type()  # an ObjectType (a str enum) though typed as str
    return {"type": str(getattr(kind, "value", kind)), "data": json.loads(node.to_json())}


def _decode_node(raw: Any) -> BaseNode:
    return json_to_doc({"__type__": raw["type"], "__data__": raw["data"]})


def _encode_scored(node: NodeWithScore) -> Any:
    return {"node": _encode_node(node.node), "score": node.score}


def _decode_scored(raw: Any) -> NodeWithScore:
    return NodeWithScore(node=_decode_node(raw["node"]), score=raw["score"])


def register_serde(serde: Serde | None = None) -> None:
    """Register ``ChatMessage``, nodes (``TextNode``, ``Document``, ...) and ``NodeWithScore``
    with ``serde`` (default: ``DEFAULT_SERDE``, done on import) so they persist as JSON.

    Args:
        serde: the registry to add the codecs to; pass your own if your persister or tracker
            was given one.
    """
    target = DEFAULT_SERDE if serde is None else serde
    target.register(
        ChatMessage,
        encode=_encode_message,
        decode=ChatMessage.model_validate,
        name="llamaindex:ChatMessage",
    )
    target.register(BaseNode, encode=_encode_node, decode=_decode_node, name="llamaindex:Node")
    target.register(
        NodeWithScore,
        encode=_encode_scored,
        decode=_decode_scored,
        name="llamaindex:NodeWithScore",
    )
