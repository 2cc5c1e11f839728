"""The hyperparameter-tuning example end to end: a real scikit-learn model on its bundled digits,
trials as child applications on threads, a process pool and Ray, the search saved to SQLite and
resumed after ``kill -9`` with the result an uninterrupted run gives, every trial tracked under
the parent step that ran it."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sklearn")

from examples.hyperparameter_tuning import application as tuning
from examples.hyperparameter_tuning import trial
from turnout.core.sqlite import SQLitePersister
from turnout.core.tracking import LocalTracker, read_log
from turnout.core.trackview import AppLog

ROOT = Path(__file__).resolve().parents[1]
# Small enough for a few seconds a search: 3 candidates a round on 300 samples.
SMALL = tuning.Search(seed=7, per_round=3, max_rounds=3, patience=3, samples=300)


def _result(outcome: tuning.Outcome) -> dict[str, Any]:
    """What a search found, without where and how it ran."""
    return {
        "best": outcome.best,
        "trials": outcome.trials,
        "rounds": outcome.rounds,
        "reason": outcome.reason,
        "test_accuracy": outcome.test_accuracy,
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuning.Outcome:
    """``SMALL`` run once, uninterrupted, on threads: what every other run must find."""
    db = tmp_path_factory.mktemp("reference") / "tuning.db"
    return tuning.run(SMALL, db=db, app_id="reference", executor="thread")


def _children(db: Path, parent: str) -> dict[str, dict[str, Any]]:
    """The final state of each trial saved in ``db``, by app id (every app but ``parent``)."""
    with SQLitePersister(db) as persister:
        ids = [a for a in persister.list_app_ids(None) if a != parent]
        loaded = {a: persister.load(None, a) for a in ids}
    return {a: dict(record["state"]) for a, record in loaded.items() if record is not None}


def test_the_search_trains_real_models_and_keeps_the_best(reference: tuning.Outcome) -> None:
    trials = reference.trials
    assert reference.rounds == SMALL.max_rounds
    assert reference.reason == "budget spent: 3 rounds"
    assert [t["id"] for t in trials] == [f"r{r}-{i}" for r in (1, 2, 3) for i in range(3)]
    assert [t["round"] for t in trials] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    # round 1 explores only; later rounds draw the first two candidates near the best so far
    assert [t["origin"] for t in trials] == ["explore"] * 3 + ["exploit", "exploit", "explore"] * 2
    for t in trials:
        assert len(t["fold_accuracies"]) == SMALL.folds
        assert t["cv_accuracy"] == round(sum(t["fold_accuracies"]) / SMALL.folds, 6)
        low_c, high_c = trial.SPACE["C"]
        assert 10**low_c <= t["C"] <= 10**high_c
    best = max(trials, key=lambda t: t["cv_accuracy"])  # the earliest of equals, as decide keeps
    assert reference.best == best
    # a real model: the digits are learnt, and a poor draw (a far too wide kernel) is not
    assert best["cv_accuracy"] > 0.9
    assert min(t["cv_accuracy"] for t in trials) < best["cv_accuracy"]
    assert reference.test_accuracy == trial.holdout_accuracy(best, SMALL.seed)
    assert reference.test_accuracy > 0.9


def test_a_search_is_deterministic_for_its_seed(reference: tuning.Outcome, tmp_path: Path) -> None:
    again = tuning.run(SMALL, db=tmp_path / "a.db", app_id="again", executor="thread")
    assert _result(again) == _result(reference)
    other = tuning.Search(seed=8, per_round=3, max_rounds=3, patience=3, samples=300)
    different = tuning.run(other, db=tmp_path / "b.db", app_id="other", executor="thread")
    assert [t["C"] for t in different.trials] != [t["C"] for t in reference.trials]


def test_the_search_stops_when_patience_runs_out(tmp_path: Path) -> None:
    impatient = tuning.Search(seed=7, per_round=3, max_rounds=20, patience=1, samples=300)
    outcome = tuning.run(impatient, db=tmp_path / "t.db", app_id="impatient", executor="thread")
    assert outcome.reason == "no improvement in 1 rounds"
    assert outcome.rounds < 20
    last_round = [t for t in outcome.trials if t["round"] == outcome.rounds]
    assert max(t["cv_accuracy"] for t in last_round) <= outcome.best["cv_accuracy"]
    assert outcome.best["round"] < outcome.rounds


@pytest.fixture
def plain_main(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``__main__`` with no file: a spawned worker re-runs the parent's main script, and a
    script an earlier test ran as ``__main__`` (Streamlit's ``AppTest`` does) is not ours."""
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))


@pytest.mark.usefixtures("plain_main")
def test_trials_run_on_a_process_pool_with_the_same_result(
    reference: tuning.Outcome, tmp_path: Path
) -> None:
    db = tmp_path / "pool.db"
    outcome = tuning.run(SMALL, db=db, app_id="pool", executor="process", workers=2)
    assert _result(outcome) == _result(reference)
    children = _children(db, "pool")
    assert len(children) == len(reference.trials)
    pids = {child["pid"] for child in children.values()}
    assert os.getpid() not in pids
    assert 1 <= len(pids) <= 2


def test_trials_run_on_ray_with_the_same_result(
    reference: tuning.Outcome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ray = pytest.importorskip("ray")
    if ray.is_initialized():  # pragma: no cover - another module leaked its instance
        pytest.fail("Ray is already running before this test started it")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # a local instance, not a cluster
    db = tmp_path / "ray.db"
    outcome = tuning.run(SMALL, db=db, app_id="on-ray", executor="ray", workers=2)
    assert not ray.is_initialized()  # the search started Ray, so it stopped it
    assert _result(outcome) == _result(reference)
    pids = {child["pid"] for child in _children(db, "on-ray").values()}
    assert pids
    assert os.getpid() not in pids


def _start(db: Path, track: Path, app_id: str) -> subprocess.Popen[str]:
    command = [
        sys.executable, "examples/hyperparameter_tuning/application.py", "--db", str(db),
        "--app-id", app_id, "--seed", "7", "--per-round", "3", "--rounds", "8",
        "--patience", "8", "--samples", "300", "--track", "--tracking-dir", str(track),
    ]  # fmt: skip
    # its own process group: the kill takes the pool's workers with it, as a crash would
    return subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True
    )


@pytest.fixture
def killed(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A search in a subprocess, killed with SIGKILL once it has saved its second round."""
    db, track = tmp_path / "tuning.db", tmp_path / "track"
    process = _start(db, track, "killed")
    # a guard, not a clock the test waits on: a search that hangs is killed, failing the test
    watchdog = threading.Timer(180, os.killpg, (process.pid, signal.SIGKILL))
    watchdog.start()
    try:
        assert process.stdout is not None
        for line in process.stdout:  # each line is printed after its round was saved
            if line.startswith("round 2 saved"):
                break
        else:
            pytest.fail(f"the search ended before its second round: {process.wait()}")
        watchdog.cancel()
        os.killpg(process.pid, signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL
        yield db, track
    finally:
        watchdog.cancel()
        if process.poll() is None:  # pragma: no cover - a failed assertion above
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_a_killed_search_resumes_after_its_last_saved_step(
    killed: tuple[Path, Path], tmp_path: Path
) -> None:
    db, track = killed
    with SQLitePersister(db) as persister:
        saved = persister.load(None, "killed")
        assert saved is not None
        before = [(r.sequence_id, r.position) for r in persister.records(None, "killed")]
    last = saved["sequence_id"]
    assert saved["state"]["round"] >= 2  # the second round's decision was saved ...
    assert "test_accuracy" not in saved["state"]  # ... and the search did not finish
    assert last >= 5
    assert [seq for seq, _ in before] == list(range(last + 1))

    search = tuning.Search(seed=7, per_round=3, max_rounds=8, patience=8, samples=300)
    resumed = tuning.run(
        search, db=db, app_id="killed", executor="thread", track=True, tracking_dir=track
    )
    assert resumed.resumed_after == last
    uninterrupted = tuning.run(search, db=tmp_path / "whole.db", app_id="whole", executor="thread")
    assert _result(resumed) == _result(uninterrupted)

    # no round lost or done twice: one saved step per sequence id, round after round
    with SQLitePersister(db) as persister:
        after = [(r.sequence_id, r.position) for r in persister.records(None, "killed")]
    rounds = uninterrupted.rounds
    assert after[: len(before)] == before
    assert after == list(enumerate(["propose", "train", "decide"] * rounds + ["report"]))
    # every trial trained once: one saved child per trial; a trial a killed round finished
    # before the kill was loaded on resume, not trained again
    children = _children(db, "killed")
    assert sorted(c["candidate"]["id"] for c in children.values()) == sorted(
        t["id"] for t in uninterrupted.trials
    )
    tracker = LocalTracker(tuning.PROJECT, track)
    for child in children:
        ends = [r for r in read_log(tracker.log_path(child)) if r["t"] == "end"]
        assert [r["status"] for r in ends] == ["completed"]
    # the parent's log holds each step's end once, across both processes
    parent = list(read_log(tracker.log_path("killed")))
    ended = [r["seq"] for r in parent if r["t"] == "end"]
    assert ended == list(range(len(after)))


def test_resuming_with_other_settings_is_refused_naming_the_fix(
    reference: tuning.Outcome, tmp_path: Path
) -> None:
    db = tmp_path / "t.db"
    tuning.run(SMALL, db=db, app_id="s", executor="thread")
    other = tuning.Search(seed=8, per_round=3, max_rounds=3, patience=3, samples=300)
    with pytest.raises(ValueError, match=r"started with Search\(seed=7.*another app_id"):
        tuning.run(other, db=db, app_id="s", executor="thread")
    finished = tuning.run(SMALL, db=db, app_id="s", executor="thread")
    assert finished.resumed_after == 3 * 3  # loaded at its report: nothing ran again
    assert _result(finished) == _result(reference)


def test_each_trial_is_tracked_under_the_step_that_ran_it(tmp_path: Path) -> None:
    tuning.run(
        SMALL, db=tmp_path / "t.db", app_id="tracked", executor="thread", track=True,
        tracking_dir=tmp_path,
    )  # fmt: skip
    tracker = LocalTracker(tuning.PROJECT, tmp_path)
    parent = list(read_log(tracker.log_path("tracked")))
    steps = {r["seq"]: r["action"] for r in parent if r["t"] == "begin"}
    links = [(r["seq"], r["child_app_id"]) for r in parent if r["t"] == "child"]
    assert sorted(steps.values()) == sorted(["propose", "train", "decide"] * 3 + ["report"])
    assert sorted(seq for seq, _ in links) == [1] * 3 + [4] * 3 + [7] * 3
    assert {steps[seq] for seq, _ in links} == {"train"}
    tried = []
    for seq, child in links:
        records = list(read_log(tracker.log_path(child)))
        (app,) = [r for r in records if r["t"] == "app"]
        assert app["spawning_parent"] == {"app_id": "tracked", "partition_key": None,
                                          "sequence_id": seq}  # fmt: skip
        assert [r["action"] for r in records if r["t"] == "begin"] == ["train_and_evaluate"]
        spans = [r["name"] for r in records if r["t"] == "span_start"]
        assert spans == ["load data", "cross-validate"]
        tried.append(app["state"]["candidate"]["id"])
    assert sorted(tried) == [f"r{r}-{i}" for r in (1, 2, 3) for i in range(3)]

    # what `turnout ui` reads: the train steps list their trials, each trial its parent step
    view = AppLog(tracker.log_path("tracked"))
    view.load_all()
    assert sorted((seq, c.app_id) for seq in steps for c in view.children_of(seq)) == sorted(links)
    child = AppLog(tracker.log_path(links[0][1]))
    child.load_all()
    assert child.parent is not None
    assert (child.parent.app_id, child.parent.sequence_id) == ("tracked", links[0][0])


def test_the_script_tracks_into_the_given_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--track", "--tracking-dir", str(tmp_path), "--executor", "thread", "--seed", "7",
            "--per-round", "3", "--rounds", "3", "--patience", "3", "--samples", "300"]  # fmt: skip
    outcome = tuning.main(argv)
    printed = capsys.readouterr().out
    assert printed.count(" saved: 3 trials, best ") == 3
    assert f"test accuracy {outcome.test_accuracy:.4f}" in printed
    assert "tracked as 'tuning' in project 'hyperparameter-tuning'" in printed
    apps = sorted(p.name for p in (tmp_path / tuning.PROJECT).iterdir())
    assert "tuning" in apps
    assert len(apps) == 1 + 9  # the search and its nine trials


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--folds", "1"], "folds=2 or more"), (["--executor", "gpu"], "invalid choice: 'gpu'")],
    ids=["folds", "executor"],
)
def test_bad_settings_are_refused_naming_the_fix(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        tuning.main(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_an_unknown_executor_is_refused_naming_the_choices() -> None:
    unknown = tuning.executor_factory("gpu")
    with pytest.raises(ValueError, match="pick one of 'process', 'thread', 'ray'"):
        unknown.__enter__()


def test_proposals_stay_in_the_space_and_move_towards_the_best() -> None:
    best = {"C": 10.0, "gamma": 0.001}
    assert trial.propose(3, 4, 5, best) == trial.propose(3, 4, 5, best)  # seeded by round
    assert trial.propose(3, 4, 5, best) != trial.propose(3, 5, 5, best)
    near = [c for c in trial.propose(3, 4, 40, best) if c["origin"] == "exploit"]
    assert len(near) == 20
    for name, (low, high) in trial.SPACE.items():
        assert all(10**low <= c[name] <= 10**high for c in trial.propose(3, 1, 40, None))
        # round 4 draws with a spread of 1/16 of the range: all within four spreads
        sigma = (high - low) / 16
        assert all(abs(math.log10(c[name] / best[name])) <= 4 * sigma for c in near)


def test_the_readme_mermaid_graph_is_the_applications_graph(tmp_path: Path) -> None:
    readme = (ROOT / "examples" / "hyperparameter_tuning" / "README.md").read_text("utf-8")
    drawn = [block.split("```", 1)[0].strip() for block in readme.split("```mermaid\n")[1:]]
    with SQLitePersister(tmp_path / "t.db") as persister:
        app = tuning.application(tuning.Search(), persister, app_id="readme")
    assert drawn == [app.graph.to_mermaid().strip()]


def test_the_ui_lists_each_trial_under_the_train_step(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("jinja2")
    from fastapi.testclient import TestClient

    from turnout.integrations.fastapi.ui import create_ui_app

    one_round = tuning.Search(seed=7, per_round=2, max_rounds=1, samples=300)
    tuning.run(
        one_round, db=tmp_path / "t.db", app_id="ui", executor="thread", track=True,
        tracking_dir=tmp_path,
    )  # fmt: skip
    api = f"/api/v1/projects/{tuning.PROJECT}/apps"
    with TestClient(create_ui_app(tmp_path)) as ui:
        steps = ui.get(f"{api}/ui/steps").json()["steps"]
        shown = sorted((s["seq"], s["action"], len(s["children"])) for s in steps)
        child = steps[[s["seq"] for s in steps].index(1)]["children"][0]["app_id"]
        summary = ui.get(f"{api}/{child}").json()["summary"]
    assert shown == [(0, "propose", 0), (1, "train", 2), (2, "decide", 0), (3, "report", 0)]
    assert summary["parent"]["app_id"] == "ui"
