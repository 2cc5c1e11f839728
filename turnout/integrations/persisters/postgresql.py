"""Burr's ``burr.integrations.persisters.postgresql`` path: ``PostgreSQLPersister`` over psycopg 3
(see ``turnout.integrations.postgres``)."""

from __future__ import annotations

from turnout.integrations.postgres import PostgreSQLPersister

__all__ = ["PostgreSQLPersister"]
