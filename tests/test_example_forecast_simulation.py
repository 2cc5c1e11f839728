"""The forecast simulation example end to end, offline: the market stepped day by day, the model
it fits, the scenarios fanned out as tracked child applications, the quantiles, the scores of
earlier forecasts, the PNG charts, determinism under a seed, continuing a saved run, the
README's graph and the Streamlit page through ``AppTest``."""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("numpy")

import numpy as np
from matplotlib import image

from examples.forecast_simulation import application as sim
from examples.forecast_simulation import market
from turnout import Application
from turnout.core.sqlite import SQLitePersister
from turnout.core.tracking import LocalTracker, read_log
from turnout.core.trackview import AppLog

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "forecast_simulation"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SMALL: dict[str, Any] = {"history_days": 28, "horizon": 7, "scenarios": 6}


def _app(tmp_path: Path, name: str = "out", **settings: Any) -> Application:
    return sim.application(sim.Output(tmp_path / name), **{**SMALL, **settings})


def _numbers(app: Application) -> dict[str, Any]:
    state = app.state
    return {k: state[k] for k in ("history", "model", "paths", "forecasts", "scores")}


def test_a_round_observes_the_market_then_fits_simulates_and_summarizes(tmp_path: Path) -> None:
    app = _app(tmp_path)
    done = sim.forecast_round(app)
    state = app.state
    assert [d["day"] for d in state["history"]] == list(range(28))
    assert state["day"] == state["origin"] == 28
    assert state["until"] == 35  # the market next runs through the forecast's horizon
    assert done["round"] == state["round"] == 1
    assert done["score"] is None  # nothing to score in the first round
    assert done["model"]["days"] == 28
    assert app.get_next_action().name == "market_day"  # type: ignore[union-attr]
    # one path per scenario, one value per horizon day, each scenario's total its path's sum
    assert [len(p) for p in state["paths"]] == [7] * 6
    assert state["totals"] == [round(sum(p), 2) for p in state["paths"]]
    assert len({tuple(p) for p in state["paths"]}) == 6  # the scenarios differ
    forecast = done["forecast"]
    assert forecast["days"] == list(range(28, 35))
    expected = np.quantile(np.asarray(state["paths"]), 0.5, axis=0)
    assert forecast["p50"] == [round(float(v), 2) for v in expected]


def test_the_quantiles_of_each_day_are_ordered(tmp_path: Path) -> None:
    app = _app(tmp_path, scenarios=12)
    forecast = sim.forecast_round(app)["forecast"]
    names = list(market.QUANTILES)
    for i, day in enumerate(forecast["days"]):
        row = [forecast[name][i] for name in names]
        assert row == sorted(row), f"day {day}: {row}"
        lowest = min(p[i] for p in app.state["paths"])
        highest = max(p[i] for p in app.state["paths"])
        assert lowest <= row[0]
        assert row[-1] <= highest
    assert any(forecast["p05"][i] < forecast["p95"][i] for i in range(7))


def test_the_same_seed_gives_the_same_numbers_and_charts(tmp_path: Path) -> None:
    first, again = _app(tmp_path, "a", seed=3), _app(tmp_path, "b", seed=3)
    other = _app(tmp_path, "c", seed=4)
    for app in (first, again, other):
        for _ in range(2):
            sim.forecast_round(app)
    assert _numbers(first) == _numbers(again)
    assert first.state["plots"] == again.state["plots"]  # the same PNG bytes (digests)
    assert (tmp_path / "a" / "round-2-fan.png").read_bytes() == (
        tmp_path / "b" / "round-2-fan.png"
    ).read_bytes()
    assert first.state["history"] != other.state["history"]
    assert first.state["paths"] != other.state["paths"]


def test_the_fit_recovers_the_parameters_of_the_market() -> None:
    world = market.Market()
    history, shock = [], 0.0
    for t in range(700):
        day = world.day(11, t, shock)
        shock = day["shock"]
        history.append(day)
    model = market.fit(history)
    assert model["slope"] == pytest.approx(world.growth, abs=0.0005)
    assert model["promo_lift"] == pytest.approx(world.promo_lift, abs=0.05)
    assert model["promo_rate"] == pytest.approx(world.promo_rate, abs=0.03)
    assert model["phi"] == pytest.approx(world.persistence, abs=0.1)
    assert model["sigma"] == pytest.approx(world.volatility, abs=0.015)
    relative = [w - world.weekday[0] for w in world.weekday]  # Monday is the model's baseline
    assert model["weekday"] == pytest.approx(relative, abs=0.05)
    assert model["intercept"] == pytest.approx(math.log(world.base) + world.weekday[0], abs=0.1)


def test_the_second_round_scores_the_first_forecast_against_the_market(tmp_path: Path) -> None:
    app = _app(tmp_path)
    sim.forecast_round(app)
    done = sim.forecast_round(app)
    first = app.state["forecasts"][0]
    observed = {d["day"]: d["demand"] for d in app.state["history"]}
    actual = [observed[day] for day in first["days"]]
    inside = [lo <= a <= hi for lo, a, hi in zip(first["p05"], actual, first["p95"], strict=True)]
    assert app.state["scores"] == [done["score"]]
    assert done["score"]["origin"] == 28
    assert done["score"]["coverage_90"] == round(sum(inside) / len(inside), 3)
    errors = [abs(a - m) / a for a, m in zip(actual, first["p50"], strict=True)]
    assert done["score"]["mape"] == pytest.approx(sum(errors) / len(errors), abs=1e-4)
    assert done["model"]["days"] == 35  # refitted on the days the market ran since
    assert done["forecast"]["days"] == list(range(35, 42))


def test_every_scenario_is_a_child_application_tracked_under_the_simulate_step(
    tmp_path: Path,
) -> None:
    tracker = LocalTracker(sim.PROJECT, tmp_path / "tracking")
    app = sim.application(sim.Output(tmp_path / "out"), tracker=tracker, app_id="fc", **SMALL)
    sim.forecast_round(app)
    tracker.close()

    parent = list(read_log(tracker.log_path("fc")))
    steps = {r["seq"]: r["action"] for r in parent if r["t"] == "begin"}
    assert list(steps.values()) == ["market_day"] * 28 + [
        "score", "fit", "simulate", "summarize", "plot"
    ]  # fmt: skip
    (simulate_seq,) = [seq for seq, name in steps.items() if name == "simulate"]
    links = [(r["seq"], r["child_app_id"]) for r in parent if r["t"] == "child"]
    assert {seq for seq, _child in links} == {simulate_seq}
    expected = sorted((child for _seq, child in links), key=lambda c: int(c.split("-")[2]))
    assert [c.rsplit("-", 1)[0] for c in expected] == [f"fc-scenario-{i}" for i in range(6)]
    for index, child in enumerate(expected):
        records = list(read_log(tracker.log_path(child)))
        (app_record,) = [r for r in records if r["t"] == "app"]
        assert app_record["spawning_parent"] == {
            "app_id": "fc",
            "partition_key": None,
            "sequence_id": simulate_seq,
        }
        assert [r["action"] for r in records if r["t"] == "begin"] == ["simulate_day"] * 7 + [
            "settle"
        ]
        log = AppLog(tracker.log_path(child))
        log.load_all()
        final = log.state_after(7)
        assert final["path"] == app.state["paths"][index]
        assert final["total"] == app.state["totals"][index]
        assert log.parent is not None
        assert (log.parent.app_id, log.parent.sequence_id) == ("fc", simulate_seq)
    view = AppLog(tracker.log_path("fc"))
    view.load_all()
    assert sorted(c.app_id for c in view.children_of(simulate_seq)) == expected


def test_the_charts_are_png_files_and_artifacts(tmp_path: Path) -> None:
    app = _app(tmp_path)
    charts = sim.forecast_round(app)["plots"]
    output = sim.Output(tmp_path / "out")
    assert charts["round"] == 1
    for kind in ("trajectories", "fan"):
        ref = charts[kind]
        path = output.path(ref)
        assert path == tmp_path / "out" / f"round-1-{kind}.png"
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        assert ref.size_bytes == len(data) > 10_000
        assert ref.media_type == "image/png"
        assert output.store.get(ref) == data
        pixels = image.imread(path)
        assert pixels.shape[:2] == (400, 800)  # 8 x 4 inches at 100 dpi
        assert float(pixels[..., :3].std()) > 0.05  # something is drawn, not a blank canvas
    for forged in ("../elsewhere.png", "/etc/passwd", "notes.txt"):
        with pytest.raises(ValueError, match="not the name of a chart"):
            output.path(dataclasses.replace(charts["fan"], name=forged))
    fan = image.imread(output.path(charts["fan"]))
    trajectories = image.imread(output.path(charts["trajectories"]))
    assert not np.array_equal(fan, trajectories)


def test_a_saved_run_continues_with_the_next_round_as_if_never_stopped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "forecast.db"
    flags = ["--db", str(db), "--out", str(tmp_path / "out"), "--rounds", "1"]
    sizes = ["--days", "28", "--horizon", "7", "--scenarios", "6"]
    (first,) = sim.main([*flags, *sizes])
    assert "continuing" not in capsys.readouterr().out
    (second,) = sim.main([*flags, *sizes])
    printed = capsys.readouterr().out
    assert "continuing run 'forecast' from day 28 (round 1 done)" in printed
    assert (first["round"], second["round"]) == (1, 2)
    assert second["score"] is not None
    assert "the forecast from day 28:" in printed
    straight = _app(tmp_path, "straight")
    sim.forecast_round(straight)
    assert sim.forecast_round(straight)["forecast"] == second["forecast"]
    with SQLitePersister(db) as persister:
        record = persister.load(None, "forecast")
    assert record is not None
    assert record.state["round"] == 2
    assert record.state["history"] == straight.state["history"]


def test_run_tracks_the_rounds_into_a_storage_directory(tmp_path: Path) -> None:
    """The function a gallery calls: tracked into the project, charts beside the projects."""
    app = sim.run(tmp_path, rounds=2, app_id="gallery", **SMALL)
    assert app.state["round"] == 2
    project = tmp_path / sim.PROJECT
    parent = list(read_log(LocalTracker(sim.PROJECT, tmp_path).log_path("gallery")))
    assert sum(r["t"] == "child" for r in parent) == 2 * 6
    assert len([p for p in project.iterdir() if p.is_dir()]) == 1 + 2 * 6
    assert sorted(p.name for p in (tmp_path / "forecast-plots").glob("*.png")) == [
        "round-1-fan.png", "round-1-trajectories.png", "round-2-fan.png",
        "round-2-trajectories.png",
    ]  # fmt: skip


def test_the_command_line_prints_each_round_and_tracks_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rounds = sim.main(["--track", "--tracking-dir", str(tmp_path), "--scenarios", "4"])
    out = capsys.readouterr().out
    assert [r["round"] for r in rounds] == [1, 2]
    assert "round 1: fitted on 56 days" in out
    assert "round 2: fitted on 70 days" in out
    charts = tmp_path / "forecast-plots"  # in the tracking directory, unless --out says
    assert f"fan: {charts / 'round-2-fan.png'}" in out
    assert (charts / "round-2-fan.png").is_file()
    low, mid, high = (rounds[1]["forecast"][q][0] for q in ("p05", "p50", "p95"))
    assert f"\n   70 {low:>6.1f} {mid:>6.1f} {high:>6.1f}\n" in out
    assert f"--artifacts {charts / 'artifacts'}" in out
    assert (tmp_path / sim.PROJECT).is_dir()


@pytest.mark.parametrize(
    ("settings", "culprit"),
    [({"history_days": 20}, "history_days=20"), ({"horizon": 0}, "horizon=0"),
     ({"scenarios": 0}, "scenarios=0")],
    ids=["too-little-history", "no-horizon", "no-scenarios"],
)  # fmt: skip
def test_bad_settings_are_refused_naming_the_culprit(
    tmp_path: Path, settings: dict[str, Any], culprit: str
) -> None:
    with pytest.raises(ValueError, match=culprit):
        _app(tmp_path, **settings)


def test_bad_inputs_to_the_model_are_refused_naming_the_fix() -> None:
    with pytest.raises(ValueError, match="at least 21 observed days"):
        market.fit([{"day": t, "demand": 100.0, "promo": False} for t in range(10)])
    with pytest.raises(ValueError, match="paths of one length"):
        market.quantiles([[1.0, 2.0], [1.0]], 0)
    with pytest.raises(ValueError, match="seven numbers"):
        market.Market(weekday=(0.0,) * 5)
    with pytest.raises(ValueError, match="persistence"):
        market.Market(persistence=1.0)


def test_the_readme_mermaid_graphs_are_the_applications_graphs(tmp_path: Path) -> None:
    readme = (EXAMPLE / "README.md").read_text(encoding="utf-8")
    drawn = [block.split("```", 1)[0].strip() for block in readme.split("```mermaid\n")[1:]]
    app = _app(tmp_path)
    assert drawn == [app.graph.to_mermaid().strip(), sim.SCENARIO.graph.to_mermaid().strip()]


def test_the_streamlit_page_steps_a_day_then_runs_a_round_and_shows_the_charts() -> None:
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(EXAMPLE / "application.py"), default_timeout=60)
    try:
        _play_the_page(at)
    finally:
        if "output" in at.session_state:  # the session's temporary chart directory
            shutil.rmtree(at.session_state["output"].directory)


def _play_the_page(at: Any) -> None:
    at.run()
    assert not at.exception
    assert "Day 0 of the market" in at.caption[0].value
    next(b for b in at.button if b.label == "Step").click().run()
    assert not at.exception
    assert at.session_state["app"].state["day"] == 1
    assert "Day 1 of the market" in at.caption[0].value
    next(b for b in at.button if b.label == "Run to halt").click().run()
    assert not at.exception
    app = at.session_state["app"]
    assert (app.state["round"], app.state["day"]) == (1, 56)
    assert at.subheader[0].value == "Round 1"
    images = at.get("image")
    assert [i.captions for i in images] == [["round-1-fan.png"], ["round-1-trajectories.png"]]
    assert all(url.endswith(".png") for i in images for url in i.value)
    (forecast,) = at.dataframe[:1]
    assert list(forecast.value["day"]) == list(range(56, 70))
    assert list(forecast.value["p50"]) == app.state["forecast"]["p50"]


def test_a_run_that_failed_in_a_scenario_resumes_without_rerunning_finished_scenarios(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scenario fails once mid-horizon: reopened from its database, the run goes on with that
    scenario from its failed day (the finished ones are loaded) and ends with the numbers of a
    clean run."""
    real = market.scenario_day
    calls: dict[int, int] = {}
    failed: list[int] = []

    def flaky(model: dict[str, Any], **where: Any) -> dict[str, Any]:
        scenario = where["scenario"]
        calls[scenario] = calls.get(scenario, 0) + 1
        if scenario == 3 and where["t"] == 31 and not failed:
            failed.append(scenario)
            raise ConnectionError("the scenario's worker went away")
        return real(model, **where)

    monkeypatch.setattr(market, "scenario_day", flaky)
    output = sim.Output(tmp_path / "out")
    with SQLitePersister(tmp_path / "run.db") as persister:
        app = sim.application(output, persister=persister, app_id="f", **SMALL)
        with pytest.raises(Exception, match="went away"):
            sim.forecast_round(app)
        assert app.state["day"] == 28
        assert "paths" not in app.state
        first_calls = dict(calls)
        calls.clear()
        reopened = sim.application(output, persister=persister, app_id="f", **SMALL)
        assert reopened.get_next_action().name == "simulate"  # type: ignore[union-attr]
        resumed = sim.forecast_round(reopened)
    assert first_calls == {0: 7, 1: 7, 2: 7, 3: 4, 4: 7, 5: 7}  # 3 failed on its fourth day
    # only the failed scenario runs again, from its failed day (its first three were saved)
    assert calls == {3: 4}
    clean = _app(tmp_path, "clean")
    assert resumed["forecast"] == sim.forecast_round(clean)["forecast"]
    assert reopened.state["paths"] == clean.state["paths"]


def test_the_web_ui_lists_the_scenarios_under_the_simulate_step(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("jinja2")
    from fastapi.testclient import TestClient

    from turnout.integrations.fastapi.ui import create_ui_app

    sim.run(tmp_path, rounds=1, app_id="ui", **SMALL)
    api = f"/api/v1/projects/{sim.PROJECT}/apps"
    with TestClient(create_ui_app(tmp_path)) as ui:
        steps = ui.get(f"{api}/ui/steps").json()["steps"]
        shown = {s["action"]: [c["app_id"] for c in s["children"]] for s in steps}
        scenario = ui.get(f"{api}/{shown['simulate'][0]}").json()["summary"]
    assert sorted(c.rsplit("-", 1)[0] for c in shown["simulate"]) == sorted(
        f"ui-scenario-{i}" for i in range(6)
    )
    assert all(not children for action, children in shown.items() if action != "simulate")
    assert scenario["parent"]["app_id"] == "ui"
