"""JSON Schemas of pydantic-typed state and of inputs declared as a pydantic model (the
stdlib-only cases are in tests/core/test_schemas.py)."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("jsonschema")
pydantic = pytest.importorskip("pydantic")

from tests.core.test_schemas import Multiply, _app, _valid  # noqa: E402
from turnout.core.schemas import DIALECT  # noqa: E402


def test_pydantic_state_schema_is_the_model_json_schema() -> None:
    class Model(pydantic.BaseModel):
        count: int = 0

    schema = _app(Model).graph.state_schema()
    assert schema == {"$schema": DIALECT, **Model.model_json_schema()}
    assert _valid(schema, {"count": 3})
    assert not _valid(schema, {"count": "x"})


def test_an_input_schema_override_returning_a_model_is_turned_into_json_schema() -> None:
    class Inputs(pydantic.BaseModel):
        factor: int

    class Declared(Multiply):
        def input_schema(self) -> Any:  # Burr's meaning: a type to validate inputs with
            return Inputs

    assert Declared().input_schema() is Inputs
    assert Declared().inputs_json_schema() == {"$schema": DIALECT, **Inputs.model_json_schema()}
