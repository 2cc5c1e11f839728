"""Running sales totals kept as a pandas DataFrame in state, computed by a Hamilton DAG and
saved to SQLite after every step, so a restarted process resumes with the frame intact.

Run it: ``python examples/hamilton_dataframe/application.py [--db sales.db]``

Without ``--phase`` it runs the first batch in a child process that then exits (the "crash"),
and resumes from the database in this one. ``--phase first`` and ``--phase resume`` run one half
each, so you can stop between them yourself. Without ``--db`` the database is a throw-away file.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

# The adapter first: without its library it raises MissingExtraError naming the extra.
import turnout.integrations.hamilton
import turnout.integrations.serde.pandas  # noqa: F401

# isort: split
import pandas as pd

from turnout import Application, ApplicationBuilder, State, action, expr
from turnout.core.sqlite import SQLitePersister
from turnout.integrations.hamilton import Hamilton, from_state, update_state

if __package__:
    from . import sales
else:  # run as a script: this directory is on sys.path
    import sales  # type: ignore[import-not-found,no-redef]

BATCHES: list[list[dict[str, Any]]] = [
    [
        {"day": "2024-03-01", "product": "tea", "qty": 3, "price": 4.5},
        {"day": "2024-03-01", "product": "coffee", "qty": 1, "price": 7.0},
        {"day": "2024-03-02", "product": "tea", "qty": 2, "price": 4.5},
    ],
    [
        {"day": "2024-03-01", "product": "tea", "qty": 1, "price": 4.5},
        {"day": "2024-03-02", "product": "cocoa", "qty": 4, "price": 3.25},
    ],
    [
        {"day": "2024-03-03", "product": "coffee", "qty": 5, "price": 7.0},
    ],
]

EMPTY_SUMMARY = pd.DataFrame(
    {
        "day": pd.Series(dtype="datetime64[ns]"),
        "product": pd.Series(dtype="category"),
        "qty": pd.Series(dtype="int64"),
        "revenue": pd.Series(dtype="float64"),
    }
)

aggregate = Hamilton(
    inputs={"batch": from_state("batch"), "previous_summary": from_state("summary")},
    outputs={"summary": update_state("summary")},
    modules=[sales],
)


@action(reads=["queue"], writes=["queue", "batch"])
def next_batch(state: State) -> State:
    """Take the next batch of orders off the queue."""
    queue = list(state["queue"])
    return state.update(batch=queue.pop(0), queue=queue)


@action(reads=["summary"], writes=[])
def report(state: State) -> tuple[dict[str, Any], State]:
    """The totals over every batch."""
    frame = state["summary"]
    return {"revenue": float(frame["revenue"].sum()), "rows": len(frame)}, state


def application(persister: Any, app_id: str = "sales") -> Application:
    """The loop next_batch -> aggregate (Hamilton) until the queue is empty, then report; loaded
    from ``persister`` when it holds ``app_id`` and saved to it after every step."""
    app: Application = (
        ApplicationBuilder()
        .with_actions(next_batch=next_batch, aggregate=aggregate, report=report)
        .with_transitions(
            ("next_batch", "aggregate"),
            ("aggregate", "next_batch", expr("len(queue) > 0")),
            ("aggregate", "report"),
        )
        .initialize_from(
            persister,
            resume_at_next_action=True,
            default_state={"queue": BATCHES, "summary": EMPTY_SUMMARY},
            default_entrypoint="next_batch",
        )
        .with_state_persister(persister)
        .with_identifiers(app_id=app_id)
        .build()
    )
    return app


def first_batch(persister: Any, app_id: str = "sales") -> pd.DataFrame:
    """Aggregate the first batch, then stop (the process may exit here)."""
    app = application(persister, app_id)
    app.run(halt_after=["aggregate"])
    frame: pd.DataFrame = app.state["summary"]
    return frame


def resume(persister: Any, app_id: str = "sales") -> tuple[dict[str, Any], pd.DataFrame]:
    """Load the saved state, check the frame came back whole, and finish the queue."""
    app = application(persister, app_id)
    assert isinstance(app.state["summary"], pd.DataFrame)
    print(f"resumed at sequence id {app.sequence_id} with {len(app.state['summary'])} rows:")
    print(app.state["summary"].to_string(index=False))
    _action, result, state = app.run(halt_after=["report"])
    assert result is not None
    return result, state["summary"]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", help="the SQLite file (default: a throw-away one)")
    parser.add_argument("--phase", choices=["all", "first", "resume"], default="all")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        db = args.db or str(Path(scratch) / "sales.db")
        if args.phase == "first":
            with SQLitePersister(db) as persister:
                print(first_batch(persister).to_string(index=False))
            return {}
        if args.phase == "all":  # the first batch in another process, which then exits
            script = str(Path(__file__).resolve())
            subprocess.run([sys.executable, script, "--db", db, "--phase", "first"], check=True)
        with SQLitePersister(db) as persister:
            result, frame = resume(persister)
        print(f"final totals ({result['rows']} rows, revenue {result['revenue']:.2f}):")
        print(frame.to_string(index=False))
        return result


if __name__ == "__main__":
    main()
