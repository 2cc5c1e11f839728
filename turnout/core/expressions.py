"""A small, safe evaluator for condition expressions such as ``"count < 10 and not done"``.

The text is parsed with ``ast`` and every node is checked against an allow-list, then compiled
into nested closures; nothing is ever passed to ``eval`` or ``exec``. Names are state keys (except
the allowed built-in functions, ``True``, ``False`` and ``None``).

Allowed: literals and literal containers; names; reading data attributes whose name does not
start with ``_``; subscripts and slices; arithmetic, comparison (including ``in``/``is``), boolean
and unary operators; ``x if cond else y``; calls to ``len abs min max sum all any round sorted str
int float bool`` (without ``key=`` functions, which would call a method in disguise). Rejected at
construction: everything else (function definitions, lambdas, comprehensions, imports, attribute
names starting with ``_`` or naming frame/code internals, calls to anything else), and text over
``MAX_SOURCE_LENGTH`` characters, ``MAX_NODES`` nodes or ``MAX_DEPTH`` levels of nesting.

Evaluation is bounded too (see ``turnout.core._expr_ops``): every operation that can build
something larger than its operands checks the size first, and any failure, a limit or an error
such as ``ZeroDivisionError``, is raised as ``ConditionError`` naming the expression; an error
raised inside is also the type of the ``ConditionError`` (as Burr lets it through; see
``ConditionError``). Only a state key the state lacks keeps its ``KeyError`` (``StateKeyError``
for a ``State``), which a running application reports as ``ConditionKeyError``.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from turnout.core import _expr_ops as ops
from turnout.core._expr_ops import (
    MAX_DEPTH,
    MAX_EXPONENT,
    MAX_INT_BITS,
    MAX_ITEMS,
    MAX_ITEMS_PER_EVALUATION,
    MAX_NODES,
    MAX_SOURCE_LENGTH,
    Budget,
    Refused,
    shorten,
)
from turnout.core.errors import ConditionError, ConditionSyntaxError

__all__ = [
    "MAX_DEPTH",
    "MAX_EXPONENT",
    "MAX_INT_BITS",
    "MAX_ITEMS",
    "MAX_ITEMS_PER_EVALUATION",
    "MAX_NODES",
    "MAX_SOURCE_LENGTH",
    "CompiledExpression",
    "compile_expression",
]

Evaluator = Callable[[Mapping[str, Any]], Any]
_Step = Callable[[Mapping[str, Any], Budget], Any]
_Guarded = Callable[[Budget, str, Any, Any], Any]

_CONSTANT_NAMES = {"True": True, "False": False, "None": None}
_BINARY: dict[type[ast.operator], _Guarded] = {
    ast.Add: ops.add,
    ast.Sub: ops.plain(operator.sub),
    ast.Mult: ops.multiply,
    ast.Div: ops.plain(operator.truediv),
    ast.FloorDiv: ops.floor_divide,
    ast.Mod: ops.modulo,
    ast.Pow: ops.power,
}
# The operators that may build more than their operands hold, or work on them in more than
# linear time, and so need a budget.
_GROWING = (ast.Add, ast.Mult, ast.Mod, ast.Pow, ast.FloorDiv)
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


class _MissingKey(Exception):
    """A state key the mapping lacks: its own ``KeyError`` is re-raised as is, unlike a failed
    subscript inside the expression."""

    def __init__(self, error: KeyError) -> None:
        super().__init__()
        self.error = error


class CompiledExpression:
    """A checked expression: its source, the state keys it reads, and a fast evaluator."""

    __slots__ = ("_evaluate", "_predicate", "keys", "source")

    def __init__(self, source: str, keys: list[str], root: _Step, *, grows: bool) -> None:
        self.source = source
        self.keys = keys
        self._evaluate = _evaluator(source, root, grows=grows, truth=False)
        self._predicate = _evaluator(source, root, grows=grows, truth=True)

    @property
    def evaluator(self) -> Evaluator:
        """The function from a mapping of keys to values to the expression's value."""
        return self._evaluate

    @property
    def predicate(self) -> Callable[[Mapping[str, Any]], bool]:
        """Like ``evaluator``, but the truth of the value (whose ``bool()`` may fail too)."""
        return self._predicate

    def __call__(self, values: Mapping[str, Any]) -> Any:
        return self._evaluate(values)


def _evaluator(source: str, root: _Step, *, grows: bool, truth: bool) -> Evaluator:
    if truth and not grows:
        # The usual condition (`count < 3`): no operation can grow, so no budget is allocated.
        shared = _UNUSED_BUDGET

        def holds(values: Mapping[str, Any]) -> bool:
            try:
                return bool(root(values, shared))
            except Exception as error:
                failure = _failure(source, error)
                raise failure from failure.__cause__

        return holds

    def evaluate(values: Mapping[str, Any]) -> Any:
        try:
            value = root(values, Budget() if grows else _UNUSED_BUDGET)
            return bool(value) if truth else value
        except Exception as error:
            failure = _failure(source, error)
            raise failure from failure.__cause__

    return evaluate


def _failure(source: str, error: Exception) -> BaseException:
    """What to raise for ``error`` out of an evaluation, its cause set."""
    if isinstance(error, _MissingKey):
        return error.error
    if isinstance(error, Refused):
        return ConditionError(f"expr({shorten(source)!r}): {error}. {error.fix}")
    return ConditionError.failed(
        f"expr({shorten(source)!r}) failed: {type(error).__name__}: {shorten(str(error))}. "
        f"Check the values of the state keys it reads or write the check as "
        f"Condition.lmda(fn, keys).",
        error,
    )


_UNUSED_BUDGET = Budget()


def compile_expression(source: str) -> CompiledExpression:
    """Parse and check ``source``; raise ``ConditionError`` naming the first forbidden part."""
    if not isinstance(source, str):
        raise ConditionError(
            f"expr() takes a string, got {type(source).__name__}: {shorten(repr(source))}"
        )
    if len(source) > MAX_SOURCE_LENGTH:
        raise ConditionError(
            f"expr({shorten(source, 60)!r}) is too long: {len(source):,} characters, over the "
            f"limit of {MAX_SOURCE_LENGTH:,} (MAX_SOURCE_LENGTH). Write the check as "
            f"Condition.lmda(fn, keys)."
        )
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ConditionSyntaxError(
            f"expr({shorten(source)!r}) is not a valid expression: {exc.msg}",
            ("<expr>", exc.lineno, exc.offset, exc.text, exc.end_lineno, exc.end_offset),
        ) from None
    except ValueError as exc:  # a NUL character (a SyntaxError from Python 3.12)
        raise ConditionError(
            f"expr({shorten(source)!r}) is not a valid expression: {exc}"
        ) from None
    except (MemoryError, RecursionError) as exc:  # the parser's own nesting limits
        raise ConditionError(
            f"expr({shorten(source)!r}) is not a valid expression: it nests too deeply "
            f"({type(exc).__name__}). Split it into smaller conditions combined with & and |."
        ) from None
    _check_size(source, tree.body)
    keys: list[str] = []
    compiler = _Compiler(source, keys)
    root = compiler.visit(tree.body)
    return CompiledExpression(source, keys, root, grows=compiler.grows)


# Nodes that only mark what their parent does (Load, Add, And, Lt, ...): not counted as parts.
_MARKERS = (ast.expr_context, ast.operator, ast.boolop, ast.unaryop, ast.cmpop)


def _check_size(source: str, body: ast.AST) -> None:
    """Refuse a tree over ``MAX_NODES`` nodes or ``MAX_DEPTH`` levels, before the (recursive)
    compiler walks it."""
    nodes, stack = 0, [(body, 1)]
    while stack:
        node, depth = stack.pop()
        nodes += 1
        problem = ""
        if depth > MAX_DEPTH:
            problem = f"it nests more than {MAX_DEPTH} levels deep (MAX_DEPTH)"
        elif nodes > MAX_NODES:
            problem = f"it has more than {MAX_NODES:,} parts (MAX_NODES)"
        if problem:
            raise ConditionError(
                f"expr({shorten(source)!r}) is too large: {problem}. Split it into smaller "
                f"conditions combined with & and |, or write it as Condition.lmda(fn, keys)."
            )
        stack.extend(
            (child, depth + 1)
            for child in ast.iter_child_nodes(node)
            if not isinstance(child, _MARKERS)
        )


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n|$)")


class _Compiler:
    def __init__(self, source: str, keys: list[str]) -> None:
        self.source = source
        self.keys = keys
        self.grows = False  # whether some operation charges the evaluation's budget
        # Node positions are offsets in UTF-8 bytes: encode each line once, not once per node.
        # Lines end where the parser ends them (not at form feeds, as str.splitlines would).
        self._lines = [line.encode() for line in _LINE.findall(source.strip())]

    def reject(self, node: ast.AST, why: str) -> ConditionError:
        snippet = self.segment(node)
        return ConditionError(
            f"expr({shorten(self.source)!r}): disallowed {snippet!r}: {why}. Conditions may use "
            f"state keys, literals, operators, subscripts and the functions "
            f"{', '.join(sorted(ops.FUNCTIONS))}; for anything else use Condition.lmda(fn, keys)."
        )

    def segment(self, node: ast.AST) -> str:
        """The text of ``node``, cut short, to name it in messages."""
        first, last = getattr(node, "lineno", None), getattr(node, "end_lineno", None)
        start, end = getattr(node, "col_offset", None), getattr(node, "end_col_offset", None)
        if first is None or last is None or start is None or end is None:
            return type(node).__name__
        if first == last:
            text = self._lines[first - 1][start:end]
        else:
            middle = self._lines[first : last - 1]
            text = b"".join([self._lines[first - 1][start:], *middle, self._lines[last - 1][:end]])
        return shorten(text.decode(errors="replace"), 80)

    def visit(self, node: ast.AST) -> _Step:
        method = getattr(self, f"visit_{type(node).__name__}", None)
        if method is None:
            raise self.reject(node, f"{type(node).__name__} is not allowed in a condition")
        result: _Step = method(node)
        return result

    def visit_Constant(self, node: ast.Constant) -> _Step:
        value = node.value
        return lambda _values, _budget: value

    def visit_Name(self, node: ast.Name) -> _Step:
        name = node.id
        if name in _CONSTANT_NAMES:
            constant = _CONSTANT_NAMES[name]
            return lambda _values, _budget: constant
        if name in ops.FUNCTIONS:
            raise self.reject(node, "a function can only be called, not used as a value")
        if name.startswith("__"):
            raise self.reject(node, "names starting with '__' are not allowed")
        if name not in self.keys:
            self.keys.append(name)

        def read(values: Mapping[str, Any], _budget: Budget) -> Any:
            try:
                return values[name]
            except KeyError as error:
                raise _MissingKey(error) from None

        return read

    def visit_Attribute(self, node: ast.Attribute) -> _Step:
        if node.attr.startswith("__"):
            raise self.reject(node, "attributes starting with '_' are not allowed (a dunder)")
        if node.attr.startswith("_"):
            raise self.reject(node, "attributes starting with '_' are not allowed")
        if node.attr in ops.INTERPRETER_ATTRIBUTES:
            raise self.reject(node, "attributes of frames, code and generators are not allowed")
        target, attr, what = self.visit(node.value), node.attr, self.segment(node)
        return lambda values, budget: ops.read_attribute(what, target(values, budget), attr)

    def visit_Subscript(self, node: ast.Subscript) -> _Step:
        target, index = self.visit(node.value), self.visit(node.slice)
        if not isinstance(node.slice, ast.Slice):
            return lambda values, budget: target(values, budget)[index(values, budget)]
        self.grows = True
        what = self.segment(node)

        def cut(values: Mapping[str, Any], budget: Budget) -> Any:
            whole, where = target(values, budget), index(values, budget)
            if isinstance(whole, (str, bytes, bytearray, list, tuple)) and isinstance(where, slice):
                budget.charge(len(range(*where.indices(len(whole)))), what)  # before copying
            return whole[where]

        return cut

    def visit_Slice(self, node: ast.Slice) -> _Step:
        parts = [
            self.visit(p) if p is not None else None for p in (node.lower, node.upper, node.step)
        ]
        lower, upper, step = parts
        return lambda values, budget: slice(
            lower(values, budget) if lower else None,
            upper(values, budget) if upper else None,
            step(values, budget) if step else None,
        )

    def visit_BinOp(self, node: ast.BinOp) -> _Step:
        op = _BINARY.get(type(node.op))
        if op is None:
            raise self.reject(node, f"operator {type(node.op).__name__} is not allowed")
        self.grows = self.grows or isinstance(node.op, _GROWING)
        left, right, what = self.visit(node.left), self.visit(node.right), self.segment(node)
        return lambda values, budget: op(budget, what, left(values, budget), right(values, budget))

    def visit_UnaryOp(self, node: ast.UnaryOp) -> _Step:
        op = _UNARY.get(type(node.op))
        if op is None:
            raise self.reject(node, f"operator {type(node.op).__name__} is not allowed")
        operand = self.visit(node.operand)
        return lambda values, budget: op(operand(values, budget))

    def visit_BoolOp(self, node: ast.BoolOp) -> _Step:
        operands = [self.visit(v) for v in node.values]
        if isinstance(node.op, ast.And):

            def conjunction(values: Mapping[str, Any], budget: Budget) -> Any:
                result: Any = True
                for operand in operands:
                    result = operand(values, budget)
                    if not result:
                        return result
                return result

            return conjunction

        def disjunction(values: Mapping[str, Any], budget: Budget) -> Any:
            result: Any = False
            for operand in operands:
                result = operand(values, budget)
                if result:
                    return result
            return result

        return disjunction

    def visit_Compare(self, node: ast.Compare) -> _Step:
        first = self.visit(node.left)
        ops_ = [_COMPARE[type(op)] for op in node.ops]
        rest = [self.visit(c) for c in node.comparators]
        if len(ops_) == 1:  # the usual case, without the loop
            op, right = ops_[0], rest[0]
            return lambda values, budget: op(first(values, budget), right(values, budget))

        def compare(values: Mapping[str, Any], budget: Budget) -> bool:
            left = first(values, budget)
            for op, right_fn in zip(ops_, rest, strict=True):
                right = right_fn(values, budget)
                if not op(left, right):
                    return False
                left = right
            return True

        return compare

    def visit_IfExp(self, node: ast.IfExp) -> _Step:
        test, body, orelse = self.visit(node.test), self.visit(node.body), self.visit(node.orelse)
        return lambda values, budget: (
            body(values, budget) if test(values, budget) else orelse(values, budget)
        )

    def visit_Call(self, node: ast.Call) -> _Step:
        if not isinstance(node.func, ast.Name) or node.func.id not in ops.FUNCTIONS:
            raise self.reject(node, "only calls to the allowed built-in functions are allowed")
        if any(kw.arg is None for kw in node.keywords) or any(
            isinstance(a, ast.Starred) for a in node.args
        ):
            raise self.reject(node, "* and ** arguments are not allowed")
        if any(kw.arg == "key" for kw in node.keywords):
            # key=obj.method would make min/max/sorted call a method: a call in disguise.
            raise self.reject(node, "key= functions are not allowed")
        args = [self.visit(a) for a in node.args]
        kwargs = {kw.arg: self.visit(kw.value) for kw in node.keywords if kw.arg is not None}
        plain = ops.PLAIN_FUNCTIONS.get(node.func.id)
        if plain is not None:
            if len(args) == 1 and not kwargs:  # the usual `len(items)`, without the unpacking
                only = args[0]
                return lambda values, budget: plain(only(values, budget))
            return lambda values, budget: plain(
                *[a(values, budget) for a in args],
                **{k: v(values, budget) for k, v in kwargs.items()},
            )
        self.grows = True
        fn, what = ops.GUARDED_FUNCTIONS[node.func.id], self.segment(node)
        if len(args) == 1 and not kwargs:
            first = args[0]
            return lambda values, budget: fn(budget, what, first(values, budget))
        return lambda values, budget: fn(
            budget,
            what,
            *[a(values, budget) for a in args],
            **{k: v(values, budget) for k, v in kwargs.items()},
        )

    def _container(self, node: ast.List | ast.Tuple | ast.Set) -> list[_Step]:
        if any(isinstance(e, ast.Starred) for e in node.elts):
            raise self.reject(node, "* unpacking is not allowed")
        return [self.visit(e) for e in node.elts]

    def visit_List(self, node: ast.List) -> _Step:
        items = self._container(node)
        return lambda values, budget: [i(values, budget) for i in items]

    def visit_Tuple(self, node: ast.Tuple) -> _Step:
        items = self._container(node)
        return lambda values, budget: tuple(i(values, budget) for i in items)

    def visit_Set(self, node: ast.Set) -> _Step:
        items = self._container(node)
        return lambda values, budget: {i(values, budget) for i in items}

    def visit_Dict(self, node: ast.Dict) -> _Step:
        if any(k is None for k in node.keys):
            raise self.reject(node, "** unpacking is not allowed")
        pairs = [
            (self.visit(k), self.visit(v)) for k, v in zip(node.keys, node.values, strict=True) if k
        ]
        return lambda values, budget: {k(values, budget): v(values, budget) for k, v in pairs}
