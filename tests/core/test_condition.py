"""Tests for ``turnout.core.condition``: ``when``, ``expr``, ``default`` and ``~ | &``."""

from __future__ import annotations

import itertools
import pickle
from typing import Any

import pytest

from turnout.core.condition import Condition, default, expr, when
from turnout.core.errors import ConditionError, StateKeyError
from turnout.core.state import State

# -- when ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "values", "expected"),
    [
        ({"x": 1}, {"x": 1}, True),
        ({"x": 1}, {"x": 2}, False),
        ({"x": "done"}, {"x": "done"}, True),
        ({"x": None}, {"x": None}, True),
        ({"x": [1]}, {"x": [1]}, True),
        ({"x__eq": 1}, {"x": 1}, True),
        ({"x__eq": 1}, {"x": 0}, False),
        ({"x__ne": 1}, {"x": 0}, True),
        ({"x__ne": 1}, {"x": 1}, False),
        ({"x__gt": 1}, {"x": 2}, True),
        ({"x__gt": 1}, {"x": 1}, False),
        ({"x__gte": 1}, {"x": 1}, True),
        ({"x__gte": 1}, {"x": 0}, False),
        ({"x__lt": 1}, {"x": 0}, True),
        ({"x__lt": 1}, {"x": 1}, False),
        ({"x__lte": 1}, {"x": 1}, True),
        ({"x__lte": 1}, {"x": 2}, False),
        ({"x__in": ["a", "b"]}, {"x": "a"}, True),
        ({"x__in": ["a", "b"]}, {"x": "c"}, False),
        ({"x__notin": ["a", "b"]}, {"x": "c"}, True),
        ({"x__notin": ["a", "b"]}, {"x": "a"}, False),
        ({"x__contains": "a"}, {"x": ["a", "b"]}, True),
        ({"x__contains": "z"}, {"x": ["a", "b"]}, False),
        ({"x__contains": "ell"}, {"x": "hello"}, True),
        ({"x__is": None}, {"x": None}, True),
        ({"x__is": None}, {"x": 0}, False),
        ({"x__isnot": None}, {"x": 0}, True),
        ({"x__isnot": None}, {"x": None}, False),
    ],
    ids=[
        "eq-plain-true",
        "eq-plain-false",
        "eq-plain-string",
        "eq-plain-none",
        "eq-plain-list",
        "eq-suffix-true",
        "eq-suffix-false",
        "ne-true",
        "ne-false",
        "gt-true",
        "gt-equal-false",
        "gte-equal-true",
        "gte-false",
        "lt-true",
        "lt-equal-false",
        "lte-equal-true",
        "lte-false",
        "in-true",
        "in-false",
        "notin-true",
        "notin-false",
        "contains-list-true",
        "contains-list-false",
        "contains-substring",
        "is-none-true",
        "is-zero-not-none",
        "isnot-true",
        "isnot-false",
    ],
)
def test_when_compares_the_key_with_the_suffix_operator(
    kwargs: dict[str, Any], values: dict[str, Any], expected: bool
) -> None:
    assert when(**kwargs).evaluate(State(values)) is expected


def test_when_is_uses_identity_not_equality() -> None:
    marker: list[int] = []
    assert when(x__is=marker).evaluate(State({"x": marker})) is True
    assert when(x__is=marker).evaluate(State({"x": []})) is False
    assert when(x__isnot=marker).evaluate(State({"x": []})) is True


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"a": 1, "b": 5}, True),
        ({"a": 1, "b": 1}, False),
        ({"a": 2, "b": 5}, False),
        ({"a": 2, "b": 1}, False),
    ],
    ids=["both-hold", "second-fails", "first-fails", "neither"],
)
def test_when_with_several_pairs_requires_all_of_them(
    values: dict[str, Any], expected: bool
) -> None:
    assert when(a=1, b__gt=2).evaluate(State(values)) is expected


def test_when_can_constrain_one_key_twice() -> None:
    between = when(x__gte=1, x__lt=10)
    assert between.keys == ["x"]
    assert [between.evaluate(State({"x": v})) for v in (0, 1, 9, 10)] == [False, True, True, False]


@pytest.mark.parametrize(
    "kwargs",
    [{"x__foo": 1}, {"x__equals": 1}, {"x__GT": 1}, {"a__b__c": 1}],
    ids=["foo", "equals", "uppercase", "nested"],
)
def test_when_rejects_an_unknown_suffix(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConditionError, match=r"unknown operator suffix") as info:
        when(**kwargs)
    message = str(info.value)
    assert "__gte" in message
    assert "__notin" in message


def test_when_unknown_suffix_error_names_the_suffix() -> None:
    with pytest.raises(
        ConditionError, match=r"when\(x__foo=\.\.\.\): unknown operator suffix 'foo'"
    ):
        when(x__foo=1)


def test_when_without_pairs_raises() -> None:
    with pytest.raises(ConditionError, match=r"at least one key=value pair"):
        when()


def test_condition_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"at least one"):
        when()


def test_when_accepts_keys_with_leading_underscores() -> None:
    condition = when(_private=1)
    assert condition.keys == ["_private"]
    assert condition.evaluate(State({"_private": 1})) is True


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"x": 1}, "x=1"),
        ({"status": "done"}, "status=done"),
        ({"flag": None}, "flag=None"),
        ({"x__eq": 1}, "x==1"),
        ({"x__ne": 1}, "x!=1"),
        ({"x__gt": 1}, "x>1"),
        ({"x__gte": 1}, "x>=1"),
        ({"x__lt": 1}, "x<1"),
        ({"x__lte": 1}, "x<=1"),
        ({"x__in": [1, 2]}, "x in [1, 2]"),
        ({"x__notin": ("a",)}, "x not in ('a',)"),
        ({"x__contains": "a"}, "x contains 'a'"),
        ({"x__is": None}, "x is None"),
        ({"x__isnot": None}, "x is not None"),
        ({"b__lt": 2, "a": 1}, "a=1, b<2"),
    ],
    ids=[
        "plain",
        "plain-string",
        "plain-none",
        "eq",
        "ne",
        "gt",
        "gte",
        "lt",
        "lte",
        "in",
        "notin",
        "contains",
        "is",
        "isnot",
        "several",
    ],
)
def test_when_name_shows_each_comparison_as_burr_names_it(
    kwargs: dict[str, Any], name: str
) -> None:
    assert when(**kwargs).name == name


def test_when_keys_are_the_state_keys_in_order_without_suffixes() -> None:
    condition = when(b=1, a__gt=0, c__in=[1])
    assert condition.keys == ["b", "a", "c"]
    assert condition.reads == ["b", "a", "c"]


def test_when_with_a_missing_key_raises_state_key_error() -> None:
    with pytest.raises(StateKeyError) as info:
        when(count__lt=10).evaluate(State({"other": 1}))
    assert isinstance(info.value, KeyError)
    assert info.value.key == "count"


def test_condition_when_and_expr_staticmethods_build_the_same_conditions() -> None:
    assert Condition.when(x=1).name == "x=1"
    assert Condition.when(x=1).evaluate(State({"x": 1})) is True
    assert Condition.expr("x > 1").name == "x > 1"
    assert Condition.expr("x > 1").evaluate(State({"x": 2})) is True


# -- expr ------------------------------------------------------------------------------------------


def test_expr_name_is_the_stripped_source() -> None:
    assert expr("  count < 10 and not done \n").name == "count < 10 and not done"


def test_expr_keys_are_the_state_names_it_reads() -> None:
    condition = expr("a < b and len(c) > 0")
    assert condition.keys == ["a", "b", "c"]
    assert condition.reads == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("count < 10", {"count": 3}, True),
        ("count < 10", {"count": 10}, False),
        ("not done", {"done": False}, True),
        ("len(h) > 1", {"h": [1, 2]}, True),
        ("len(h)", {"h": []}, False),
        ("name", {"name": "x"}, True),
    ],
    ids=["lt-true", "lt-false", "not", "len", "falsy-len", "truthy-string"],
)
def test_expr_evaluates_to_a_bool(source: str, values: dict[str, Any], expected: bool) -> None:
    assert expr(source).evaluate(State(values)) is expected


def test_expr_with_a_missing_key_raises_state_key_error() -> None:
    with pytest.raises(StateKeyError) as info:
        expr("count < 10").evaluate(State())
    assert info.value.key == "count"


def test_expr_rejects_forbidden_code_when_built() -> None:
    with pytest.raises(ConditionError):
        expr("__import__('os')")


# -- default ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values", [{}, {"x": 1}, {"done": False}], ids=["empty", "some-key", "false-flag"]
)
def test_default_always_holds(values: dict[str, Any]) -> None:
    assert default.evaluate(State(values)) is True
    assert default.run(State(values)) == {"PROCEED": True}


def test_default_is_named_default_and_reads_nothing() -> None:
    assert default.name == "default"
    assert default.keys == []


# -- Condition and lmda ----------------------------------------------------------------------------


def test_lmda_wraps_a_function_of_the_state() -> None:
    def big(state: State) -> bool:
        return bool(state["n"] > 5)

    condition = Condition.lmda(big, ["n"])
    assert condition.keys == ["n"]
    assert condition.name == "big"
    assert condition.evaluate(State({"n": 6})) is True
    assert condition.evaluate(State({"n": 5})) is False


def test_lmda_with_a_lambda_is_named_after_it() -> None:
    assert Condition.lmda(lambda s: True, []).name == "<lambda>"


def test_lmda_rejects_a_non_callable() -> None:
    with pytest.raises(ConditionError, match=r"takes a function"):
        Condition.lmda("n > 5", ["n"])  # type: ignore[arg-type]


def test_condition_rejects_keys_given_as_a_string() -> None:
    with pytest.raises(ConditionError, match=r"must be a list"):
        Condition("abc", lambda s: True)


def test_condition_uses_an_explicit_name() -> None:
    condition = Condition(["a"], lambda s: True, name="custom")
    assert condition.name == "custom"
    assert repr(condition) == "Condition('custom')"


def test_condition_without_a_name_uses_condition_for_nameless_callables() -> None:
    class Resolver:
        def __call__(self, state: State) -> bool:
            return True

    assert Condition([], Resolver()).name == "condition"


def test_evaluate_coerces_the_result_to_bool() -> None:
    condition = Condition.lmda(lambda s: s["items"], ["items"])
    assert condition.evaluate(State({"items": [1]})) is True
    assert condition.evaluate(State({"items": []})) is False


@pytest.mark.parametrize(
    ("values", "expected"),
    [({"x": 1}, {"PROCEED": True}), ({"x": 2}, {"PROCEED": False})],
    ids=["holds", "fails"],
)
def test_run_returns_proceed_flag(values: dict[str, Any], expected: dict[str, bool]) -> None:
    result = when(x=1).run(State(values))
    assert result == expected
    assert type(result["PROCEED"]) is bool


def test_run_ignores_extra_keyword_arguments() -> None:
    assert when(x=1).run(State({"x": 1}), extra="ignored") == {"PROCEED": True}


def test_resolver_is_the_wrapped_function() -> None:
    def fn(state: State) -> bool:
        return True

    assert Condition.lmda(fn, []).resolver is fn


def test_condition_key_constant_is_proceed() -> None:
    assert Condition.KEY == "PROCEED"


# -- ~ | & -----------------------------------------------------------------------------------------


def _flag(name: str) -> Condition:
    return when(**{name: True})


@pytest.mark.parametrize("a", [True, False], ids=["a-true", "a-false"])
def test_invert_negates(a: bool) -> None:
    assert (~_flag("a")).evaluate(State({"a": a})) is (not a)


@pytest.mark.parametrize(
    ("a", "b"),
    list(itertools.product([True, False], repeat=2)),
    ids=["TT", "TF", "FT", "FF"],
)
def test_or_truth_table(a: bool, b: bool) -> None:
    assert (_flag("a") | _flag("b")).evaluate(State({"a": a, "b": b})) is (a or b)


@pytest.mark.parametrize(
    ("a", "b"),
    list(itertools.product([True, False], repeat=2)),
    ids=["TT", "TF", "FT", "FF"],
)
def test_and_truth_table(a: bool, b: bool) -> None:
    assert (_flag("a") & _flag("b")).evaluate(State({"a": a, "b": b})) is (a and b)


@pytest.mark.parametrize(
    ("a", "b", "c"),
    list(itertools.product([True, False], repeat=3)),
    ids=["".join("T" if v else "F" for v in row) for row in itertools.product([1, 0], repeat=3)],
)
def test_compound_expression_truth_table(a: bool, b: bool, c: bool) -> None:
    condition = ~(_flag("a") | _flag("b")) & _flag("c") | (_flag("a") & ~_flag("c"))
    expected = ((not (a or b)) and c) or (a and not c)
    assert condition.evaluate(State({"a": a, "b": b, "c": c})) is expected


def test_double_invert_is_the_original_truth() -> None:
    condition = ~~_flag("a")
    assert condition.evaluate(State({"a": True})) is True
    assert condition.evaluate(State({"a": False})) is False


def test_or_stops_at_the_first_true_operand() -> None:
    condition = when(a=1) | when(missing=1)
    assert condition.evaluate(State({"a": 1})) is True
    with pytest.raises(StateKeyError):
        condition.evaluate(State({"a": 2}))


def test_and_stops_at_the_first_false_operand() -> None:
    condition = when(a=1) & when(missing=1)
    assert condition.evaluate(State({"a": 2})) is False
    with pytest.raises(StateKeyError):
        condition.evaluate(State({"a": 1}))


def test_combined_keys_are_the_union_in_order() -> None:
    combined = when(a=1, b=2) | (when(b=3) & expr("c > a"))
    assert combined.keys == ["a", "b", "c"]
    assert (~combined).keys == ["a", "b", "c"]


def test_combining_with_default() -> None:
    assert (when(x=1) | default).evaluate(State({"x": 2})) is True
    assert (when(x=1) & default).evaluate(State({"x": 2})) is False
    assert (~default).evaluate(State()) is False


@pytest.mark.parametrize(
    ("condition", "name"),
    [
        (~when(x=1), "~x=1"),
        (~when(x__lt=1), "~x<1"),
        (~when(a=1, b=2), "~a=1, b=2"),
        (~expr("x"), "~x"),
        (~expr("x > 1"), "~x > 1"),
        (~default, "~default"),
        (~~when(x=1), "~~x=1"),
        (when(a=1) | when(b=2), "a=1 | b=2"),
        (when(a=1) & when(b=2), "a=1 & b=2"),
        (when(a=1) | when(b__gt=2), "a=1 | b>2"),
        (expr("a > 1") & default, "(a > 1) & default"),
        ((when(a=1) | when(b=2)) & when(c=3), "(a=1 | b=2) & c=3"),
        (when(a=1) | (when(b=2) & when(c=3)), "a=1 | (b=2 & c=3)"),
        (~(when(a=1) | when(b=2)), "~(a=1 | b=2)"),
        (~when(a=1) & when(b=2), "~a=1 & b=2"),
        (when(a=1, b=2) | when(c=3), "(a=1, b=2) | c=3"),
    ],
    ids=[
        "invert-simple",
        "invert-spaced",
        "invert-several-pairs",
        "invert-expr-name",
        "invert-expr-compare",
        "invert-default",
        "double-invert",
        "or",
        "and",
        "or-spaced-operand",
        "and-with-default",
        "or-inside-and",
        "and-inside-or",
        "invert-or",
        "invert-then-and",
        "or-with-several-pairs",
    ],
)
def test_combined_names_parenthesise_compound_parts(condition: Condition, name: str) -> None:
    assert condition.name == name


def test_combining_with_a_non_condition_raises_type_error() -> None:
    with pytest.raises(TypeError):
        when(a=1) | True  # type: ignore[operator]
    with pytest.raises(TypeError):
        when(a=1) & "b"  # type: ignore[operator]


def test_combining_leaves_the_operands_unchanged() -> None:
    left, right = when(a=1), when(b=2)
    combined = ~(left | right)
    assert combined.name == "~(a=1 | b=2)"
    assert left.name == "a=1"
    assert right.name == "b=2"
    assert left.keys == ["a"]
    assert right.keys == ["b"]
    assert left.evaluate(State({"a": 1})) is True


def _is_big(state: State) -> bool:
    return bool(state["count"] > 100)


@pytest.mark.parametrize(
    "condition",
    [
        when(count__lt=3),
        when(count__in=[1, 2], done=False),
        expr("count < 3 and not done"),
        default,
        ~when(count=2),
        when(count=1) | expr("count > 5"),
        when(count__gte=1) & ~when(done=True),
        Condition.lmda(_is_big, ["count"]),
    ],
    ids=["when", "when-several", "expr", "default", "invert", "or", "and-invert", "lmda"],
)
def test_a_condition_survives_pickling_with_its_name_keys_and_answers(condition):
    """Process pools send graphs by pickle; the built-in conditions close over local functions,
    so they travel as the recipe that rebuilds them."""
    copy = pickle.loads(pickle.dumps(condition))
    assert (copy.name, copy.keys) == (condition.name, condition.keys)
    for count in range(8):
        for done in (False, True):
            state = State({"count": count, "done": done})
            assert copy.evaluate(state) == condition.evaluate(state)


def test_default_stays_the_same_object_after_pickling():
    assert pickle.loads(pickle.dumps(default)) is default
