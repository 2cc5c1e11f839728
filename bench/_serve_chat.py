"""The chat ``bench/serve.py`` serves, twice: ``factory`` for ``turnout serve`` and ``app``,
Burr's documented pattern (a FastAPI endpoint that loads the application from Burr's
PostgreSQL persister, runs it to its next halt and returns the state).

The Burr half imports only when ``BENCH_BURR_TABLE`` is set, in a Python that has
apache-burr, FastAPI and psycopg2.
"""

from __future__ import annotations

import os
from typing import Any

REPLY = "thanks, noted: "


def _reply(message: str) -> str:
    return REPLY + message[::-1]


if os.environ.get("BENCH_BURR_TABLE") is None:
    from turnout import State, action, default
    from turnout.integrations.fastapi import ServedBuilder

    @action(reads=["history"], writes=["history", "turns"])
    def respond(state: State, message: str) -> State:
        return (
            state.append(history=f"user: {message}")
            .append(history=f"bot: {_reply(message)}")
            .increment(turns=1)
        )

    def factory(builder: ServedBuilder) -> ServedBuilder:
        """One action per turn; the client halts after it."""
        return (
            builder.with_actions(respond)
            .with_transitions(("respond", "respond", default))
            .with_entrypoint("respond")
            .with_state(history=[], turns=0)
        )

else:
    from urllib.parse import urlparse

    from burr.core import ApplicationBuilder, State, action, default
    from burr.integrations.persisters.b_psycopg2 import PostgreSQLPersister
    from fastapi import FastAPI
    from pydantic import BaseModel

    @action(reads=["history", "turns"], writes=["history", "turns"])
    def respond(state: State, message: str) -> State:  # type: ignore[no-redef]
        history = [*state["history"], f"user: {message}", f"bot: {_reply(message)}"]
        return state.update(history=history, turns=state["turns"] + 1)

    _dsn = urlparse(os.environ["BENCH_PG_DSN"])
    persister = PostgreSQLPersister.from_values(
        db_name=_dsn.path.lstrip("/"), user=_dsn.username or "postgres",
        password=_dsn.password or "", host=_dsn.hostname or "127.0.0.1", port=_dsn.port or 5432,
        table_name=os.environ["BENCH_BURR_TABLE"],
    )  # fmt: skip
    persister.initialize()
    app = FastAPI()

    class Turn(BaseModel):
        message: str

    def _application(app_id: str) -> Any:
        return (
            ApplicationBuilder()
            .with_actions(respond)
            .with_transitions(("respond", "respond", default))
            .initialize_from(
                persister,
                resume_at_next_action=True,
                default_state={"history": [], "turns": 0},
                default_entrypoint="respond",
            )
            .with_state_persister(persister)
            .with_identifiers(app_id=app_id, partition_key="chat")
            .build()
        )

    @app.post("/apps/{app_id}/run")
    def run(app_id: str, turn: Turn) -> dict[str, Any]:
        application = _application(app_id)
        _, _, state = application.run(halt_after=["respond"], inputs={"message": turn.message})
        return {"app_id": app_id, "sequence_id": application.sequence_id, "state": state.get_all()}
