"""Tests for ``turnout.core.expressions`` and ``expr``: what a condition expression may do."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import SimpleNamespace
from typing import Any

import pytest

from turnout.core.condition import expr
from turnout.core.errors import ConditionError, StateKeyError
from turnout.core.expressions import CompiledExpression, compile_expression
from turnout.core.state import State


def evaluate(source: str, **values: Any) -> Any:
    """The raw value of ``source`` over ``values``."""
    return compile_expression(source)(values)


# -- what is allowed -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("1 + 2 * 3", {}, 7),
        ("(1 + 2) * 3", {}, 9),
        ("x - 10", {"x": 4}, -6),
        ("7 / 2", {}, 3.5),
        ("7 // 2", {}, 3),
        ("-7 // 2", {}, -4),
        ("7 % 3", {}, 1),
        ("2 ** 10", {}, 1024),
        ("2 ** -1", {}, 0.5),
        ("-x", {"x": 3}, -3),
        ("+x", {"x": -3}, -3),
        ("x * 2.5", {"x": 2}, 5.0),
        ("'ab' + s", {"s": "cd"}, "abcd"),
        ("'ab' * 3", {}, "ababab"),
        ("3 * [0]", {}, [0, 0, 0]),
        ("h + [3]", {"h": [1, 2]}, [1, 2, 3]),
    ],
    ids=[
        "precedence",
        "parentheses",
        "subtract-key",
        "true-division",
        "floor-division",
        "negative-floor-division",
        "modulo",
        "power",
        "negative-power",
        "unary-minus",
        "unary-plus",
        "float-multiply",
        "string-concat",
        "string-repeat",
        "list-repeat-left",
        "list-concat",
    ],
)
def test_arithmetic(source: str, values: dict[str, Any], expected: Any) -> None:
    result = evaluate(source, **values)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("x == 1", {"x": 1}, True),
        ("x == 1", {"x": 2}, False),
        ("x != 1", {"x": 2}, True),
        ("x < 1", {"x": 0}, True),
        ("x <= 1", {"x": 1}, True),
        ("x > 1", {"x": 1}, False),
        ("x >= 1", {"x": 1}, True),
        ("1 < x < 3", {"x": 2}, True),
        ("1 < x < 3", {"x": 3}, False),
        ("1 < x < 3", {"x": 1}, False),
        ("a <= b <= c <= d", {"a": 1, "b": 2, "c": 2, "d": 5}, True),
        ("a <= b <= c <= d", {"a": 1, "b": 2, "c": 3, "d": 2}, False),
        ("a < b > c", {"a": 1, "b": 5, "c": 2}, True),
        ("'a' in s", {"s": "cat"}, True),
        ("'z' in s", {"s": "cat"}, False),
        ("'z' not in s", {"s": "cat"}, True),
        ("k in d", {"k": "a", "d": {"a": 1}}, True),
        ("x is None", {"x": None}, True),
        ("x is None", {"x": 0}, False),
        ("x is not None", {"x": 0}, True),
        ("x is True", {"x": 1}, False),
        ("x == True", {"x": 1}, True),
    ],
    ids=[
        "eq-true",
        "eq-false",
        "ne",
        "lt",
        "le",
        "gt-equal",
        "ge",
        "chained-inside",
        "chained-upper-bound",
        "chained-lower-bound",
        "chained-four-true",
        "chained-four-false",
        "chained-mixed",
        "in-string",
        "in-string-false",
        "not-in",
        "in-dict",
        "is-none",
        "is-none-false",
        "is-not-none",
        "is-identity-not-equality",
        "eq-equality",
    ],
)
def test_comparisons(source: str, values: dict[str, Any], expected: bool) -> None:
    assert evaluate(source, **values) is expected


class CountingMapping(Mapping[str, Any]):
    """A mapping that counts how often each key is read."""

    def __init__(self, **values: Any) -> None:
        self.values_ = values
        self.reads: dict[str, int] = {}

    def __getitem__(self, key: str) -> Any:
        self.reads[key] = self.reads.get(key, 0) + 1
        return self.values_[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values_)

    def __len__(self) -> int:
        return len(self.values_)


def test_chained_comparison_reads_the_middle_operand_once() -> None:
    values = CountingMapping(x=2)
    assert compile_expression("1 < x < 3")(values) is True
    assert values.reads == {"x": 1}


def test_chained_comparison_stops_at_the_first_false_link() -> None:
    assert expr("1 > 2 > missing").evaluate(State()) is False


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("True or missing", {}, True),
        ("x or missing", {"x": 1}, 1),
        ("False and missing", {}, False),
        ("x and missing", {"x": 0}, 0),
        ("x > 0 and missing", {"x": 0}, False),
        ("x < 0 or y or missing", {"x": 0, "y": "y"}, "y"),
        ("'yes' if flag else missing", {"flag": True}, "yes"),
        ("missing if flag else 'no'", {"flag": False}, "no"),
    ],
    ids=[
        "or-literal",
        "or-key",
        "and-literal",
        "and-key",
        "and-comparison",
        "or-three",
        "ternary-body",
        "ternary-else",
    ],
)
def test_short_circuit_never_reads_the_skipped_operand(
    source: str, values: dict[str, Any], expected: Any
) -> None:
    """The operand naming an absent key is never evaluated."""
    assert evaluate(source, **values) == expected
    assert expr(source).evaluate(State(values)) is bool(expected)


def test_or_reads_its_right_operand_when_the_left_is_false() -> None:
    with pytest.raises(StateKeyError) as info:
        expr("False or missing").evaluate(State())
    assert info.value.key == "missing"


def test_and_reads_its_right_operand_when_the_left_is_true() -> None:
    with pytest.raises(StateKeyError):
        expr("x and missing").evaluate(State({"x": 1}))


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("x or 'fallback'", {"x": ""}, "fallback"),
        ("x or 'fallback'", {"x": "set"}, "set"),
        ("x and y", {"x": 1, "y": [2]}, [2]),
        ("x and y", {"x": [], "y": 1}, []),
        ("a or b or c", {"a": 0, "b": None, "c": ""}, ""),
        ("not x", {"x": []}, True),
        ("not not x", {"x": 5}, True),
    ],
    ids=[
        "or-fallback",
        "or-first",
        "and-last",
        "and-first-falsy",
        "or-all-falsy",
        "not",
        "not-not",
    ],
)
def test_boolean_operators_return_python_values(
    source: str, values: dict[str, Any], expected: Any
) -> None:
    assert evaluate(source, **values) == expected


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("h[0]", {"h": [5, 6, 7]}, 5),
        ("h[-1]", {"h": [5, 6, 7]}, 7),
        ("h[i]", {"h": [5, 6, 7], "i": 1}, 6),
        ("d['k']", {"d": {"k": "v"}}, "v"),
        ("d['a']['b']", {"d": {"a": {"b": 1}}}, 1),
        ("h[1:3]", {"h": [0, 1, 2, 3]}, [1, 2]),
        ("h[:2]", {"h": [0, 1, 2, 3]}, [0, 1]),
        ("h[2:]", {"h": [0, 1, 2, 3]}, [2, 3]),
        ("h[::-1]", {"h": [0, 1, 2]}, [2, 1, 0]),
        ("h[::2]", {"h": [0, 1, 2, 3, 4]}, [0, 2, 4]),
        ("h[:]", {"h": [0, 1]}, [0, 1]),
        ("h[i:j]", {"h": [0, 1, 2, 3], "i": 1, "j": 3}, [1, 2]),
        ("s[-3:]", {"s": "abcdef"}, "def"),
        ("[1, 2, 3][1]", {}, 2),
        ("t[0]", {"t": (9,)}, 9),
    ],
    ids=[
        "index",
        "negative-index",
        "index-from-key",
        "dict-key",
        "nested-dict",
        "slice",
        "slice-upper",
        "slice-lower",
        "slice-reverse",
        "slice-step",
        "slice-all",
        "slice-from-keys",
        "string-slice",
        "literal-index",
        "tuple-index",
    ],
)
def test_subscripts_and_slices(source: str, values: dict[str, Any], expected: Any) -> None:
    assert evaluate(source, **values) == expected


def test_subscript_of_a_missing_index_is_a_condition_error_caused_by_the_usual_one() -> None:
    with pytest.raises(ConditionError, match=r"expr\('h\[5\]'\) failed: IndexError") as info:
        evaluate("h[5]", h=[1])
    assert isinstance(info.value.__cause__, IndexError)
    with pytest.raises(ConditionError, match=r"KeyError: 'absent'") as info:
        evaluate("d['absent']", d={})
    assert isinstance(info.value.__cause__, KeyError)


def test_attribute_access_reads_public_attributes() -> None:
    obj = SimpleNamespace(count=3, inner=SimpleNamespace(name="n"))
    assert evaluate("obj.count + 1", obj=obj) == 4
    assert evaluate("obj.inner.name", obj=obj) == "n"
    assert evaluate("x.real", x=5) == 5
    assert evaluate("z.imag", z=2 + 3j) == 3.0


def test_attribute_access_of_a_missing_attribute_is_a_condition_error() -> None:
    with pytest.raises(ConditionError, match=r"expr\('obj.nope'\) failed: AttributeError") as info:
        evaluate("obj.nope", obj=SimpleNamespace())
    assert isinstance(info.value.__cause__, AttributeError)


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("'big' if x > 10 else 'small'", {"x": 11}, "big"),
        ("'big' if x > 10 else 'small'", {"x": 10}, "small"),
        ("1 if a else 2 if b else 3", {"a": False, "b": True}, 2),
        ("1 if a else 2 if b else 3", {"a": False, "b": False}, 3),
    ],
    ids=["body", "else", "nested-middle", "nested-last"],
)
def test_ternary(source: str, values: dict[str, Any], expected: Any) -> None:
    assert evaluate(source, **values) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("[1, 'a', None]", [1, "a", None]),
        ("[]", []),
        ("(1, 2)", (1, 2)),
        ("(1,)", (1,)),
        ("()", ()),
        ("{1, 2, 2}", {1, 2}),
        ("{'a': 1, 'b': [2]}", {"a": 1, "b": [2]}),
        ("{}", {}),
        ("[x, [x]]", [4, [4]]),
        ("{x: x * 2}", {4: 8}),
        ("'text'", "text"),
        ("b'raw'", b"raw"),
        ("1.5", 1.5),
        ("True", True),
        ("False", False),
        ("None", None),
    ],
    ids=[
        "list",
        "empty-list",
        "tuple",
        "one-tuple",
        "empty-tuple",
        "set",
        "dict",
        "empty-dict",
        "nested-list-of-keys",
        "dict-of-keys",
        "string",
        "bytes",
        "float",
        "true",
        "false",
        "none",
    ],
)
def test_literals_and_literal_containers(source: str, expected: Any) -> None:
    result = evaluate(source, x=4)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("len(h)", {"h": [1, 2]}, 2),
        ("abs(x)", {"x": -3}, 3),
        ("min(h)", {"h": [3, 1, 2]}, 1),
        ("min(a, b)", {"a": 4, "b": 2}, 2),
        ("max(h)", {"h": [3, 1, 2]}, 3),
        ("max(h, default=0)", {"h": []}, 0),
        ("sum(h)", {"h": [1, 2, 3]}, 6),
        ("sum(h, 10)", {"h": [1, 2]}, 13),
        ("all(h)", {"h": [1, 0]}, False),
        ("any(h)", {"h": [0, 1]}, True),
        ("round(x)", {"x": 2.6}, 3),
        ("round(x, 1)", {"x": 2.66}, 2.7),
        ("sorted(h)", {"h": [3, 1, 2]}, [1, 2, 3]),
        ("sorted(h, reverse=True)", {"h": [3, 1, 2]}, [3, 2, 1]),
        ("str(x)", {"x": 5}, "5"),
        ("int(s)", {"s": "42"}, 42),
        ("int('ff', base=16)", {}, 255),
        ("float(s)", {"s": "1.5"}, 1.5),
        ("bool(h)", {"h": []}, False),
        ("len(str(max(h))) > 1", {"h": [5, 12]}, True),
    ],
    ids=[
        "len",
        "abs",
        "min-iterable",
        "min-args",
        "max",
        "max-default-keyword",
        "sum",
        "sum-start",
        "all",
        "any",
        "round",
        "round-digits",
        "sorted",
        "sorted-reverse-keyword",
        "str",
        "int",
        "int-base-keyword",
        "float",
        "bool",
        "nested-calls",
    ],
)
def test_allowed_builtin_calls(source: str, values: dict[str, Any], expected: Any) -> None:
    result = evaluate(source, **values)
    assert result == expected
    assert type(result) is type(expected)


def test_a_state_key_may_start_with_one_underscore() -> None:
    assert evaluate("_private + 1", _private=1) == 2
    assert compile_expression("_private").keys == ["_private"]


def test_evaluates_against_a_state() -> None:
    state = State({"count": 3}).append(history="a").append(history="b")
    assert compile_expression("count + len(history)")(state) == 5
    assert expr("history[-1] == 'b' and count < 10").evaluate(state) is True


def test_missing_key_in_a_plain_mapping_raises_key_error() -> None:
    with pytest.raises(KeyError):
        evaluate("absent > 1")


def test_compiled_expression_keeps_its_source_and_keys() -> None:
    compiled = compile_expression("  a + b ")
    assert isinstance(compiled, CompiledExpression)
    assert compiled.source == "  a + b "
    assert compiled.keys == ["a", "b"]


def test_compiled_expression_can_be_evaluated_many_times() -> None:
    compiled = compile_expression("x * 2")
    assert [compiled({"x": i}) for i in range(4)] == [0, 2, 4, 6]


def test_surrounding_whitespace_and_newlines_are_ignored() -> None:
    assert evaluate("\n   x + 1   \n", x=1) == 2


def test_parenthesised_expression_may_span_lines() -> None:
    assert evaluate("(x +\n 1)", x=1) == 2


# -- keys ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "keys"),
    [
        ("a < b and len(c) > 0", ["a", "b", "c"]),
        ("x + x * y - x", ["x", "y"]),
        ("True or False or None", []),
        ("len([1, 2]) > max(1, 2)", []),
        ("obj.count > 1", ["obj"]),
        ("d['key'] == 'value'", ["d"]),
        ("h[i:j]", ["h", "i", "j"]),
        ("n if flag else m", ["flag", "n", "m"]),
        ("{k: v}", ["k", "v"]),
        ("'name' in names", ["names"]),
        ("sorted(h, reverse=rev)", ["h", "rev"]),
    ],
    ids=[
        "brief-example",
        "repeated-once",
        "constants",
        "builtins-only",
        "attribute-not-a-key",
        "string-index-not-a-key",
        "slice-bounds",
        "ternary-order",
        "dict-literal",
        "string-literal-not-a-key",
        "keyword-value",
    ],
)
def test_keys_are_the_state_names_read_in_first_use_order(source: str, keys: list[str]) -> None:
    assert compile_expression(source).keys == keys
    assert expr(source).keys == keys


# -- what is rejected when the condition is built --------------------------------------------------

REJECTED = [
    ("__import__('os')", "import-call"),
    ("__import__('os').system('echo pwned')", "import-system"),
    ("__import__", "dunder-name"),
    ("__builtins__", "builtins-name"),
    ("__x + 1", "dunder-key"),
    ("lambda: 1", "lambda"),
    ("(lambda x: x)(1)", "lambda-call"),
    ("sorted(h, key=lambda v: -v)", "lambda-argument"),
    ("[x for x in h]", "list-comprehension"),
    ("{x for x in h}", "set-comprehension"),
    ("{x: 1 for x in h}", "dict-comprehension"),
    ("(x for x in h)", "generator"),
    ("any(x for x in h)", "generator-argument"),
    ("(y := 1)", "walrus"),
    ("[y := 1, y]", "walrus-in-list"),
    ("open('/etc/passwd')", "open"),
    ("eval('1')", "eval"),
    ("exec('1')", "exec"),
    ("compile('1', '', 'eval')", "compile"),
    ("getattr(x, 'y')", "getattr"),
    ("print(1)", "print"),
    ("type(x)", "type"),
    ("globals()", "globals"),
    ("foo(1)", "unknown-function"),
    ("x.append(1)", "method-call"),
    ("'{0.__class__}'.format(x)", "format-method"),
    ("d.get('k')", "dict-method"),
    ("len(h).bit_length()", "method-on-result"),
    ("x()", "call-a-key"),
    ("h[0]()", "call-a-subscript"),
    ("x.__class__", "dunder-attribute"),
    ("x._private", "underscore-attribute"),
    ("().__class__.__bases__[0].__subclasses__()", "subclasses-escape"),
    ("x.__class__ == int", "dunder-attribute-in-compare"),
    ("len(*h)", "star-argument"),
    ("max(**d)", "double-star-argument"),
    ("[*h]", "star-in-list"),
    ("(*h,)", "star-in-tuple"),
    ("{*h}", "star-in-set"),
    ("{**d}", "double-star-in-dict"),
    ("f'{x}'", "f-string"),
    ("x | y", "bitwise-or"),
    ("x & y", "bitwise-and"),
    ("x ^ y", "bitwise-xor"),
    ("1 << 100000", "left-shift"),
    ("x >> 1", "right-shift"),
    ("~x", "invert"),
    ("x @ y", "matmul"),
    ("len", "function-as-value"),
    ("sorted(h, key=len)", "function-as-argument"),
    ("sorted(h, key=abs)", "builtin-key-function"),
    ("await x", "await"),
    ("(yield)", "yield"),
]


@pytest.mark.parametrize("source", [s for s, _ in REJECTED], ids=[i for _, i in REJECTED])
def test_forbidden_expression_is_rejected_when_built(source: str) -> None:
    with pytest.raises(ConditionError):
        compile_expression(source)
    with pytest.raises(ConditionError):
        expr(source)


@pytest.mark.parametrize(
    "source",
    ["max([7], key=h.append)", "min([7], key=h.append) == 7", "sorted([7], key=d.pop)"],
    ids=["max-key-method", "min-key-method", "sorted-key-method"],
)
def test_a_method_cannot_be_called_by_passing_it_as_a_key_function(source: str) -> None:
    """Passing a bound method to an allowed builtin would call it: a method call in disguise."""
    with pytest.raises(ConditionError):
        compile_expression(source)


@pytest.mark.parametrize(
    "source",
    [
        *["a <", "", "   ", "x if y", "import os", "x = 1", "a; b", "def f(): pass", "1 +", "(("],
        *["x\x00", "'\ud800'"],
    ],
    ids=[
        "dangling-operator",
        "empty",
        "blank",
        "ternary-without-else",
        "import-statement",
        "assignment",
        "two-statements",
        "function-definition",
        "incomplete-sum",
        "unbalanced",
        "nul-character",
        "lone-surrogate",
    ],
)
def test_syntax_error_is_a_condition_error(source: str) -> None:
    with pytest.raises(ConditionError, match=r"is not a valid expression"):
        expr(source)


@pytest.mark.parametrize(
    "source", [None, 1, b"x < 1", ["x < 1"]], ids=["none", "int", "bytes", "list"]
)
def test_non_string_is_rejected(source: Any) -> None:
    with pytest.raises(ConditionError, match=r"expr\(\) takes a string"):
        expr(source)


def test_rejection_message_shows_the_offending_part_and_the_escape_hatch() -> None:
    with pytest.raises(ConditionError) as info:
        expr("count > 1 and x.append(1)")
    message = str(info.value)
    assert "'x.append(1)'" in message
    assert "Condition.lmda(fn, keys)" in message
    assert "len" in message


def test_rejection_message_names_the_underscore_rule() -> None:
    with pytest.raises(ConditionError, match=r"attributes starting with '_' are not allowed"):
        expr("x.__class__")


def test_rejection_happens_before_any_evaluation() -> None:
    """A forbidden part anywhere, even in a branch never taken, rejects the whole expression."""
    with pytest.raises(ConditionError):
        expr("True or __import__('os')")
