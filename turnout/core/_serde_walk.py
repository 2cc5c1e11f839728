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
    "Walker",
    "call",
    "check_depth",
    "cycle_in",
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
    """A container being walked: its items, their results so far, where it sits.

    Its result is ``finish(results)`` if given, else ``dict(zip(keys, results))`` if ``keys``
    is given, else the list of results. Paths are built only when an error needs one.
    """

    __slots__ = (
        "finish",
        "index",
        "items",
        "keys",
        "label",
        "level",
        "next",
        "parent",
        "path",
        "results",
        "value",
    )

    def __init__(
        self,
        value: Any,
        items: Sequence[Any],
        level: int,
        parent: Frame | None,
        index: int,
        keys: list[Any] | None = None,
        label: Callable[[int], str] | None = None,
        finish: Callable[[list[Any]], Any] | None = None,
    ) -> None:
        self.value = value  # what is being encoded (None when decoding), to name cycles
        self.items = items
        self.level = level  # JSON containers around the items (the depth the limit checks)
        self.parent = parent
        self.index = index  # this container's place among its parent's items
        self.keys = keys
        self.label = label  # the path suffix of item i, when not "[i]" or ".key"
        self.finish = finish
        self.path: str | None = None
        self.results: list[Any] = []
        self.next = 0

    def own_path(self) -> str:
        if self.path is None:  # without recursion: the chain may be MAX_DEPTH frames long
            chain: list[Frame] = []
            frame: Frame = self
            while frame.path is None:
                chain.append(frame)
                assert frame.parent is not None  # the root frame is given its path
                frame = frame.parent
            for inner in reversed(chain):
                assert inner.parent is not None
                inner.path = frame.path + frame.item_label(inner.index)
                frame = inner
        assert self.path is not None
        return self.path

    def item_label(self, index: int) -> str:
        if self.label is not None:
            return self.label(index)
        if self.keys is not None:
            return f".{self.keys[index]}"
        return f"[{index}]"


class Walker:
    """What the encoder and the decoder share: a container opens a ``Frame`` only within
    ``MAX_DEPTH`` (and, when encoding, a container that holds itself is named as such)."""

    __slots__ = ()
    loading = False  # whether decoding: paths then name stored JSON, and frames hold no value

    def frame(
        self,
        value: Any,
        items: Sequence[Any],
        label: Callable[[int], str] | None,
        finish: Callable[[list[Any]], Any] | None,
        wrap: int,
        parent: Frame,
        index: int,
        keys: list[Any] | None = None,
    ) -> Frame:
        """The frame of ``items`` (from ``value``, ``None`` when decoding), ``wrap`` JSON
        containers inside ``parent``."""
        level = parent.level + wrap
        if level > MAX_DEPTH:
            cycle = None if self.loading else cycle_in(parent)
            if cycle is not None:
                outer, inner = cycle
                raise SerdeError(
                    inner, value, f"the value contains itself (this is the container at "
                    f"{outer}); a saved state must be a tree: store a key or an index instead "
                    f"of the reference",
                )  # fmt: skip
            check_depth(level, MAX_DEPTH, path_of(parent, index), value, loading=self.loading)
        return Frame(value, items, level, parent, index, keys, label, finish)


def _only(results: list[Any]) -> Any:
    return results[0]


def walk(
    value: Any, path: str, visit: Callable[[Any, Frame, int], Any], plain: frozenset[type]
) -> Any:
    """Visit ``value`` and everything in it; return the finished form of ``value``. Items whose
    type is in ``plain`` are their own finished form."""
    frame = Frame(None, (value,), 0, None, 0, None, same_label, _only)
    frame.path = path
    stack = [frame]
    while True:
        items, results, i = frame.items, frame.results, frame.next
        count = len(items)
        while i < count:
            item = items[i]
            i += 1
            if type(item) in plain:
                results.append(item)
                continue
            out = visit(item, frame, i - 1)
            if type(out) is Frame:
                frame.next = i
                stack.append(out)
                break
            results.append(out)
        else:
            stack.pop()
            if frame.finish is not None:
                result = frame.finish(results)
            elif frame.keys is not None:
                result = dict(zip(frame.keys, results, strict=True))
            else:
                result = results
            if not stack:
                return result
            stack[-1].results.append(result)
        frame = stack[-1]


def path_of(parent: Frame, index: int) -> str:
    """The path of item ``index`` of ``parent``."""
    return parent.own_path() + parent.item_label(index)


def cycle_in(parent: Frame) -> tuple[str, str] | None:
    """If a container on the way to ``parent`` (included) holds itself, the paths of its outer
    and inner occurrence."""
    chain: list[Frame] = []
    frame: Frame | None = parent
    while frame is not None:
        chain.append(frame)
        frame = frame.parent
    seen: dict[int, Frame] = {}
    for frame in reversed(chain):
        if frame.value is None:
            continue
        outer = seen.get(id(frame.value))
        if outer is not None and outer.value is frame.value:
            return outer.own_path(), frame.own_path()
        seen[id(frame.value)] = frame
    return None


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
