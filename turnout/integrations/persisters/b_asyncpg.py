"""Burr's ``burr.integrations.persisters.b_asyncpg`` path. turnout's async driver is psycopg 3's
async API, not asyncpg: ``AsyncPostgreSQLPersister.from_values(db_name, user, password, host,
port, table_name, use_pool=False, **pool_kwargs)`` is awaited or used as an async context
manager, as in Burr (see ``turnout.integrations.postgres``)."""

from __future__ import annotations

from turnout.integrations.postgres import AsyncPostgreSQLPersister

__all__ = ["AsyncPostgreSQLPersister"]
