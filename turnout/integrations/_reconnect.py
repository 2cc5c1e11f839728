"""What the SQL adapters (PostgreSQL, MySQL) say when the server drops a connection, once.

The rules they share: a connection the persister opened itself is reopened between
transactions; a read, or the ``BEGIN`` of a transaction, that met a dropped connection is
repeated once on the new connection (nothing was written); a transaction cut after it began is
never replayed, and the error says whether its write was applied.
"""

from __future__ import annotations

from turnout.core.errors import PersistenceError

__all__ = ["closed", "given_broken", "is_read", "lost"]

_DURING = {
    "read": "while reading: nothing was written",
    "write": "during a statement outside a transaction: it may or may not be applied",
    "begin": "before the transaction began: nothing was written",
    "run": (
        "in the middle of a transaction: the server rolls back what was not committed, so this "
        "write (a save, delete or prune) was not applied"
    ),
    "commit": (
        "while committing: the write (a save, delete or prune) may or may not have been "
        "applied. Load the app to find out (e.g. ApplicationBuilder().initialize_from("
        "persister, ...)); saving the same sequence id again is safe: if the first save was "
        "applied, the second gets ConcurrencyError"
    ),
}

OWN, POOL, GIVEN = "own", "pool", "given"


def is_read(sql: str) -> bool:
    """Whether ``sql`` only reads, so that running it again after a lost connection is safe."""
    return sql.lstrip()[:6].upper() == "SELECT"


def lost(
    database: str, where: str, stage: str, owner: str, fix: str, said: str
) -> PersistenceError:
    """The server at ``where`` dropped the connection at ``stage`` (a key of ``_DURING``);
    ``owner`` says who opened the connection: the persister, a pool, or the caller."""
    if owner == OWN:
        then = "The persister reconnects on its next call."
    elif owner == POOL:
        then = "The pool replaces the broken connection on the next call."
    else:
        then = (
            f"The connection you passed is closed now and turnout does not reopen a "
            f"connection it was given. {fix}"
        )
    return PersistenceError(
        f"{database} at {where} dropped the connection {_DURING[stage]}. {then} "
        f"The driver said: {said}"
    )


def given_broken(
    database: str, where: str, kind: str, persister: str, fix: str, said: str
) -> PersistenceError:
    """The ``kind`` of connection the caller passed to ``persister`` was dropped by the server."""
    return PersistenceError(
        f"the {kind} passed to {persister} is broken: {database} at {where} dropped it "
        f"({said}), and turnout does not reopen a connection it was given. {fix}"
    )


def closed(database: str, where: str, persister: str) -> PersistenceError:
    """``persister.close()`` was called: it does not reconnect any more."""
    return PersistenceError(
        f"this {persister} was closed (close() was called), so it no longer connects to "
        f"{database} at {where}: create a new {persister}(...) to load or save again."
    )
