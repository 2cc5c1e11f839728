"""Custom codecs on typed state (``PydanticTypingSystem``): a ``register_field_serde`` key and a
``@serialize.register`` type held by a pydantic state model are saved by a SQLite persister and
the tracker through their registrations, and resume as the same objects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pydantic")

import pydantic

from turnout import ApplicationBuilder, action
from turnout.core import serde
from turnout.core._burr_serde import field_serde
from turnout.core.sqlite import SQLitePersister
from turnout.core.state import register_field_serde
from turnout.core.tracking import LocalTracker
from turnout.integrations.pydantic import PydanticTypingSystem


class Money:
    def __init__(self, cents: int) -> None:
        self.cents = cents

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Money) and other.cents == self.cents

    def __hash__(self) -> int:
        return self.cents


class Secret:
    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


class Wallet(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)

    balance: Money = Money(0)
    secret: Secret = Secret("")
    steps: int = 0


@pytest.fixture
def codecs() -> Iterator[None]:
    saved = dict(field_serde)

    @serde.serialize.register(Money)
    def _money(value: Money, **kwargs: Any) -> dict[str, Any]:
        return {serde.KEY: "test.typed.money", "cents": value.cents}

    serde.deserializer.register("test.typed.money")(lambda d, **kw: Money(d["cents"]))
    register_field_serde(
        "secret",
        lambda value, **kw: {"reversed": value.text[::-1]},
        lambda data, **kw: Secret(data["reversed"][::-1]),
    )
    yield
    field_serde.clear()
    field_serde.update(saved)
    serde.deserializer.func_map.pop("test.typed.money", None)
    serde.serialize.register(Money)(serde.serialize.dispatch(object))


@action.pydantic(reads=["balance", "steps"], writes=["balance", "secret", "steps"])
def earn(state: Wallet) -> Wallet:
    state.balance = Money(state.balance.cents + 100)
    state.secret = Secret(f"pin{state.steps}")
    state.steps += 1
    return state


def _builder() -> ApplicationBuilder:
    return (
        ApplicationBuilder()
        .with_actions(earn=earn)
        .with_transitions(("earn", "earn"))
        .with_typing(PydanticTypingSystem(Wallet))
        .with_identifiers(app_id="wallet")
    )


def test_typed_state_saves_and_resumes_through_field_serde_and_codecs(
    tmp_path: Path, codecs: None
) -> None:
    tracker = LocalTracker("typed", tmp_path / "tracking")
    with SQLitePersister(tmp_path / "state.db") as persister:
        app = (
            _builder()
            .with_state(Wallet())
            .with_entrypoint("earn")
            .with_state_persister(persister)
            .with_tracker(tracker)
            .build()
        )
        app.step()
        app.step()
        for source in (persister, tracker):
            resumed = _builder().initialize_from(source, True, {}, "earn").build()
            wallet = resumed.state.data
            assert (wallet.balance, wallet.secret, wallet.steps) == (Money(200), Secret("pin1"), 2)
    stored = (tmp_path / "state.db").read_bytes()
    assert b"1nip" in stored
    assert b"test.typed.money" in stored
