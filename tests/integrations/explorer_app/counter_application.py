"""A counter in the style of Burr's hello-world-counter example, written for turnout's tests:
``counter`` counts up to ``count_up_to``, then ``result`` hands the count back; a page steps it
with a Forward button (``streamlit_app.py``). It imports Burr's module paths under ``turnout.``.
"""

from __future__ import annotations

from turnout.core import Application, ApplicationBuilder, Result, State, default, expr
from turnout.core.action import action


@action(reads=["counter"], writes=["counter"])
def counter(state: State) -> State:
    return state.update(counter=state["counter"] + 1)


def application(count_up_to: int = 3) -> Application:
    return (
        ApplicationBuilder()
        .with_actions(counter=counter, result=Result("counter"))
        .with_transitions(
            ("counter", "counter", expr(f"counter < {count_up_to}")),
            ("counter", "result", default),
        )
        .with_state(counter=0)
        .with_entrypoint("counter")
        .build()
    )
