"""Burr's LangChain serde plugin: messages and documents in ``State.serialize()``'s format.

Stored forms and keys are Burr's, so data either wrote loads in the other:

* a message: LangChain's message dict (``{"type": "ai", "data": {...}}``, tool calls, ids and
  usage kept) with ``"__burr_serde__": "lc_message"`` (``"lc_message_hack"``: content and type
  only, for a message LangChain cannot serialise);
* a document: LangChain's ``dumpd`` form with ``"lc_document"`` (``"lc_document_hack"``: the
  page content only; ``"lc_document_with_state"``: a ``langchain_community`` document with its
  embeddings state).

**Loading calls nothing the data names.** Burr loads documents with ``langchain_core.load``,
which builds whatever class the payload's ``id`` names; here a stored document must name
LangChain's ``Document`` and is built from its fields, and messages go through turnout's
LangChain codecs (``messages_from_dict``, which maps a fixed set of message types).

Persisters and trackers keep storing LangChain values with turnout's own codecs
(``turnout.integrations.langchain``, imported with this module). turnout imports this module by
itself the first time it meets a LangChain value or one of these keys. Needs
``pip install "turnout[langchain]"``.
"""

from __future__ import annotations

from typing import Any

from turnout.integrations._guard import missing_extra

try:
    from langchain_core import documents as lc_documents
    from langchain_core import messages as lc_messages
    from langchain_core.load import dumpd
except ImportError as _error:  # pragma: no cover - exercised in a subprocess
    raise missing_extra(
        "turnout.integrations.serde.langchain", 'pip install "turnout[langchain]"', _error
    ) from _error

from turnout.core.errors import SerdeError
from turnout.core.serde import KEY, deserialize, deserializer, serialize
from turnout.core.serde import state_serialize_only as _state_only
from turnout.integrations.langchain._serde import (
    _decode_document,
    _decode_message,
    _encode_message,
)

__all__ = [
    "deserialize_lc_document",
    "deserialize_lc_document_hack",
    "deserialize_lc_document_with_state",
    "deserialize_lc_message",
    "deserialize_lc_message_hack",
    "serialize_lc_docs",
    "serialize_lc_messages",
]

# LangChain's serialisation ids of Document (old and new module paths): the only class a stored
# "lc_document" may name.
_DOCUMENT_IDS = (
    ["langchain", "schema", "document", "Document"],
    ["langchain_core", "documents", "base", "Document"],
)


@_state_only
@serialize.register(lc_documents.Document)
def serialize_lc_docs(value: lc_documents.Document, **kwargs: Any) -> dict[str, Any]:
    """A document in LangChain's ``dumpd`` form (Burr's ``lc_document``)."""
    if value.is_lc_serializable():
        data: dict[str, Any] = dumpd(value)
        data[KEY] = "lc_document"
        return data
    to_document = getattr(value, "to_document", None)
    if callable(to_document):
        document = to_document()
        state = getattr(value, "state", None)
        if state is None:  # loses what the subclass adds, as on Burr
            return serialize_lc_docs(document, **kwargs)
        return {
            "doc": serialize_lc_docs(document, **kwargs),
            "state": serialize(state, **kwargs),
            KEY: "lc_document_with_state",
        }
    return {"value": value.page_content, KEY: "lc_document_hack"}


@deserializer.register("lc_document")
def deserialize_lc_document(value: Any, **kwargs: Any) -> lc_documents.Document:
    """The ``Document`` a stored ``dumpd`` form describes; any other class is refused."""
    if (
        not isinstance(value, dict)
        or value.get("type") != "constructor"
        or value.get("id") not in _DOCUMENT_IDS
        or not isinstance(value.get("kwargs"), dict)
    ):
        shown = value.get("id") if isinstance(value, dict) else type(value).__name__
        raise SerdeError(
            "", None, f"a stored 'lc_document' must be LangChain's serialised Document "
            f"(id {_DOCUMENT_IDS[0]}), found {shown!r}: turnout builds no other class from "
            f"stored data",
        )  # fmt: skip
    fields = value["kwargs"]
    if not isinstance(fields.get("page_content"), str):
        raise SerdeError("", None, "a stored 'lc_document' needs a string 'page_content'")
    return _decode_document(fields)


@deserializer.register("lc_document_with_state")
def deserialize_lc_document_with_state(
    value: dict[str, Any], **kwargs: Any
) -> lc_documents.Document:
    """LangChain community's document with embeddings state (needs ``langchain-community``)."""
    try:
        from langchain_community.document_transformers.embeddings_redundant_filter import (  # type: ignore[import-not-found,unused-ignore]
            _DocumentWithState,
        )
    except ImportError as exc:
        raise SerdeError(
            "", None, "a stored 'lc_document_with_state' is langchain_community's document "
            "with state; install langchain-community to load it",
        ) from exc  # fmt: skip
    document = deserialize_lc_document(value.get("doc"), **kwargs)
    state = deserialize(value.get("state"), **kwargs)
    built: lc_documents.Document = _DocumentWithState(
        page_content=document.page_content, metadata=document.metadata, state=state
    )
    return built


@deserializer.register("lc_document_hack")
def deserialize_lc_document_hack(value: dict[str, Any], **kwargs: Any) -> lc_documents.Document:
    """A document stored as its page content only."""
    content = value.get("value") if isinstance(value, dict) else None
    if not isinstance(content, str):
        raise SerdeError("", None, "a stored 'lc_document_hack' needs a string 'value'")
    return lc_documents.Document(page_content=content)


@_state_only
@serialize.register(lc_messages.BaseMessage)
def serialize_lc_messages(value: lc_messages.BaseMessage, **kwargs: Any) -> dict[str, Any]:
    """A message as LangChain's message dict (Burr's ``lc_message``)."""
    if value.is_lc_serializable():
        data = _encode_message(value)
        data[KEY] = "lc_message"
        return data
    return {"value": value.content, "type": value.type, KEY: "lc_message_hack"}


@deserializer.register("lc_message")
def deserialize_lc_message(value: dict[str, Any], **kwargs: Any) -> lc_messages.BaseMessage:
    """The message a stored message dict describes (one of LangChain's message types)."""
    if not isinstance(value, dict):
        raise SerdeError("", None, f"a stored 'lc_message' must be a dict, not {type(value)}")
    return _decode_message({k: v for k, v in value.items() if k != KEY})


@deserializer.register("lc_message_hack")
def deserialize_lc_message_hack(value: dict[str, Any], **kwargs: Any) -> lc_messages.BaseMessage:
    """A message stored as its content and type only."""
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise SerdeError("", None, "a stored 'lc_message_hack' needs a string 'type'")
    return lc_messages.BaseMessage(content=value.get("value", ""), type=value["type"])
