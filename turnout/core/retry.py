"""Retry policies and exception transitions: what happens when an action raises.

A failed attempt is retried when the action has a ``RetryPolicy`` whose ``retry_on`` matches the
exception and attempts remain; each attempt is visible to hooks (``pre_run_step`` and
``post_run_step`` carry ``attempt`` and ``will_retry``). When no attempt is left, a transition
whose condition is ``on_exception(...)`` and matches the exception routes the run to a handler
action, with a description of the error in the state; otherwise the exception propagates::

    @action(reads=["query"], writes=["answer"], retry=RetryPolicy(max_attempts=3))
    async def ask_model(state: State) -> State: ...

    builder.with_transitions(
        ("ask_model", "apologise", on_exception(TimeoutError, ConnectionError)),
        ("ask_model", "reply"),
    )
"""

from __future__ import annotations

import random
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from turnout.core.condition import Condition
from turnout.core.errors import (
    ActionTimeoutError,
    ChildApplicationError,
    ConditionError,
    TurnoutError,
)

__all__ = ["ExceptionCondition", "RetryPolicy", "describe_exception", "on_exception"]


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """How often, and after which exceptions, an action's step is attempted again.

    Args:
        max_attempts: attempts in total, the first included (1 means no retry).
        retry_on: exception types worth retrying. turnout's own errors about a mistake in the
            action (the wrong shape returned, an undeclared write) are never retried: they
            would fail again; ``ActionTimeoutError`` (a ``TimeoutError``) and
            ``ChildApplicationError`` (children of a parallel step failed) are retried.
        initial_delay: seconds before the second attempt.
        multiplier: each later delay is the previous one times this.
        max_delay: no delay is longer than this.
        jitter: each delay is moved at random by up to this fraction of itself, so that many
            clients retrying together spread out (0 for exact delays).
    """

    max_attempts: int = 3
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    initial_delay: float = 0.5
    multiplier: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.1
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"RetryPolicy(max_attempts={self.max_attempts}) must be at least 1")
        if isinstance(self.retry_on, type):
            object.__setattr__(self, "retry_on", (self.retry_on,))
        for kind in self.retry_on:
            if not (isinstance(kind, type) and issubclass(kind, BaseException)):
                raise TypeError(f"RetryPolicy(retry_on=...) takes exception types, got {kind!r}")
        if min(self.initial_delay, self.max_delay, self.jitter) < 0 or self.multiplier < 1:
            raise ValueError(
                "RetryPolicy delays and jitter must be >= 0 and multiplier >= 1, got "
                f"initial_delay={self.initial_delay}, multiplier={self.multiplier}, "
                f"max_delay={self.max_delay}, jitter={self.jitter}"
            )

    def should_retry(self, exception: BaseException, attempt: int) -> bool:
        """Whether attempt number ``attempt`` (from 1), which raised ``exception``, gets another."""
        mistake = isinstance(exception, TurnoutError) and not isinstance(
            exception, (ActionTimeoutError, ChildApplicationError)
        )
        return attempt < self.max_attempts and isinstance(exception, self.retry_on) and not mistake

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (from 1)."""
        try:
            base = min(self.initial_delay * self.multiplier ** (attempt - 1), self.max_delay)
        except OverflowError:  # a very late attempt: the cap applies
            base = self.max_delay
        if not self.jitter or not base:
            return base
        jittered = base * (1 + self.jitter * (2 * self.random() - 1))
        return min(max(0.0, jittered), self.max_delay)


class ExceptionCondition(Condition):
    """A transition condition that holds when the step *failed* with one of ``exceptions``.

    It never holds after a successful step, and ordinary conditions never hold after a failed
    one. The error is written to ``state_key`` as a plain dict (see ``describe_exception``).
    """

    __slots__ = ("exceptions", "state_key")

    def __init__(self, exceptions: tuple[type[BaseException], ...], state_key: str) -> None:
        names = ", ".join(e.__name__ for e in exceptions)
        super().__init__([], lambda _state: False, name=f"on_exception({names})")
        self.exceptions = exceptions
        self.state_key = state_key

    def matches(self, exception: BaseException) -> bool:
        return isinstance(exception, self.exceptions)


def on_exception(*exceptions: type[BaseException], state_key: str = "error") -> ExceptionCondition:
    """Route a failed step: the transition is taken when the action raised one of ``exceptions``
    (after its retries). The handler finds the error in ``state[state_key]`` as a dict with
    ``type``, ``message``, ``action``, ``sequence_id``, ``attempts`` and ``traceback``.
    ``on_exception()`` with no type matches any ``Exception``."""
    kinds = exceptions or (Exception,)
    for kind in kinds:
        if not (isinstance(kind, type) and issubclass(kind, BaseException)):
            raise ConditionError(f"on_exception() takes exception types, got {kind!r}")
    if not isinstance(state_key, str) or not state_key:
        raise ConditionError(f"on_exception(state_key=...) must be a key name, got {state_key!r}")
    return ExceptionCondition(tuple(kinds), state_key)


def describe_exception(
    exception: BaseException, *, action: str, sequence_id: int, attempts: int
) -> dict[str, Any]:
    """The JSON-friendly description of a failure that ``on_exception`` puts in the state."""
    return {
        "type": type(exception).__name__,
        "message": str(exception),
        "action": action,
        "sequence_id": sequence_id,
        "attempts": attempts,
        "traceback": "".join(traceback.format_exception(exception)),
    }
