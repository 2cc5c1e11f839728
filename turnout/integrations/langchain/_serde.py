"""LangChain messages and documents as JSON in persisted and tracked state.

Messages are stored in LangChain's own stable dictionary form (``messages_to_dict``:
``{"type": "ai", "data": {...}}``) and loaded back with ``messages_from_dict``, so tool calls,
ids, names, usage metadata and chunk types survive; documents are stored as their fields. No
pickle and no ``langchain_core.load`` (whose loader is beta and needs an allow-list).
"""

from __future__ import annotations

from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import BaseMessage, messages_from_dict, messages_to_dict

from turnout.core.serde import DEFAULT_SERDE, Serde

__all__ = ["MESSAGE_SERDE_NAME", "register_serde"]

MESSAGE_SERDE_NAME = "langchain:message"
DOCUMENT_SERDE_NAME = "langchain:document"


def _encode_message(message: BaseMessage) -> dict[str, Any]:
    return messages_to_dict([message])[0]


def _decode_message(data: dict[str, Any]) -> BaseMessage:
    return messages_from_dict([data])[0]


def _encode_document(document: Document) -> dict[str, Any]:
    return {"page_content": document.page_content, "metadata": document.metadata, "id": document.id}


def _decode_document(data: dict[str, Any]) -> Document:
    return Document(
        page_content=data["page_content"], metadata=data.get("metadata") or {}, id=data.get("id")
    )


def register_serde(serde: Serde = DEFAULT_SERDE) -> None:
    """Teach ``serde`` LangChain messages (every ``BaseMessage`` subclass) and ``Document``.

    Importing ``turnout.integrations.langchain`` already does this for ``DEFAULT_SERDE``, which
    persisters and trackers use unless given another; call it for a ``Serde`` of your own.
    """
    serde.register(
        BaseMessage, encode=_encode_message, decode=_decode_message, name=MESSAGE_SERDE_NAME
    )
    serde.register(
        Document, encode=_encode_document, decode=_decode_document, name=DOCUMENT_SERDE_NAME
    )
