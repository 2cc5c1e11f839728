"""Naming the action in an error raised by the library it wraps, without changing the error."""

from __future__ import annotations

__all__ = ["add_note"]


def add_note(error: BaseException, note: str) -> None:
    """Add ``note`` to ``error`` once; the error keeps its type, so callers still catch it."""
    if note not in getattr(error, "__notes__", ()):
        error.add_note(note)
