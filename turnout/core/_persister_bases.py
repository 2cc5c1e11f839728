"""The persister contract users implement: loaders, savers and persisters, sync and async.

Re-exported by ``turnout.core.persistence`` (Burr's module path). Burr's contract is small and
kept as is: a loader has ``load`` and ``list_app_ids``; a saver has ``save`` (and may set
itself up in ``initialize``). A persister written for Burr, with only those three methods,
works unchanged. ``delete`` and ``prune`` are ours: a persister that does not implement them
still builds and runs, and calling them raises ``UnsupportedOperationError`` naming the method
to write.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

from turnout.core.errors import PersistenceError, UnsupportedOperationError

if TYPE_CHECKING:
    from turnout.core.persistence import PersistedStateData
    from turnout.core.state import State

__all__ = [
    "AsyncBaseStateLoader",
    "AsyncBaseStatePersister",
    "AsyncBaseStateSaver",
    "BaseStateLoader",
    "BaseStatePersister",
    "BaseStateSaver",
    "Opening",
]

Status = Literal["completed", "failed", "suspended"]


class _Closing(Protocol):
    async def close(self) -> None: ...


A = TypeVar("A", bound=_Closing)


def _missing(persister: object, method: str, signature: str) -> UnsupportedOperationError:
    name = type(persister).__name__
    return UnsupportedOperationError(
        f"{name}.{method}() is not implemented: {name} defines only the required persister "
        f"methods (load, save, list_app_ids). Define `{signature}` on {name}, or use a persister "
        f"that has it (SQLitePersister, PostgreSQLPersister, MySQLPersister, RedisPersister)."
    )


_DELETE = "def delete(self, app_id, partition_key=None) -> int"
_PRUNE = "def prune(self, *, keep_last=None, older_than=None, partition_key=None, app_id=None)"


class BaseStateLoader(abc.ABC):
    """Something ``initialize_from`` can load from."""

    @abc.abstractmethod
    def load(
        self, partition_key: str | None, app_id: str, sequence_id: int | None = None, **kwargs: Any
    ) -> PersistedStateData | Mapping[str, Any] | None:
        """The record at ``sequence_id`` (the latest when ``None``), or ``None``. A mapping with
        the fields of ``PersistedStateData`` (Burr's ``TypedDict``) is accepted too."""

    @abc.abstractmethod
    def list_app_ids(self, partition_key: str | None, **kwargs: Any) -> list[str]:
        """The app ids stored for ``partition_key``, most recent first."""

    def is_async(self) -> bool:
        return False


class BaseStateSaver(abc.ABC):
    """Something ``with_state_persister`` can save to."""

    def initialize(self) -> None:
        """Create what the saver needs (tables, keys). The default does nothing."""
        return

    def is_initialized(self) -> bool:
        """Whether ``initialize`` has set the storage up; subclasses that can tell override it."""
        raise _missing(self, "is_initialized", "def is_initialized(self) -> bool")

    @abc.abstractmethod
    def save(
        self,
        partition_key: str | None,
        app_id: str,
        sequence_id: int,
        position: str | None,
        state: State,
        status: Status,
        **kwargs: Any,
    ) -> None:
        """Store one step. ``kwargs`` may carry ``changes`` (the step's delta),
        ``previous_sequence_id`` (the record the delta applies to) and ``parent``."""

    def is_async(self) -> bool:
        return False


class BaseStatePersister(BaseStateLoader, BaseStateSaver, abc.ABC):
    """Loads and saves; ``delete`` and ``prune`` manage retention where a subclass has them."""

    def delete(self, app_id: str, partition_key: str | None = None) -> int:
        """Remove every record of ``app_id`` (in every partition unless one is given)."""
        raise _missing(self, "delete", _DELETE)

    def prune(
        self,
        *,
        keep_last: int | None = None,
        older_than: dt.datetime | dt.timedelta | None = None,
        partition_key: str | None = None,
        app_id: str | None = None,
    ) -> int:
        """Remove old records; see ``StorePersister.prune``."""
        raise _missing(self, "prune", _PRUNE)


class AsyncBaseStateLoader(abc.ABC):
    """The async form of ``BaseStateLoader``."""

    @abc.abstractmethod
    async def load(
        self, partition_key: str | None, app_id: str, sequence_id: int | None = None, **kwargs: Any
    ) -> PersistedStateData | Mapping[str, Any] | None: ...

    @abc.abstractmethod
    async def list_app_ids(self, partition_key: str | None, **kwargs: Any) -> list[str]: ...

    def is_async(self) -> bool:
        return True


class AsyncBaseStateSaver(abc.ABC):
    """The async form of ``BaseStateSaver``."""

    async def initialize(self) -> None:
        """Create what the saver needs (tables, keys). The default does nothing."""
        return

    async def is_initialized(self) -> bool:
        """Whether ``initialize`` has set the storage up; subclasses that can tell override it."""
        raise _missing(self, "is_initialized", "async def is_initialized(self) -> bool")

    @abc.abstractmethod
    async def save(
        self,
        partition_key: str | None,
        app_id: str,
        sequence_id: int,
        position: str | None,
        state: State,
        status: Status,
        **kwargs: Any,
    ) -> None: ...

    def is_async(self) -> bool:
        return True


class AsyncBaseStatePersister(AsyncBaseStateLoader, AsyncBaseStateSaver, abc.ABC):
    """The async form of ``BaseStatePersister`` (for ``abuild()`` applications)."""

    async def delete(self, app_id: str, partition_key: str | None = None) -> int:
        """Remove every record of ``app_id`` (in every partition unless one is given)."""
        raise _missing(self, "delete", _DELETE.replace("def", "async def", 1))

    async def prune(
        self,
        *,
        keep_last: int | None = None,
        older_than: dt.datetime | dt.timedelta | None = None,
        partition_key: str | None = None,
        app_id: str | None = None,
    ) -> int:
        """Remove old records; see ``StorePersister.prune``."""
        raise _missing(self, "prune", _PRUNE.replace("def", "async def", 1))


class Opening(Generic[A]):
    """What an async persister's ``from_values``/``from_config`` return, as in Burr: await it
    for the persister (``await AsyncSQLitePersister.from_values("app.db")``), or use it as an
    async context manager that closes the persister on exit. Either opens one persister, once:
    using the same ``Opening`` again raises ``PersistenceError`` (a ``RuntimeError``, as Burr's),
    since a second persister would hide the first one's open connection."""

    def __init__(self, open_: Callable[[], Awaitable[A]]) -> None:
        self._open = open_
        self._persister: A | None = None
        self._consumed = False

    def _take(self) -> Awaitable[A]:
        if self._consumed:
            raise PersistenceError(
                "This factory result has already been consumed: from_values(...) and "
                "from_config(...) open one persister, awaited once or entered once with "
                "`async with`. Call from_values(...) again for another persister."
            )
        self._consumed = True
        return self._open()

    def __await__(self) -> Generator[Any, None, A]:
        return self._opened().__await__()

    async def _opened(self) -> A:
        return await self._take()

    async def __aenter__(self) -> A:
        self._persister = await self._take()
        return self._persister

    async def __aexit__(self, *exc: object) -> None:
        if self._persister is not None:
            await self._persister.close()
