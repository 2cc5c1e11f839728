"""Burr's ``burr.common.async_utils``: the type aliases for values that are sync or async."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Coroutine, Generator
from typing import Any, TypeVar, Union

from turnout.core.persistence import Opening

__all__ = ["SyncOrAsyncGenerator", "SyncOrAsyncGeneratorOrItemOrList", "SyncOrAsyncIterable"]

T = TypeVar("T")
GenType = TypeVar("GenType")

SyncOrAsyncIterable = Union[AsyncIterable[T], list[T]]  # noqa: UP007  (a runtime alias)
SyncOrAsyncGenerator = Union[Generator[GenType, None, None], AsyncGenerator[GenType, None]]  # noqa: UP007
SyncOrAsyncGeneratorOrItemOrList = Union[SyncOrAsyncGenerator[GenType], list[GenType], GenType]  # noqa: UP007


class _AsyncPersisterContextManager(Opening[Any]):
    """Burr's internal wrapper of the coroutine that opens an async persister: turnout's
    ``Opening`` over it (await it once, or use it once with ``async with``)."""

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        super().__init__(lambda: coro)
