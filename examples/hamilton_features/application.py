"""Triage customer reviews one per step: a Hamilton DAG computes each review's features.

Run it: ``python examples/hamilton_features/application.py [--show-dag]``
"""

from __future__ import annotations

import argparse
from typing import Any

from turnout import Application, ApplicationBuilder, State, action, expr
from turnout.integrations.hamilton import (
    Hamilton,
    append_state,
    from_state,
    from_value,
    to_mermaid,
)

if __package__:
    from . import text_features
else:  # run as a script: this directory is on sys.path
    import text_features  # type: ignore[import-not-found,no-redef]

LEXICON = {
    "great": 2, "love": 2, "fast": 1, "good": 1, "fine": 0,
    "slow": -1, "broken": -2, "refund": -2, "late": -1, "bad": -2,
}  # fmt: skip

REVIEWS = [
    "Great blender, I love it. Fast delivery!",
    "Arrived late and the lid was broken. I want a refund.",
    "It is fine. Does what it says, nothing more, nothing less, though the manual is long.",
    "Good value, a bit slow on ice.",
]

analyse = Hamilton(
    inputs={"review": from_state("review"), "lexicon": from_value(LEXICON)},
    outputs={"features": append_state("rows"), "needs_reply": "needs_reply"},
    modules=[text_features],
)


@action(reads=["queue"], writes=["queue", "review"])
def next_review(state: State) -> State:
    """Take the next review off the queue."""
    queue = list(state["queue"])
    return state.update(review=queue.pop(0), queue=queue)


@action(reads=["review", "needs_reply"], writes=["to_answer"])
def route(state: State) -> State:
    """Keep the reviews a human should answer."""
    if state["needs_reply"]:
        return state.append(to_answer=state["review"])
    return state


@action(reads=["rows", "to_answer"], writes=[])
def report(state: State) -> tuple[dict[str, Any], State]:
    """Summarise the batch."""
    rows = state["rows"]
    mean = sum(r["sentiment"] for r in rows) / len(rows)
    return {"reviews": len(rows), "mean_sentiment": mean, "to_answer": state["to_answer"]}, state


def application(reviews: list[str] | None = None) -> Application:
    """The triage loop: next_review -> analyse (Hamilton) -> route, until the queue is empty."""
    return (
        ApplicationBuilder()
        .with_actions(next_review=next_review, analyse=analyse, route=route, report=report)
        .with_transitions(
            ("next_review", "analyse"),
            ("analyse", "route"),
            ("route", "next_review", expr("len(queue) > 0")),
            ("route", "report"),
        )
        .with_state(queue=list(REVIEWS if reviews is None else reviews), rows=[], to_answer=[])
        .with_entrypoint("next_review")
        .build()
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--show-dag", action="store_true", help="print the graph as Mermaid")
    args = parser.parse_args(argv)
    app = application()
    if args.show_dag:
        print(to_mermaid(app))
    _action, result, state = app.run(halt_after=["report"])
    assert result is not None
    for row in state["rows"]:
        flag = "reply" if row["needs_reply"] else "ok   "
        print(f"{flag} {row['sentiment']:+d} {row['keywords']} {row['review'][:40]!r}")
    print(f"{result['reviews']} reviews, mean sentiment {result['mean_sentiment']:+.2f}")
    return result


if __name__ == "__main__":
    main()
