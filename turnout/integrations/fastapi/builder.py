"""``ServedBuilder``: the ``ApplicationBuilder`` an application factory fills in.

A served application lives in its persister, and is built from there (a worker keeps what it
built while the persister says it is current: ``cache.Applications``). The factory
describes the application once (its actions, transitions, entrypoint, the state a new one starts
with, hooks, tracker); the router sets its identifiers, its persister and ``initialize_from``.
``with_entrypoint`` and ``with_state`` are therefore recorded here rather than applied: they
become ``initialize_from``'s ``default_entrypoint`` and ``default_state``, which a plain builder
would refuse next to them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from turnout.core.builder import ApplicationBuilder
from turnout.core.errors import GraphSetupError
from turnout.core.graph import Graph, GraphBuilder
from turnout.core.state import State

__all__ = ["Factory", "ServedBuilder"]


class ServedBuilder(ApplicationBuilder[Any]):
    """The builder ``serve()`` hands its factory, already given the app id, partition key and
    persister of the request. Use it as any ``ApplicationBuilder``; do not call ``build()``,
    ``with_identifiers`` or ``initialize_from`` (the router does)::

        def factory(builder: ServedBuilder) -> ServedBuilder:
            return builder.with_graph(graph).with_entrypoint("ask").with_state(history=[])

    Attributes:
        app_id: the application the request is about (``None`` while ``serve()`` reads the
            graph's shape once at start-up).
        partition_key: its partition (the authenticated user, say).
    """

    def __init__(
        self, *, app_id: str | None = None, partition_key: str | None = None, persister: Any = None
    ) -> None:
        super().__init__()
        self.app_id = app_id
        self.partition_key = partition_key
        self.persister = persister
        self._served_entrypoint: str | None = None
        self._served_state: dict[str, Any] = {}
        self._served_graph = GraphBuilder()
        if app_id is not None:
            self.with_identifiers(app_id=app_id, partition_key=partition_key)
        if persister is not None:
            self.with_state_persister(persister)

    def with_actions(self, *actions: Any, **named_actions: Any) -> ServedBuilder:
        self._served_graph.with_actions(*actions, **named_actions)
        super().with_actions(*actions, **named_actions)
        return self

    def with_transitions(self, *transitions: tuple[Any, ...]) -> ServedBuilder:
        self._served_graph.with_transitions(*transitions)
        super().with_transitions(*transitions)
        return self

    def with_graph(self, graph: Graph) -> ServedBuilder:
        self._served_graph.with_graph(graph)
        super().with_graph(graph)
        return self

    def with_entrypoint(self, action: str) -> ServedBuilder:
        self._served_entrypoint = action
        return self

    def with_state(self, state: Any = None, **kwargs: Any) -> ServedBuilder:
        """The state a new application starts with (merged; later values win). A pydantic model
        or a dataclass instance gives its fields."""
        if state is not None:
            self._served_state.update(_fields(state))
        self._served_state.update(kwargs)
        return self

    # -- used by the router ----------------------------------------------------------------------

    def shape(self) -> Graph:
        """The graph described so far (actions and transitions), for the request models."""
        return self._served_graph.build()

    def typed_state_schema(self) -> dict[str, Any] | None:
        """The typing system's JSON Schema of the state, when ``with_typing`` was called."""
        system = self.typing_system
        return None if system is None else system.state_json_schema()

    def finish(
        self,
        initial_state: Mapping[str, Any] | None = None,
        *,
        fork_from_app_id: str | None = None,
        fork_from_sequence_id: int | None = None,
    ) -> ServedBuilder:
        """Load the application from the persister (a new one starts at the factory's
        entrypoint, with its state updated by ``initial_state``)."""
        if self._served_entrypoint is None:
            raise GraphSetupError(
                ["the served application's factory set no entrypoint: call "
                 "builder.with_entrypoint(<action name>) in it."]
            )  # fmt: skip
        self.initialize_from(
            self.persister,
            resume_at_next_action=True,
            default_state={**self._served_state, **(initial_state or {})},
            default_entrypoint=self._served_entrypoint,
            fork_from_app_id=fork_from_app_id,
            fork_from_partition_key=self.partition_key if fork_from_app_id else None,
            fork_from_sequence_id=fork_from_sequence_id,
        )
        return self


Factory = Callable[[ServedBuilder], "ApplicationBuilder[Any] | None"]
"""What ``serve()`` takes: fills in the ``ServedBuilder`` it is given (and returns it, or
``None``)."""


def _fields(state: Any) -> dict[str, Any]:
    if isinstance(state, State):
        return dict(state.get_all())
    if isinstance(state, Mapping):
        return dict(state)
    dump = getattr(state, "model_dump", None)
    if callable(dump):
        return dict(dump())
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        return {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}
    raise GraphSetupError(
        [f"with_state() takes a mapping, keyword values, a pydantic model or a dataclass, got "
         f"{type(state).__name__}: {state!r}."]
    )  # fmt: skip
