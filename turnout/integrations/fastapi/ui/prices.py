"""The price table that turns recorded tokens into money in the UI's cost insights.

A table prices each model's input and output tokens, in US dollars per million tokens. The
defaults (``DEFAULT_PRICES``) are the vendors' published list prices for common models, with
the date they were taken and where from; they go stale, so a user gives their own table as a
JSON file (``create_ui_app(prices=PATH)``, ``turnout ui --prices PATH`` or
``$TURNOUT_UI_PRICES``)::

    {"as_of": "2026-01-15", "source": "our contract",
     "replace_defaults": false,
     "models": {"gpt-4o": {"input": 2.5, "output": 10}, "my-finetune": {"input": 3, "output": 12}}}

Its models are added to the defaults (a model named in both takes the file's prices), or
replace them with ``"replace_defaults": true``. A model recorded as ``gpt-4o-2024-08-06``
takes the price of the longest table name it starts with followed by ``-`` (``gpt-4o``), so
dated snapshots need no entry of their own. A file that does not fit is refused with a
``PriceTableError`` naming the file, the entry and the fix; nothing from it is used.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turnout.core.errors import TurnoutError

__all__ = [
    "DEFAULT_PRICES",
    "ModelPrice",
    "PriceTable",
    "PriceTableError",
    "load_prices",
    "parse_prices",
]

MAX_MODELS = 2000
MAX_NAME = 200
MAX_FILE_BYTES = 1_000_000
_KEYS = {"as_of", "source", "currency", "models", "replace_defaults"}
_PRICE_KEYS = {"input", "output"}
_FORMAT = (
    '{"models": {"<model name>": {"input": <USD per 1M input tokens>, '
    '"output": <USD per 1M output tokens>}}}'
)


class PriceTableError(TurnoutError, ValueError):
    """A price table (a user's file) that cannot be used; the message names the entry."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelPrice:
    """US dollars per million tokens, and where the figure comes from."""

    model: str
    input: float
    output: float
    origin: str  # "default" or "file"


@dataclass(frozen=True, kw_only=True, slots=True)
class PriceTable:
    """The prices in use: the defaults, a user's file, or both."""

    models: tuple[ModelPrice, ...]
    as_of: str
    source: str
    currency: str = "USD"
    path: str | None = None  # the user's file, when one was given

    def find(self, model: str | None) -> ModelPrice | None:
        """The price of ``model``: its own entry, else the longest entry it starts with
        followed by ``-`` (a dated snapshot), else ``None`` (not priced)."""
        if not model:
            return None
        best: ModelPrice | None = None
        for price in self.models:
            name = price.model
            if model == name:
                return price
            if model.startswith(name + "-") and (best is None or len(name) > len(best.model)):
                best = price
        return best

    def cost(self, model: str | None, input_tokens: float, output_tokens: float) -> float | None:
        """US dollars for the tokens (``None`` when the model has no price)."""
        price = self.find(model)
        if price is None:
            return None
        return (input_tokens * price.input + output_tokens * price.output) / 1_000_000


# List prices per million tokens (standard tier, uncached input), from the vendors' pricing
# pages: openai.com/api/pricing, anthropic.com/pricing, ai.google.dev/gemini-api/docs/pricing.
_DEFAULTS: dict[str, tuple[float, float]] = {
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "o1": (15.00, 60.00),
    "o3": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "claude-opus-4": (15.00, 75.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-3-opus": (15.00, 75.00),
    "claude-3-haiku": (0.25, 1.25),
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.0-flash": (0.10, 0.40),
    "gemini-1.5-pro": (1.25, 5.00),
    "gemini-1.5-flash": (0.075, 0.30),
}
DEFAULT_PRICES = PriceTable(
    models=tuple(
        ModelPrice(model=name, input=i, output=o, origin="default")
        for name, (i, o) in sorted(_DEFAULTS.items())
    ),
    as_of="2025-06",
    source="the vendors' published list prices (OpenAI, Anthropic, Google) as of mid-2025, "
    "standard tier, uncached input, not re-checked since: verify them before relying on "
    "them, and give your own with --prices",
)


def _problem(where: str, message: str) -> PriceTableError:
    return PriceTableError(f"price table {where}: {message}. The format: {_FORMAT}")


def _number(where: str, name: str, key: str, value: Any) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0:
        raise _problem(
            where,
            f"models[{name!r}].{key} is {value!r:.60}, not a number of dollars >= 0 "
            "per million tokens",
        )
    return float(value)


def _text(where: str, data: dict[str, Any], key: str, default: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or len(value) > 500:
        raise _problem(where, f"{key!r} must be a text of at most 500 characters")
    return value


def parse_prices(
    data: Any, *, where: str = "(given)", defaults: PriceTable = DEFAULT_PRICES
) -> PriceTable:
    """The table ``data`` (a parsed JSON document) describes, over ``defaults``.

    Raises:
        PriceTableError: ``data`` does not have the format; the message names the entry.
    """
    if not isinstance(data, dict):
        raise _problem(where, f"the document is a {type(data).__name__}, not an object")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise _problem(where, f"unknown keys {unknown} (known: {sorted(_KEYS)})")
    models = data.get("models")
    if not isinstance(models, dict) or not models:
        raise _problem(where, "'models' must be an object with at least one model")
    if len(models) > MAX_MODELS:
        raise _problem(where, f"{len(models)} models: at most {MAX_MODELS}")
    currency = _text(where, data, "currency", "USD")
    if currency != "USD":
        raise _problem(where, f"currency {currency!r}: prices are in US dollars ('USD')")
    replace = data.get("replace_defaults", False)
    if not isinstance(replace, bool):
        raise _problem(where, "'replace_defaults' must be true or false")
    given: dict[str, ModelPrice] = {}
    for name, entry in models.items():
        if not name.strip() or len(name) > MAX_NAME or not name.isprintable():
            raise _problem(
                where, f"model name {name[:60]!r} must be 1 to {MAX_NAME} printable characters"
            )
        if not isinstance(entry, dict) or set(entry) != _PRICE_KEYS:
            raise _problem(
                where,
                f"models[{name!r}] must be an object with exactly 'input' and 'output' "
                f"(got {entry!r:.80})",
            )
        given[name] = ModelPrice(
            model=name,
            input=_number(where, name, "input", entry["input"]),
            output=_number(where, name, "output", entry["output"]),
            origin="file",
        )
    kept = [] if replace else [p for p in defaults.models if p.model not in given]
    return PriceTable(
        models=tuple(sorted([*kept, *given.values()], key=lambda p: p.model)),
        as_of=_text(where, data, "as_of", "not dated"),
        source=_text(where, data, "source", "the user's price table"),
        path=None if where == "(given)" else where,
    )


def load_prices(path: str | Path | None) -> PriceTable:
    """The table of the JSON file ``path`` over the defaults (``None``: the defaults).

    Raises:
        PriceTableError: the file is missing, not JSON, or not in the format.
    """
    if path is None:
        return DEFAULT_PRICES
    file = Path(path)
    where = str(file)
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            raise _problem(where, f"the file is over {MAX_FILE_BYTES:,} bytes")
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise PriceTableError(
            f"price table {where}: cannot be read ({error.strerror or error}): pass the path "
            "of a JSON price file (--prices PATH or $TURNOUT_UI_PRICES)"
        ) from None
    except UnicodeDecodeError:
        raise _problem(where, "the file is not UTF-8 text") from None
    try:
        data = json.loads(text)
    except ValueError as error:
        raise _problem(where, f"not JSON ({error})") from None
    return parse_prices(data, where=where)
