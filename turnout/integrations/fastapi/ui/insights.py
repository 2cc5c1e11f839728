"""Cost and token insights: the tokens each step recorded (the OpenTelemetry GenAI attributes
``gen_ai.usage.input_tokens`` and ``gen_ai.usage.output_tokens``, on a span or the step), the
model each was spent on (``gen_ai.response.model``, else ``gen_ai.request.model``, on the same
span), priced from a ``prices.PriceTable``, and summed per step, action, model, application and
project over time, with the latency of each action.

Answers are the API's pydantic models (``/api/v1/.../insights``); the pages chart the same
answers (``_charts``). Tokens a table has no price for are counted apart as unpriced, never
guessed. A project's insights read its most recently active applications (``limit`` of them)
and say how many they cover.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from turnout.integrations.fastapi.ui import _source as src
from turnout.integrations.fastapi.ui import queries
from turnout.integrations.fastapi.ui.prices import MAX_NAME, ModelPrice, PriceTable

__all__ = [
    "ActionStats",
    "AppInsights",
    "ModelUsage",
    "ProjectInsights",
    "StepUsage",
    "TimeBucket",
    "Totals",
    "Usage",
    "app_insights",
    "project_insights",
    "step_usage",
]

INPUT = "gen_ai.usage.input_tokens"
OUTPUT = "gen_ai.usage.output_tokens"
MODEL_KEYS = ("gen_ai.response.model", "gen_ai.request.model")
BUCKETS = (60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400)
MAX_BUCKETS = 48


@dataclass(frozen=True, kw_only=True, slots=True)
class Usage:
    """Tokens spent on one model (``None``: no model recorded) within a step."""

    model: str | None
    input_tokens: float
    output_tokens: float


def _tokens(value: object) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return 0.0
    return float(value) if math.isfinite(value) and value >= 0 else 0.0


def _model(attributes: dict[str, object]) -> str | None:
    for key in MODEL_KEYS:
        value = attributes.get(key)
        if isinstance(value, str) and value:
            return value[:MAX_NAME]
    return None


def step_usage(step: src.Step) -> list[Usage]:
    """The tokens of ``step`` per model: each span's own, and those logged on the step outside
    any span (attributes a span logged also show on its step, so they count once)."""
    spent: dict[str | None, list[float]] = {}

    def add(model: str | None, attributes: dict[str, object]) -> None:
        inputs, outputs = _tokens(attributes.get(INPUT)), _tokens(attributes.get(OUTPUT))
        if inputs or outputs:
            total = spent.setdefault(model, [0.0, 0.0])
            total[0] += inputs
            total[1] += outputs

    span_keys: set[str] = set()
    for span in step.spans.values():
        span_keys.update(span.attributes)
        add(_model(span.attributes), span.attributes)
    rest = {k: v for k, v in step.attributes.items() if k not in span_keys}
    add(_model(rest) or _model(step.attributes), rest)
    return [Usage(model=m, input_tokens=i, output_tokens=o) for m, (i, o) in spent.items()]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class Totals(_Model):
    steps: int
    input_tokens: float
    output_tokens: float
    cost: float = Field(description="US dollars, over the priced tokens")
    unpriced_tokens: float = Field(description="tokens of models the price table does not list")


class ModelUsage(_Model):
    model: str | None = Field(description="null: tokens recorded without a model name")
    steps: int
    input_tokens: float
    output_tokens: float
    priced: bool
    input_price: float | None = Field(description="US dollars per million input tokens")
    output_price: float | None = Field(description="US dollars per million output tokens")
    cost: float | None


class ActionStats(_Model):
    action: str
    steps: int
    failed: int
    mean_duration: float | None = Field(description="seconds, over the steps with an end")
    p50_duration: float | None
    p95_duration: float | None
    max_duration: float | None
    input_tokens: float
    output_tokens: float
    cost: float
    unpriced_tokens: float = Field(description="tokens of models with no price (not in cost)")


class StepUsage(_Model):
    seq: int
    action: str
    status: str
    start: float | None
    duration: float | None
    input_tokens: float
    output_tokens: float
    cost: float
    models: list[str]


class TimeBucket(_Model):
    start: float = Field(description="POSIX time the bucket starts at (UTC-aligned)")
    steps: int
    input_tokens: float
    output_tokens: float
    cost: float
    mean_duration: float | None


class AppTotals(_Model):
    app_id: str
    steps: int
    input_tokens: float
    output_tokens: float
    cost: float
    last_time: float | None


class AppInsights(_Model):
    project: str
    app_id: str
    partial: bool = Field(description="a long log read from its tail: the figures cover it")
    prices_as_of: str
    totals: Totals
    models: list[ModelUsage]
    actions: list[ActionStats]
    steps: list[StepUsage] = Field(description="the last steps, oldest first")
    steps_left_out: int = Field(description="older steps not listed (they count in the totals)")


class ProjectInsights(_Model):
    project: str
    apps_read: int
    apps_total: int = Field(description="applications in the project; the most recent are read")
    prices_as_of: str
    totals: Totals
    models: list[ModelUsage]
    actions: list[ActionStats]
    bucket_seconds: int
    over_time: list[TimeBucket]
    apps: list[AppTotals] = Field(description="the applications read, most tokens first")


@dataclass(frozen=True, kw_only=True, slots=True)
class _Spent:
    """What one step spent (a ``StepUsage`` is made only for the steps listed)."""

    step: src.Step
    inputs: float
    outputs: float
    cost: float
    uses: list[Usage]

    def row(self) -> StepUsage:
        step = self.step
        return StepUsage(
            seq=step.seq, action=step.action, status=step.status, start=step.start,
            duration=step.duration, input_tokens=self.inputs, output_tokens=self.outputs,
            cost=self.cost, models=sorted({u.model for u in self.uses if u.model}),
        )  # fmt: skip


@dataclass(kw_only=True, slots=True)
class _Tally:
    """Sums over a set of steps."""

    prices: PriceTable
    steps: int = 0
    inputs: float = 0.0
    outputs: float = 0.0
    cost: float = 0.0
    unpriced: float = 0.0
    by_model: dict[str | None, list[float]] = field(default_factory=dict)  # steps, in, out
    by_action: dict[str, list[src.Step]] = field(default_factory=lambda: defaultdict(list))
    action_tokens: dict[str, list[float]] = field(default_factory=dict)  # in, out, cost, unpriced
    found: dict[str | None, ModelPrice | None] = field(default_factory=dict)

    def price(self, model: str | None) -> ModelPrice | None:
        """The table's price of ``model``, looked up once per model name."""
        if model not in self.found:
            self.found[model] = self.prices.find(model)
        return self.found[model]

    def add(self, step: src.Step) -> _Spent:
        """Count ``step`` in; what it spent."""
        self.steps += 1
        self.by_action[step.action].append(step)
        tokens = self.action_tokens.setdefault(step.action, [0.0, 0.0, 0.0, 0.0])
        s_in = s_out = s_cost = 0.0
        uses = step_usage(step)
        for use in uses:
            spent = self.by_model.setdefault(use.model, [0.0, 0.0, 0.0])
            spent[0] += 1
            spent[1] += use.input_tokens
            spent[2] += use.output_tokens
            price = self.price(use.model)
            if price is None:
                self.unpriced += use.input_tokens + use.output_tokens
                tokens[3] += use.input_tokens + use.output_tokens
            else:
                s_cost += (use.input_tokens * price.input + use.output_tokens * price.output) / 1e6
            s_in += use.input_tokens
            s_out += use.output_tokens
        self.inputs += s_in
        self.outputs += s_out
        self.cost += s_cost
        tokens[0] += s_in
        tokens[1] += s_out
        tokens[2] += s_cost
        return _Spent(step=step, inputs=s_in, outputs=s_out, cost=s_cost, uses=uses)

    def totals(self) -> Totals:
        return Totals(
            steps=self.steps, input_tokens=self.inputs, output_tokens=self.outputs,
            cost=self.cost, unpriced_tokens=self.unpriced,
        )  # fmt: skip

    def models(self) -> list[ModelUsage]:
        out = []
        for model, (steps, inputs, outputs) in self.by_model.items():
            price = self.price(model)
            out.append(
                ModelUsage(
                    model=model,
                    steps=int(steps),
                    input_tokens=inputs,
                    output_tokens=outputs,
                    priced=price is not None,
                    input_price=None if price is None else price.input,
                    output_price=None if price is None else price.output,
                    cost=None
                    if price is None
                    else (inputs * price.input + outputs * price.output) / 1e6,
                )
            )
        return sorted(out, key=lambda m: (-(m.input_tokens + m.output_tokens), m.model or ""))

    def actions(self) -> list[ActionStats]:
        out = []
        for action, steps in self.by_action.items():
            durations = sorted(s.duration for s in steps if s.duration is not None)
            inputs, outputs, cost, unpriced = self.action_tokens[action]
            out.append(
                ActionStats(
                    action=action,
                    steps=len(steps),
                    failed=sum(s.status in ("failed", "cancelled") for s in steps),
                    mean_duration=sum(durations) / len(durations) if durations else None,
                    p50_duration=_rank(durations, 0.5),
                    p95_duration=_rank(durations, 0.95),
                    max_duration=durations[-1] if durations else None,
                    input_tokens=inputs,
                    output_tokens=outputs,
                    cost=cost,
                    unpriced_tokens=unpriced,
                )
            )
        return sorted(out, key=lambda a: a.action)


def _rank(ordered: list[float], share: float) -> float | None:
    """The nearest-rank percentile of ``ordered`` (sorted)."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def app_insights(
    source: src.Reader, project: str, app_id: str, prices: PriceTable, *, limit: int = 200
) -> AppInsights:
    """Tokens, cost and latency of one application; its last ``limit`` steps listed."""
    log = queries.open_app(source, project, app_id)
    tally = _Tally(prices=prices)
    rows = [tally.add(step) for step in log.step_list()]
    limit = max(1, min(limit, queries.MAX_LIMIT))
    return AppInsights(
        project=project, app_id=app_id, partial=log.partial, prices_as_of=prices.as_of,
        totals=tally.totals(), models=tally.models(), actions=tally.actions(),
        steps=[r.row() for r in rows[-limit:]], steps_left_out=max(0, len(rows) - limit),
    )  # fmt: skip


def _bucket_size(first: float, last: float) -> int:
    span = max(last - first, 0.0)
    return next((b for b in BUCKETS if span / b < MAX_BUCKETS), BUCKETS[-1])


def project_insights(
    source: src.Reader, project: str, prices: PriceTable, *, limit: int = 100
) -> ProjectInsights:
    """Tokens, cost and latency over ``project``'s ``limit`` most recently active
    applications: totals, per model, per action, per application and over time."""
    limit = max(1, min(limit, queries.MAX_LIMIT))
    page = queries.apps_page(source, project, limit=limit)
    tally = _Tally(prices=prices)
    apps: list[AppTotals] = []
    points: list[_Spent] = []
    for row in page.apps:
        log = source.app(project, row.app_id)
        if log is None:
            continue
        spent = [tally.add(step) for step in log.step_list()]
        points += spent
        apps.append(
            AppTotals(
                app_id=row.app_id,
                steps=len(spent),
                input_tokens=sum(p.inputs for p in spent),
                output_tokens=sum(p.outputs for p in spent),
                cost=sum(p.cost for p in spent),
                last_time=row.last_time,
            )
        )
    timed = [(p.step.start, p) for p in points if p.step.start is not None]
    size = BUCKETS[0]
    buckets: list[TimeBucket] = []
    if timed:
        first = min(start for start, _ in timed)
        last = max(start for start, _ in timed)
        size = _bucket_size(first, last)
        origin = math.floor(first / size) * size
        count = int((last - origin) // size) + 1
        sums = [[0, 0.0, 0.0, 0.0, 0.0, 0] for _ in range(count)]
        for start, p in timed:
            cell = sums[min(count - 1, int((start - origin) // size))]
            cell[0] += 1
            cell[1] += p.inputs
            cell[2] += p.outputs
            cell[3] += p.cost
            if p.step.duration is not None:
                cell[4] += p.step.duration
                cell[5] += 1
        buckets = [
            TimeBucket(
                start=origin + i * size,
                steps=int(c[0]),
                input_tokens=c[1],
                output_tokens=c[2],
                cost=c[3],
                mean_duration=c[4] / c[5] if c[5] else None,
            )
            for i, c in enumerate(sums)
        ]
    apps.sort(key=lambda a: (-(a.input_tokens + a.output_tokens), a.app_id))
    return ProjectInsights(
        project=project, apps_read=len(apps), apps_total=page.total, prices_as_of=prices.as_of,
        totals=tally.totals(), models=tally.models(), actions=tally.actions(),
        bucket_seconds=size, over_time=buckets, apps=apps,
    )  # fmt: skip
