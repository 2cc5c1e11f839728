"""Application inputs (``app.step(inputs={...})``) for the adapters' actions.

An adapter action declared with ``inputs=["name", ...]`` takes those inputs. Its input spec
reads an input like a state key (an input shadows a state key of its name, which the action
then no longer reads from state), and a mapping input gets every declared input the spec does
not name, added under its own name. So ``input={"greeting": "greeting"}, inputs=["name"]``
gives ``{"greeting": <state>, "name": <input>}``, and ``input="question",
inputs=["question"]`` takes the question from ``app.step(inputs={"question": ...})``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from turnout.core.state import State

__all__ = ["input_names", "reads_besides", "with_inputs"]


def input_names(inputs: Any, owner: str) -> list[str]:
    """The declared input names, checked: a list of str."""
    if isinstance(inputs, str) or not isinstance(inputs, Sequence):
        raise TypeError(f"{owner}: inputs must be a list of names; write inputs=[{inputs!r}]")
    bad = [name for name in inputs if not isinstance(name, str) or not name]
    if bad:
        raise TypeError(f"{owner}: inputs must be names (non-empty str), got {bad!r}")
    return list(dict.fromkeys(inputs))


def reads_besides(reads: Sequence[str], inputs: Sequence[str]) -> list[str]:
    """``reads`` without the names that come from inputs."""
    return [key for key in reads if key not in inputs]


def with_inputs(
    read: Any,
    state: State,
    given: Mapping[str, Any],
    names: Sequence[str],
    *,
    spec_keys: Sequence[str],
    owner: str,
) -> Any:
    """Read the input spec (``read``, which reads ``spec_keys``) over ``state`` shadowed by
    the declared inputs given, and add the inputs the spec does not read to a mapping value.
    An input the spec does not read, with a value that is not a mapping, is an error."""
    mine = {name: given[name] for name in names if name in given}
    if not mine:
        return read(state)
    value = read(state.update(**mine))
    unread = [name for name in mine if name not in spec_keys]
    if isinstance(value, Mapping):
        return {**value, **{name: mine[name] for name in unread if name not in value}}
    if unread:
        raise TypeError(
            f"{owner}: the inputs {unread} can only be added to a mapping input, but the input "
            f"spec gave {type(value).__name__}; name them in the input spec (e.g. "
            f"input={unread[0]!r}) or use a list or mapping spec"
        )
    return value
