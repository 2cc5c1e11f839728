"""Burr's pickle serde plugin (``burr.integrations.serde.pickle``): store instances of chosen
classes as pickles, loaded back through an allowlist.

``register_type_to_pickle(User)`` makes ``User`` values pickled by Burr's serde API
(``State.serialize()``, ``turnout.core.serde.serialize``) and by turnout's ``DEFAULT_SERDE``, so
persisters and trackers save them too. Loading a pickle can build any class it names and call
what its ``__reduce__`` chose, so stored pickles are loaded by an unpickler that resolves only
allowed ``(module, name)`` pairs (``"*"`` as the name allows the classes and functions the
module defines itself: not a name it imported, a dotted path out of it or a dunder). The
allowlist is, from the first that is given:

1. ``allowlist=`` passed when loading (``State.deserialize(data, allowlist=[...])``);
2. ``allowlist=`` passed to ``register_type_to_pickle`` (each registration's, together);
3. the process's ``set_pickle_serde_allowlist([...])``;
4. the registered class itself. Burr's older plugin loaded any class here; turnout loads only
   the class, and warns once per registration (``SecurityWarning``) that objects of other
   classes inside it need an allowlist.

A class outside the allowlist is refused with a ``SerdeError`` (a ``ValueError``) before
anything is built from the data.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import io
import pickle
import sys
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from turnout.core.errors import SecurityWarning, SerdeError
from turnout.core.serde import DEFAULT_SERDE, KEY, deserializer, serialize, type_name

__all__ = [
    "SecurityWarning",
    "register_type_to_pickle",
    "set_pickle_serde_allowlist",
]

Allowlist = Sequence[tuple[str, str]]


@dataclass(frozen=True, kw_only=True, slots=True)
class _Registration:
    cls: type
    allowlist: tuple[tuple[str, str], ...] | None
    site: str  # where register_type_to_pickle was called: the warning names it, once


_registrations: dict[type, _Registration] = {}
_default_allowlist: tuple[tuple[str, str], ...] | None = None
_warned_call_sites: set[str] = set()


def set_pickle_serde_allowlist(allowlist: Allowlist | None) -> None:
    """The process's allowlist for registrations made without one (``None`` removes it)."""
    global _default_allowlist
    _default_allowlist = None if allowlist is None else _checked(allowlist)


def _is_allowed(module: str, name: str, allowlist: Iterable[tuple[str, str]]) -> bool:
    """Whether ``module.name`` is on ``allowlist`` (``(module, "*")`` allows a whole module)."""
    return any(m == module and n in ("*", name) for m, n in allowlist)


def _listed_by_name(module: str, name: str, allowlist: Iterable[tuple[str, str]]) -> bool:
    """Whether ``allowlist`` names ``module.name`` itself, not only through ``"*"``."""
    return any(m == module and n == name for m, n in allowlist)


def _defined_in(module: str, name: str, found: Any) -> bool:
    """Whether ``found``, reached as ``module.name`` through a ``(module, "*")`` entry, is a class
    or function ``module`` defines: ``"*"`` vouches for the module's own code, not for what its
    namespace reaches (a dotted name like ``os.system`` walks out of it, a name it imported
    comes from elsewhere, a dunder reaches the interpreter)."""
    if any(not part or part.startswith("_") for part in name.split(".")):
        return False
    if not isinstance(found, type) and not inspect.isfunction(found):
        return False
    return getattr(found, "__module__", None) == module


def _checked(allowlist: Allowlist) -> tuple[tuple[str, str], ...]:
    pairs = tuple(allowlist)
    for pair in pairs:
        if not (
            isinstance(pair, tuple)
            and len(pair) == 2
            and all(isinstance(part, str) and part for part in pair)
        ):
            raise SerdeError(
                "",
                None,
                f"a pickle allowlist holds (module, name) pairs of strings, e.g. "
                f"[('myapp.models', 'User'), ('myapp.models', '*')]; got {pair!r}",
            )
    return pairs


def register_type_to_pickle(cls: type, allowlist: Allowlist | None = None) -> None:
    """Store instances of ``cls`` as pickles, loaded back through ``allowlist`` (see the module
    docstring for which allowlist applies). Registering a class again replaces its allowlist."""
    caller = sys._getframe(1)
    site = f"{caller.f_code.co_filename}:{caller.f_lineno}"
    _registrations[cls] = _Registration(
        cls=cls, allowlist=None if allowlist is None else _checked(allowlist), site=site
    )
    serialize.register(cls)(_serialize_pickle)
    DEFAULT_SERDE.register(cls, encode=_encode, decode=_decode, name=f"pickle:{type_name(cls)}")


def _serialize_pickle(
    value: Any, pickle_kwargs: dict[str, Any] | None = None, **kwargs: Any
) -> dict[str, Any]:
    return {KEY: "pickle", "value": pickle.dumps(value, **(pickle_kwargs or {}))}


@deserializer.register("pickle")
def _deserialize_pickle(
    value: dict[str, Any],
    pickle_kwargs: dict[str, Any] | None = None,
    allowlist: Allowlist | None = None,
    **kwargs: Any,
) -> Any:
    data = value.get("value")
    if not isinstance(data, bytes | bytearray):
        raise SerdeError(
            "", None, f"a {KEY}='pickle' record needs the pickled bytes as 'value', got "
            f"{type(data).__name__}"
        )  # fmt: skip
    return _load(bytes(data), allowlist, pickle_kwargs or {})


def _encode(value: Any) -> str:
    return base64.b64encode(pickle.dumps(value)).decode("ascii")


def _decode(data: Any) -> Any:
    try:
        raw = base64.b64decode(data, validate=True)
    except (TypeError, ValueError, binascii.Error) as exc:
        raise SerdeError("", None, f"a stored pickle is not base64 text ({exc})") from exc
    return _load(raw, None, {})


def _load(data: bytes, allowlist: Allowlist | None, pickle_kwargs: dict[str, Any]) -> Any:
    unpickler = _AllowlistUnpickler(io.BytesIO(data), allowlist, **pickle_kwargs)
    try:
        return unpickler.load()
    except SerdeError:
        raise
    except Exception as exc:
        raise SerdeError(
            "", None, f"a stored pickle could not be loaded: {type(exc).__name__}: {exc}"
        ) from exc


class _AllowlistUnpickler(pickle.Unpickler):
    """Resolves a class or function only if the allowlist in force has it."""

    def __init__(self, file: io.BytesIO, allowlist: Allowlist | None, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self._given = None if allowlist is None else _checked(allowlist)

    def find_class(self, module: str, name: str) -> Any:
        in_force = (
            [self._given]
            if self._given is not None
            else [_allowed_by(r) for r in _registrations.values()]
        )
        if not any(_is_allowed(module, name, allowlist) for allowlist in in_force):
            raise _refused(module, name)
        by_name = any(_listed_by_name(module, name, allowlist) for allowlist in in_force)
        if not by_name and any(not part or part.startswith("_") for part in name.split(".")):
            raise _refused(module, name)  # checked before anything is looked up
        if self._given is None:
            _warn_if_unlisted(module, name)
        found = super().find_class(module, name)
        if not by_name and not _defined_in(module, name, found):
            raise _refused(module, name)
        return found


def _refused(module: str, name: str) -> SerdeError:
    return SerdeError(
        "",
        None,
        f"the stored pickle names {module}.{name}, which is not in the pickle serde "
        f"allowlist, so it was not loaded (a pickle can name any code to run; "
        f"({module!r}, '*') allows only the classes and functions {module} defines itself). "
        f"If the data is yours, allow it: register_type_to_pickle(cls, allowlist=[({module!r}, "
        f"{name!r})]) or set_pickle_serde_allowlist([...]).",
    )


def _allowed_by(registration: _Registration) -> tuple[tuple[str, str], ...]:
    if registration.allowlist is not None:
        return registration.allowlist
    if _default_allowlist is not None:
        return _default_allowlist
    cls = registration.cls
    return ((cls.__module__, cls.__qualname__),)


def _warn_if_unlisted(module: str, name: str) -> None:
    """One ``SecurityWarning`` per registration loaded without any allowlist configured."""
    if _default_allowlist is not None:
        return
    for registration in _registrations.values():
        cls = registration.cls
        if registration.allowlist is not None or (cls.__module__, cls.__qualname__) != (
            module,
            name,
        ):
            continue
        if registration.site in _warned_call_sites:
            return
        _warned_call_sites.add(registration.site)
        warnings.warn(
            f"{cls.__qualname__} was registered with register_type_to_pickle() at "
            f"{registration.site} without an allowlist: turnout loads only "
            f"{module}.{name} itself from stored pickles, so objects of other classes inside "
            f"it are refused. Pass allowlist=[({module!r}, {name!r}), ...] there, or call "
            f"set_pickle_serde_allowlist([...]), to name every class its pickles may hold.",
            SecurityWarning,
            stacklevel=2,
        )
        return
