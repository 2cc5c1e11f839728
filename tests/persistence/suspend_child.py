"""A child process for the cross-process suspend test:
``python -m tests.persistence.suspend_child SPEC``.

``SPEC`` is JSON naming a sync backend (``kind``, ``location``, ``prefix``, ``snapshot_every``),
an ``app_id``, the side-effect file ``effects`` and a ``phase``: ``suspend`` runs the approval
flow until it suspends; ``resume`` builds the app afresh from the persister and answers with
``answer``. It prints one JSON line: what the process saw.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from tests.persistence import backends
from turnout import ApplicationBuilder, State, action
from turnout.core.context import ApplicationContext
from turnout.core.errors import TurnoutError

SCHEMA = {
    "type": "object",
    "properties": {"approved": {"type": "boolean"}},
    "required": ["approved"],
    "additionalProperties": False,
}


def main(spec: dict[str, Any]) -> dict[str, Any]:
    persister = backends.open_sync(
        spec["kind"], spec["location"], spec["prefix"], snapshot_every=spec["snapshot_every"]
    )

    def notify(who: str) -> str:
        with open(spec["effects"], "a", encoding="utf-8") as out:
            out.write(f"notify {who}\n")
        return who

    @action(reads=["draft"], writes=["approved"])
    def review(state: State, __context: ApplicationContext) -> State:
        __context.durable("notify", notify, "reviewer")
        answer = __context.suspend("approval", schema=SCHEMA, metadata={"draft": state["draft"]})
        return state.update(approved=answer["approved"])

    @action(reads=["approved"], writes=["published"])
    def publish(state: State) -> State:
        return state.update(published=state["approved"])

    app = (
        ApplicationBuilder()
        .with_actions(review, publish)
        .with_transitions(("review", "publish"))
        .with_identifiers(app_id=spec["app_id"])
        .initialize_from(
            persister,
            resume_at_next_action=True,
            default_state={"draft": "release notes", "approved": None},
            default_entrypoint="review",
        )
        .with_state_persister(persister)
        .build()
    )
    if spec["phase"] == "suspend":
        _, result, _ = app.run(halt_after=["publish"])
        return {"result": dict(result) if result is not None else None}
    pending = app.suspension
    seen: dict[str, Any] = {"pending": None if pending is None else pending.channel}
    try:
        app.resume("approval", spec["answer"])
    except TurnoutError as exc:
        seen["error"] = f"{type(exc).__name__}: {exc}"
        return seen
    seen["state"] = app.run(halt_after=["publish"])[2].get_all()
    return seen


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
