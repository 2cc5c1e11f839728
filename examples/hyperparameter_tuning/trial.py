"""One trial of the search: train a support-vector classifier with one candidate's
hyperparameters and score it by cross-validation, as a child application's action.

Everything here is module-level, so a process pool or Ray pickles it by reference, and the data
set is scikit-learn's bundled ``load_digits`` (8x8 images of handwritten digits, shipped with the
library: nothing is downloaded).
"""

from __future__ import annotations

import functools
import math
import os
import random
from typing import Any

from turnout import State, TracerFactory, action
from turnout.core.errors import MissingExtraError

try:  # scikit-learn ships no type information
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]
    from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split  # type: ignore[import-untyped]
    from sklearn.pipeline import make_pipeline  # type: ignore[import-untyped]
    from sklearn.preprocessing import StandardScaler  # type: ignore[import-untyped]
    from sklearn.svm import SVC  # type: ignore[import-untyped]
except ImportError as _error:
    raise MissingExtraError(
        "examples/hyperparameter_tuning needs scikit-learn, which is not installed: "
        'pip install "turnout[sklearn]"'
    ) from _error

SPACE = {"C": (-2.0, 3.0), "gamma": (-5.0, -1.0)}
"""The search space: the base-10 logarithm of each hyperparameter lies in these bounds."""

Candidate = dict[str, Any]
TEST_SIZE = 0.25


@functools.cache
def split(seed: int) -> tuple[Any, Any, Any, Any]:
    """``(x_train, x_test, y_train, y_test)``: the same stratified split for a seed, in every
    process (cached per process, so a worker loads the data once)."""
    x, y = load_digits(return_X_y=True)
    parts: tuple[Any, Any, Any, Any] = tuple(
        train_test_split(x, y, test_size=TEST_SIZE, stratify=y, random_state=seed)
    )
    return parts


def model(candidate: Candidate) -> Any:
    """The estimator a candidate describes: features scaled, then an RBF-kernel SVC."""
    return make_pipeline(StandardScaler(), SVC(C=candidate["C"], gamma=candidate["gamma"]))


def _point(rng: random.Random, centre: Candidate | None, spread: float) -> dict[str, float]:
    """A point of ``SPACE``: uniform in log space, or around ``centre`` (log-normal, clipped)."""
    point: dict[str, float] = {}
    for name, (low, high) in SPACE.items():
        if centre is None:
            exponent = rng.uniform(low, high)
        else:
            exponent = rng.gauss(math.log10(centre[name]), spread * (high - low))
        point[name] = float(f"{10 ** min(max(exponent, low), high):.4g}")
    return point


def propose(seed: int, round_: int, count: int, best: Candidate | None) -> list[Candidate]:
    """The candidates of round ``round_`` (1-based): uniform random draws until there is a best
    trial; then half of them are drawn around the best (spread shrinking by half each round),
    the others still uniformly, so the search keeps exploring. The generator is seeded by
    ``(seed, round_)`` alone: a resumed search proposes exactly what it would have."""
    rng = random.Random(seed * 1_000_003 + round_)
    near = 0 if best is None else (count + 1) // 2
    spread = 0.25 * 0.5 ** (round_ - 2)
    out: list[Candidate] = []
    for index in range(count):
        origin = "exploit" if index < near else "explore"
        point = _point(rng, best if origin == "exploit" else None, spread)
        out.append({"id": f"r{round_}-{index}", "origin": origin, **point})
    return out


@action(reads=["candidate", "search"], writes=["cv_accuracy", "fold_accuracies", "pid"])
def train_and_evaluate(state: State, __tracer: TracerFactory) -> State:
    """Cross-validate one candidate on (the first ``samples`` of) the training split, with
    stratified folds shuffled by the seed."""
    candidate, search = state["candidate"], state["search"]
    with __tracer("load data"):
        x_train, _x_test, y_train, _y_test = split(search["seed"])
        if search["samples"]:
            x_train, y_train = x_train[: search["samples"]], y_train[: search["samples"]]
    with __tracer("cross-validate") as span:
        folds = StratifiedKFold(n_splits=search["folds"], shuffle=True, random_state=search["seed"])
        scores = cross_val_score(model(candidate), x_train, y_train, cv=folds)
        span.log_attributes(samples=len(y_train), folds=search["folds"])
    accuracies = [round(float(s), 6) for s in scores]
    __tracer.log_attributes(C=candidate["C"], gamma=candidate["gamma"])
    return state.update(
        cv_accuracy=round(sum(accuracies) / len(accuracies), 6),
        fold_accuracies=accuracies,
        pid=os.getpid(),  # where it ran: not part of the result, shown in the UI
    )


def holdout_accuracy(candidate: Candidate, seed: int) -> float:
    """The candidate trained on the whole training split, scored on the held-out test split."""
    x_train, x_test, y_train, y_test = split(seed)
    return round(float(model(candidate).fit(x_train, y_train).score(x_test, y_test)), 6)
