"""``State``: the immutable mapping an application carries from step to step.

Every write operation returns a new ``State`` and records what it changed as ``Change`` entries, so
the engine can report each step's delta (set / append / extend / increment / delete per key) to
hooks, trackers and persisters without diffing or copying the whole state.

Growing lists stay cheap. A list that ``append``/``extend`` created or grew is kept in a buffer
shared by the states of one lineage: appending to the newest state grows the buffer in place, in
amortised O(1), while older states remember their own length. The list is copied (once,
shallowly) only when the growth could be observed: while someone still holds the list read from
``state[key]``, or when an older state is appended to. Values read back are therefore always
plain, stable lists. On CPython with the GIL the engine asks the reference count whether a reader
still holds the list; elsewhere it assumes one does once the list has been read.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, Literal, NamedTuple, TypeVar

from turnout.core._burr_serde import deserialize_state, register_field_serde, serialize_state
from turnout.core.errors import StateKeyError, StateOperationError

if TYPE_CHECKING:
    # Only type checkers read this import (they ship typing_extensions' stubs): a TypeVar with
    # a default lets a bare `State` mean `State[Any]` under `mypy --strict`, as in Burr's code.
    from typing_extensions import TypeVar as DefaultedTypeVar

    from turnout.core.typing import TypingSystem

    StateType = DefaultedTypeVar("StateType", default=Any)
else:
    StateType = TypeVar("StateType")
OtherType = TypeVar("OtherType")

__all__ = [
    "CONTROL_KEYS",
    "Change",
    "ChangeOp",
    "RawChange",
    "State",
    "StateType",
    "apply_changes",
    "as_changes",
    "register_field_serde",
]

ChangeOp = Literal["set", "append", "extend", "increment", "delete"]


class Change(NamedTuple):
    """One recorded change of one key.

    A ``NamedTuple`` rather than a frozen dataclass: one is built per state operation on the hot
    path, and tuples are several times cheaper to create.

    Attributes:
        op: ``"set"``, ``"append"``, ``"extend"``, ``"increment"`` or ``"delete"``.
        key: the state key changed.
        value: the new value (set), the item appended (append), the items added as a tuple
            (extend), the amount added (increment), or ``None`` (delete).
    """

    op: ChangeOp
    key: str
    value: Any = None


class _Buffer:
    """A list shared by the states of one lineage, grown in place while nobody else holds it.

    States store the buffer itself (not the list) under the key, so on CPython the list's only
    owner is ``items``: any other reference is a reader's.
    """

    __slots__ = ("items", "seen")

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.seen = False  # used where reference counts cannot tell (see _READERS_COUNTED)

    def __repr__(self) -> str:
        return f"_Buffer({self.items!r})"


# One lock for every buffer: it is only held for a length check and an append, and contention
# needs two threads growing or reading the same lineage at the same instant.
_BUFFER_LOCK = threading.Lock()


def _holders(buffer: _Buffer) -> int:
    items = buffer.items
    return sys.getrefcount(items)


def _unheld_count() -> int:
    """What ``_holders`` returns when only the buffer holds its list (measured, not assumed)."""
    return _holders(_Buffer([]))


# Reference counts tell whether a reader holds a list only where they are exact and stable:
# CPython with the GIL. Free-threaded builds defer some counts, so there a read marks it seen.
_READERS_COUNTED = hasattr(sys, "getrefcount") and "free-threading" not in sys.version
_UNHELD = _unheld_count() if _READERS_COUNTED else 0


def _free_to_grow(buffer: _Buffer) -> bool:
    """Whether no reader holds the buffer's list (call with ``_BUFFER_LOCK`` held)."""
    if _READERS_COUNTED:
        return _holders(buffer) <= _UNHELD
    return not buffer.seen


_new_state = object.__new__
_new_change = Change._make  # from an iterable, skipping NamedTuple.__new__'s argument parsing

# Operations record plain (op, key, value) tuples, several times cheaper to build than Change;
# they become Change records only when someone reads them (State.changes, hooks).
RawChange = tuple[str, str, Any]


def as_changes(raw: tuple[RawChange, ...]) -> tuple[Change, ...]:
    """The ``Change`` records for recorded ``(op, key, value)`` tuples."""
    return tuple(map(_new_change, raw))


_NO_OWNED: dict[str, int] = {}
_MISSING: Any = object()


CONTROL_KEYS = frozenset({"__SEQUENCE_ID", "__PRIOR_STEP"})
"""Burr's control keys. turnout keeps the sequence id and the prior action on the application,
not in the state; inside a step, reading one of these from any ``State`` computes it (see
``_control_value``), so Burr code reading ``state["__SEQUENCE_ID"]`` in an action runs."""

_ABSENT = object()


def _control_value(key: str) -> Any:
    """``__SEQUENCE_ID`` (the running step's id) or ``__PRIOR_STEP`` (the action before it) of
    the step running in this thread or task, as Burr's state holds them; ``_ABSENT`` outside a
    step, or for ``__PRIOR_STEP`` on the first step. Only reached when a read misses."""
    from turnout.core.context import current_scope  # the miss path only: no import cycle

    scope = current_scope()
    if scope is None:
        return _ABSENT
    if key == "__SEQUENCE_ID":
        return scope.sequence_id
    prior = scope.app.prior_action
    return _ABSENT if prior is None else prior


class State(Mapping[str, Any], Generic[StateType]):
    """An immutable mapping of state keys to values.

    Read it like a dict (``state["count"]``, ``state.get("count", 0)``, ``"count" in state``);
    change it with the operations below, each of which returns a new ``State``::

        state = State({"count": 0, "history": []})
        state = state.increment(count=1).append(history="hi")

    Values are not copied: treat what you read as read-only and change state through its
    operations.
    """

    __slots__ = ("_changes", "_data", "_origin", "_owned", "_typing")

    _data: dict[str, Any]  # an owned list is stored as its _Buffer
    _owned: dict[str, int]  # key of an owned list -> this state's length of it
    _changes: tuple[RawChange, ...]
    _origin: object

    def __init__(
        self,
        initial_values: Mapping[str, Any] | None = None,
        typing_system: TypingSystem[StateType] | None = None,
    ) -> None:
        self._typing = typing_system
        if initial_values is not None and not isinstance(initial_values, Mapping):
            raise StateOperationError(
                f"State() takes a mapping of key to value, got {type(initial_values).__name__}: "
                f"{initial_values!r}. Use State({{'key': value}})."
            )
        if isinstance(initial_values, State):
            self._data = initial_values.get_all()  # marks shared lists seen: never grown in place
        else:
            self._data = dict(initial_values) if initial_values else {}
        self._owned = _NO_OWNED
        self._changes = ()
        self._origin = self

    @classmethod
    def _make(
        cls,
        data: dict[str, Any],
        owned: dict[str, int],
        changes: tuple[RawChange, ...],
        origin: object,
        typing_system: Any = None,
    ) -> State:
        state = object.__new__(cls)
        state._data = data
        state._owned = owned
        state._changes = changes
        state._origin = origin
        state._typing = typing_system
        return state

    # -- reading ---------------------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        try:
            value = self._data[key]
        except KeyError:
            if key in CONTROL_KEYS:
                found = _control_value(key)
                if found is not _ABSENT:
                    return found
            raise StateKeyError(key, list(self._data)) from None
        if value.__class__ is _Buffer:
            return self._expose(key, value)
        return value

    def _expose(self, key: str, buffer: _Buffer) -> list[Any]:
        """Hand out an owned list: this state's own length of it, never to grow afterwards."""
        length = self._owned[key]
        with _BUFFER_LOCK:
            items = buffer.items
            if len(items) != length:
                return items[:length]
            buffer.seen = True
            return items

    def _peek(self, key: str) -> Any:
        """The value at ``key`` for code that will not keep it (no exposure, may be stale-long)."""
        value = self._data[key]
        if value.__class__ is _Buffer:
            length = self._owned[key]
            items = value.items
            return items if len(items) == length else items[:length]
        return value

    def get(self, key: str, default: Any = None) -> Any:
        if key in self._data:
            return self[key]
        if key in CONTROL_KEYS:
            found = _control_value(key)
            if found is not _ABSENT:
                return found
        return default

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def keys(self) -> list[str]:  # type: ignore[override]  # a list, as Burr returns
        """The keys, in insertion order, as a list."""
        return list(self._data)

    def get_all(self) -> dict[str, Any]:
        """A new ``dict`` of every key and value."""
        return {key: self[key] for key in self._data}

    def pick(self, keys: Iterable[str]) -> dict[str, Any]:
        """A new ``dict`` of the values at those of ``keys`` this state holds (the others are
        left out): ``{key: state[key] for key in keys if key in state}``, in one call."""
        data = self._data
        picked = {key: data[key] for key in keys if key in data}
        if self._owned:
            for key, value in picked.items():
                if value.__class__ is _Buffer:
                    picked[key] = self._expose(key, value)
        return picked

    def _materialize(self) -> dict[str, Any]:
        """Every key and value, for transient use (comparison, repr, pickling)."""
        if not self._owned:
            return dict(self._data)
        return {key: self._peek(key) for key in self._data}

    @property
    def changes(self) -> tuple[Change, ...]:
        """What the operations since the last step boundary changed, oldest first."""
        return as_changes(self._changes)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, State):
            return self._materialize() == other._materialize()
        if isinstance(other, Mapping):
            return self._materialize() == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable values inside; like dict

    def __repr__(self) -> str:
        return f"State({self._materialize()!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (State, (self._materialize(), self._typing))

    def __copy__(self) -> State[StateType]:
        return self  # immutable

    def __deepcopy__(self, memo: dict[int, Any]) -> State[StateType]:
        import copy

        return State(copy.deepcopy(self._materialize(), memo), self._typing)

    @property
    def typing_system(self) -> Any:
        """The typing system given to ``State(..., typing_system=...)``, kept by every operation
        (``None`` without one)."""
        return self._typing

    def with_typing_system(self, typing_system: TypingSystem[OtherType]) -> State[OtherType]:
        """This state under ``typing_system`` (Burr's method): the same values, a new ``data``."""
        return State(self, typing_system=typing_system)

    @property
    def data(self) -> StateType:
        """The state as its typing system's object (``construct_data``); without a typing
        system, a dict of the values (as Burr's dict-based system gives)."""
        typing_system = self._typing
        if typing_system is None:
            return self.get_all()  # type: ignore[return-value]  # untyped: StateType is Any
        data: StateType = typing_system.construct_data(self)
        return data

    def serialize(self, **kwargs: Any) -> dict[str, Any]:
        """Burr's serialisation of this state: each key through ``register_field_serde``'s
        serializer if it has one, else ``turnout.core.serde.serialize``. Persisters and trackers
        use turnout's ``Serde`` instead (see ``turnout.core.serde``)."""
        return serialize_state(self._materialize(), **kwargs)

    @classmethod
    def deserialize(cls, json_dict: Mapping[str, Any], **kwargs: Any) -> State:
        """The state ``serialize()`` wrote, through the registered field and key decoders."""
        return cls(deserialize_state(json_dict, **kwargs))

    # -- writing ---------------------------------------------------------------------------------

    def _derive(
        self,
        data: dict[str, Any],
        owned: dict[str, int],
        changes: list[RawChange],
    ) -> State[StateType]:
        return State._make(data, owned, (*self._changes, *changes), self._origin, self._typing)

    def update(self, **updates: Any) -> State[StateType]:
        """Set keys to values (adding keys that are absent)."""
        # The hottest operation: built inline rather than through _derive/_make.
        data = self._data.copy()
        data.update(updates)
        owned = self._owned
        if owned and not owned.keys().isdisjoint(updates):
            owned = {k: v for k, v in owned.items() if k not in updates}
        new = _new_state(State)
        new._data = data
        new._owned = owned
        if len(updates) == 1:  # the usual case, without building a list
            for key, value in updates.items():
                new._changes = (*self._changes, ("set", key, value))
        else:
            new._changes = (*self._changes, *[("set", k, v) for k, v in updates.items()])
        new._origin = self._origin
        new._typing = self._typing
        return new

    def append(self, **items: Any) -> State[StateType]:
        """Append one item to the list at each key, creating the list if the key is absent."""
        return self._grow("append", items)

    def extend(self, **items: Iterable[Any]) -> State[StateType]:
        """Append every item of an iterable to the list at each key, creating it if absent."""
        return self._grow("extend", items)

    def _grow(self, op: Literal["append", "extend"], items: Mapping[str, Any]) -> State[StateType]:
        data = self._data.copy()
        owned = dict(self._owned)
        changes: list[RawChange] = []
        for key, arg in items.items():
            if op == "extend":
                if isinstance(arg, (str, bytes, Mapping)) or not isinstance(arg, Iterable):
                    raise StateOperationError(
                        f"state.extend({key}=...) needs an iterable of items to add, got "
                        f"{type(arg).__name__}: {arg!r}. Use state.append({key}=item) for one item."
                    )
                new_items = list(arg)
                recorded: Any = tuple(new_items)
            else:
                new_items = [arg]
                recorded = arg
            current = data.get(key, _MISSING)
            if current.__class__ is _Buffer:
                data[key] = self._grow_buffer(key, current, new_items, owned)
            elif current is _MISSING or type(current) is list:
                # A new list, or the first growth of a list the user handed in (they may hold
                # it): copy once into a buffer this lineage owns.
                base = [] if current is _MISSING else current
                data[key] = _Buffer([*base, *new_items])
                owned[key] = len(base) + len(new_items)
            elif isinstance(current, list):
                data[key] = type(current)([*current, *new_items])  # a list subclass keeps its type
            else:
                raise StateOperationError(
                    f"state.{op}({key}=...) needs the value at {key!r} to be a list, but it is a "
                    f"non-{op}able {type(current).__name__}: {current!r}. Set a list first with "
                    f"state.update({key}=[...]) or use another key."
                )
            changes.append((op, key, recorded))
        return self._derive(data, owned, changes)

    def _grow_buffer(
        self, key: str, buffer: _Buffer, new_items: list[Any], owned: dict[str, int]
    ) -> _Buffer:
        length = self._owned[key]
        with _BUFFER_LOCK:
            # In place only at the buffer's tip (no newer state grew it) and while no reader
            # holds the list.
            if len(buffer.items) == length and _free_to_grow(buffer):
                buffer.items.extend(new_items)
                owned[key] = length + len(new_items)
                return buffer
            grown = _Buffer([*buffer.items[:length], *new_items])
        owned[key] = len(grown.items)
        return grown

    def increment(self, **amounts: int | float) -> State[StateType]:
        """Add a number to each key; an absent key starts at the amount."""
        data = self._data.copy()
        changes: list[RawChange] = []
        for key, amount in amounts.items():
            if isinstance(amount, bool) or not isinstance(amount, (int, float)):
                raise StateOperationError(
                    f"state.increment({key}=...) needs a number, got a non-integer, non-float "
                    f"{type(amount).__name__}: {amount!r}."
                )
            current = self._peek(key) if key in data else 0
            if isinstance(current, bool) or not isinstance(current, (int, float)):
                raise StateOperationError(
                    f"state.increment({key}=...) needs the value at {key!r} to be a number, but "
                    f"it is a non-integer, non-float {type(current).__name__}: {current!r}. Use "
                    f"state.update({key}=...)."
                )
            data[key] = current + amount
            changes.append(("increment", key, amount))
        owned = self._owned
        if owned and not owned.keys().isdisjoint(amounts):
            owned = {k: v for k, v in owned.items() if k not in amounts}
        return self._derive(data, owned, changes)

    def wipe(
        self, delete: Iterable[str] | None = None, keep: Iterable[str] | None = None
    ) -> State[StateType]:
        """Delete the keys in ``delete``, or every key not in ``keep``; neither deletes all.

        Keys to delete that are absent are ignored.
        """
        if delete is not None and keep is not None:
            raise StateOperationError(
                "state.wipe() takes delete=[...] or keep=[...], not both: "
                f"got delete={list(delete)!r} and keep={list(keep)!r}."
            )
        if isinstance(delete, str) or isinstance(keep, str):
            raise StateOperationError(
                "state.wipe() takes a list of keys, got a string; "
                "write wipe(delete=['key']) rather than wipe(delete='key')."
            )
        if delete is not None:
            gone = [k for k in dict.fromkeys(delete) if k in self._data]
        elif keep is not None:
            kept = set(keep)
            gone = [k for k in self._data if k not in kept]
        else:
            gone = list(self._data)
        return self._without(gone)

    def _without(self, gone: list[str]) -> State[StateType]:
        data = self._data.copy()
        owned = self._owned
        for key in gone:
            del data[key]
        if owned and not owned.keys().isdisjoint(gone):
            owned = {k: v for k, v in owned.items() if k not in gone}
        return self._derive(data, owned, [("delete", k, None) for k in gone])

    def merge(self, other: Mapping[str, Any]) -> State[StateType]:
        """Set every key of ``other`` (a ``State`` or a mapping) on top of this state."""
        if not isinstance(other, Mapping):
            raise StateOperationError(
                f"state.merge() takes a State or a mapping, got {type(other).__name__}: {other!r}."
            )
        values = other.get_all() if isinstance(other, State) else dict(other)
        return self.update(**values)

    def subset(self, *keys: str, ignore_missing: bool = True) -> State[StateType]:
        """Keep only ``keys``; an absent key raises unless ``ignore_missing`` (the default)."""
        if not ignore_missing:
            missing = [k for k in keys if k not in self._data]
            if missing:
                raise StateKeyError(missing[0], list(self._data))
        wanted = set(keys)
        return self._without([k for k in self._data if k not in wanted])

    # -- engine helpers --------------------------------------------------------------------------

    def _tracking_from_here(self) -> State[StateType]:
        """This state with an empty change log, marking the start of a step (O(1))."""
        state = _new_state(State)
        state._data = self._data
        state._owned = self._owned
        state._changes = ()
        state._origin = state
        state._typing = self._typing
        return state

    def _changes_since(self, base: State) -> tuple[RawChange, ...]:
        """The changes that turn ``base``, a step boundary made by ``_tracking_from_here()``,
        into this state.

        Exact when this state was derived from ``base`` by operations (its change log starts at
        the boundary); otherwise (an action built a fresh ``State``) a key-by-key comparison that
        reports ``set`` and ``delete`` changes.
        """
        if self._origin is base._origin:
            return self._changes
        changes: list[RawChange] = []
        base_data = base._data
        for key, value in self._data.items():
            old = base_data.get(key, _MISSING)
            if old is not value or self._owned.get(key) != base._owned.get(key):
                changes.append(("set", key, self[key]))
        changes.extend(("delete", key, None) for key in base_data if key not in self._data)
        return tuple(changes)


def apply_changes(state: State, changes: Iterable[Change]) -> State:
    """Replay recorded changes on a state: ``apply_changes(before, step_changes) == after``."""
    for op, key, value in changes:
        if op == "set":
            state = state.update(**{key: value})
        elif op == "append":
            state = state.append(**{key: value})
        elif op == "extend":
            state = state.extend(**{key: value})
        elif op == "increment":
            state = state.increment(**{key: value})
        elif op == "delete":
            state = state.wipe(delete=[key])
        else:
            raise StateOperationError(f"unknown change operation {op!r} for key {key!r}")
    return state
