"""A small, safe evaluator for condition expressions such as ``"count < 10 and not done"``.

The text is parsed with ``ast`` and every node is checked against an allow-list, then compiled
into nested closures; nothing is ever passed to ``eval`` or ``exec``. Names are state keys (except
the allowed built-in functions, ``True``, ``False`` and ``None``).

Allowed: literals and literal containers; names; attribute access to non-underscore attributes;
subscripts and slices; arithmetic, comparison (including ``in``/``is``), boolean and unary
operators; ``x if cond else y``; calls to ``len abs min max sum all any round sorted str int
float bool`` (without ``key=`` functions, which would call a method in disguise). Rejected at
construction: everything else (function definitions, lambdas, comprehensions, imports, attribute
names starting with ``_``, calls to anything else). Results that could exhaust memory (huge
powers, huge repetitions) are refused at evaluation.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

from turnout.core.errors import ConditionError

__all__ = ["CompiledExpression", "compile_expression"]

Evaluator = Callable[[Mapping[str, Any]], Any]

_FUNCTIONS: dict[str, Callable[..., Any]] = {
    f.__name__: f for f in (len, abs, min, max, sum, all, any, round, sorted, str, int, float, bool)
}
_CONSTANT_NAMES = {"True": True, "False": False, "None": None}
_MAX_POWER_EXPONENT = 10_000
_MAX_POWER_BITS = 1_000_000
_MAX_REPEAT = 1_000_000


def _safe_pow(base: Any, exponent: Any) -> Any:
    if isinstance(exponent, (int, float)) and abs(exponent) > _MAX_POWER_EXPONENT:
        raise ConditionError(f"exponent {exponent!r} is too large in a condition expression")
    integral = isinstance(base, int) and isinstance(exponent, int) and exponent > 0
    if integral and abs(base).bit_length() * exponent > _MAX_POWER_BITS:
        raise ConditionError("a power in a condition expression is too large")
    return operator.pow(base, exponent)


def _weight(value: Any, budget: int) -> int:
    """How many items ``value`` expands to, nested containers counted through (so a list
    repeating one big list weighs what ``str()`` or ``sum()`` of it would build); stops early once
    past ``budget``."""
    if isinstance(value, (str, bytes)):
        return len(value)
    if not isinstance(value, (list, tuple, set, frozenset, dict)):
        return 1
    total = len(value)
    for item in value.values() if isinstance(value, dict) else value:
        if total > budget:
            break
        total += _weight(item, budget - total)
    return total


def _safe_mul(left: Any, right: Any) -> Any:
    for seq, times in ((left, right), (right, left)):
        repeats = isinstance(seq, (str, bytes, list, tuple)) and isinstance(times, int)
        if repeats and times > 0 and _weight(seq, _MAX_REPEAT // times + 1) * times > _MAX_REPEAT:
            raise ConditionError("a repetition in a condition expression is too large")
    return operator.mul(left, right)


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: _safe_mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: _safe_pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.Not: operator.not_,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


class CompiledExpression:
    """A checked expression: its source, the state keys it reads, and a fast evaluator."""

    __slots__ = ("_evaluate", "keys", "source")

    def __init__(self, source: str, keys: list[str], evaluate: Evaluator) -> None:
        self.source = source
        self.keys = keys
        self._evaluate = evaluate

    @property
    def evaluator(self) -> Evaluator:
        """The function from a mapping of keys to values to the expression's value."""
        return self._evaluate

    def __call__(self, values: Mapping[str, Any]) -> Any:
        return self._evaluate(values)


def compile_expression(source: str) -> CompiledExpression:
    """Parse and check ``source``; raise ``ConditionError`` naming the first forbidden part."""
    if not isinstance(source, str):
        raise ConditionError(f"expr() takes a string, got {type(source).__name__}: {source!r}")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ConditionError(f"expr({source!r}) is not a valid expression: {exc.msg}") from None
    keys: list[str] = []
    evaluate = _Compiler(source, keys).visit(tree.body)
    return CompiledExpression(source, keys, evaluate)


class _Compiler:
    def __init__(self, source: str, keys: list[str]) -> None:
        self.source = source
        self.keys = keys

    def reject(self, node: ast.AST, why: str) -> ConditionError:
        snippet = ast.get_source_segment(self.source.strip(), node) or type(node).__name__
        return ConditionError(
            f"expr({self.source!r}): {why}: {snippet!r}. Conditions may use state keys, literals, "
            f"operators, subscripts and the functions {', '.join(sorted(_FUNCTIONS))}; for "
            f"anything else use Condition.lmda(fn, keys)."
        )

    def visit(self, node: ast.AST) -> Evaluator:
        method = getattr(self, f"visit_{type(node).__name__}", None)
        if method is None:
            raise self.reject(node, f"{type(node).__name__} is not allowed in a condition")
        result: Evaluator = method(node)
        return result

    def visit_Constant(self, node: ast.Constant) -> Evaluator:
        value = node.value
        return lambda _values: value

    def visit_Name(self, node: ast.Name) -> Evaluator:
        name = node.id
        if name in _CONSTANT_NAMES:
            constant = _CONSTANT_NAMES[name]
            return lambda _values: constant
        if name in _FUNCTIONS:
            raise self.reject(node, "a function can only be called, not used as a value")
        if name.startswith("__"):
            raise self.reject(node, "names starting with '__' are not allowed")
        if name not in self.keys:
            self.keys.append(name)
        return lambda values: values[name]

    def visit_Attribute(self, node: ast.Attribute) -> Evaluator:
        if node.attr.startswith("_"):
            raise self.reject(node, "attributes starting with '_' are not allowed")
        target, attr = self.visit(node.value), node.attr
        return lambda values: getattr(target(values), attr)

    def visit_Subscript(self, node: ast.Subscript) -> Evaluator:
        target, index = self.visit(node.value), self.visit(node.slice)
        return lambda values: target(values)[index(values)]

    def visit_Slice(self, node: ast.Slice) -> Evaluator:
        parts = [
            self.visit(p) if p is not None else None for p in (node.lower, node.upper, node.step)
        ]
        lower, upper, step = parts
        return lambda values: slice(
            lower(values) if lower else None,
            upper(values) if upper else None,
            step(values) if step else None,
        )

    def visit_BinOp(self, node: ast.BinOp) -> Evaluator:
        op = _BINARY.get(type(node.op))
        if op is None:
            raise self.reject(node, f"operator {type(node.op).__name__} is not allowed")
        left, right = self.visit(node.left), self.visit(node.right)
        return lambda values: op(left(values), right(values))

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Evaluator:
        op = _UNARY.get(type(node.op))
        if op is None:
            raise self.reject(node, f"operator {type(node.op).__name__} is not allowed")
        operand = self.visit(node.operand)
        return lambda values: op(operand(values))

    def visit_BoolOp(self, node: ast.BoolOp) -> Evaluator:
        operands = [self.visit(v) for v in node.values]
        if isinstance(node.op, ast.And):

            def conjunction(values: Mapping[str, Any]) -> Any:
                result: Any = True
                for operand in operands:
                    result = operand(values)
                    if not result:
                        return result
                return result

            return conjunction

        def disjunction(values: Mapping[str, Any]) -> Any:
            result: Any = False
            for operand in operands:
                result = operand(values)
                if result:
                    return result
            return result

        return disjunction

    def visit_Compare(self, node: ast.Compare) -> Evaluator:
        first = self.visit(node.left)
        ops = [_COMPARE[type(op)] for op in node.ops]
        rest = [self.visit(c) for c in node.comparators]
        if len(ops) == 1:  # the usual case, without the loop
            op, right = ops[0], rest[0]
            return lambda values: op(first(values), right(values))

        def compare(values: Mapping[str, Any]) -> bool:
            left = first(values)
            for op, right_fn in zip(ops, rest, strict=True):
                right = right_fn(values)
                if not op(left, right):
                    return False
                left = right
            return True

        return compare

    def visit_IfExp(self, node: ast.IfExp) -> Evaluator:
        test, body, orelse = self.visit(node.test), self.visit(node.body), self.visit(node.orelse)
        return lambda values: body(values) if test(values) else orelse(values)

    def visit_Call(self, node: ast.Call) -> Evaluator:
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            raise self.reject(node, "only calls to the allowed built-in functions are allowed")
        if any(kw.arg is None for kw in node.keywords) or any(
            isinstance(a, ast.Starred) for a in node.args
        ):
            raise self.reject(node, "* and ** arguments are not allowed")
        if any(kw.arg == "key" for kw in node.keywords):
            # key=obj.method would make min/max/sorted call a method: a call in disguise.
            raise self.reject(node, "key= functions are not allowed")
        fn = _FUNCTIONS[node.func.id]
        args = [self.visit(a) for a in node.args]
        kwargs = {kw.arg: self.visit(kw.value) for kw in node.keywords if kw.arg is not None}
        return lambda values: fn(
            *[a(values) for a in args], **{k: v(values) for k, v in kwargs.items()}
        )

    def _container(self, node: ast.List | ast.Tuple | ast.Set) -> list[Evaluator]:
        if any(isinstance(e, ast.Starred) for e in node.elts):
            raise self.reject(node, "* unpacking is not allowed")
        return [self.visit(e) for e in node.elts]

    def visit_List(self, node: ast.List) -> Evaluator:
        items = self._container(node)
        return lambda values: [i(values) for i in items]

    def visit_Tuple(self, node: ast.Tuple) -> Evaluator:
        items = self._container(node)
        return lambda values: tuple(i(values) for i in items)

    def visit_Set(self, node: ast.Set) -> Evaluator:
        items = self._container(node)
        return lambda values: {i(values) for i in items}

    def visit_Dict(self, node: ast.Dict) -> Evaluator:
        if any(k is None for k in node.keys):
            raise self.reject(node, "** unpacking is not allowed")
        pairs = [
            (self.visit(k), self.visit(v)) for k, v in zip(node.keys, node.values, strict=True) if k
        ]
        return lambda values: {k(values): v(values) for k, v in pairs}
