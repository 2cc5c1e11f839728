"""The geometry of the insights charts, drawn as SVG by the templates (``_chart.html``).

Charts are server-rendered: no charting script, nothing for a Content-Security-Policy to allow,
and every label goes through Jinja2's escaping like any other traced text. This module only
computes numbers (bar lengths, column boxes, the axis' top value) and plain-text labels; it
produces no markup.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Bar", "Column", "Columns", "bars", "columns", "nice_top"]

WIDTH = 1000.0  # the columns chart's viewBox
HEIGHT = 180.0


@dataclass(frozen=True, kw_only=True, slots=True)
class Bar:
    """One row of a horizontal bar chart; ``share`` of the longest bar, 0 to 100."""

    label: str
    value: float
    text: str
    share: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Column:
    """One column in the viewBox (``WIDTH`` x ``HEIGHT``), its label and tooltip."""

    x: float
    y: float
    width: float
    height: float
    label: str
    title: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Columns:
    """A column chart: the columns, the axis top (value and text) and the first/last labels."""

    columns: tuple[Column, ...]
    top: float
    top_text: str
    first: str
    last: str
    width: float = WIDTH
    height: float = HEIGHT


def nice_top(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (an axis' top)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= value * (1 - 1e-12))


def bars(rows: Sequence[tuple[str, float]], fmt: Callable[[float], str]) -> list[Bar]:
    """Horizontal bars for ``(label, value)`` rows, scaled to the largest value."""
    largest = max((v for _, v in rows if math.isfinite(v)), default=0.0)
    return [
        Bar(
            label=label,
            value=value,
            text=fmt(value),
            share=round(100 * value / largest, 2) if largest > 0 and value > 0 else 0.0,
        )
        for label, value in rows
    ]


def columns(
    points: Sequence[tuple[str, float, str]], fmt: Callable[[float], str]
) -> Columns | None:
    """A column per ``(label, value, tooltip)`` point, left to right (``None``: no point)."""
    if not points:
        return None
    top = nice_top(max((v for _, v, _ in points if math.isfinite(v)), default=0.0))
    step = WIDTH / len(points)
    gap = min(step * 0.15, 4.0)
    out = []
    for i, (label, value, title) in enumerate(points):
        height = HEIGHT * max(0.0, min(value, top)) / top if math.isfinite(value) else 0.0
        out.append(
            Column(
                x=round(i * step + gap / 2, 2),
                y=round(HEIGHT - height, 2),
                width=round(max(step - gap, 0.5), 2),
                height=round(height, 2),
                label=label,
                title=title,
            )
        )
    return Columns(
        columns=tuple(out),
        top=top,
        top_text=fmt(top),
        first=points[0][0],
        last=points[-1][0],
    )
