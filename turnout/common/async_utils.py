"""Burr's ``burr.common.async_utils``: the type aliases for values that are sync or async."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Generator
from typing import TypeVar, Union

__all__ = ["SyncOrAsyncGenerator", "SyncOrAsyncGeneratorOrItemOrList", "SyncOrAsyncIterable"]

T = TypeVar("T")
GenType = TypeVar("GenType")

SyncOrAsyncIterable = Union[AsyncIterable[T], list[T]]  # noqa: UP007  (a runtime alias)
SyncOrAsyncGenerator = Union[Generator[GenType, None, None], AsyncGenerator[GenType, None]]  # noqa: UP007
SyncOrAsyncGeneratorOrItemOrList = Union[SyncOrAsyncGenerator[GenType], list[GenType], GenType]  # noqa: UP007
