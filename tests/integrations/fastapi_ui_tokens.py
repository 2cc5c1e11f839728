"""Tracking data with token usage for the web UI's cost insights tests, written by a real
application with any tracker (``write_token_runs``).

``chat``: ``ask`` runs ``ASKS`` times, each in a span logging ``ASK_IN``/``ASK_OUT`` tokens of
``gpt-4o-2024-08-06`` (priced by the defaults' ``gpt-4o``); then ``summarise`` logs
``SUM_IN``/``SUM_OUT`` tokens on the step itself (no span) for a model named with markup
(``HOSTILE``, in no price table unless the test adds it). ``quiet``: one step, no tokens.
"""

from __future__ import annotations

from typing import Any

from turnout import ApplicationBuilder, State, TracerFactory, action, default, expr

PROJECT = "costs"
ASKS = 3
ASK_IN, ASK_OUT = 1000, 500
SUM_IN, SUM_OUT = 200, 100
SNAPSHOT = "gpt-4o-2024-08-06"
HOSTILE = '<img src=x onerror="alert(1)">&model'


@action(reads=["asked"], writes=["asked"])
def ask(state: State, __tracer: TracerFactory) -> State:
    with __tracer("llm call") as span:
        span.log_attributes(
            **{
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": SNAPSHOT,
                "gen_ai.usage.input_tokens": ASK_IN,
                "gen_ai.usage.output_tokens": ASK_OUT,
            }
        )
    return state.update(asked=state["asked"] + 1)


@action(reads=["asked"], writes=["summary"])
def summarise(state: State, __tracer: TracerFactory) -> tuple[dict[str, Any], State]:
    __tracer.log_attributes(
        **{
            "gen_ai.request.model": HOSTILE,
            "gen_ai.usage.input_tokens": SUM_IN,
            "gen_ai.usage.output_tokens": SUM_OUT,
        }
    )
    summary = f"asked {state['asked']} times"
    return {"summary": summary}, state.update(summary=summary)


@action(reads=[], writes=["done"])
def rest(state: State) -> State:
    return state.update(done=True)


def write_token_runs(tracker: Any) -> None:
    """The applications the module docstring lists, tracked by ``tracker`` (closed after)."""
    try:
        (
            ApplicationBuilder()
            .with_actions(ask, summarise)
            .with_transitions(
                ("ask", "ask", expr(f"asked < {ASKS}")), ("ask", "summarise", default)
            )
            .with_state(asked=0)
            .with_entrypoint("ask")
            .with_tracker(tracker)
            .with_identifiers(app_id="chat")
            .build()
            .run(halt_after=["summarise"])
        )
        (
            ApplicationBuilder()
            .with_actions(rest)
            .with_transitions()
            .with_entrypoint("rest")
            .with_tracker(tracker)
            .with_identifiers(app_id="quiet")
            .build()
            .run(halt_after=["rest"])
        )
    finally:
        tracker.close()
