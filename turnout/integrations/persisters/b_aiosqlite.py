"""Burr's ``burr.integrations.persisters.b_aiosqlite`` path: ``AsyncSQLitePersister`` runs the
standard library's ``sqlite3`` in a worker thread, so ``aiosqlite`` is not needed.
``await AsyncSQLitePersister.from_values("app.db")`` (or ``async with ... as persister``) works
as in Burr; the constructor takes the database path (see ``turnout.core.sqlite``)."""

from __future__ import annotations

from turnout.core.sqlite import AsyncSQLitePersister

__all__ = ["AsyncSQLitePersister"]
