"""One application in two versions of its state, for the versioned-state tests.

Version 1 counts in ``count``. Version 3 renamed it ``total`` (migration 1 -> 2) and added a
``label`` (migration 2 -> 3). Both versions have the action ``bump``, so version 3 resumes a
version 1 record where it stopped.
"""

from __future__ import annotations

from typing import Any

from turnout import ApplicationBuilder, State, action
from turnout.core.engine import drive
from turnout.core.persistence import StepRecord
from turnout.core.versions import StateSchema


@action(reads=["count"], writes=["count"])
def bump_v1(state: State) -> State:
    return state.increment(count=1)


@action(reads=["total"], writes=["total", "label"])
def bump_v3(state: State) -> State:
    total = state["total"] + 1
    return state.update(total=total, label=f"total={total}")


def rename_count(state: dict[str, Any]) -> dict[str, Any]:
    data = dict(state)
    data["total"] = data.pop("count")
    return data


def add_label(state: dict[str, Any]) -> dict[str, Any]:
    return {**state, "label": f"total={state['total']}"}


MIGRATIONS = {1: rename_count, 2: add_label}
SCHEMA = StateSchema(version=3, migrations=MIGRATIONS)


def v1_builder(app_id: str = "app") -> ApplicationBuilder:
    return (
        ApplicationBuilder()
        .with_actions(bump=bump_v1)
        .with_transitions(("bump", "bump"))
        .with_identifiers(app_id=app_id)
    )


def v3_builder(app_id: str = "app", typing: Any = None) -> ApplicationBuilder:
    return (
        ApplicationBuilder()
        .with_actions(bump=bump_v3)
        .with_transitions(("bump", "bump"))
        .with_identifiers(app_id=app_id)
        .with_typing(typing, version=3, migrations=MIGRATIONS)
    )


def run_v1(persister: Any, steps: int, app_id: str = "app") -> None:
    """A version 1 application of ``steps`` steps saved to ``persister``."""
    app = (
        v1_builder(app_id)
        .with_state(count=0)
        .with_entrypoint("bump")
        .with_state_persister(persister)
        .build()
    )
    for _ in range(steps):
        app.step()


def stored(persister: Any, app_id: str = "app") -> list[StepRecord]:
    """The records of ``app_id`` in a sync persister's store."""
    return drive(_records(persister, app_id))


async def _records(persister: Any, app_id: str) -> list[StepRecord]:
    found: list[StepRecord] = await persister.core.store.records("", app_id)
    return found
