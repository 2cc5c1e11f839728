"""Burr's module name for the parallel actions (``burr.core.parallelism``): the same objects as
``turnout.core.parallel``, so ``from turnout.core.parallelism import MapStates`` works too."""

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
    "TaskBasedParallelAction",
    "map_reduce_action",
]
