"""A demand forecast by Monte-Carlo simulation: a market stepped day by day, a model fitted to
it, and a fan of simulated futures, each future its own child application.

The parent graph: ``market_day`` runs one day of the market (a step per day) until the
forecast origin; ``score`` checks the previous forecast against the days since observed;
``fit`` fits the model (trend, weekday effects, promotion lift, AR(1) shocks) to every day
seen so far; ``simulate`` (a ``MapStates``) runs one child application per scenario, each
stepping the fitted model through the horizon day by day (``simulate_day``) and ending with
``settle``; ``summarize`` takes the quantiles of the scenarios per day; ``plot`` saves the
trajectories and the forecast fan as PNG files (matplotlib, Agg) and as artifacts. Then the
market moves on through the forecast's horizon, and the next round scores the forecast.

Deterministic: every random draw is seeded from ``(seed, day)`` (see ``market.py``), so the same
seed gives the same numbers, resumed or not, whatever order the scenarios run in.

Run it: ``python examples/forecast_simulation/application.py`` (``--track`` records it for
``turnout ui``; ``--db FILE`` saves it to continue with the next round later), or the
Streamlit page: ``streamlit run examples/forecast_simulation/application.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turnout import (
    Application,
    ApplicationBuilder,
    ApplicationContext,
    GraphBuilder,
    MapStates,
    State,
    action,
    expr,
)
from turnout.core.artifacts import ArtifactRef, LocalArtifactStore
from turnout.core.errors import MissingExtraError
from turnout.core.parallel import RunnableGraph
from turnout.core.sqlite import SQLitePersister
from turnout.core.tracking import LocalTracker, tracking_home

try:
    import matplotlib  # noqa: F401
    import numpy  # noqa: F401
except ImportError as _error:
    raise MissingExtraError(
        f"examples/forecast_simulation needs the {_error.name!r} package, which is not "
        f'installed: pip install "turnout[plots]"'
    ) from _error

if __package__:
    from . import market, plots
else:  # run as a script (or by Streamlit): this directory is on sys.path
    import market  # type: ignore[import-not-found,no-redef]
    import plots  # type: ignore[import-not-found,no-redef]

PROJECT = "forecast-simulation"
PLOTS = "forecast-plots"  # the charts' directory in a tracking directory (no project: no logs)
DEFAULTS = {"seed": 7, "history_days": 56, "horizon": 14, "scenarios": 20}


@dataclass(frozen=True, slots=True)
class Output:
    """Where the charts go: PNG files in ``directory`` and the same bytes in a
    ``LocalArtifactStore`` under ``directory / "artifacts"`` (the state keeps the refs, which
    ``turnout ui --artifacts`` offers for download)."""

    directory: Path
    store: LocalArtifactStore = field(init=False)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        object.__setattr__(self, "store", LocalArtifactStore(self.directory / "artifacts"))

    def save(self, png: bytes, name: str) -> ArtifactRef:
        """Write ``png`` to ``directory / name`` and to the store; the store's ref."""
        (self.directory / name).write_bytes(png)
        return self.store.put(png, media_type="image/png", name=name)

    def path(self, ref: ArtifactRef) -> Path:
        """The PNG file a ref of ``save`` names (a ref read back from storage is checked to
        name a plain file in ``directory``, never a path elsewhere)."""
        name = str(ref.name)
        if not name.endswith(".png") or Path(name).name != name or name.startswith("."):
            raise ValueError(f"{name!r} is not the name of a chart saved by Output.save(...)")
        return self.directory / name


# -- the parent's steps ----------------------------------------------------------------------------


@action(reads=["seed", "day", "shock"], writes=["history", "day", "shock"])
def market_day(state: State, world: market.Market) -> tuple[dict[str, Any], State]:
    """One day of the market: the day's demand joins the history."""
    today = world.day(state["seed"], state["day"], state["shock"])
    seen = {key: today[key] for key in ("day", "demand", "promo")}
    return seen, state.append(history=seen).update(day=state["day"] + 1, shock=today["shock"])


@action(reads=["forecasts", "history", "scores"], writes=["scores"])
def score(state: State) -> tuple[dict[str, Any], State]:
    """The last forecast against what the market did since (nothing to score in round 1)."""
    if not state["forecasts"]:
        return {"score": None}, state
    latest = market.score(state["forecasts"][-1], state["history"])
    if latest is None or any(s["origin"] == latest["origin"] for s in state["scores"]):
        return {"score": None}, state
    return {"score": latest}, state.append(scores=latest)


@action(reads=["history", "day", "horizon", "round"], writes=["model", "origin", "until", "round"])
def fit(state: State) -> tuple[dict[str, Any], State]:
    """Fit the model to every day observed; the forecast starts tomorrow, and the market will
    next be observed up to the end of the forecast's horizon."""
    model = market.fit(state["history"])
    origin = state["day"]
    return model, state.update(
        model=model, origin=origin, until=origin + state["horizon"], round=state["round"] + 1
    )


# -- a scenario: one child application per simulated future ----------------------------------------


@action(reads=["model", "seed", "origin", "scenario", "t", "shock"], writes=["path", "t", "shock"])
def simulate_day(state: State) -> tuple[dict[str, Any], State]:
    """One simulated day of the fitted model."""
    today = market.scenario_day(
        state["model"],
        seed=state["seed"],
        origin=state["origin"],
        scenario=state["scenario"],
        t=state["t"],
        shock=state["shock"],
    )
    seen = {key: today[key] for key in ("day", "demand", "promo")}
    return seen, state.append(path=today["demand"]).update(t=state["t"] + 1, shock=today["shock"])


@action(reads=["path"], writes=["total", "peak"])
def settle(state: State) -> tuple[dict[str, Any], State]:
    """The scenario's totals over the horizon."""
    done = {"total": round(sum(state["path"]), 2), "peak": max(state["path"])}
    return done, state.update(**done)


SCENARIO = RunnableGraph(
    graph=GraphBuilder()
    .with_actions(simulate_day=simulate_day, settle=settle)
    .with_transitions(
        ("simulate_day", "simulate_day", expr("t < until")), ("simulate_day", "settle")
    )
    .build(),
    entrypoint="simulate_day",
    halt_after=["settle"],
)
"""A scenario's graph: ``simulate_day`` until the horizon's last day, then ``settle``."""


class Simulate(MapStates):
    """Fan out: one child application per scenario, all starting from the fitted model."""

    @property
    def reads(self) -> list[str]:
        return ["model", "seed", "origin", "until", "scenarios"]

    @property
    def writes(self) -> list[str]:
        return ["paths", "totals"]

    def action(self, state: State, inputs: dict[str, Any]) -> Any:
        return SCENARIO

    def states(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> Generator[State, None, None]:
        model = state["model"]
        for scenario in range(state["scenarios"]):
            yield State(
                {
                    "model": model,
                    "seed": state["seed"],
                    "origin": state["origin"],
                    "scenario": scenario,
                    "t": state["origin"],
                    "until": state["until"],
                    "shock": model["last_residual"],
                    "path": [],
                }
            )

    def child_app_id(self, context: ApplicationContext, index: int) -> str:
        # Readable in `turnout ui`, and built on the default id, which names the children after
        # the step's first attempt: a resumed failed step finds the scenarios that finished.
        return f"{context.app_id}-scenario-{index}-{super().child_app_id(context, index)[:8]}"

    def reduce(self, state: State, states: Iterable[State]) -> State:
        done = sorted(states, key=lambda s: int(s["scenario"]))
        return state.update(
            paths=[list(s["path"]) for s in done], totals=[s["total"] for s in done]
        )


# -- the summary and the charts --------------------------------------------------------------------


@action(reads=["paths", "origin", "forecasts"], writes=["forecast", "forecasts"])
def summarize(state: State) -> tuple[dict[str, Any], State]:
    """The forecast: per day, the quantiles of the scenarios."""
    forecast = market.quantiles(state["paths"], state["origin"])
    return forecast, state.update(forecast=forecast).append(forecasts=forecast)


@action(reads=["history", "paths", "forecast", "origin", "round", "plots"], writes=["plots"])
def plot(state: State, output: Output) -> tuple[dict[str, Any], State]:
    """Save the round's trajectories and forecast fan as PNG."""
    round_ = state["round"]
    history = state["history"]
    charts = {
        "trajectories": output.save(
            plots.trajectories_png(history, state["paths"], state["origin"]),
            f"round-{round_}-trajectories.png",
        ),
        "fan": output.save(plots.fan_png(history, state["forecast"]), f"round-{round_}-fan.png"),
    }
    return {"files": [ref.name for ref in charts.values()]}, state.append(
        plots={"round": round_, **charts}
    )


def initial_state(*, seed: int, history_days: int, horizon: int, scenarios: int) -> dict[str, Any]:
    """A new simulation: day 0, nothing observed, the first forecast due at ``history_days``."""
    for name, value, least in (
        ("history_days", history_days, 21),
        ("horizon", horizon, 1),
        ("scenarios", scenarios, 1),
    ):
        if not isinstance(value, int) or value < least:
            raise ValueError(f"{name}={value!r}: pass a whole number of at least {least}")
    return {
        "seed": seed,
        "horizon": horizon,
        "scenarios": scenarios,
        "day": 0,
        "until": history_days,
        "shock": 0.0,
        "round": 0,
        "history": [],
        "forecasts": [],
        "scores": [],
        "plots": [],
    }


def application(
    output: Output,
    *,
    seed: int = DEFAULTS["seed"],
    history_days: int = DEFAULTS["history_days"],
    horizon: int = DEFAULTS["horizon"],
    scenarios: int = DEFAULTS["scenarios"],
    world: market.Market | None = None,
    tracker: LocalTracker | None = None,
    persister: SQLitePersister | None = None,
    app_id: str | None = None,
) -> Application:
    """The simulation. With a ``persister`` (and an ``app_id``) it continues the stored run of
    that id, if there is one (with the settings it was started with); ``tracker`` records it
    and every scenario for ``turnout ui``."""
    state = initial_state(
        seed=seed, history_days=history_days, horizon=horizon, scenarios=scenarios
    )
    builder = (
        ApplicationBuilder()
        .with_actions(
            market_day=market_day.bind(world=world or market.Market()),
            score=score,
            fit=fit,
            simulate=Simulate(),
            summarize=summarize,
            plot=plot.bind(output=output),
        )
        .with_transitions(
            ("market_day", "market_day", expr("day < until")),
            ("market_day", "score"),
            ("score", "fit"),
            ("fit", "simulate"),
            ("simulate", "summarize"),
            ("summarize", "plot"),
            ("plot", "market_day"),
        )
        .with_identifiers(app_id=app_id)
    )
    if persister is not None:
        builder = builder.initialize_from(
            persister, default_state=state, default_entrypoint="market_day"
        ).with_state_persister(persister)
    else:
        builder = builder.with_state(**state).with_entrypoint("market_day")
    if tracker is not None:
        builder = builder.with_tracker(tracker)
    return builder.build()


def forecast_round(app: Application) -> dict[str, Any]:
    """Run one round: the market's days up to the origin, the score of the last forecast, the
    fit, the scenarios, the quantiles and the charts. Returns what the round produced."""
    _action, _result, state = app.run(halt_after=["plot"])
    scores = state["scores"]
    fresh = scores[-1] if scores and len(scores) == state["round"] - 1 else None  # from round 2
    return {
        "round": state["round"],
        "origin": state["origin"],
        "model": state["model"],
        "forecast": state["forecast"],
        "score": fresh,
        "plots": state["plots"][-1],
    }


@contextlib.contextmanager
def _stores(
    tracking_dir: str | Path | None, db: str | Path | None, track: bool
) -> Generator[tuple[LocalTracker | None, SQLitePersister | None], None, None]:
    with contextlib.ExitStack() as stack:
        tracker = None
        if track:
            tracker = LocalTracker(PROJECT, storage_dir=tracking_dir)
            stack.callback(tracker.close)
        persister = stack.enter_context(SQLitePersister(db)) if db is not None else None
        yield tracker, persister


def run(
    storage_dir: str | Path,
    *,
    rounds: int = 2,
    out_dir: str | Path | None = None,
    app_id: str | None = None,
    project: str = PROJECT,
    **settings: Any,
) -> Application:
    """Run ``rounds`` rounds tracked into ``project`` under ``storage_dir`` (for ``turnout ui``);
    the charts go to ``out_dir`` (default: ``storage_dir / "forecast-plots"``, beside the
    projects: a directory without app logs is no project to ``turnout ui``). ``settings`` are
    ``application``'s (``seed``, ``scenarios``, ...)."""
    output = Output(Path(out_dir) if out_dir is not None else Path(storage_dir) / PLOTS)
    tracker = LocalTracker(project, storage_dir=storage_dir)
    try:
        app = application(output, tracker=tracker, app_id=app_id, **settings)
        for _ in range(rounds):
            forecast_round(app)
    finally:
        tracker.close()
    return app


def _print_round(done: dict[str, Any], output: Output) -> None:
    model = done["model"]
    print(
        f"round {done['round']}: fitted on {model['days']} days: trend "
        f"{model['slope'] * 100:+.2f}%/day, promotion lift {model['promo_lift']:+.2f}, "
        f"AR(1) phi {model['phi']:.2f}, sigma {model['sigma']:.3f}"
    )
    if done["score"] is not None:
        s = done["score"]
        print(
            f"  the forecast from day {s['origin']}: {s['coverage_90']:.0%} of days inside its "
            f"90% band, {s['coverage_50']:.0%} inside its 50% band, median off by "
            f"{s['mape']:.1%}"
        )
    forecast = done["forecast"]
    print("  day    p05    p50    p95")
    for i, day in enumerate(forecast["days"]):
        print(
            f"  {day:>3} {forecast['p05'][i]:>6.1f} {forecast['p50'][i]:>6.1f} "
            f"{forecast['p95'][i]:>6.1f}"
        )
    for kind in ("trajectories", "fan"):
        print(f"  {kind}: {output.path(done['plots'][kind])}")


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """The command line; returns what each round produced."""
    parser = argparse.ArgumentParser(description="A demand forecast by Monte-Carlo simulation.")
    parser.add_argument("--rounds", type=int, default=2, help="forecast rounds to run")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    parser.add_argument("--days", type=int, default=DEFAULTS["history_days"],
                        help="days observed before the first forecast")  # fmt: skip
    parser.add_argument("--horizon", type=int, default=DEFAULTS["horizon"])
    parser.add_argument("--scenarios", type=int, default=DEFAULTS["scenarios"])
    parser.add_argument("--out", help="where the PNG charts go (default: forecast-plots in "
                        "the tracking directory)")  # fmt: skip
    parser.add_argument("--track", action="store_true", help=f"record for turnout ui ({PROJECT})")
    parser.add_argument("--tracking-dir", help="with --track: where (default: TURNOUT_HOME)")
    parser.add_argument("--db", help="a SQLite file: continue the run saved there, save it there")
    parser.add_argument("--app-id", help="the run's id (default: 'forecast' with --db)")
    args = parser.parse_args(argv)
    output = Output(Path(args.out) if args.out else tracking_home(args.tracking_dir) / PLOTS)
    app_id = args.app_id or ("forecast" if args.db else None)
    with _stores(args.tracking_dir, args.db, args.track) as (tracker, persister):
        app = application(
            output,
            seed=args.seed,
            history_days=args.days,
            horizon=args.horizon,
            scenarios=args.scenarios,
            tracker=tracker,
            persister=persister,
            app_id=app_id,
        )
        if app.sequence_id is not None:
            print(f"continuing run {app.uid!r} from day {app.state['day']} (round "
                  f"{app.state['round']} done)")  # fmt: skip
        rounds = []
        for _ in range(args.rounds):
            done = forecast_round(app)
            _print_round(done, output)
            rounds.append(done)
    if tracker is not None:
        artifacts = output.directory / "artifacts"
        print(f"tracked as {app.uid!r} in project {PROJECT!r}: run `turnout ui` to see it "
              f"(`turnout ui --artifacts {artifacts}` to download the charts)")  # fmt: skip
    return rounds


def page() -> None:
    """The Streamlit page: step the simulation (a day, or a round at a time), the charts of the
    last round, the forecast and its scores, the graph, the state and the trace."""
    import streamlit as st

    from turnout.integrations.streamlit import views

    st.title("Demand forecast: a Monte-Carlo simulation")
    with st.sidebar:
        seed = int(st.number_input("Seed", value=DEFAULTS["seed"], step=1))
        scenarios = int(st.slider("Scenarios", 5, 50, DEFAULTS["scenarios"]))
        if st.button("New simulation") or "app" not in st.session_state:
            folder = tempfile.mkdtemp(prefix="turnout-forecast-")  # this session's charts
            st.session_state.output = Output(Path(folder))
            st.session_state.app = application(
                st.session_state.output, seed=seed, scenarios=scenarios
            )
    app: Application = st.session_state.app
    output: Output = st.session_state.output
    state = app.state
    st.caption(
        f"Seed {state['seed']}, {state['scenarios']} scenarios, a {state['horizon']}-day "
        f"horizon. Day {state['day']} of the market; {state['round']} forecast round(s) done. "
        f"**Step** runs one action (a market day), **Run to halt** a whole round."
    )
    selected = views.step_controls(app, halt_after=["plot"], max_steps=200)
    if state["plots"]:
        charts = state["plots"][-1]
        st.subheader(f"Round {charts['round']}")
        st.image(output.store.get(charts["fan"]), caption=str(charts["fan"].name))
        st.image(output.store.get(charts["trajectories"]), caption=str(charts["trajectories"].name))
        forecast = state["forecast"]
        st.dataframe(
            [
                {"day": day, **{q: forecast[q][i] for q in market.QUANTILES}}
                for i, day in enumerate(forecast["days"])
            ],
            hide_index=True,
        )
    if state["scores"]:
        st.subheader("How the earlier forecasts did")
        st.dataframe(state["scores"], hide_index=True)
    with st.sidebar:
        views.render_graph(app)
    with st.expander("State"):
        views.render_state(selected if selected is not None else app)
    with st.expander("Trace"):
        views.render_trace(app)


def _in_streamlit() -> bool:
    """Whether a Streamlit script run (``streamlit run`` or ``AppTest``) executes this file."""
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx
    except ImportError:
        return False
    return get_script_run_ctx(suppress_warning=True) is not None


if __name__ == "__main__":
    if _in_streamlit():
        page()
    else:
        main()
