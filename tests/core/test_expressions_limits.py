"""Tests for the size limits of ``expr``: hostile expressions are refused quickly with
ConditionError, before they build anything large.

Sizes are never measured with timers here: each test asserts that the limit error is raised
(before anything large is built), or that the work is done in a way that cannot be large.
"""

from __future__ import annotations

import ast
import itertools
from typing import Any, NoReturn

import pytest

import turnout.core.expressions as expressions
from tests.core.expr_checks import evaluate, refusal
from turnout.core.condition import expr
from turnout.core.errors import ConditionError
from turnout.core.expressions import (
    MAX_DEPTH,
    MAX_INT_BITS,
    MAX_ITEMS,
    MAX_ITEMS_PER_EVALUATION,
    MAX_NODES,
    MAX_SOURCE_LENGTH,
    compile_expression,
)
from turnout.core.state import State

# -- the hostile examples of the issue -------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "values"),
    [
        ("'%0999999999d' % 1", {}),
        ("'%.999999999f' % 1.0", {}),
        ("'%*d' % (10**9, 1)", {}),
        ("'%(n)0999999999d' % {'n': 1}", {}),
        ("b'%0999999999d' % 1", {}),
        ("fmt % 1", {"fmt": "%0999999999d"}),
        ("'%999999f' % 1e308", {}),
        ("('%f' * 200000) % ((1e308,) * 200000)", {}),
        ("('%s' * 1000) % ((s,) * 1000)", {"s": "x" * 10_000}),
        ("('%(a)s' * 1000) % {'a': s}", {"s": "x" * 10_000}),
    ],
    ids=[
        "width",
        "precision",
        "star-width",
        "mapping-width",
        "bytes-width",
        "format-from-state",
        "fixed-point-digits",
        "many-fixed-point-floats",
        "many-long-arguments",
        "one-long-argument-printed-many-times",
    ],
)
def test_string_formatting_is_refused_before_it_builds_a_huge_string(
    source: str, values: dict[str, Any]
) -> None:
    assert "too large" in refusal(source, **values)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("'%5.2f' % 3.14159", " 3.14"),
        ("'%(a)s-%(b)03d' % {'a': 'x', 'b': 7}", "x-007"),
        ("'%*d|%-4s|' % (3, 7, 'ab')", "  7|ab  |"),
        ("'100%% %s' % 'done'", "100% done"),
        ("'%((a))s' % {'(a)': 1}", "1"),
        ("b'%d-%s' % (5, b'x')", b"5-x"),
        ("'%s' % [1, 2]", "[1, 2]"),
        ("len('%99999d' % 1)", 99_999),
        ("7 % 3", 1),
    ],
    ids=[
        "precision",
        "mapping",
        "star-width-and-flags",
        "escaped-percent",
        "key-with-parentheses",
        "bytes",
        "list-argument",
        "width-within-the-limit",
        "integer-modulo",
    ],
)
def test_string_formatting_within_the_limits_is_computed(source: str, expected: Any) -> None:
    assert evaluate(source) == expected


def test_sum_of_many_lists_is_linear_not_quadratic() -> None:
    """sum() of 200,000 one-item lists took minutes (each + copied the whole prefix); it now
    joins them once, and refuses a total over MAX_ITEMS before building it."""
    assert evaluate("sum([[0]] * 200000, [])") == [0] * 200_000
    assert evaluate("sum(h, ())", h=[(1,), (2, 3)]) == (1, 2, 3)
    assert evaluate("sum(h, start=[9])", h=[[1], [2]]) == [9, 1, 2]
    assert "too large" in refusal("sum(h, [])", h=[[0] * 1000] * (MAX_ITEMS // 1000 + 1))


@pytest.mark.parametrize(
    ("source", "values", "error"),
    [
        ("sum(h, [])", {"h": [[1], (2,)]}, TypeError),
        ("sum(h)", {"h": [[1]]}, TypeError),
        ("sum(h, '')", {"h": ["a"]}, TypeError),
    ],
    ids=["list-and-tuple", "lists-from-zero", "strings"],
)
def test_sum_keeps_the_errors_of_the_builtin(
    source: str, values: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(ConditionError) as info:
        evaluate(source, **values)
    assert isinstance(info.value.__cause__, error)


def test_a_too_long_expression_is_refused_before_it_is_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 1.2 MB expression took 5 s and 328 MB to compile; the length alone now refuses it."""

    def no_parse(*args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError("a too-long expression must not be parsed")

    source = " + ".join(["x"] * 300_000)  # 1.2 MB
    monkeypatch.setattr(ast, "parse", no_parse)
    with pytest.raises(ConditionError, match=r"is too long: 1,199,997 characters") as info:
        expr(source)
    assert "MAX_SOURCE_LENGTH" in str(info.value)
    assert len(str(info.value)) < 400  # the message quotes the start, not the whole text
    with pytest.raises(ConditionError):
        compile_expression("x" * (MAX_SOURCE_LENGTH + 1))


@pytest.mark.parametrize(
    "source",
    [
        "-" * 9_999 + "1",
        "~" * 9_999 + "1",
        "(" * 5_000 + "1" + ")" * 4_999,
        "[" * 5_000 + "]" * 4_999,
        "1" + "+1" * 4_999,
        "a" + ".b" * 4_990,
        "x" + "[0]" * 2_400,
        "not " * 2_499 + "x",
        "2**" * 3_000 + "2",
        "-" * (MAX_DEPTH + 1) + "x",
        "x < " * 2_000 + "x",
        " or ".join(["x"] * MAX_NODES),
    ],
    ids=[
        "minus-signs",
        "tildes",
        "parentheses",
        "brackets",
        "long-sum",
        "long-attribute-chain",
        "long-subscript-chain",
        "nots",
        "power-tower",
        "just-past-the-depth-limit",
        "long-comparison",
        "just-past-the-node-limit",
    ],
)
def test_deep_or_huge_expressions_are_condition_errors_not_interpreter_errors(source: str) -> None:
    """The parser's MemoryError and RecursionError, and the compiler's recursion, never escape."""
    assert len(source) <= MAX_SOURCE_LENGTH
    with pytest.raises(ConditionError, match=r"too large|nests too deeply|not a valid expression"):
        expr(source)


def test_expressions_within_the_size_limits_are_compiled() -> None:
    assert evaluate("-" * (MAX_DEPTH - 2) + "x", x=1) == 1
    assert evaluate(" + ".join(["x"] * (MAX_DEPTH - 1)), x=1) == MAX_DEPTH - 1
    assert evaluate(" or ".join(["x"] * (MAX_NODES - 1)), x=1) == 1
    assert evaluate(" or ".join(f"x == {i}" for i in range(200)), x=199) is True


# -- budgets ---------------------------------------------------------------------------------------


def test_each_evaluation_has_its_own_budget_of_items() -> None:
    """Each part is within MAX_ITEMS; together they are over MAX_ITEMS_PER_EVALUATION."""
    s = "x" * (MAX_ITEMS // 2)
    parts = MAX_ITEMS_PER_EVALUATION // MAX_ITEMS
    within = compile_expression(" + ".join(["len(s + s)"] * (parts - 1)))
    assert within({"s": s}) == (parts - 1) * MAX_ITEMS
    assert within({"s": s}) == (parts - 1) * MAX_ITEMS  # the budget is not used up across calls
    over = " + ".join(["len(s + s)"] * (parts + 1))
    assert "MAX_ITEMS_PER_EVALUATION" in refusal(over, s=s)


@pytest.mark.parametrize(
    ("operation", "x"),
    [("x * x", 2**49_000), ("x // 3", 2**99_000), ("x % 3", 2**99_000)],
    ids=["multiplications", "floor-divisions", "modulos"],
)
def test_big_integer_work_counts_toward_the_evaluation_budget(operation: str, x: int) -> None:
    """Each operation is cheap alone; a hundred and more of them on big integers are not."""
    bits_each = max(x.bit_length(), (x * x).bit_length() if "*" in operation else 0)
    fits = MAX_ITEMS_PER_EVALUATION // bits_each
    assert evaluate(" and ".join([operation] * fits), x=x)
    assert "MAX_ITEMS_PER_EVALUATION" in refusal(" and ".join([operation] * (fits + 1)), x=x)


@pytest.mark.parametrize(
    ("source", "values"),
    [
        ("x * x", {"x": 2 ** (MAX_INT_BITS // 2 + 1)}),
        ("(2 ** 60000) * (2 ** 60000)", {}),
        ("round(5, -10 ** 7)", {}),
        ("'ab' + s", {"s": "x" * MAX_ITEMS}),
        ("h + h", {"h": [0] * (MAX_ITEMS // 2 + 1)}),
        ("len(h[::-1])", {"h": [0] * (MAX_ITEMS + 1)}),
        ("str(h)", {"h": [0] * (MAX_ITEMS + 1)}),
        ("sorted(h)", {"h": [0] * (MAX_ITEMS + 1)}),
        ("[10 ** 4000] * 10000", {}),
        ("int(s)", {"s": "1" * MAX_INT_BITS}),
    ],
    ids=[
        "integer-product",
        "power-product",
        "round-to-huge-negative-digits",
        "string-concatenation",
        "list-concatenation",
        "slice-copy",
        "str-of-a-long-list",
        "sorted-copy",
        "repeated-big-integer",
        "int-of-a-long-string",
    ],
)
def test_operations_over_a_limit_are_refused(source: str, values: dict[str, Any]) -> None:
    assert "too large" in refusal(source, **values)


class _NoCopy(list[int]):
    """A list that fails the test if it is sliced."""

    def __getitem__(self, index: Any) -> Any:
        raise AssertionError("the slice was copied before its size was checked")


def test_a_slice_is_sized_before_it_is_copied() -> None:
    message = refusal("len(h[::-1]) > 0", h=_NoCopy([0] * (MAX_ITEMS + 1)))
    assert "too large" in message
    assert "AssertionError" not in message


@pytest.mark.parametrize(
    "source", ["max(it)", "min(it)", "sum(it)", "any(it)", "all(it)", "sorted(it)", "sum(it, [])"]
)
def test_functions_refuse_to_go_through_an_iterator_which_may_be_endless(source: str) -> None:
    """sum(itertools.count()) would never return."""
    message = refusal(source, it=itertools.count())
    assert "has no length (an iterator, maybe endless)" in message


@pytest.mark.parametrize("function", ["max", "min", "sum", "any", "all", "sorted"])
def test_going_through_a_collection_counts_toward_the_evaluation_budget(function: str) -> None:
    """A range the state holds may be longer than memory: sum(range(10**12)) ran for hours."""
    assert "MAX_ITEMS_PER_EVALUATION" in refusal(f"{function}(r)", r=range(1, 10**12))


def test_going_through_a_long_collection_once_is_fine() -> None:
    h = list(range(2 * MAX_ITEMS))
    assert evaluate("max(h) + min(h) + sum(h[:3]) + min(1, 2)", h=h) == 2 * MAX_ITEMS - 1 + 3 + 1


def test_the_limits_are_importable_constants() -> None:
    assert (MAX_SOURCE_LENGTH, MAX_NODES, MAX_DEPTH) == (10_000, 1_000, 100)
    assert set(expressions.__all__) >= {"MAX_ITEMS", "MAX_ITEMS_PER_EVALUATION", "MAX_INT_BITS"}


# -- resource limits -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "values"),
    [
        ("2 ** 100000", {}),
        ("2 ** n", {"n": 10**6}),
        ("2.0 ** 100000", {}),
        ("'a' * 10**9", {}),
        ("10**9 * 'a'", {}),
        ("[0] * 10**7", {}),
        ("(1,) * 10**7", {}),
        ("b'a' * 10**7", {}),
        ("h * n", {"h": [1, 2], "n": 10**6}),
        ("s * 1000", {"s": "x" * 10_000}),
    ],
    ids=[
        "huge-power",
        "huge-power-from-state",
        "huge-float-power",
        "huge-string-repeat",
        "huge-string-repeat-reversed",
        "huge-list-repeat",
        "huge-tuple-repeat",
        "huge-bytes-repeat",
        "huge-repeat-from-state",
        "long-string-repeated",
    ],
)
def test_huge_results_are_refused_when_evaluated(source: str, values: dict[str, Any]) -> None:
    condition = expr(source)  # building is fine: the size is only known at evaluation
    with pytest.raises(ConditionError, match=r"too large"):
        condition.evaluate(State(values))


def test_chained_powers_cannot_build_a_huge_number() -> None:
    """Each exponent is small, but the result has a hundred million bits."""
    condition = expr("(2 ** 10000) ** 10000 > 0")
    with pytest.raises(ConditionError, match=r"too large"):
        condition.evaluate(State())


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("2 ** 10000 > 0", True),
        ("(2 ** 100) ** 100 == 2 ** 10000", True),
        ("len('a' * 1000000)", 1_000_000),
        ("len([0] * 1000)", 1000),
    ],
    ids=["power-at-limit", "chained-power-within-limit", "repeat-at-limit", "small-repeat"],
)
def test_results_within_the_limits_are_computed(source: str, expected: Any) -> None:
    assert evaluate(source) == expected


@pytest.mark.parametrize(
    "source",
    [
        "len(sum([[0] * 1000000] * 1000000, [])) > 0",
        "len(str([[0] * 1000000] * 1000000)) > 0",
        "len([[[0] * 1000] * 1000] * 1000) > 0",
    ],
    ids=["sum-of-repeated-lists", "str-of-repeated-lists", "three-level-repeat"],
)
def test_nested_repetition_counts_the_items_it_expands_to(source: str) -> None:
    """Each repeat alone is within the limit; what sum() or str() would build is not."""
    with pytest.raises(ConditionError, match=r"too large"):
        expr(source).evaluate(State())


def test_repetition_of_a_small_nested_list_is_computed() -> None:
    assert evaluate("len(sum([[0] * 1000] * 3, []))") == 3000
