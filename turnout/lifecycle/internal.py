"""Burr's internal hook grouping under its module name (``burr.lifecycle.internal``).

Burr's ``Application(adapter_set=...)`` takes a ``LifecycleAdapterSet`` of hook objects; here that
is turnout's own ``HookSet`` (``turnout.core.hooks``), which indexes the hook methods once and
fires them with turnout's error policy. ``ApplicationBuilder.with_hooks(...)`` remains the way to
add hooks; this module exists so Burr code (and Burr's tests) that build an ``Application``
directly keep working.
"""

from __future__ import annotations

from typing import Any

from turnout.core.hooks import HookSet

__all__ = ["LifecycleAdapterSet"]


class LifecycleAdapterSet(HookSet):
    """Burr's name and constructor (``LifecycleAdapterSet(*adapters)``) for a ``HookSet``."""

    __slots__ = ()

    def __init__(self, *adapters: Any) -> None:
        super().__init__(adapters)

    @property
    def adapters(self) -> list[Any]:
        """The hook objects, in the order given."""
        return list(self.hooks)

    def with_new_adapters(self, *adapters: Any) -> LifecycleAdapterSet:
        """A new set holding these hooks followed by ``adapters``."""
        return LifecycleAdapterSet(*self.hooks, *adapters)
