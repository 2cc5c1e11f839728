"""Naming the action in an error raised by the library it wraps, without changing the error."""

from __future__ import annotations

__all__ = ["add_note"]


def add_note(error: BaseException, note: str) -> None:
    """Add ``note`` to ``error`` once; the error keeps its type, so callers still catch it."""
    notes: list[str] = list(getattr(error, "__notes__", []))
    if note in notes:
        return
    if hasattr(error, "add_note"):  # Python >= 3.11
        error.add_note(note)
    else:  # pragma: no cover - Python 3.10 keeps the note, the traceback does not show it
        error.__notes__ = [*notes, note]  # type: ignore[attr-defined]
