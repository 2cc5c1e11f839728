"""Runs N steps of one workload; bench/step_instructions.sh counts its instructions.

Usage: python bench/_steps_workload.py {hist|fixed} N
"""

from __future__ import annotations

import sys
from typing import Any

from turnout import ApplicationBuilder, State, action, expr


@action(reads=["history"], writes=["history"])
def record(state: State) -> State:
    return state.append(history=len(state["history"]))


@action(reads=["count"], writes=["count"])
def count(state: State) -> State:
    return state.update(count=state["count"] + 1)


def main(kind: str, steps: int) -> Any:
    if kind == "hist":
        app = (
            ApplicationBuilder()
            .with_actions(record=record)
            .with_transitions(("record", "record", expr("len(history) < limit")))
            .with_state(history=[], limit=10**9)
            .with_entrypoint("record")
            .build()
        )
    else:
        app = (
            ApplicationBuilder()
            .with_actions(count=count)
            .with_transitions(("count", "count"))
            .with_state(count=0)
            .with_entrypoint("count")
            .build()
        )
    step = app.step
    for _ in range(steps):
        step()
    return app.state


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
