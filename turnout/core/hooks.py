"""Dispatching lifecycle hooks to the objects given to ``ApplicationBuilder.with_hooks``.

A hook object implements any of the hook methods by name, each keyword-only and ending in
``**future_kwargs`` so that new payload fields never break it::

    class Printer:
        def post_run_step(self, *, action, sequence_id, changes, **future_kwargs):
            print(sequence_id, action.name, changes)

Hooks fire in the order they were given. An exception raised by a hook propagates to the caller
of the application method (the step itself has already been committed when ``post_run_step``
runs, so no state is lost).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["HOOK_NAMES", "HookSet"]

HOOK_NAMES = (
    "post_application_create",
    "pre_run_execute_call",
    "post_run_execute_call",
    "pre_run_step",
    "post_run_step",
)


class HookSet:
    """The hook methods of a list of hook objects, indexed by hook name once."""

    __slots__ = ("_by_name", "hooks")

    def __init__(self, hooks: Sequence[Any]) -> None:
        self.hooks = tuple(hooks)
        self._by_name: dict[str, tuple[Callable[..., Any], ...]] = {}
        for name in HOOK_NAMES:
            methods = tuple(
                getattr(h, name) for h in self.hooks if callable(getattr(h, name, None))
            )
            if methods:
                self._by_name[name] = methods

    def __bool__(self) -> bool:
        return bool(self._by_name)

    def implements(self, name: str) -> bool:
        return name in self._by_name

    def fire(self, name: str, **payload: Any) -> None:
        for method in self._by_name.get(name, ()):
            method(**payload)
