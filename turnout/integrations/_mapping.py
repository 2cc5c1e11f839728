"""How an adapter's action feeds a library object from state and puts its output back.

Every adapter (LangChain, Hamilton, LlamaIndex) takes the same two specs, written with the same
four names (Burr's, from its Hamilton integration), so a user learns them once:

Input spec -- what the wrapped object receives:
    ``"question"``                       the value of one state key
    ``["question", "history"]``          a dict of those keys
    ``{"q": "question", "k": from_value(3)}``   a dict built from state keys and constants
    ``from_state("question")`` / ``from_value(v)``   one key or one constant
    ``{"q": from_state("question", missing="drop")}``   left out while the key is not in state
    ``lambda state: ...`` with ``reads=[...]``       anything computed from state

Output spec -- where its output goes:
    ``"answer"`` or ``update_state("answer")``      the whole output replaces one key
    ``append_state("messages")``                    the whole output is appended to a list
    ``extend_state("documents")``                   the output (an iterable) extends a list
    ``{"text": update_state("answer"), "docs": "sources"}``   fields of a mapping output
    ``lambda output, state: state.update(...)`` with ``writes=[...]``

``reads`` and ``writes`` are derived from the specs; a function spec needs them declared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from turnout.core.action import _names
from turnout.core.state import State

__all__ = [
    "InputSpec",
    "OutputSpec",
    "append_state",
    "declared_names",
    "extend_state",
    "from_state",
    "from_value",
    "input_reader",
    "output_writer",
    "update_state",
]


@dataclass(frozen=True, slots=True)
class from_state:  # lower case: named like Burr's
    """The value of state key ``key``.

    ``missing="drop"`` (Burr's option) leaves the name out of a mapping input while the key is
    not in state, so the wrapped object's default applies; ``"error"`` (the default) fails.
    """

    key: str
    missing: Literal["error", "drop"] = "error"

    def __post_init__(self) -> None:
        if self.missing not in ("error", "drop"):
            raise ValueError(
                f"from_state({self.key!r}, missing={self.missing!r}): missing must be "
                f"'error' or 'drop'"
            )


@dataclass(frozen=True, slots=True)
class from_value:  # lower case: named like Burr's
    """A constant."""

    value: Any


@dataclass(frozen=True, slots=True)
class update_state:  # lower case: named like Burr's
    """Replace state key ``key`` with the output."""

    key: str


@dataclass(frozen=True, slots=True)
class append_state:  # lower case: named like Burr's
    """Append the output to the list in state key ``key``."""

    key: str


@dataclass(frozen=True, slots=True)
class extend_state:
    """Extend the list in state key ``key`` with the output's items."""

    key: str


Source: TypeAlias = "from_state | from_value"
Target: TypeAlias = "update_state | append_state | extend_state"
InputSpec: TypeAlias = (
    "str | Sequence[str] | Mapping[str, str | Source] | Source | Callable[[State], Any]"
)
OutputSpec: TypeAlias = "str | Target | Mapping[str, str | Target] | Callable[[Any, State], State]"


def _source(value: Any, owner: str, where: str) -> Source:
    if isinstance(value, str):
        return from_state(value)
    if isinstance(value, from_state | from_value):
        return value
    raise TypeError(
        f"{owner}: {where} is {value!r}; give a state key (a str), from_state('key') or "
        f"from_value(constant)"
    )


def _target(value: Any, owner: str, where: str) -> Target:
    if isinstance(value, str):
        return update_state(value)
    if isinstance(value, update_state | append_state | extend_state):
        return value
    raise TypeError(
        f"{owner}: {where} is {value!r}; give a state key (a str), update_state('key'), "
        f"append_state('key') or extend_state('key')"
    )


def _read(source: Source, state: State) -> Any:
    return state[source.key] if isinstance(source, from_state) else source.value


def _dropped(source: Source, state: State) -> bool:
    return isinstance(source, from_state) and source.missing == "drop" and source.key not in state


def declared_names(value: Any, what: str, owner: str) -> list[str] | None:
    """A ``reads``/``writes``/``tags`` declaration as a list, refused as ``@action`` refuses it
    (a str is one name, not a list of characters); ``None`` stays ``None``."""
    return None if value is None else list(_names(value, what, owner))


def input_reader(
    spec: Any, *, reads: Sequence[str] | None, owner: str
) -> tuple[Callable[[State], Any], list[str]]:
    """``(read, reads)``: a function of state giving the wrapped object's input, and the state
    keys it reads. ``owner`` names the action in error messages."""
    reads = declared_names(reads, "reads", owner)
    if callable(spec) and not isinstance(spec, from_state | from_value):
        if reads is None:
            raise TypeError(
                f"{owner}: input is a function of state, so the keys it reads cannot be "
                f"derived; pass reads=[...] as well"
            )
        return spec, list(reads)
    if isinstance(spec, str | from_state | from_value):
        source = _source(spec, owner, "input")
        if isinstance(source, from_state) and source.missing == "drop":
            raise TypeError(
                f"{owner}: input {source!r} has missing='drop', which only applies to a name "
                f"of a mapping input, e.g. input={{'name': from_state({source.key!r}, "
                f"missing='drop')}}"
            )
        keys = [source.key] if isinstance(source, from_state) else []
        return (lambda state: _read(source, state)), _merge(keys, reads)
    if isinstance(spec, Mapping):
        sources = {
            str(name): _source(value, owner, f"input[{name!r}]") for name, value in spec.items()
        }
        keys = [s.key for s in sources.values() if isinstance(s, from_state)]

        def read_mapping(state: State) -> dict[str, Any]:
            return {
                name: _read(source, state)
                for name, source in sources.items()
                if not _dropped(source, state)
            }

        return read_mapping, _merge(keys, reads)
    if isinstance(spec, Sequence) and all(isinstance(key, str) for key in spec):
        names = list(spec)
        return (lambda state: {key: state[key] for key in names}), _merge(names, reads)
    raise TypeError(
        f"{owner}: input {spec!r} is not understood; give a state key, a list of keys, a "
        f"mapping of names to keys/from_value(...), or a function of state with reads=[...]"
    )


def output_writer(
    spec: Any, *, writes: Sequence[str] | None, owner: str
) -> tuple[Callable[[Any, State], State], list[str]]:
    """``(write, writes)``: a function ``(output, state) -> state`` and the keys it writes."""
    writes = declared_names(writes, "writes", owner)
    if callable(spec) and not isinstance(spec, update_state | append_state | extend_state):
        if writes is None:
            raise TypeError(
                f"{owner}: output is a function, so the keys it writes cannot be derived; "
                f"pass writes=[...] as well"
            )
        return spec, list(writes)
    if isinstance(spec, str | update_state | append_state | extend_state):
        target = _target(spec, owner, "output")
        keys = _merge([target.key], writes)
        return (lambda output, state: _write(target, output, state, owner)), keys
    if isinstance(spec, Mapping):
        targets = {
            str(field): _target(value, owner, f"output[{field!r}]") for field, value in spec.items()
        }

        def write_fields(output: Any, state: State) -> State:
            for field, target in targets.items():
                state = _write(target, _field(output, field, owner), state, owner)
            return state

        return write_fields, _merge([t.key for t in targets.values()], writes)
    raise TypeError(
        f"{owner}: output {spec!r} is not understood; give a state key, update_state/"
        f"append_state/extend_state('key'), a mapping of output fields to those, or a function "
        f"(output, state) -> state with writes=[...]"
    )


def _field(output: Any, field: str, owner: str) -> Any:
    if isinstance(output, Mapping):
        if field in output:
            return output[field]
        raise KeyError(
            f"{owner}: the output has no field {field!r} (it has {sorted(map(str, output))}); "
            f"fix the output mapping"
        )
    if hasattr(output, field):
        return getattr(output, field)
    raise KeyError(
        f"{owner}: the output ({type(output).__name__}) has no field {field!r}; map the whole "
        f"output with output='key' or fix the output mapping"
    )


def _write(target: Target, value: Any, state: State, owner: str) -> State:
    if isinstance(target, update_state):
        return state.update(**{target.key: value})
    if isinstance(target, append_state):
        return state.append(**{target.key: value})
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise TypeError(
            f"{owner}: extend_state({target.key!r}) needs a list of items, but the output is "
            f"{type(value).__name__}: {_short(value)}; use append_state({target.key!r}) to add "
            f"it as one item, or update_state({target.key!r}) to replace the key"
        )
    return state.extend(**{target.key: list(value)})


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _merge(derived: list[str], declared: Sequence[str] | None) -> list[str]:
    keys = list(dict.fromkeys(derived))
    for key in declared or ():
        if key not in keys:
            keys.append(key)
    return keys
