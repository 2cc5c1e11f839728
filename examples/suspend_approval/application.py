"""An approval that waits across processes: ``review`` suspends on the channel ``approval``;
a later process (a web request, a CLI call, a worker) answers it with ``app.resume``.

Run it as a script: it suspends in one child process and resumes in another, over one SQLite
file, and prints what each saw. ``python examples/suspend_approval/application.py``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from turnout import ApplicationBuilder, State, action
from turnout.core.application import Application
from turnout.core.context import ApplicationContext
from turnout.core.sqlite import SQLitePersister

ANSWER = {
    "type": "object",
    "properties": {"approved": {"type": "boolean"}, "comment": {"type": "string"}},
    "required": ["approved"],
    "additionalProperties": False,
}


def notify_reviewer(draft: str, outbox: str) -> str:
    """The side effect: "send" the reviewer an email (a line in a file)."""
    with open(outbox, "a", encoding="utf-8") as out:
        out.write(f"please review: {draft}\n")
    return "notified"


@action(reads=["draft", "outbox"], writes=["approved", "comment"])
def review(state: State, __context: ApplicationContext) -> State:
    # Journaled: when the action runs again on resume, the email is not sent again.
    __context.durable("notify", notify_reviewer, state["draft"], state["outbox"])
    answer = __context.suspend("approval", schema=ANSWER, metadata={"draft": state["draft"]})
    return state.update(approved=answer["approved"], comment=answer.get("comment", ""))


@action(reads=["approved", "draft"], writes=["published"])
def publish(state: State) -> State:
    return state.update(published=state["draft"] if state["approved"] else None)


def application(db: str, app_id: str, outbox: str = "") -> Application:
    persister = SQLitePersister(db)
    persister.initialize()
    return (
        ApplicationBuilder()
        .with_actions(review, publish)
        .with_transitions(("review", "publish"))
        .with_identifiers(app_id=app_id)
        .initialize_from(
            persister,
            resume_at_next_action=True,
            default_state={"draft": "Release notes 1.0", "outbox": outbox},
            default_entrypoint="review",
        )
        .with_state_persister(persister)
        .build()
    )


def start(db: str, app_id: str, outbox: str) -> dict[str, Any]:
    """Process 1: run until the review waits; return what it waits for."""
    _, waiting, _ = application(db, app_id, outbox).run(halt_after=["publish"])
    assert waiting is not None
    return {"channel": waiting["channel"], "metadata": waiting["metadata"]}


def answer(db: str, app_id: str, approved: bool) -> dict[str, Any]:
    """Process 2: load the app, answer the review, run to the end."""
    app = application(db, app_id)
    app.resume("approval", {"approved": approved, "comment": "ship it"})
    return app.run(halt_after=["publish"])[2].subset("approved", "published").get_all()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db, outbox = str(Path(tmp) / "apps.db"), str(Path(tmp) / "outbox.txt")
        for call in (f"start({db!r}, 'release', {outbox!r})", f"answer({db!r}, 'release', True)"):
            code = f"from examples.suspend_approval.application import *; print(json.dumps({call}))"
            root = Path(__file__).resolve().parents[2]
            done = subprocess.run(
                [sys.executable, "-c", "import json\n" + code],
                cwd=root, capture_output=True, text=True, check=True,
            )  # fmt: skip
            print(done.stdout.strip())
        print(f"emails sent: {len(Path(outbox).read_text().splitlines())}")


if __name__ == "__main__":
    main()
