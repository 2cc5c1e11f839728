"""Burr's module name for the parallel actions (``burr.core.parallelism``): the same objects as
``turnout.core.parallel``, so ``from turnout.core.parallelism import MapStates`` works too.

It also holds Burr's ``SubgraphType`` (what ``actions()``/``action()`` may produce) and its
internal ``_cascade_adapter``, which some Burr programs and tests call directly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, Union

from turnout.core import children
from turnout.core.action import Action
from turnout.core.parallel import (
    ChildApplicationError,
    MapActions,
    MapActionsAndStates,
    MapStates,
    PassThroughMapActionsAndStates,
    RunnableGraph,
    SubGraphTask,
    TaskBasedParallelAction,
    map_reduce_action,
)

__all__ = [
    "ChildApplicationError",
    "MapActions",
    "MapActionsAndStates",
    "MapStates",
    "PassThroughMapActionsAndStates",
    "RunnableGraph",
    "SubGraphTask",
    "SubgraphType",
    "TaskBasedParallelAction",
    "map_reduce_action",
]

SubgraphType = Union[Action, Callable[..., Any], RunnableGraph]  # noqa: UP007  (a runtime alias)
"""What a parallel action's ``actions()``/``action()`` may produce: an action, an ``@action``
function, or a ``RunnableGraph``."""

AdapterType = TypeVar("AdapterType")


def _cascade_adapter(behavior: Any, adapter: AdapterType | None) -> Any:
    """What a child gets for a tracker or persister, by the parallel action's ``behavior``:
    ``"cascade"`` gives the parent's ``adapter`` (its ``copy()`` when it has one), ``None`` gives
    none, anything else is used as is. Burr's internal helper, over turnout's own rule
    (``turnout.core.children.cascade``)."""
    return children.cascade(behavior, adapter)
