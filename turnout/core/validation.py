"""Builder checks under Burr's module name (``burr.core.validation``)."""

from __future__ import annotations

from typing import Any

from turnout.core.errors import GraphSetupError

__all__ = ["assert_set"]


def assert_set(value: Any, field: str, method: str) -> None:
    """Raise ``GraphSetupError`` (a ``ValueError``) naming ``method`` when ``value`` is ``None``:
    the builder's ``field`` was never set."""
    if value is None:
        raise GraphSetupError(
            [
                f"the application's {field} is not set: call "
                f"ApplicationBuilder.{method}(...) before build()."
            ]
        )
