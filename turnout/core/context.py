"""``ApplicationContext``: who is running, passed to actions that ask for ``__context``."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

__all__ = ["ApplicationContext"]

_CURRENT: contextvars.ContextVar[ApplicationContext | None] = contextvars.ContextVar(
    "turnout_application_context", default=None
)


@dataclass(frozen=True, kw_only=True, slots=True)
class ApplicationContext:
    """Identity of the application and of the step being run.

    An action receives it by declaring a ``__context`` parameter::

        @action(reads=[], writes=["seen"])
        def remember(state: State, __context: ApplicationContext) -> State:
            return state.update(seen=__context.app_id)

    Inside a step, ``ApplicationContext.get()`` returns it too.
    """

    app_id: str
    partition_key: str | None
    sequence_id: int | None
    action_name: str | None

    @staticmethod
    def get() -> ApplicationContext | None:
        """The context of the step running in this thread or task, or ``None`` outside a step."""
        return _CURRENT.get()


def enter(context: ApplicationContext) -> contextvars.Token[ApplicationContext | None]:
    return _CURRENT.set(context)


def leave(token: contextvars.Token[ApplicationContext | None]) -> None:
    _CURRENT.reset(token)
