"""``ApplicationContext``: who is running, passed to actions that ask for ``__context``."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ApplicationContext"]

# Holds either a context or a zero-argument function building one: the engine stores the cheap
# function on every step and the dataclass is only built when someone asks for it.
_CURRENT: contextvars.ContextVar[ApplicationContext | Callable[[], ApplicationContext] | None] = (
    contextvars.ContextVar("turnout_application_context", default=None)
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
        current = _CURRENT.get()
        if current is None or isinstance(current, ApplicationContext):
            return current
        return current()


Token = contextvars.Token[ApplicationContext | Callable[[], ApplicationContext] | None]


def enter(context: ApplicationContext | Callable[[], ApplicationContext]) -> Token:
    return _CURRENT.set(context)


def leave(token: Token) -> None:
    _CURRENT.reset(token)
