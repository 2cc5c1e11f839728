"""The numbers of the forecast simulation: the market that makes the demand, the model fitted to
it, the scenarios the model simulates, and the quantiles and scores over them.

Everything here is a plain function of plain values (lists, dicts, floats), so the application's
state stays JSON and every step can be tracked, persisted and replayed. Randomness is never
carried from one step to the next: each draw comes from a generator seeded with
``(seed, stream, ...day...)``, so any day can be recomputed on its own, a resumed run draws
exactly what the uninterrupted run would have, and scenarios running in parallel threads do not
share a generator.

The model is a log-linear regression (level, trend, one effect per weekday, the promotion lift)
solved by ``numpy.linalg.lstsq``, with an AR(1) model of what the regression leaves over. For
real work reach for ``statsmodels`` (``ExponentialSmoothing``, ``SARIMAX``); this one fits in a
page and is enough to show the fan widening with the horizon.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
QUANTILES = {"p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95}
"""The forecast's quantiles by name: the median, the 50% band and the 90% band."""

_MARKET, _SCENARIO = 0, 1  # the random streams: the market's days and the scenarios' days


@dataclass(frozen=True, kw_only=True, slots=True)
class Market:
    """The market the shop sells into, one day at a time (the data-generating process).

    Demand on day ``t`` is ``exp(log(base) + growth * t + weekday effect + lift if promoted +
    shock)``, where the shock is an AR(1) process (``persistence``, ``volatility``) and a
    promotion runs on a day with probability ``promo_rate``.
    """

    base: float = 120.0
    growth: float = 0.004
    weekday: tuple[float, ...] = (-0.10, -0.12, -0.05, 0.0, 0.10, 0.28, 0.20)
    promo_rate: float = 0.1
    promo_lift: float = 0.3
    persistence: float = 0.6
    volatility: float = 0.08

    def __post_init__(self) -> None:
        if len(self.weekday) != 7:
            raise ValueError(
                f"Market(weekday=...) needs one effect per day of the week, got "
                f"{len(self.weekday)}: pass seven numbers, Monday first"
            )
        if not 0.0 <= self.promo_rate <= 1.0:
            raise ValueError(f"Market(promo_rate={self.promo_rate!r}) must be within [0, 1]")
        if not -1.0 < self.persistence < 1.0:
            raise ValueError(
                f"Market(persistence={self.persistence!r}) must be within (-1, 1) for the "
                f"shocks to fade"
            )

    def day(self, seed: int, t: int, shock: float) -> dict[str, Any]:
        """Day ``t`` of the market after yesterday's ``shock``: ``{"day", "demand", "promo",
        "shock"}``. The same ``(seed, t, shock)`` always gives the same day."""
        rng = np.random.default_rng([seed, _MARKET, t])
        shock = self.persistence * shock + self.volatility * float(rng.standard_normal())
        promo = bool(rng.random() < self.promo_rate)
        log_demand = (
            math.log(self.base)
            + self.growth * t
            + self.weekday[t % 7]
            + (self.promo_lift if promo else 0.0)
            + shock
        )
        return {"day": t, "demand": round(math.exp(log_demand), 2), "promo": promo, "shock": shock}


def _design(days: Sequence[int], promos: Sequence[bool]) -> np.ndarray:
    """The regression's columns: 1, the day, six weekday dummies (Monday is the baseline) and
    the promotion flag."""
    t = np.asarray(days, dtype=float)
    weekday = np.asarray(days) % 7
    dummies = [(weekday == d).astype(float) for d in range(1, 7)]
    return np.column_stack([np.ones_like(t), t, *dummies, np.asarray(promos, dtype=float)])


def fit(history: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Fit the model to the observed days (``Market.day`` records, oldest first).

    Returns plain floats: ``intercept``, ``slope``, ``weekday`` (seven effects, Monday 0),
    ``promo_lift``, ``promo_rate`` (the share of promoted days), ``phi`` and ``sigma`` (the
    AR(1) of the residuals), ``last_residual`` (where the simulation starts) and ``days``.
    """
    if len(history) < 21:
        raise ValueError(
            f"fit() needs at least 21 observed days (three weeks) to estimate the weekday "
            f"effects, got {len(history)}; observe more days first"
        )
    days = [int(d["day"]) for d in history]
    promos = [bool(d["promo"]) for d in history]
    y = np.log(np.asarray([float(d["demand"]) for d in history]))
    x = _design(days, promos)
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    residual = y - x @ coef
    phi = float(np.dot(residual[1:], residual[:-1]) / np.dot(residual[:-1], residual[:-1]))
    innovations = residual[1:] - phi * residual[:-1]
    sigma = float(np.sqrt(np.sum(innovations**2) / (len(innovations) - x.shape[1] - 1)))
    return {
        "intercept": float(coef[0]),
        "slope": float(coef[1]),
        "weekday": [0.0, *(float(c) for c in coef[2:8])],
        "promo_lift": float(coef[8]),
        "promo_rate": sum(promos) / len(promos),
        "phi": phi,
        "sigma": sigma,
        "last_residual": float(residual[-1]),
        "days": len(history),
    }


def scenario_day(
    model: dict[str, Any], *, seed: int, origin: int, scenario: int, t: int, shock: float
) -> dict[str, Any]:
    """Day ``t`` of one simulated future of the fitted ``model`` after yesterday's ``shock``:
    ``{"day", "demand", "promo", "shock"}``, the same for the same arguments."""
    rng = np.random.default_rng([seed, _SCENARIO, origin, scenario, t])
    shock = model["phi"] * shock + model["sigma"] * float(rng.standard_normal())
    promo = bool(rng.random() < model["promo_rate"])
    log_demand = (
        model["intercept"]
        + model["slope"] * t
        + model["weekday"][t % 7]
        + (model["promo_lift"] if promo else 0.0)
        + shock
    )
    return {"day": t, "demand": round(math.exp(log_demand), 2), "promo": promo, "shock": shock}


def quantiles(paths: Sequence[Sequence[float]], first_day: int) -> dict[str, Any]:
    """Per day, the ``QUANTILES`` of the simulated demand over the scenarios' ``paths`` (one
    list per scenario, all as long): ``{"days": [...], "p05": [...], ..., "p95": [...]}``."""
    if not paths or len({len(p) for p in paths}) != 1:
        raise ValueError(
            f"quantiles() needs at least one path and paths of one length, got lengths "
            f"{sorted({len(p) for p in paths})}"
        )
    grid = np.quantile(np.asarray(paths, dtype=float), list(QUANTILES.values()), axis=0)
    out: dict[str, Any] = {"days": list(range(first_day, first_day + len(paths[0])))}
    for name, row in zip(QUANTILES, grid, strict=True):
        out[name] = [round(float(v), 2) for v in row]
    return out


def score(forecast: dict[str, Any], history: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """How the ``forecast`` did against the days observed since: the share of days inside its
    90% and 50% bands and the mean absolute percentage error of its median. ``None`` while
    any of its days is still unobserved."""
    observed = {int(d["day"]): float(d["demand"]) for d in history}
    if not all(day in observed for day in forecast["days"]):
        return None
    actual = np.asarray([observed[day] for day in forecast["days"]])

    def inside(low: str, high: str) -> float:
        lo, hi = np.asarray(forecast[low]), np.asarray(forecast[high])
        return round(float(np.mean((actual >= lo) & (actual <= hi))), 3)

    median = np.asarray(forecast["p50"])
    return {
        "origin": forecast["days"][0],
        "coverage_90": inside("p05", "p95"),
        "coverage_50": inside("p25", "p75"),
        "mape": round(float(np.mean(np.abs(actual - median) / actual)), 4),
    }
