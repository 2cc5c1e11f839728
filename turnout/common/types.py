"""Burr's ``burr.common.types``: the parent pointer of a spawned application, and the copy
interface trackers and hooks implement for child applications."""

from __future__ import annotations

import abc
from typing import Any

from turnout.core.persistence import ParentPointer

__all__ = ["BaseCopyable", "ParentPointer"]


class BaseCopyable(abc.ABC):
    """Something a child application gets its own copy of (``copy()``), e.g. a tracker."""

    @abc.abstractmethod
    def copy(self) -> Any:
        """A copy for a child application."""
