"""A child process for the journal crash test: ``python -m tests.persistence.journal_child SPEC``.

``SPEC`` is JSON naming a sync backend (``kind``, ``location``, ``prefix``, ``snapshot_every``),
an ``app_id``, the side-effect file ``effects``, the number of steps ``total``, and where to kill
itself: ``kill_at`` (a sequence id, or ``null`` to run to the end) and ``point``:

* ``before_send``: in the action, before its first durable call;
* ``after_journal``: right after the first call's journal entry is committed, before ``durable``
  returns (the side effect happened and is journaled);
* ``between_calls``: after the first durable call returned, before the second;
* ``before_commit``: the action returned; the step's record is about to be saved (where every
  run with a ``kill_at`` dies at the latest: a replay skips the journal writes already done);
* ``effect_unjournaled``: after the side effect, before its journal write (the window the
  journal cannot cover: the line is written again on restart).

Each step calls ``durable("send", ...)`` and ``durable("notify", ...)``, each appending one line
(``send <sequence id>``, ``notify <sequence id>``) to ``effects``: the stand-in for an email. The
process kills itself with SIGKILL at the chosen point, so the point is exact without sleeping.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

from tests.persistence import backends
from turnout import ApplicationBuilder, State, action
from turnout.core.context import ApplicationContext


def main(spec: dict[str, Any]) -> int:
    persister = backends.open_sync(
        spec["kind"], spec["location"], spec["prefix"], snapshot_every=spec["snapshot_every"]
    )
    kill_at, point = spec["kill_at"], spec["point"]

    def kill_here(where: str, sequence_id: int | None) -> None:
        if sequence_id == kill_at and point == where:
            os.kill(os.getpid(), signal.SIGKILL)

    def effect(line: str, sequence_id: int) -> str:
        with open(spec["effects"], "a", encoding="utf-8") as out:
            out.write(line + "\n")
            out.flush()
            os.fsync(out.fileno())
        kill_here("effect_unjournaled", sequence_id)
        return line

    store = persister.core.store
    record, insert = store.journal_record, store.insert

    async def journal_record(entry: Any) -> None:
        await record(entry)
        if entry.index == 0:
            kill_here("after_journal", entry.sequence_id)

    async def save(saved: Any, *args: Any) -> None:
        # Also where a point the replay skipped (a journal write already done) ends the run.
        if saved.sequence_id == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        await insert(saved, *args)

    store.journal_record, store.insert = journal_record, save

    @action(reads=["done"], writes=["done"])
    def step(state: State, __context: ApplicationContext) -> State:
        sequence_id = __context.sequence_id
        kill_here("before_send", sequence_id)
        sent = __context.durable("send", effect, f"send {sequence_id}", sequence_id)
        kill_here("between_calls", sequence_id)
        noted = __context.durable("notify", effect, f"notify {sequence_id}", sequence_id)
        return state.update(done=[*state["done"], sent, noted])

    app = (
        ApplicationBuilder()
        .with_actions(step)
        .with_transitions(("step", "step"))
        .with_identifiers(app_id=spec["app_id"])
        .initialize_from(persister, default_state={"done": []}, default_entrypoint="step")
        .with_state_persister(persister)
        .build()
    )
    try:
        while app.sequence_id is None or app.sequence_id + 1 < spec["total"]:
            app.step()
        return 0
    finally:
        backends.close_sync(persister)


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
