"""The explicit-stack walk shared by encoding and decoding.

A walk never recurses: ``visit`` turns each value into either its finished form (a leaf) or a
``Frame`` listing the items still to visit and how to assemble their results. However deep the
input, the Python stack stays flat, so no input raises ``RecursionError``; the walkers enforce
their own depth limit instead, with an error that names the path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from turnout.core.errors import SerdeError, TurnoutError

__all__ = [
    "MAX_DEPTH",
    "TAG",
    "Frame",
    "call",
    "check_depth",
    "identity",
    "index_label",
    "path_of",
    "safe_repr",
    "same_label",
    "walk",
]

TAG = "__turnout__"
"""The key that marks a stored dict as a tagged value."""

MAX_DEPTH = 500
"""How deep stored JSON may nest: each list or dict counts one level (a tuple or set is stored as
two, a dict with non-string keys as three). Far past real state, and well inside what the
``json`` module can write and read at Python's default recursion limit."""


class Frame:
    """A container being walked: its items, their results so far, where it sits."""

    __slots__ = ("active", "finish", "ident", "items", "label", "level", "next", "path", "results")

    def __init__(
        self,
        items: Sequence[Any],
        label: Callable[[int], str],
        finish: Callable[[list[Any]], Any],
        level: int,
        path: str,
        active: dict[int, str] | None,
        ident: int,
    ) -> None:
        self.items = items
        self.label = label  # the path suffix of item i, e.g. "[3]" or ".name"; built on demand
        self.finish = finish  # the container's result from its items' results
        self.level = level  # JSON containers around the items (the depth the limit checks)
        self.path = path
        self.active = active  # the encoder's containers in progress, to catch cycles
        self.ident = ident
        self.results: list[Any] = []
        self.next = 0


def _root_label(_index: int) -> str:
    return ""


def _only(results: list[Any]) -> Any:
    return results[0]


def walk(value: Any, path: str, visit: Callable[[Any, Frame, int], Any]) -> Any:
    """Visit ``value`` and everything in it; return the finished form of ``value``."""
    frames = [Frame([value], _root_label, _only, 0, path, None, 0)]
    while True:
        frame = frames[-1]
        i = frame.next
        if i < len(frame.items):
            frame.next = i + 1
            out = visit(frame.items[i], frame, i)
            if type(out) is Frame:
                frames.append(out)
            else:
                frame.results.append(out)
            continue
        frames.pop()
        if frame.active is not None:
            frame.active.pop(frame.ident, None)
        result = frame.finish(frame.results)
        if not frames:
            return result
        frames[-1].results.append(result)


def path_of(parent: Frame, index: int) -> str:
    return parent.path + parent.label(index)


def index_label(index: int) -> str:
    return f"[{index}]"


def same_label(_index: int) -> str:
    return ""


def identity(results: list[Any]) -> Any:
    return results


def call(
    function: Callable[[Any], Any], argument: Any, path: str, what: str, *, loading: bool = True
) -> Any:
    """User code (a codec, a registered class's constructor) behind one error type."""
    try:
        return function(argument)
    except TurnoutError:
        raise
    except Exception as exc:
        reason = f"{what} raised {type(exc).__name__}: {safe_repr(str(exc), 300)[1:-1]}"
        raise SerdeError(path, None, reason, loading=loading) from exc


def check_depth(level: int, limit: int, path: str, value: Any, *, loading: bool = False) -> None:
    if level <= limit:
        return
    if loading:
        reason = f"the stored JSON nests deeper than {limit} levels, more than turnout writes"
    else:
        reason = (
            f"the value nests deeper than {limit} levels of stored JSON (each list or dict "
            f"is one, a tuple or set two, a dict with non-string keys three); flatten it, or "
            f"keep it out of the state"
        )
    raise SerdeError(path, None if loading else value, reason, loading=loading)


def safe_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, or a stand-in if ``__repr__`` raises."""
    try:
        text = repr(value)
    except Exception:
        return f"<{type(value).__qualname__} object>"
    return text if len(text) <= limit else f"{text[: limit - 3]}..."
