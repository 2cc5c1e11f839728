"""Burr's ``Hamilton.set_driver``: one default driver for every ``Hamilton`` action."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("hamilton")

from hamilton import driver  # type: ignore[import-untyped]

from tests.compat.test_burr_examples_hamilton import dag_module
from turnout.core.application import ApplicationBuilder
from turnout.core.errors import ActionDefinitionError
from turnout.integrations.hamilton import Hamilton, HamiltonTracer, from_state, update_state

DAG = """
def doubled(number: int) -> int:
    return number * 2
"""


@pytest.fixture
def default_driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A driver built from a module on disk, set as the default; cleared afterwards."""
    module = dag_module(tmp_path, monkeypatch, "turnout_burr_names_dag", DAG)
    built = driver.Builder().with_modules(module).with_adapters(HamiltonTracer()).build()
    Hamilton.set_driver(built)
    yield built
    Hamilton.set_driver(None)


def test_a_hamilton_action_without_a_driver_uses_the_default_one(default_driver: Any) -> None:
    act = Hamilton(inputs={"number": from_state("n")}, outputs={"doubled": update_state("n")})
    app = (
        ApplicationBuilder()
        .with_actions(double=act)
        .with_transitions()
        .with_state(n=21)
        .with_entrypoint("double")
        .build()
    )
    app.step()
    assert app.state["n"] == 42


def test_without_a_default_driver_the_error_names_set_driver() -> None:
    with pytest.raises(TypeError, match=r"Hamilton\.set_driver"):
        Hamilton(inputs={"number": from_state("n")}, outputs={"doubled": update_state("n")})


def test_set_driver_refuses_what_is_not_a_driver() -> None:
    with pytest.raises(ActionDefinitionError, match=r"not a driver.*hamilton\.driver\.Driver"):
        Hamilton.set_driver("not a driver")
