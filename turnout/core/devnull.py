"""Persisters that keep nothing (Burr's ``DevNullPersister``): a stand-in where a persister is
required but nothing should be stored, e.g. a test of an application that is saved in production.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from turnout.core.persistence import (
    AsyncBaseStatePersister,
    BaseStatePersister,
    PersistedStateData,
    Status,
)
from turnout.core.state import State

__all__ = ["AsyncDevNullPersister", "DevNullPersister"]


class DevNullPersister(BaseStatePersister):
    """Saves nothing; ``load`` finds nothing (``None``), so ``initialize_from`` starts fresh."""

    def load(
        self, partition_key: str | None, app_id: str, sequence_id: int | None = None, **kwargs: Any
    ) -> PersistedStateData | None:
        return None

    def list_app_ids(self, partition_key: str | None, **kwargs: Any) -> list[str]:
        return []

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
        return None

    def delete(self, app_id: str, partition_key: str | None = None) -> int:
        return 0

    def prune(
        self,
        *,
        keep_last: int | None = None,
        older_than: dt.datetime | dt.timedelta | None = None,
        partition_key: str | None = None,
        app_id: str | None = None,
    ) -> int:
        return 0


class AsyncDevNullPersister(AsyncBaseStatePersister):
    """The async form of ``DevNullPersister`` (for ``abuild()`` applications)."""

    async def load(
        self, partition_key: str | None, app_id: str, sequence_id: int | None = None, **kwargs: Any
    ) -> PersistedStateData | None:
        return None

    async def list_app_ids(self, partition_key: str | None, **kwargs: Any) -> list[str]:
        return []

    async def save(
        self,
        partition_key: str | None,
        app_id: str,
        sequence_id: int,
        position: str | None,
        state: State,
        status: Status,
        **kwargs: Any,
    ) -> None:
        return None

    async def delete(self, app_id: str, partition_key: str | None = None) -> int:
        return 0

    async def prune(
        self,
        *,
        keep_last: int | None = None,
        older_than: dt.datetime | dt.timedelta | None = None,
        partition_key: str | None = None,
        app_id: str | None = None,
    ) -> int:
        return 0
