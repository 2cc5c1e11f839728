"""Ready-made actions under Burr's module name (``burr.core.implementations``)."""

from __future__ import annotations

from typing import Any

from turnout.core.action import Action
from turnout.core.errors import ActionDefinitionError
from turnout.core.state import State

__all__ = ["Placeholder"]


class Placeholder(Action):
    """An action with declared ``reads``/``writes`` and no body: sketch a graph with
    placeholders, build and visualise it, then replace each with a real action. Running one
    raises ``ActionDefinitionError``."""

    def __init__(self, reads: list[str], writes: list[str]) -> None:
        super().__init__()
        self._reads = list(reads)
        self._writes = list(writes)

    @property
    def reads(self) -> list[str]:
        return self._reads

    @property
    def writes(self) -> list[str]:
        return self._writes

    def run(self, state: State, **run_kwargs: Any) -> dict[str, Any]:
        raise ActionDefinitionError(
            f"{self!r} is a Placeholder and cannot run: replace it with a real action, e.g. "
            f"with_actions({self._unnamed_label()}=my_action)."
        )

    def update(self, result: dict[str, Any], state: State) -> State:
        raise ActionDefinitionError(
            f"{self!r} is a Placeholder and cannot update the state: replace it with a real action."
        )

    def _unnamed_label(self) -> str:
        return getattr(self, "_name", None) or "placeholder"
