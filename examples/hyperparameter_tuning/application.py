"""Hyperparameter tuning of a real model, as a loop that survives being killed.

A support-vector classifier (scikit-learn's ``SVC`` behind a ``StandardScaler``) learns the
handwritten digits bundled with scikit-learn. Each round is three steps: ``propose`` draws
candidate hyperparameters ``C`` and ``gamma`` (a seeded random search that, once it has a best
trial, draws half of each round around it: see ``trial.propose``); ``train`` (a ``MapStates``)
cross-validates every candidate in its own child application, in parallel on a process pool (or
on Ray); ``decide`` keeps the best trial and stops when the budget of rounds is spent or
``patience`` rounds in a row brought no improvement. ``report`` then scores the best candidate on
the held-out test split.

Every step, the parent's and each child's, is saved to SQLite: kill the process at any point and
run it again with the same ``--db`` and ``--app-id``, and it goes on after the last saved step,
with the children of an interrupted round that had finished loaded instead of trained again.
The result is the one an uninterrupted run with the same seed gives.

Run it: ``python examples/hyperparameter_tuning/application.py`` (``--db tuning.db`` keeps the
search to resume it, ``--track`` records it for ``turnout ui``, ``--executor ray`` runs the
trials on a local Ray instance).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import multiprocessing
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from turnout import (
    Application,
    ApplicationBuilder,
    ApplicationContext,
    MapStates,
    State,
    action,
    when,
)
from turnout.core.sqlite import SQLitePersister
from turnout.core.tracking import LocalTracker

if __package__:
    from . import trial
else:  # run as a script: this directory is on sys.path (and on the workers')
    import trial  # type: ignore[import-not-found,no-redef]

PROJECT = "hyperparameter-tuning"
EXECUTORS = ("process", "thread", "ray")
ExecutorFactory = Callable[[], Executor]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Search:
    """The settings of one search, stored in its state (a resumed search keeps its own).

    Args:
        seed: seeds the proposals, the train/test split and the folds.
        per_round: candidates trained (in parallel) per round.
        max_rounds: the budget: rounds at most.
        patience: stop after this many rounds in a row without a better trial.
        folds: cross-validation folds per trial.
        samples: cross-validate on the first this many samples of the training split (quicker);
            ``None`` for all of it. The best candidate is always tested after training on all.
    """

    seed: int = 0
    per_round: int = 4
    max_rounds: int = 4
    patience: int = 2
    folds: int = 3
    samples: int | None = 600

    def __post_init__(self) -> None:
        least = {"per_round": 1, "max_rounds": 1, "patience": 1, "folds": 2, "samples": 30}
        for name, minimum in least.items():
            value = getattr(self, name)
            if name == "samples" and value is None:
                continue
            if not isinstance(value, int) or value < minimum:
                raise ValueError(f"Search({name}={value!r}): pass {name}={minimum} or more")


# -- the steps -----------------------------------------------------------------------------------


@action(reads=["search", "round", "best"], writes=["round", "candidates"])
def propose(state: State) -> State:
    """Draw the next round's candidates."""
    search, round_ = state["search"], state["round"] + 1
    candidates = trial.propose(search["seed"], round_, search["per_round"], state["best"])
    return state.update(round=round_, candidates=candidates)


class Train(MapStates):
    """Each candidate is trained and cross-validated by its own child application."""

    @property
    def reads(self) -> list[str]:
        return ["search", "round", "candidates"]

    @property
    def writes(self) -> list[str]:
        return ["trials", "latest"]

    def action(self, state: State, inputs: dict[str, Any]) -> Any:
        return trial.train_and_evaluate

    def states(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> Iterable[State]:
        for candidate in state["candidates"]:
            yield State({"candidate": candidate, "search": state["search"]})

    def reduce(self, state: State, states: Iterable[State]) -> State:
        results = [
            {
                **child["candidate"],
                "round": state["round"],
                "cv_accuracy": child["cv_accuracy"],
                "fold_accuracies": child["fold_accuracies"],
            }
            for child in states
        ]
        return state.extend(trials=results).update(latest=results)


@action(
    reads=["search", "round", "latest", "best", "stale"],
    writes=["best", "stale", "verdict", "reason"],
)
def decide(state: State) -> State:
    """Keep the best trial (the earliest of equals); go on or stop."""
    search, best = state["search"], state["best"]
    leader = max(state["latest"], key=lambda t: t["cv_accuracy"])
    improved = best is None or leader["cv_accuracy"] > best["cv_accuracy"]
    stale = 0 if improved else state["stale"] + 1
    reason = ""
    if state["round"] >= search["max_rounds"]:
        reason = f"budget spent: {search['max_rounds']} rounds"
    elif stale >= search["patience"]:
        reason = f"no improvement in {stale} rounds"
    return state.update(
        best=leader if improved else best,
        stale=stale,
        verdict="stop" if reason else "continue",
        reason=reason,
    )


@action(reads=["search", "best"], writes=["test_accuracy"])
def report(state: State) -> State:
    """Train the best candidate on the whole training split; score it on the test split."""
    return state.update(
        test_accuracy=trial.holdout_accuracy(state["best"], state["search"]["seed"])
    )


def initial_state(search: Search) -> dict[str, Any]:
    return {
        "search": dataclasses.asdict(search),
        "round": 0,
        "candidates": [],
        "trials": [],
        "latest": [],
        "best": None,
        "stale": 0,
        "verdict": "continue",
        "reason": "",
    }


def application(
    search: Search,
    persister: Any,
    *,
    app_id: str,
    executor: ExecutorFactory | None = None,
    tracker: LocalTracker | None = None,
) -> Application:
    """The search under ``app_id``, resumed from ``persister`` when it holds it (and then with
    the settings it was started with), saved to it after every step."""
    builder = (
        ApplicationBuilder()
        .with_actions(propose=propose, train=Train(), decide=decide, report=report)
        .with_transitions(
            ("propose", "train"),
            ("train", "decide"),
            ("decide", "propose", when(verdict="continue")),
            ("decide", "report"),
        )
        .initialize_from(
            persister, default_state=initial_state(search), default_entrypoint="propose"
        )
        .with_state_persister(persister)
        .with_identifiers(app_id=app_id)
    )
    if executor is not None:
        builder.with_parallel_executor(executor)
    if tracker is not None:
        builder.with_tracker(tracker)
    return builder.build()


# -- where the children run ----------------------------------------------------------------------


class _Borrowed(Executor):
    """A parallel step's view of a pool that outlives the step. turnout shuts down the executor
    of each parallel step when the step ends; starting new worker processes (each importing
    scikit-learn) every round would cost more than the round's training."""

    def __init__(self, pool: Executor) -> None:
        self._pool = pool

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """The pool's owner shuts it down, after the search."""


@contextlib.contextmanager
def executor_factory(kind: str = "process", *, workers: int = 2) -> Iterator[ExecutorFactory]:
    """Where the trials run, for the whole search: ``"process"`` (a pool of ``workers`` new
    Python processes), ``"thread"`` or ``"ray"`` (a local Ray instance with ``workers`` CPUs,
    started and stopped here unless Ray already runs; needs ``turnout[ray]``)."""
    if kind == "thread":
        yield lambda: ThreadPoolExecutor(max_workers=workers)
    elif kind == "process":
        # "spawn": each worker is a fresh interpreter (forking a process that runs threads can
        # copy a lock one of them holds into the child, where nothing will ever release it).
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
            yield lambda: _Borrowed(pool)
    elif kind == "ray":
        from turnout.integrations.ray import RayExecutor  # names the extra when Ray is missing

        local = {"num_cpus": workers, "include_dashboard": False, "log_to_driver": False}
        on_ray = RayExecutor(
            num_cpus=1,
            init_options={**local, "_node_ip_address": "127.0.0.1"},  # this machine only
            shutdown_ray=not _ray_running(),  # stop the instance this search starts
        )
        try:
            yield lambda: _Borrowed(on_ray)
        finally:
            on_ray.shutdown()
    else:
        raise ValueError(f"executor {kind!r}: pick one of {', '.join(map(repr, EXECUTORS))}")


def _ray_running() -> bool:
    import ray

    return bool(ray.is_initialized())


# -- running a search ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Outcome:
    """What a search found. ``resumed_after``: the sequence id of the last saved step the run
    went on from (``None`` for a new search)."""

    app_id: str
    best: dict[str, Any]
    trials: list[dict[str, Any]]
    rounds: int
    reason: str
    test_accuracy: float
    resumed_after: int | None


def run(
    search: Search | None = None,
    *,
    db: str | Path | None = None,
    app_id: str = "tuning",
    executor: str = "process",
    workers: int = 2,
    track: bool = False,
    tracking_dir: str | Path | None = None,
    project: str = PROJECT,
    on_step: Callable[[str, State], None] | None = None,
) -> Outcome:
    """Run the search ``app_id`` kept in the SQLite file ``db`` to its end: a new one with
    ``search`` (default ``Search()``), or the stored one from its last saved step (without
    ``db``, a throw-away file: nothing to resume). With
    ``track`` the parent and every trial are tracked under ``project`` in ``tracking_dir``
    (default: ``TURNOUT_HOME`` or ``~/.turnout``), which ``turnout ui`` shows.
    ``on_step(action, state)`` is called after each saved step."""
    search = search or Search()
    tracker = LocalTracker(project, tracking_dir) if track else None
    with contextlib.ExitStack() as stack:
        if tracker is not None:
            stack.callback(tracker.close)
        if db is None:
            db = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "tuning.db"
        persister = stack.enter_context(SQLitePersister(db))
        pool = stack.enter_context(executor_factory(executor, workers=workers))
        app = application(search, persister, app_id=app_id, executor=pool, tracker=tracker)
        resumed_after = app.sequence_id  # None for a new search
        stored = Search(**app.state["search"])
        if resumed_after is not None and stored != search:
            raise ValueError(
                f"search {app_id!r} in {str(db)!r} was started with {stored}, not {search}: "
                f"resume it with the same settings, or start a new one with another app_id"
            )
        if "test_accuracy" not in app.state:
            for step, _result, state in app.iterate(halt_after=["report"]):
                if on_step is not None:
                    on_step(str(step.name), state)
        state = app.state
    return Outcome(
        app_id=app_id,
        best=state["best"],
        trials=state["trials"],
        rounds=state["round"],
        reason=state["reason"],
        test_accuracy=state["test_accuracy"],
        resumed_after=resumed_after,
    )


def _print_step(name: str, state: State) -> None:
    if name == "decide":
        best = state["best"]
        print(
            f"round {state['round']} saved: {len(state['latest'])} trials, best "
            f"{best['cv_accuracy']:.4f} (C={best['C']:g}, gamma={best['gamma']:g}) {best['id']}",
            flush=True,
        )


def main(argv: list[str] | None = None) -> Outcome:
    parser = argparse.ArgumentParser(description=__doc__)
    defaults = Search()
    parser.add_argument("--db", help="the SQLite file to keep the search in (default: temporary)")
    parser.add_argument("--app-id", default="tuning", help="the search's id in --db")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--per-round", type=int, default=defaults.per_round)
    parser.add_argument("--rounds", type=int, default=defaults.max_rounds, help="at most")
    parser.add_argument("--patience", type=int, default=defaults.patience)
    parser.add_argument("--folds", type=int, default=defaults.folds)
    parser.add_argument(
        "--samples", type=int, default=defaults.samples, help="cross-validate on so many (0: all)"
    )
    parser.add_argument("--executor", choices=EXECUTORS, default="process")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--track", action="store_true", help=f"record for turnout ui ({PROJECT})")
    parser.add_argument("--tracking-dir", help="with --track: where (default: TURNOUT_HOME)")
    args = parser.parse_args(argv)
    try:
        search = Search(
            seed=args.seed,
            per_round=args.per_round,
            max_rounds=args.rounds,
            patience=args.patience,
            folds=args.folds,
            samples=args.samples or None,
        )
    except ValueError as error:
        parser.error(str(error))
    try:
        outcome = run(
            search,
            db=args.db,
            app_id=args.app_id,
            executor=args.executor,
            workers=args.workers,
            track=args.track,
            tracking_dir=args.tracking_dir,
            on_step=_print_step,
        )
    except ValueError as error:  # a resume with other settings
        parser.exit(2, f"error: {error}\n")
    if outcome.resumed_after is not None:
        print(f"(resumed {outcome.app_id!r} after its saved step {outcome.resumed_after})")
    best = outcome.best
    print(
        f"stopped after {outcome.rounds} rounds ({outcome.reason}): best C={best['C']:g}, "
        f"gamma={best['gamma']:g}, cross-validated accuracy {best['cv_accuracy']:.4f}, "
        f"test accuracy {outcome.test_accuracy:.4f}"
    )
    if args.track:
        print(f"tracked as {outcome.app_id!r} in project {PROJECT!r}: run `turnout ui` to see it")
    return outcome


if __name__ == "__main__":
    main()
