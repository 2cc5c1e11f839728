"""The tracking UI's inputs checked before use: ids (a project, an application) by the rules the
tracker names its directories with, and every URL query parameter by what it may hold.

Nothing here imports Streamlit. The id checks are ``turnout.core.trackfiles``' (re-exported);
the URL ones are the UI script's.
A refused value raises ``InvalidParameterError``, whose message names the parameter, shows the
value (shortened) and says what to do instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

# The id checks live with the file source they guard; they stay importable from here.
from turnout.core.trackfiles import (
    MAX_APP_ID,
    InvalidParameterError,
    check_app_id,
    check_name,
    shown,
)
from turnout.core.trackfiles import NAME_RULE as _NAME_RULE
from turnout.core.trackfiles import is_name as _is_name

__all__ = [
    "PARAMS",
    "InvalidParameterError",
    "Selection",
    "check_app_id",
    "check_name",
    "parse_params",
    "shown",
]

# The selections that live in the URL.
PARAMS = ("project", "app", "step", "tab", "page", "status", "pk", "tag", "live")

MAX_TEXT = 500  # a filter value (partition key, tag): longer is not a value the UI lists
_NUMBER = re.compile(r"[0-9]{1,12}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, kw_only=True, slots=True)
class Selection:
    """The URL's parameters that passed their checks, and one message per refused one."""

    values: dict[str, str]
    errors: list[str] = field(default_factory=list)


def parse_params(
    params: Mapping[str, str | None], *, tabs: Sequence[str], statuses: Sequence[str]
) -> Selection:
    """Check each known URL parameter; a refused one is left out and explained in ``errors``.

    ``project`` follows the tracker's naming rule, ``app`` is any id of at most
    ``MAX_APP_ID`` characters without NUL, ``step`` and ``page`` are
    non-negative integers (``page`` from 1), ``tab`` and ``status`` one of the given names,
    ``live`` is ``1``, and ``pk``/``tag`` are text of at most ``MAX_TEXT`` characters without
    control characters. Unknown parameters are ignored.
    """
    values: dict[str, str] = {}
    errors: list[str] = []
    for name, raw in params.items():
        if name not in PARAMS or raw is None or raw == "":
            continue
        try:
            values[name] = _check(name, str(raw), tabs=tabs, statuses=statuses)
        except InvalidParameterError as error:
            errors.append(str(error))
    return Selection(values=values, errors=errors)


def _check(name: str, value: str, *, tabs: Sequence[str], statuses: Sequence[str]) -> str:
    def refuse(why: str) -> InvalidParameterError:
        return InvalidParameterError(
            f"URL parameter {name}={shown(value)} was ignored: {why}. Fix or remove it from "
            "the address, or choose from the page instead."
        )

    if name == "project":
        if not _is_name(value, "project"):
            raise refuse(f"it is not a tracked project name: {_NAME_RULE}")
        return value
    if name == "app":
        if len(value) > MAX_APP_ID or "\x00" in value:
            raise refuse(f"an application id has at most {MAX_APP_ID:,} characters and no NUL")
        return value
    if name in ("step", "page"):
        if not _NUMBER.fullmatch(value) or (name == "page" and int(value) < 1):
            least = 1 if name == "page" else 0
            raise refuse(f"it must be a whole number from {least} (at most 12 digits)")
        return str(int(value))
    if name in ("tab", "status"):
        choices = tabs if name == "tab" else statuses
        if value not in choices:
            raise refuse(f"it must be one of {', '.join(choices)}")
        return value
    if name == "live":
        if value != "1":
            raise refuse("it must be 1 (or absent)")
        return value
    # pk, tag: free text, shown back only as literal text and compared with listed values.
    if len(value) > MAX_TEXT or _CONTROL.search(value):
        raise refuse(f"it must be text of at most {MAX_TEXT} characters, no control characters")
    return value
