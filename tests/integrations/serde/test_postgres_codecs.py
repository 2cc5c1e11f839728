"""Custom codecs against a real PostgreSQL server: a ``register_field_serde`` key, a
``@serialize.register`` type, a pandas DataFrame and a numpy array saved by
``PostgreSQLPersister`` and resumed with ``initialize_from``. Skips when the server is not
reachable, except under ``CI=true``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("psycopg")
pd = pytest.importorskip("pandas")
np = pytest.importorskip("numpy")

from tests.integrations.test_postgres import DSN, prefix, server  # noqa: E402
from turnout import ApplicationBuilder, State, action  # noqa: E402
from turnout.core import serde  # noqa: E402
from turnout.core._burr_serde import field_serde  # noqa: E402
from turnout.core.state import register_field_serde  # noqa: E402
from turnout.integrations.postgres import PostgreSQLPersister  # noqa: E402

__all__ = ["prefix", "server"]  # fixtures, shared with test_postgres


class Money:
    def __init__(self, cents: int) -> None:
        self.cents = cents

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Money) and other.cents == self.cents

    def __hash__(self) -> int:
        return self.cents


@pytest.fixture
def codecs() -> Iterator[None]:
    saved = dict(field_serde)

    @serde.serialize.register(Money)
    def _money(value: Money, **kwargs: Any) -> dict[str, Any]:
        return {serde.KEY: "test.pg.money", "cents": value.cents}

    serde.deserializer.register("test.pg.money")(lambda d, **kw: Money(d["cents"]))
    register_field_serde(
        "codes", lambda v, **kw: {"joined": ",".join(v)}, lambda d, **kw: d["joined"].split(",")
    )
    yield
    field_serde.clear()
    field_serde.update(saved)
    serde.deserializer.func_map.pop("test.pg.money", None)
    serde.serialize.register(Money)(serde.serialize.dispatch(object))


@action(reads=["n"], writes=["n", "price", "codes", "frame", "vector"])
def tick(state: State) -> State:
    n = state["n"] + 1
    return state.update(
        n=n,
        price=Money(n * 100),
        frame=pd.DataFrame({"step": range(n), "label": [f"s{i}" for i in range(n)]}),
        vector=np.arange(n, dtype="float32"),
    ).append(codes=f"c{n}")


def _builder() -> ApplicationBuilder:
    return (
        ApplicationBuilder()
        .with_actions(tick)
        .with_transitions(("tick", "tick"))
        .with_identifiers(app_id="codecs")
    )


def test_postgres_saves_and_resumes_custom_codecs_frames_and_arrays(
    prefix: str, codecs: None
) -> None:
    with PostgreSQLPersister(DSN, prefix) as persister:
        app = (
            _builder()
            .with_state(n=0, codes=[])
            .with_entrypoint("tick")
            .with_state_persister(persister)
            .build()
        )
        app.step()
        app.step()
    with PostgreSQLPersister(DSN, prefix) as persister:
        state = _builder().initialize_from(persister, True, {}, "tick").build().state
    assert state["price"] == Money(200)
    assert state["codes"] == ["c1", "c2"]
    pd.testing.assert_frame_equal(
        state["frame"], pd.DataFrame({"step": range(2), "label": ["s0", "s1"]})
    )
    np.testing.assert_array_equal(state["vector"], np.arange(2, dtype="float32"))
    assert state["vector"].dtype == np.float32
