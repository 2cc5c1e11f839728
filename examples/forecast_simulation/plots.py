"""The simulation's two charts as PNG bytes, drawn with matplotlib's Agg canvas (no display).

``Figure`` objects are used directly, not ``pyplot``: pyplot keeps global figures and picks a
GUI backend, while a ``Figure`` on the Agg canvas is a local object, safe to draw in any thread
and on a machine without a screen.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_SHOWN_HISTORY = 42  # days of history drawn before the forecast


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    # No "Software" entry: the same numbers give the same bytes, whatever matplotlib's version.
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def _history_xy(history: Sequence[dict[str, Any]]) -> tuple[list[int], list[float]]:
    shown = history[-_SHOWN_HISTORY:]
    return [int(d["day"]) for d in shown], [float(d["demand"]) for d in shown]


def trajectories_png(
    history: Sequence[dict[str, Any]], paths: Sequence[Sequence[float]], first_day: int
) -> bytes:
    """The observed demand and every simulated scenario after it."""
    figure = Figure(figsize=(8, 4), layout="constrained")
    axes = figure.add_subplot()
    days, demand = _history_xy(history)
    future = list(range(first_day, first_day + len(paths[0]))) if paths else []
    for path in paths:
        axes.plot(future, path, color="tab:blue", alpha=0.25, linewidth=0.8)
    axes.plot(days, demand, color="black", linewidth=1.5, label="observed")
    axes.axvline(first_day - 0.5, color="grey", linestyle=":")
    axes.set_title(f"{len(paths)} simulated scenarios from day {first_day}")
    axes.set_xlabel("day")
    axes.set_ylabel("units sold")
    axes.legend(loc="upper left")
    return _png(figure)


def fan_png(history: Sequence[dict[str, Any]], forecast: dict[str, Any]) -> bytes:
    """The observed demand and the forecast: the median, the 50% band and the 90% band."""
    figure = Figure(figsize=(8, 4), layout="constrained")
    axes = figure.add_subplot()
    days, demand = _history_xy(history)
    future = forecast["days"]
    axes.fill_between(future, forecast["p05"], forecast["p95"], color="tab:orange", alpha=0.25,
                      label="90% band")  # fmt: skip
    axes.fill_between(future, forecast["p25"], forecast["p75"], color="tab:orange", alpha=0.5,
                      label="50% band")  # fmt: skip
    axes.plot(future, forecast["p50"], color="tab:red", linewidth=1.5, label="median")
    axes.plot(days, demand, color="black", linewidth=1.5, label="observed")
    axes.set_title(f"Forecast of days {future[0]}-{future[-1]}")
    axes.set_xlabel("day")
    axes.set_ylabel("units sold")
    axes.legend(loc="upper left")
    return _png(figure)
