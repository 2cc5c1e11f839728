"""Count to a limit, then report: the smallest useful turnout application.

Run it: ``python examples/counter/application.py --limit 5``
"""

from __future__ import annotations

import argparse

from turnout import Application, ApplicationBuilder, State, action, expr


@action(reads=["count"], writes=["count"])
def increment(state: State, step: int = 1) -> State:
    """Add ``step`` to the counter."""
    return state.update(count=state["count"] + step)


@action(reads=["count", "limit"], writes=[])
def report(state: State) -> tuple[dict[str, str], State]:
    """Say how far we counted."""
    return {"message": f"counted to {state['count']} (limit {state['limit']})"}, state


def application(limit: int = 10, app_id: str | None = None) -> Application:
    """A counter that increments while ``count < limit`` and then reports."""
    return (
        ApplicationBuilder()
        .with_actions(increment, report)
        .with_transitions(
            ("increment", "increment", expr("count < limit")),
            ("increment", "report"),
        )
        .with_state(count=0, limit=limit)
        .with_entrypoint("increment")
        .with_identifiers(app_id=app_id)
        .build()
    )


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=10)
    args = parser.parse_args(argv)
    app = application(args.limit)
    _action, result, state = app.run(halt_after=["report"])
    assert result is not None
    print(result["message"])
    print(f"{app.sequence_id + 1 if app.sequence_id is not None else 0} steps; final state {state}")
    return str(result["message"])


if __name__ == "__main__":
    main()
