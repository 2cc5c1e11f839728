"""Burr's persister module paths (``burr.integrations.persisters.*``), over turnout's persisters.

A Burr application's imports keep working with ``burr`` replaced by ``turnout``:

* ``b_redis``: ``RedisBasePersister``, ``AsyncRedisBasePersister`` (a client, ``serde_kwargs``,
  ``namespace``), their ``from_values(host, port, db, ...)``, the older ``RedisPersister`` and
  ``AsyncRedisPersister``, ``add_namespace_to_partition_key``;
* ``postgresql`` and ``b_psycopg2``: ``PostgreSQLPersister`` (psycopg 3, with Burr's
  psycopg2-style ``from_values``);
* ``b_asyncpg``: ``AsyncPostgreSQLPersister`` (psycopg 3's async API);
* ``b_aiosqlite``: ``AsyncSQLitePersister`` (the standard library's ``sqlite3`` in a worker
  thread; ``aiosqlite`` is not needed).

MongoDB (``b_pymongo``, ``b_mongodb``) has no turnout persister yet.
"""
