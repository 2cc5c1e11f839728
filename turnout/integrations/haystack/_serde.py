"""Haystack documents and chat messages as JSON in persisted and tracked state.

Both are stored in Haystack's own dictionary form (``to_dict``) and loaded with ``from_dict``,
which builds Haystack's data classes only (content, metadata, scores, tool calls), never a
class the stored data names.
"""

from __future__ import annotations

from typing import Any

from haystack.dataclasses import ChatMessage, Document

from turnout.core.serde import DEFAULT_SERDE, Serde

__all__ = ["register_serde"]


def _encode(value: Any) -> Any:
    return value.to_dict()


def register_serde(serde: Serde = DEFAULT_SERDE) -> None:
    """Teach ``serde`` Haystack's ``Document`` and ``ChatMessage``.

    Importing ``turnout.integrations.haystack`` already does this for ``DEFAULT_SERDE``, which
    persisters and trackers use unless given another; call it for a ``Serde`` of your own.
    """
    serde.register(Document, encode=_encode, decode=Document.from_dict, name="haystack:document")
    serde.register(
        ChatMessage, encode=_encode, decode=ChatMessage.from_dict, name="haystack:chat_message"
    )
