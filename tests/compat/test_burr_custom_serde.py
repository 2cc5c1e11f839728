"""The pattern of Burr's ``examples/custom-serde`` on turnout, with ``burr`` replaced by
``turnout`` in the imports: a class with its own ``@serde.serialize.register`` /
``@serde.deserializer.register`` pair inside a dict in state, a field with
``state.register_field_serde`` holding a LangChain document, a pydantic model and a LangChain
document in state, a local tracker the application is initialised from, and
``State.serialize()``/``State.deserialize()`` giving back an equal state. Beyond the example, the
state is also persisted (SQLite) and both the tracker and the persister resume it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pydantic = pytest.importorskip("pydantic")
documents = pytest.importorskip("langchain_core.documents")

from turnout import core  # noqa: E402
from turnout.core import State, action, expr, serde, state  # noqa: E402
from turnout.core._burr_serde import field_serde  # noqa: E402
from turnout.core.sqlite import SQLitePersister  # noqa: E402
from turnout.tracking import client as tracking_client  # noqa: E402


class Tagged:
    """A class only its own codec knows."""

    def __init__(self, label: str) -> None:
        self.label = label

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tagged) and other.label == self.label

    def __hash__(self) -> int:
        return hash(self.label)


class Flags(pydantic.BaseModel):
    count: int = 0
    on: bool = False


def _tagged_out(value: Tagged, **kwargs: Any) -> dict[str, Any]:
    return {serde.KEY: "compat.Tagged", "text": f"<{value.label}>"}


def _tagged_in(value: dict[str, Any], **kwargs: Any) -> Tagged:
    return Tagged(value["text"][1:-1])


def _note_out(value: Any, **kwargs: Any) -> dict[str, Any]:
    return {"text": f"note:{value.page_content}"}


def _note_in(value: dict[str, Any], **kwargs: Any) -> Any:
    return documents.Document(page_content=value["text"].removeprefix("note:"))


@pytest.fixture
def registrations() -> Iterator[None]:
    saved = dict(field_serde)
    serde.serialize.register(Tagged)(_tagged_out)
    serde.deserializer.register("compat.Tagged")(_tagged_in)
    state.register_field_serde("note", _note_out, _note_in)
    yield
    field_serde.clear()
    field_serde.update(saved)
    serde.deserializer.func_map.pop("compat.Tagged", None)
    serde.serialize.register(Tagged)(serde.serialize.dispatch(object))


@action(reads=[], writes=["record"])
def collect(state: State, text: str) -> tuple[dict[str, Any], State]:
    record = {"n": 1, "tag": Tagged("first"), "ok": True, "none": None, "text": text}
    return {"record": record}, state.update(record=record)


@action(reads=["record"], writes=["flags"])
def summarise(state: State) -> tuple[dict[str, Any], State]:
    flags = Flags(count=state["record"]["n"], on=state["record"]["ok"])
    return {"flags": flags}, state.update(flags=flags)


@action(reads=["flags"], writes=["doc"])
def document(state: State) -> tuple[dict[str, Any], State]:
    doc = documents.Document(page_content=f"count={state['flags'].count}")
    return {"doc": doc}, state.update(doc=doc)


@action(reads=["doc"], writes=[])
def finish(state: State) -> tuple[dict[str, Any], State]:
    return {"output": state["doc"].page_content}, state


def _build(tmp_path: Path, app_id: str, persister: SQLitePersister | None = None) -> Any:
    tracker = tracking_client.LocalTrackingClient("custom-serde", storage_dir=tmp_path / "t")
    builder = (
        core.ApplicationBuilder()
        .with_actions(collect, summarise, document, finish)
        .with_transitions(
            ("collect", "finish", expr("record['n'] == 0")),
            ("collect", "summarise"),
            ("summarise", "document"),
            ("document", "finish"),
        )
        .with_identifiers(partition_key="client-1", app_id=app_id)
        .initialize_from(
            tracker,
            resume_at_next_action=True,
            default_state={"note": documents.Document(page_content="kept by its field serde")},
            default_entrypoint="collect",
        )
        .with_tracker(tracker)
    )
    if persister is not None:
        builder = builder.with_state_persister(persister)
    return builder.build()


def test_the_example_pattern_runs_and_state_serialize_round_trips(
    tmp_path: Path, registrations: None
) -> None:
    app = _build(tmp_path, "run-1")
    _, result, final = app.run(halt_after=["finish"], inputs={"text": "hello"})
    assert result == {"output": "count=1"}
    data = final.serialize()
    assert data["record"]["tag"] == {serde.KEY: "compat.Tagged", "text": "<first>"}
    assert data["note"] == {"text": "note:kept by its field serde"}
    assert State.deserialize(data).get_all() == final.get_all()


def test_the_tracker_and_a_persister_resume_every_custom_value(
    tmp_path: Path, registrations: None
) -> None:
    with SQLitePersister(tmp_path / "state.db") as persister:
        app = _build(tmp_path, "run-2", persister)
        app.run(halt_after=["document"], inputs={"text": "hello"})
        expected = app.state.get_all()
        resumed = _build(tmp_path, "run-2")  # initialize_from the tracker, as the example does
        assert resumed.state.get_all() == expected
        assert resumed.get_next_action().name == "finish"
        loaded = persister.load("client-1", "run-2")
    assert loaded is not None
    assert loaded["state"].get_all() == expected
    assert isinstance(expected["note"], documents.Document)
    assert expected["record"]["tag"] == Tagged("first")
