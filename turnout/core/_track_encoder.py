"""Turning what the local tracker logs into log lines without ever raising.

A value that cannot be logged (the serde refuses it, it is cyclic or too deep, JSON cannot hold
it, its ``repr`` raises) becomes a ``placeholder`` naming why, and its application gets one
``TrackingWarning``. Used by ``turnout.core.tracking.LocalTracker``; not public API.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

from turnout.core.errors import SerdeError, TrackingWarning
from turnout.core.serde import TAG, Serde
from turnout.core.state import State
from turnout.core.tracklog import REPR, dump_line

__all__ = ["placeholder"]

_REPR_LIMIT = 10_000


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)[:_REPR_LIMIT]
    except Exception as exc:  # a raising __repr__, an int past str()'s digit limit, ...
        return f"<{type(value).__qualname__} object; its repr raised {type(exc).__name__}>"


def _why(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:300]


def placeholder(value: Any, exc: BaseException) -> dict[str, Any]:
    """What the log holds for a value that could not be logged: its repr (or a stand-in when
    even that fails) and why. Loaders know it is not the value (see ``LocalTracker.load``)."""
    return {TAG: REPR, "v": _safe_repr(value), "why": _why(exc)}


class _SafeEncoder:
    """Turns what the tracker logs into log lines without ever raising: a value that cannot be
    logged becomes a ``placeholder`` and its application gets one ``TrackingWarning``."""

    def __init__(self, serde: Serde) -> None:
        self.serde = serde
        self._warned: set[str] = set()

    def value(self, app_id: str, value: Any, path: str = "$") -> Any:
        try:
            return self.serde.encode(value, path)
        except Exception as exc:  # SerdeError, RecursionError (cycles, depth), a codec's bug
            self._warn(app_id, path, value, exc)
            return placeholder(value, exc)

    def state(self, app_id: str, state: State) -> dict[str, Any]:
        """Key by key, so one value that cannot be encoded spoils only its own key."""
        return {k: self.field(app_id, k, v) for k, v in state.get_all().items()}

    def field(self, app_id: str, key: str, value: Any) -> Any:
        """The state key ``key`` holding ``value``, through its field serde if it has one."""
        try:
            return self.serde.encode_field(key, value)
        except Exception as exc:  # as in value()
            self._warn(app_id, f"$.{key}", value, exc)
            return placeholder(value, exc)

    def _warn(self, app_id: str, path: str, value: Any, exc: BaseException) -> None:
        if app_id in self._warned:
            return
        self._warned.add(app_id)
        hint = (
            "register a codec with DEFAULT_SERDE.register(...) to log it"
            if isinstance(exc, SerdeError)
            else "keep such values out of the state, inputs and results to log them"
        )
        warnings.warn(
            f"tracking app {app_id!r}: the value at {path} ({_safe_repr(value)[:80]}) cannot be "
            f"logged ({_why(exc)}); the log holds a placeholder instead, so a state holding it "
            f"cannot be loaded back from the tracker; {hint}. The application runs on "
            f"(warned once per application).",
            TrackingWarning,
            stacklevel=2,
        )

    def line(self, app_id: str, data: dict[str, Any]) -> bytes:
        try:
            return dump_line(data)
        except UnicodeEncodeError:  # lone surrogates: JSON's \u escapes hold them
            ascii_only = True
        except (ValueError, TypeError, RecursionError) as exc:
            # A value the serde let through that JSON cannot hold (an int past str()'s
            # digit limit, ...): only then find it, field by field.
            return dump_line(self._sanitize(app_id, data, exc), ascii_only=True)
        try:
            return dump_line(data, ascii_only=ascii_only)
        except (ValueError, TypeError, RecursionError) as exc:
            return dump_line(self._sanitize(app_id, data, exc), ascii_only=True)

    def _sanitize(self, app_id: str, data: dict[str, Any], exc: BaseException) -> dict[str, Any]:
        def fits(value: Any) -> bool:
            try:
                json.dumps(value, ensure_ascii=True)
            except (ValueError, TypeError, RecursionError):
                return False
            return True

        def safe(value: Any, path: str) -> Any:
            if fits(value):
                return value
            self._warn(app_id, path, value, exc)
            return placeholder(value, exc)

        out: dict[str, Any] = {}
        for key, value in data.items():
            if key in ("state", "snapshot", "inputs") and isinstance(value, dict):
                out[key] = {str(k): safe(v, f"$.{k}") for k, v in value.items()}
            elif key == "changes" and isinstance(value, list):
                out[key] = [[op, k, safe(v, f"$.{k}")] for op, k, v in value]
            else:
                out[key] = safe(value, f"$.{key}")
        return out
