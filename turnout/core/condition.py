"""Conditions: the guards on transitions.

``when(count__lt=10)`` compares state keys to values, ``expr("count < 10")`` evaluates a checked
expression, ``default`` is always true, ``Condition.lmda(fn, keys)`` wraps any function; combine
them with ``~``, ``|`` and ``&``. Every condition knows the keys it reads and has a readable
``name`` used on graph edges.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from turnout.core.errors import ConditionError, ConditionKeyError, StateKeyError
from turnout.core.expressions import compile_expression
from turnout.core.state import State

__all__ = ["Condition", "default", "expr", "safe_expr", "when"]


class Condition:
    """A named predicate over the state.

    Args:
        keys: the state keys the predicate reads; evaluating with one of them absent raises.
        resolver: ``State -> bool``.
        name: how the condition is displayed (on graph edges, in errors).
        optional_keys: keys the predicate reads if present.
    """

    KEY = "PROCEED"
    __slots__ = ("_compound", "_keys", "_name", "_optional_keys", "_recipe", "_resolver")

    def __init__(
        self,
        keys: Sequence[str],
        resolver: Callable[[State], bool],
        name: str | None = None,
        optional_keys: Sequence[str] = (),
    ) -> None:
        if isinstance(keys, str):
            raise ConditionError(f"Condition keys must be a list, got the string {keys!r}")
        self._keys = list(keys)
        self._optional_keys = list(optional_keys)
        self._resolver = resolver
        self._name = name if name is not None else getattr(resolver, "__name__", "condition")
        # How to rebuild it in another process: the built-in conditions close over local
        # functions, which pickle cannot send; their recipe (e.g. ``(expr, ("count < 3",))``) can.
        self._recipe: tuple[Callable[..., Condition], tuple[Any, ...]] | None = None
        # Made by | or &: its name is parenthesised under ~, so that it does not read as
        # (~a) | b. Other names are inverted as Burr names them: ~foo == 'bar'.
        self._compound = False

    def __reduce__(self) -> tuple[Any, ...]:
        if self._recipe is not None:
            return self._recipe
        return (Condition, (self._keys, self._resolver, self._name, self._optional_keys))

    @property
    def keys(self) -> list[str]:
        return self._keys

    @property
    def reads(self) -> list[str]:
        return self._keys

    @property
    def optional_keys(self) -> list[str]:
        return self._optional_keys

    @property
    def name(self) -> str:
        return self._name

    @property
    def resolver(self) -> Callable[[State], bool]:
        return self._resolver

    def evaluate(self, state: State) -> bool:
        """Whether the condition holds; raises ``StateKeyError`` for an absent required key."""
        return bool(self._resolver(state))

    def run(self, state: State, **run_kwargs: Any) -> dict[str, bool]:
        """Evaluate, returned as ``{"PROCEED": bool}`` (Burr's shape). A key the state lacks
        raises ``ConditionKeyError``, a ``KeyError`` and, as Burr raises, a ``ValueError``."""
        try:
            return {Condition.KEY: self.evaluate(state)}
        except StateKeyError as error:
            raise self._missing(state, [error.key]) from error

    def _validate(self, state: State) -> None:
        """Raise ``ConditionKeyError`` (a ``ValueError``, as Burr raises) when ``state`` lacks
        a key the condition reads (Burr's check before evaluating)."""
        missing = [key for key in self._keys if key not in state]
        if missing:
            raise self._missing(state, missing)

    def _missing(self, state: State, missing: list[str]) -> ConditionKeyError:
        present = ", ".join(repr(k) for k in state) or "none"
        first = missing[0]
        return ConditionKeyError(
            f"the condition {self._name!r} reads {', '.join(map(repr, missing))}, which the "
            f"state does not hold (keys present: {present}); give it a value "
            f"(state.update({first}=...) or ApplicationBuilder.with_state(...)) before "
            f"evaluating the condition."
        )

    @staticmethod
    def lmda(resolver: Callable[[State], bool], state_keys: Sequence[str]) -> Condition:
        """A condition from any function of the state, reading ``state_keys``."""
        if not callable(resolver):
            raise ConditionError(f"Condition.lmda() takes a function, got {resolver!r}")
        return Condition(state_keys, resolver)

    @staticmethod
    def when(**kwargs: Any) -> Condition:
        return when(**kwargs)

    @staticmethod
    def safe_expr(source: str) -> Condition:
        """``expr`` limited to Burr's ``safe_expr`` grammar; see ``safe_expr``."""
        return safe_expr(source)

    @staticmethod
    def expr(source: str) -> Condition:
        return expr(source)

    def __invert__(self) -> Condition:
        inner = self._resolver
        inverted = Condition(
            self._keys,
            lambda state: not inner(state),
            name=f"~({self._name})" if self._compound else f"~{self._name}",
            optional_keys=self._optional_keys,
        )
        inverted._recipe = (operator.invert, (self,))
        return inverted

    def __or__(self, other: Condition) -> Condition:
        return self._combine(other, "|", any)

    def __and__(self, other: Condition) -> Condition:
        return self._combine(other, "&", all)

    def _combine(self, other: Condition, word: str, reduce: Callable[[Any], bool]) -> Condition:
        if not isinstance(other, Condition):
            return NotImplemented
        parts = (self._resolver, other._resolver)
        combined = Condition(
            list(dict.fromkeys([*self._keys, *other._keys])),
            lambda state: reduce(p(state) for p in parts),
            name=f"{_wrap(self._name)} {word} {_wrap(other._name)}",
            optional_keys=list(dict.fromkeys([*self._optional_keys, *other._optional_keys])),
        )
        combined._recipe = (operator.or_ if word == "|" else operator.and_, (self, other))
        combined._compound = True
        return combined

    def __repr__(self) -> str:
        return f"Condition({self._name!r})"


def _wrap(name: str) -> str:
    """Parenthesise a compound name so that combined names read unambiguously."""
    return f"({name})" if any(c in name for c in " ,|&") else name


_WHEN_OPERATORS: dict[str, tuple[str, Callable[[Any, Any], bool]]] = {
    "eq": ("==", operator.eq),
    "ne": ("!=", operator.ne),
    "gt": (">", operator.gt),
    "gte": (">=", operator.ge),
    "lt": ("<", operator.lt),
    "lte": ("<=", operator.le),
    "in": ("in", lambda value, arg: value in arg),
    "notin": ("not in", lambda value, arg: value not in arg),
    "contains": ("contains", lambda value, arg: arg in value),
    "is": ("is", operator.is_),
    "isnot": ("is not", operator.is_not),
}


def when(**kwargs: Any) -> Condition:
    """True when every ``key=value`` pair holds (``==``), or the operator a suffix names.

    Suffixes: ``__eq __ne __gt __gte __lt __lte __in __notin __contains __is __isnot``; e.g.
    ``when(count__gte=10, status__in=["done", "failed"])``.
    """
    if not kwargs:
        raise ConditionError("when() needs at least one key=value pair, e.g. when(done=True)")
    checks: list[tuple[str, Callable[[Any, Any], bool], Any]] = []
    names: list[tuple[str, str]] = []
    for spec, arg in kwargs.items():
        key, _, suffix = spec.rpartition("__")
        if not key and suffix in _WHEN_OPERATORS and spec.startswith("__"):
            raise ConditionError(
                f"when({spec}=...): no state key before '__{suffix}'; name the key, "
                f"e.g. when(count__{suffix}=...)."
            )
        if not key or suffix not in _WHEN_OPERATORS:
            key, symbol, compare = spec, "=", operator.eq
            if "__" in spec.strip("_"):
                raise ConditionError(
                    f"when({spec}=...): unknown operator suffix {spec.rpartition('__')[2]!r}; "
                    f"use one of {', '.join('__' + s for s in _WHEN_OPERATORS)}."
                )
        else:
            symbol, compare = _WHEN_OPERATORS[suffix]
        checks.append((key, compare, arg))
        names.append((key, _when_name(key, symbol, arg, explicit=symbol != "=")))

    if len(checks) == 1:  # the usual case, without the loop
        (key, compare, arg) = checks[0]

        def resolve(state: State) -> bool:
            return compare(state[key], arg)

    else:

        def resolve(state: State) -> bool:
            return all(compare(state[key], arg) for key, compare, arg in checks)

    condition = Condition(
        list(dict.fromkeys(k for k, _, _ in checks)),
        resolve,
        name=", ".join(name for _key, name in sorted(names, key=lambda kn: kn[0])),
    )
    condition._recipe = (_when, (kwargs,))
    return condition


def _when_name(key: str, symbol: str, arg: Any, *, explicit: bool) -> str:
    """Burr's name for one ``when`` check, so names (in graphs, tracking and tests) match it:
    ``foo=bar``, ``count>=3``, ``status in ['a', 'b']``."""
    if not explicit:
        return f"{key}={arg}"
    if symbol.isalpha() or " " in symbol:
        return f"{key} {symbol} {arg!r}"
    return f"{key}{symbol}{arg!r}"


def _when(kwargs: dict[str, Any]) -> Condition:
    return when(**kwargs)


def expr(source: str) -> Condition:
    """A condition from an expression over state keys, e.g. ``expr("count < 10")``.

    Evaluated by an allow-listed interpreter (see ``turnout.core.expressions``), never ``eval``,
    within size limits. Raises ``ConditionError`` naming the expression when it is not allowed,
    and when evaluating it fails or goes over a limit; a state key the state lacks raises
    ``StateKeyError``.
    """
    compiled = compile_expression(source)
    condition = Condition(compiled.keys, compiled.predicate, name=source.strip())
    condition._recipe = (expr, (source,))
    return condition


# Burr's safe_expr grammar (a subset of expr's): its functions, and the constant types it takes.
_SAFE_EXPR_FUNCTIONS = frozenset(
    {"len", "abs", "min", "max", "sum", "all", "any", "str", "int", "float", "bool"}
)
_SAFE_EXPR_CONSTANTS = (int, float, str, type(None))  # bool is an int


def safe_expr(source: str) -> Condition:
    """``expr`` limited to Burr's ``safe_expr`` grammar, for rules written for Burr's.

    Both are evaluated by the same allow-listed interpreter, never ``eval``; ``safe_expr`` also
    refuses what Burr's refuses and ``expr`` takes: ``x if c else y``, constants other than
    numbers, strings, booleans and ``None``, keyword arguments, and calls to ``round`` and
    ``sorted``. Raises ``ConditionError`` (a ``ValueError``) naming the disallowed part, and
    ``ConditionSyntaxError`` (also a ``SyntaxError``) for text that does not parse.
    """
    condition = expr(source)  # syntax, size and expr's own rules first
    for node in ast.walk(ast.parse(source.strip(), mode="eval")):
        why = _outside_safe_expr(node)
        if why is not None:
            raise ConditionError(
                f"safe_expr({source!r}): disallowed {why}. safe_expr takes Burr's grammar; "
                f"expr(...) takes this too (it is evaluated as safely)."
            )
    condition._recipe = (safe_expr, (source,))
    return condition


def _outside_safe_expr(node: ast.AST) -> str | None:
    """Why ``node`` is outside Burr's ``safe_expr`` grammar, or ``None`` when it is inside."""
    if isinstance(node, ast.IfExp):
        return "construct: a conditional expression (x if c else y)"
    if isinstance(node, ast.Constant) and not isinstance(node.value, _SAFE_EXPR_CONSTANTS):
        return f"constant of type {type(node.value).__name__}: {node.value!r}"
    if isinstance(node, ast.Call):
        if node.keywords:
            return "keyword arguments to a function call"
        if isinstance(node.func, ast.Name) and node.func.id not in _SAFE_EXPR_FUNCTIONS:
            return f"call to the function {node.func.id!r}"
    return None


class _SafeExprInterpreter:
    """Burr's evaluator of a parsed expression over a mapping of names. Here it evaluates
    through ``expr``'s checked interpreter (the tree is turned back into text and checked)."""

    def __init__(self, names: Mapping[str, Any]) -> None:
        self._names = names

    def eval(self, node: ast.AST) -> Any:
        """The value of ``node`` (an ``ast.Expression`` or an expression node)."""
        body = node.body if isinstance(node, ast.Expression) else node
        return compile_expression(ast.unparse(body)).evaluator(self._names)


def _default() -> Condition:
    return default


default = Condition([], lambda _state: True, name="default")
"""The condition that always holds: the fallback transition."""
default._recipe = (_default, ())
