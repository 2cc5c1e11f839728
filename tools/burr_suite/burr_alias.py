"""A pytest plugin that runs Burr's own test files against turnout (an outside check).

Every ``burr`` / ``burr.*`` module is served as the ``turnout`` module of the same path, so a
test file written for Burr imports turnout unchanged. A name a test imports that turnout does
not have becomes a placeholder that fails the tests using it (not the whole file at import), and
the end of the run lists those names, and the Burr modules turnout has no counterpart for.

Use (see README.md next to this file)::

    PYTHONPATH=/path/to/turnout/tools/burr_suite python -m pytest -p burr_alias \\
        --import-mode=importlib --continue-on-collection-errors tests/...
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

_MISSING_MODULES: set[str] = set()
_FAILED_ON_NAME: dict[str, str] = {}
_MARK = "TURNOUT-LACKS "


class MissingName:
    """Stands for a name turnout lacks; any use raises ``LookupError`` naming it."""

    def __init__(self, name: str) -> None:
        self._name = name

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise LookupError(f"{_MARK}{self._name}")

    __call__ = _fail
    __iter__ = _fail
    __getitem__ = _fail

    def __getattr__(self, item: str) -> Any:
        if item.startswith("__"):
            raise AttributeError(item)
        return self._fail()

    def __mro_entries__(self, bases: tuple[Any, ...]) -> tuple[Any, ...]:
        return self._fail()


def _turnout_name(burr_name: str) -> str:
    return "turnout" + burr_name[len("burr") :]


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


class AliasModule(types.ModuleType):
    """A ``burr.*`` module: reads and writes go to the turnout module behind it."""

    def __init__(self, name: str, real: types.ModuleType) -> None:
        super().__init__(name)
        object.__setattr__(self, "_real", real)
        self.__dict__["__path__"] = getattr(real, "__path__", [])

    def __getattr__(self, item: str) -> Any:
        real = object.__getattribute__(self, "_real")
        try:
            return getattr(real, item)
        except AttributeError:
            if item.startswith("__"):
                raise
        submodule = f"{self.__name__}.{item}"
        if _exists(_turnout_name(submodule)):
            return importlib.import_module(submodule)
        return MissingName(submodule)

    def __setattr__(self, item: str, value: Any) -> None:
        if isinstance(value, AliasModule):  # importlib binding a submodule: turnout's is there
            return
        setattr(object.__getattribute__(self, "_real"), item, value)

    def __delattr__(self, item: str) -> None:
        delattr(object.__getattribute__(self, "_real"), item)


class BurrAliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``burr.*`` modules as aliases of ``turnout.*``."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "burr" and not fullname.startswith("burr."):
            return None
        spec = importlib.util.spec_from_loader(fullname, self, is_package=True)
        if spec is not None:
            real = _turnout_name(fullname)
            spec.loader_state = real if _exists(real) else None
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        if spec.loader_state is None:
            _MISSING_MODULES.add(spec.name)
            return AliasModule(spec.name, types.ModuleType("missing"))
        return AliasModule(spec.name, importlib.import_module(spec.loader_state))

    def exec_module(self, module: types.ModuleType) -> None:
        return None


sys.meta_path.insert(0, BurrAliasFinder())


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    if call.excinfo is not None and _MARK in str(call.excinfo.value):
        _FAILED_ON_NAME[item.nodeid] = str(call.excinfo.value).split(_MARK, 1)[1]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    write = terminalreporter.write_line
    write(f"Burr modules turnout has no counterpart for: {sorted(_MISSING_MODULES) or 'none'}")
    counts = Counter(_FAILED_ON_NAME.values())
    write(f"tests failing on a name turnout lacks: {len(_FAILED_ON_NAME)}")
    for name, count in counts.most_common():
        write(f"  {count:4d} {name}")
