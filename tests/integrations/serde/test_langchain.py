"""Burr's LangChain serde plugin on turnout: messages and documents in Burr's keys and forms,
loaded through turnout's LangChain codecs, never through ``langchain_core.load``."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from langchain_core.documents import Document
from langchain_core.load import dumpd
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    ToolMessage,
    message_to_dict,
)

from turnout import State
from turnout.core.errors import SerdeError
from turnout.core.serde import KEY


def test_messages_round_trip_with_tool_calls_under_burrs_key() -> None:
    messages = [
        HumanMessage("weather?"),
        AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Oslo"}, "id": "c1"}]),
        ToolMessage("rain", tool_call_id="c1"),
    ]
    data = State({"messages": messages}).serialize()
    assert [m[KEY] for m in data["messages"]] == ["lc_message"] * 3
    json.dumps(data)
    assert State.deserialize(data)["messages"] == messages


def test_a_document_round_trips_under_burrs_key() -> None:
    document = Document(page_content="text", metadata={"source": "a.txt"}, id="d1")
    data = State({"doc": document}).serialize()
    assert data["doc"][KEY] == "lc_document"
    assert State.deserialize(data)["doc"] == document


def test_data_in_burrs_forms_loads() -> None:
    """What Burr's plugin writes: ``message_to_dict`` and ``dumpd`` plus the key."""
    message = {**message_to_dict(AIMessage("hi")), KEY: "lc_message"}
    document = {**dumpd(Document(page_content="p")), KEY: "lc_document"}
    hacks = [
        {KEY: "lc_message_hack", "value": "v", "type": "custom"},
        {KEY: "lc_document_hack", "value": "only text"},
    ]
    loaded = State.deserialize({"m": message, "d": document, "h": hacks})
    assert loaded["m"] == AIMessage("hi")
    assert loaded["d"] == Document(page_content="p")
    assert isinstance(loaded["h"][0], BaseMessage)
    assert loaded["h"][0].type == "custom"
    assert loaded["h"][1] == Document(page_content="only text")


@pytest.mark.parametrize(
    "stored",
    [
        {"lc": 1, "type": "constructor", "id": ["langchain", "llms", "openai", "OpenAI"],
         "kwargs": {"page_content": "x"}},
        {"lc": 1, "type": "secret", "id": ["OPENAI_API_KEY"]},
        {"lc": 1, "type": "constructor", "id": ["langchain", "schema", "document", "Document"],
         "kwargs": {"page_content": 3}},
    ],
    ids=["another-class", "a-secret", "bad-fields"],
)  # fmt: skip
def test_a_stored_document_naming_anything_but_document_is_refused(stored: Any) -> None:
    with pytest.raises(SerdeError, match="Failed to deserialize state field 'd'"):
        State.deserialize({"d": {**stored, KEY: "lc_document"}})


def test_an_unknown_message_type_is_refused() -> None:
    with pytest.raises(SerdeError, match="Failed to deserialize state field 'm'"):
        State.deserialize({"m": {KEY: "lc_message", "type": "os.system", "data": {}}})
