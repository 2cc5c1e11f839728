"""Burr's ``burr.integrations.persisters.b_psycopg2`` path. turnout's driver is psycopg 3: Burr's
``from_values(db_name, user, password, host, port, table_name)`` maps onto it, and a psycopg 3
connection or pool takes the place of a psycopg2 connection (see
``turnout.integrations.postgres``)."""

from __future__ import annotations

from turnout.integrations.postgres import PostgreSQLPersister

__all__ = ["PostgreSQLPersister"]
