"""The serving chat (``serve_app``'s ``ask`` and ``reply``) with a step the test holds open
across processes: ``gated`` waits for a PostgreSQL advisory lock the test holds.

``ask`` with the message ``gate`` leads to ``gated``, whose ``key`` input names the lock. Its
connection's ``application_name`` is ``gate-<worker pid>``, so the test finds, in
``pg_stat_activity``, which worker process is in the middle of that step.
"""

from __future__ import annotations

import os

import psycopg

from tests.integrations.serve_app import ask, reply
from turnout import State, action, default, when
from turnout.integrations.fastapi import ServedBuilder


@action(reads=["history"], writes=["history"])
async def gated(state: State, key: int) -> State:
    dsn = os.environ["TURNOUT_SERVE_DB"]  # set by `turnout serve` for its workers
    name = f"gate-{os.getpid()}"
    async with await psycopg.AsyncConnection.connect(
        dsn, autocommit=True, application_name=name
    ) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (key,))
    return state.append(history=f"gated {key}")


def factory(builder: ServedBuilder) -> ServedBuilder:
    """ask -> reply -> ask ...; the message 'gate' goes through ``gated`` instead of reply."""
    return (
        builder.with_actions(ask, reply, gated)
        .with_transitions(
            ("ask", "gated", when(last="gate")),
            ("ask", "reply", default),
            (["reply", "gated"], "ask", default),
        )
        .with_entrypoint("ask")
        .with_state(history=[], turns=0, last="")
    )
