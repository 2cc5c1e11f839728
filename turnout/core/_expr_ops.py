"""What one evaluation of an ``expr`` may cost, and the guarded operations that enforce it.

An expression has no loops, so each of its operations runs at most once per evaluation; what can
still exhaust memory or CPU is a single operation building something far larger than its operands
(``'a' * 10**9``, ``'%0999999999d' % 1``, ``2 ** 10**6``, ``sum(lists, [])``). Every such
operation is replaced by a guarded one here that computes the size of its result *before*
building it and charges it to a ``Budget`` created for each evaluation:

- one operation may build at most ``MAX_ITEMS`` items or characters (nested containers counted
  through, so a list repeating a big list weighs what printing it would build);
- one evaluation may build at most ``MAX_ITEMS_PER_EVALUATION`` in total;
- an integer built by ``*`` or ``**`` may have at most ``MAX_INT_BITS`` bits.

Multiplying and dividing big integers, and going through a collection (``min max sum all any
sorted``), count toward the evaluation's total too; those functions refuse an iterator, which may
be endless. Values the state already holds are not limited (they are in memory already), but
operations on them are: ``text * 3`` is charged ``3 * len(text)``. Operations on your own types
(``Decimal``, numpy arrays, ...) run their own code and are not sized here.

Attribute reads go through ``read_attribute``: a chain stops at anything that is code rather than
data (``OPAQUE_TYPES``), so ``gen.gi_frame.f_globals`` cannot walk from a generator in the state
to a module's globals; ``INTERPRETER_ATTRIBUTES`` names are refused when the expression is built.
"""

from __future__ import annotations

import itertools
import operator
import re
import types
from collections.abc import Callable, Iterable, Sized
from typing import Any, Final

__all__ = [
    "MAX_DEPTH",
    "MAX_EXPONENT",
    "MAX_INT_BITS",
    "MAX_ITEMS",
    "MAX_ITEMS_PER_EVALUATION",
    "MAX_NODES",
    "MAX_SOURCE_LENGTH",
    "Budget",
    "Refused",
]

MAX_SOURCE_LENGTH: Final = 10_000
"""Characters of expression text; longer text is refused before it is parsed."""
MAX_NODES: Final = 1_000
"""Syntax-tree nodes (names, literals, operators, calls ...) in one expression."""
MAX_DEPTH: Final = 100
"""Nesting levels of the syntax tree (``-(-(-x))`` is 4 deep)."""
MAX_ITEMS: Final = 1_000_000
"""Items or characters one operation may build."""
MAX_ITEMS_PER_EVALUATION: Final = 10_000_000
"""Items or characters all the operations of one evaluation may build together."""
MAX_INT_BITS: Final = 100_000
"""Bits of an integer built by ``*`` or ``**`` (about 30,000 decimal digits)."""
MAX_EXPONENT: Final = 10_000
"""Absolute value of an exponent in ``**``."""

_SEQUENCES = (str, bytes, bytearray, list, tuple)
_TEXTS = (str, bytes, bytearray)
_CONTAINERS = (list, tuple, set, frozenset, dict)
_COLLECTIONS = frozenset({*_CONTAINERS, *_TEXTS})  # checked before the slower ABC
_REALS = (int, float)  # bool is an int


_SIZE_FIX = (
    "Compute large values in an action and store them in the state, or write the check as "
    "Condition.lmda(fn, keys)."
)
_DATA_FIX = (
    "Store the data the condition needs in the state, or write the check as "
    "Condition.lmda(fn, keys)."
)


class Refused(Exception):
    """An operation would go over a limit or reach code; the compiler adds the expression."""

    def __init__(self, message: str, *, fix: str = _SIZE_FIX) -> None:
        super().__init__(message)
        self.fix = fix


class Budget:
    """What is left to build in one evaluation; one per evaluation, never shared."""

    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = MAX_ITEMS_PER_EVALUATION

    def charge(self, size: int, what: str) -> None:
        """Account for ``size`` items built by ``what``, or raise ``Refused``."""
        if size > MAX_ITEMS:
            raise Refused(
                f"{what} is too large: it would build {size:,} items, over the limit of "
                f"{MAX_ITEMS:,} per operation (MAX_ITEMS)"
            )
        self.spend(size, what)

    def spend(self, size: int, what: str) -> None:
        """Account for ``size`` units of work (a big integer's bits) toward the evaluation's
        total only: one operation on a big value the state holds is not refused for it."""
        self.left -= size
        if self.left < 0:
            raise Refused(
                f"{what} is too large: with it one evaluation builds over "
                f"{MAX_ITEMS_PER_EVALUATION:,} items (or bits of big integers it multiplies and "
                f"divides), the limit (MAX_ITEMS_PER_EVALUATION)"
            )


def weight(value: Any, budget: int = MAX_ITEMS) -> int:
    """How many items ``value`` expands to when printed or flattened.

    A string weighs its length, a container the sum over its items (so a list repeating one big
    list weighs what ``str()`` of it would build), anything else 1 (a big integer 1 per 64 bits).
    Stops early once past ``budget``.
    """
    return _weigh(value, budget, {})


def _weigh(value: Any, budget: int, seen: dict[int, int]) -> int:
    if isinstance(value, _TEXTS):
        return len(value)
    if isinstance(value, int):
        return 1 + value.bit_length() // 64
    if not isinstance(value, _CONTAINERS):
        return 1
    known = seen.get(id(value))  # repetition shares one object many times: weigh it once
    if known is not None:
        return known
    total = 0
    for item in itertools.chain.from_iterable(value.items()) if isinstance(value, dict) else value:
        if total > budget:
            break
        kind = type(item)
        if kind is int or kind is bool:  # the common items, without a call
            total += 1 + item.bit_length() // 64
        elif kind is float or item is None:
            total += 1
        else:
            total += _weigh(item, budget - total, seen)
    seen[id(value)] = total = max(total, 1)
    return total


def _check_int(result: Any, budget: Budget, what: str) -> Any:
    # Multiplying and dividing big integers costs more than linear time: their bits count toward
    # the evaluation's total, so a few hundred of them at most can run in one evaluation.
    if isinstance(result, int) and result.bit_length() > 64:
        budget.spend(result.bit_length(), what)
    return result


def _int_bits(what: str, bits: int) -> None:
    if bits > MAX_INT_BITS:
        raise Refused(
            f"{what} is too large: the integer would have about {bits:,} bits, over the limit of "
            f"{MAX_INT_BITS:,} (MAX_INT_BITS)"
        )


def power(budget: Budget, what: str, base: Any, exponent: Any) -> Any:
    if isinstance(exponent, _REALS) and abs(exponent) > MAX_EXPONENT:
        raise Refused(
            f"{what} is too large: the exponent {exponent!r} is over the limit of "
            f"{MAX_EXPONENT:,} (MAX_EXPONENT)"
        )
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0:
        _int_bits(what, base.bit_length() * exponent)
    return _check_int(operator.pow(base, exponent), budget, what)


def multiply(budget: Budget, what: str, left: Any, right: Any) -> Any:
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, _SEQUENCES) and isinstance(times, int):
            if times > 0:
                budget.charge(weight(seq, MAX_ITEMS // times + 1) * times, what)
            return operator.mul(left, right)
    if isinstance(left, int) and isinstance(right, int):
        _int_bits(what, left.bit_length() + right.bit_length())
        return _check_int(operator.mul(left, right), budget, what)
    return operator.mul(left, right)


def add(budget: Budget, what: str, left: Any, right: Any) -> Any:
    if isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
        budget.charge(len(left) + len(right), what)
    return operator.add(left, right)


# One printf-style conversion after its '%': flags, width, precision, length modifier, type.
_CONVERSION = re.compile(r"[-+ #0]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.?)", re.DOTALL)
# %f prints every digit before the point: up to 309 for a float, beyond the weight of 1 it has.
_FIXED_POINT_DIGITS = 330


def _number(digits: str | None, widest_arg: int, what: str) -> int:
    if not digits:
        return 0
    if digits == "*":
        return widest_arg
    if len(digits) > len(str(MAX_ITEMS)):
        raise Refused(
            f"{what} is too large: the width or precision {shorten(digits, 20)} is over the "
            f"limit of {MAX_ITEMS:,} characters (MAX_ITEMS)"
        )
    return int(digits)


def _format_size(text: str, args: Any, what: str) -> int:
    """An upper bound of the length of ``text % args``, found without formatting."""
    items = args if isinstance(args, tuple) else (args,)
    widest_arg = max((abs(a) for a in items if isinstance(a, int)), default=0)
    size = len(text) + weight(args)  # each positional argument is printed once
    position = text.find("%")
    while position != -1 and size <= MAX_ITEMS:
        start = position + 1
        if text.startswith("%", start):
            position = text.find("%", start + 1)
            continue
        if text.startswith("(", start):  # a mapping key, which may hold balanced parentheses
            depth, end = 1, start + 1
            while depth and end < len(text):
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                end += 1
            key, start = text[start + 1 : end - 1], end
            # a key may be printed many times: count its value each time
            size += weight(args.get(key) if type(args) is dict else args)
        match = _CONVERSION.match(text, start)
        assert match is not None  # every part of the pattern is optional
        width, precision, kind = match.groups()
        size += _number(width, widest_arg, what) + _number(precision, widest_arg, what)
        size += _FIXED_POINT_DIGITS if kind in ("f", "F") else 0
        position = text.find("%", match.end())
    return size


def modulo(budget: Budget, what: str, left: Any, right: Any) -> Any:
    if isinstance(left, _TEXTS):
        text = left if isinstance(left, str) else left.decode("latin-1")
        budget.charge(_format_size(text, right, what), what)
    elif isinstance(left, int):
        _check_int(left, budget, what)
    return operator.mod(left, right)


def floor_divide(budget: Budget, what: str, left: Any, right: Any) -> Any:
    if isinstance(left, int):
        _check_int(left, budget, what)
    return operator.floordiv(left, right)


def plain(op: Callable[[Any, Any], Any]) -> Callable[[Budget, str, Any, Any], Any]:
    """An operator that cannot build more than its operands hold, with the guarded signature."""
    return lambda _budget, _what, left, right: op(left, right)


def to_str(budget: Budget, what: str, *args: Any, **kwargs: Any) -> Any:
    if args and not kwargs and len(args) == 1:
        budget.charge(weight(args[0]), what)
    return str(*args, **kwargs)


def to_int(budget: Budget, what: str, *args: Any, **kwargs: Any) -> Any:
    # Parsing digits is quadratic where the interpreter's own digit limit is switched off.
    if args and isinstance(args[0], _TEXTS):
        budget.charge(len(args[0]), what)
        _int_bits(what, len(args[0]) * 4)
    return int(*args, **kwargs)


def _scan(budget: Budget, what: str, items: Any) -> int:
    """Account for going through ``items`` once; refuse what has no length, which may be endless
    (``itertools.count()``) and would be used up by the first evaluation anyway."""
    if type(items) not in _COLLECTIONS and not isinstance(items, Sized):
        raise Refused(
            f"{what} goes through a {type(items).__name__}, which has no length (an iterator, "
            f"maybe endless); give it a list, tuple, set, dict or string",
            fix=_DATA_FIX,
        )
    size = len(items)
    budget.spend(size, what)
    return size


def scanning(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``min max all any``: going through one collection counts toward the evaluation's total."""

    def scan(budget: Budget, what: str, *args: Any, **kwargs: Any) -> Any:
        if len(args) == 1:  # min(a, b) compares its arguments and goes through nothing
            _scan(budget, what, args[0])
        return fn(*args, **kwargs)

    return scan


def to_sorted(budget: Budget, what: str, *args: Any, **kwargs: Any) -> Any:
    if args:
        budget.charge(_scan(budget, what, args[0]), what)  # and it builds a copy
    return sorted(*args, **kwargs)


def rounded(budget: Budget, what: str, number: Any, ndigits: Any = None) -> Any:
    # round(5, -10**7) computes 10**(10**7): seconds of CPU for a zero.
    if isinstance(ndigits, int):
        _int_bits(what, abs(ndigits) * 10 // 3)
    return round(number, ndigits)


def total(budget: Budget, what: str, iterable: Iterable[Any], /, start: Any = 0) -> Any:
    """``sum`` in linear time: the built-in concatenates lists one by one, in quadratic time."""
    _scan(budget, what, iterable)
    if not isinstance(start, (list, tuple)):
        return sum(iterable, start)
    kind = list if isinstance(start, list) else tuple
    parts: list[Any] = [start]
    size = len(start)
    for item in iterable:
        if not isinstance(item, kind):
            raise TypeError(
                f'can only concatenate {kind.__name__} (not "{type(item).__name__}") to '
                f"{kind.__name__}"
            )
        size += len(item)
        if size > MAX_ITEMS:
            break
        parts.append(item)
    budget.charge(size, what)
    return kind(itertools.chain.from_iterable(parts))


GUARDED_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": scanning(min),
    "max": scanning(max),
    "sum": total,
    "all": scanning(all),
    "any": scanning(any),
    "round": rounded,
    "sorted": to_sorted,
    "str": to_str,
    "int": to_int,
}
"""The functions that may build or go through a lot, by name, each with its guard (called with
the budget and the calling text first)."""
PLAIN_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len,
    "abs": abs,
    "float": float,
    "bool": bool,
}
"""The functions whose work and result are no larger than their argument: called as they are."""
FUNCTIONS: Final = frozenset(GUARDED_FUNCTIONS) | frozenset(PLAIN_FUNCTIONS)
"""The names of the functions an expression may call."""

# Objects that hold or lead to code, frames and module globals: an attribute chain stops at them
# (``gen.gi_frame.f_globals`` would otherwise reach every global of a module).
OPAQUE_TYPES: Final = (
    types.ModuleType,
    types.FrameType,
    types.CodeType,
    types.TracebackType,
    types.GeneratorType,
    types.CoroutineType,
    types.AsyncGeneratorType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.MethodWrapperType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    types.ClassMethodDescriptorType,
    types.GetSetDescriptorType,
    types.MemberDescriptorType,
    types.CellType,
    property,
    staticmethod,
    classmethod,
)
_INTERPRETER_PREFIXES = ("f_", "co_", "gi_", "cr_", "ag_", "tb_")
INTERPRETER_ATTRIBUTES: Final = frozenset(
    {name for kind in OPAQUE_TYPES for name in dir(kind) if name.startswith(_INTERPRETER_PREFIXES)}
    | {"f_globals", "f_locals", "f_builtins", "f_back", "f_code", "gi_frame", "cr_frame"}
    | {"ag_frame", "tb_frame", "tb_next", "func_globals", "func_code", "func_closure"}
    | {"im_func", "im_self", "cell_contents"}
)
"""Attribute names of frames, code, generators and tracebacks, refused when an expression is
built."""


def read_attribute(what: str, target: Any, name: str) -> Any:
    if isinstance(target, OPAQUE_TYPES):
        raise Refused(
            f"{what} reads an attribute of a {type(target).__name__}; a condition reads "
            f"attributes of data only, not of code, functions, modules or frames",
            fix=_DATA_FIX,
        )
    value = getattr(target, name)
    if isinstance(value, OPAQUE_TYPES):
        raise Refused(
            f"{what} is a {type(value).__name__}, not data; a condition may read data "
            f"attributes only (methods cannot be called in an expression)",
            fix=_DATA_FIX,
        )
    return value


def shorten(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"
