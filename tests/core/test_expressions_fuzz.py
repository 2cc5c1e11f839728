"""Property tests for ``expr``: any text, built or evaluated, gives a value or a ConditionError.

Hypothesis generates expressions from a grammar of state keys, literals (big numbers, format
strings), every operator (allowed or not), calls, comprehensions, attribute chains and subscripts,
plus raw and deeply nested text. Each example is bounded in time by the per-example ``deadline``
and in memory by the process's peak resident size: an operation that escaped its limit would
take seconds or gigabytes and fail the example, not pass it. (``tracemalloc`` would measure more
finely but slows a legal million-item ``str()`` twentyfold, past the deadline.)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from turnout.core.condition import expr
from turnout.core.errors import ConditionError, StateKeyError
from turnout.core.expressions import MAX_SOURCE_LENGTH, compile_expression
from turnout.core.state import State

# Far above what the limits let one evaluation build (tens of MB), below what the issue's
# examples took (1 GB and more).
PEAK_GROWTH_BYTES = 512 * 2**20

FUZZ = settings(
    max_examples=300,
    deadline=2_000,  # milliseconds per example: a runaway evaluation fails instead of hanging
    database=None,  # no .hypothesis directory in the checkout
    suppress_health_check=[HealthCheck.too_slow],
)


def _generator() -> Iterator[int]:
    yield 1


def _state() -> State:
    """A fresh state per example: generators and lists are consumed or could be changed."""
    return State(
        {
            "n": 7,
            "big": 2**4_000,
            "f": 1e308,
            "s": "abc",
            "long": "x" * 100_000,
            "fmt": "%s-%d",
            "b": b"%d",
            "h": [3, 1, 2],
            "nested": [[0] * 1_000] * 100,
            "d": {"a": 1, "b": [1, 2]},
            "t": (1, 2),
            "obj": SimpleNamespace(count=3, inner=SimpleNamespace(x=1), gen=_generator()),
            "g": _generator(),
            "flag": True,
            "none": None,
        }
    )


_NAMES = st.sampled_from(
    [
        "n",
        "big",
        "f",
        "s",
        "long",
        "fmt",
        "b",
        "h",
        "nested",
        "d",
        "t",
        "obj",
        "g",
        "flag",
        "none",
        "absent",
        "True",
        "None",
        "__import__",
        "len",
        "x",
    ]
)
_LITERALS = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.sampled_from(
        ["10**9", "999999999", "2**100", "-1", "0", "1e308", "0.5", "-0.0", "1j", "10**4000"]
    ),
    st.sampled_from(
        ["'%0999999999d'", "'%.999999999f'", "'%*d'", "'%(a)s'", "'%'", "'%%'", "'abc'", "''"]
    )
    | st.sampled_from(["'%s%s%s'", "'%99999d'", "'%.500f'", "'9' * 50", "b'%d'", "b'ab'", "'%c'"]),
    st.sampled_from(["True", "False", "None", "[]", "()", "{}", "[0]", "(1,)", "{'a': 1}"]),
)
_ALLOWED_BINARY = ["+", "-", "*", "/", "//", "%", "**"]
_BINARY = st.sampled_from(_ALLOWED_BINARY * 3 + ["<<", ">>", "|", "&", "^", "@"])
_COMPARE = st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in", "not in", "is", "is not"])
_ALLOWED_FUNCTIONS = ["len", "abs", "min", "max", "sum", "all", "any", "round", "sorted", "str"]
_ALLOWED_FUNCTIONS += ["int", "float", "bool"]
_FUNCTIONS = st.sampled_from(_ALLOWED_FUNCTIONS * 3 + ["eval", "getattr", "type", "open"])
_KEYWORDS = st.sampled_from(["", "", "", "reverse=True", "default=0", "start=[]", "base=16"])
_ATTRIBUTES = st.sampled_from(
    [
        "real",
        "imag",
        "count",
        "x",
        "inner",
        "gen",
        "gi_frame",
        "f_globals",
        "f_back",
        "upper",
        "append",
        "__class__",
        "_x",
        "bit_length",
        "numerator",
        "mro",
        "cr_frame",
        "co_code",
    ]
)


def _compound(inner: st.SearchStrategy[str], *, forbidden: bool) -> st.SearchStrategy[str]:
    """Expressions over ``inner``; ``forbidden`` adds constructs that are refused when built."""
    pair = st.tuples(inner, inner)
    allowed = [
        st.builds(lambda a, op, b: f"({a} {op} {b})", inner, _BINARY, inner),
        st.builds(lambda a, op, b: f"({a} {op} {b})", inner, _BINARY, inner),
        st.builds(lambda op, a: f"({op}{a})", st.sampled_from(["-", "+", "not ", "~"]), inner),
        st.builds(lambda a, op, b: f"({a} {op} {b})", inner, _COMPARE, inner),
        st.builds(lambda p, op: f"({p[0]} {op} {p[1]})", pair, st.sampled_from(["and", "or"])),
        st.builds(lambda a, b, c: f"({a} if {b} else {c})", inner, inner, inner),
        st.builds(
            lambda fn, args, kw: f"{fn}({', '.join([*args, kw] if kw else args)})",
            _FUNCTIONS,
            st.lists(inner, min_size=1, max_size=2),
            _KEYWORDS,
        ),
        st.builds(lambda a, b: f"{a}[{b}]", inner, inner),
        st.builds(lambda a, b, c: f"{a}[{b}:{c}]", inner, inner, inner),
        st.builds(lambda a, b: f"{a}[::{b}]", inner, inner),
        st.builds(lambda a, attr: f"{a}.{attr}", inner, _ATTRIBUTES),
        st.builds(lambda p: f"[{p[0]}, {p[1]}]", pair),
        st.builds(lambda a: f"({a},)", inner),
        st.builds(lambda p: f"{{{p[0]}: {p[1]}}}", pair),
    ]
    refused = [
        st.builds(lambda a: f"[x for x in {a}]", inner),
        st.builds(lambda a: f"f'{{{a}}}'", inner),
        st.builds(lambda a: f"(lambda: {a})()", inner),
        st.builds(lambda a: f"sorted({a}, key=len)", inner),
        st.builds(lambda a: f"{a}.upper()", inner),
    ]
    return st.one_of(allowed + refused if forbidden else allowed)


# Operands and counts that make an operation build a lot: what the limits are for.
_GROWING = st.builds(
    lambda a, op, b: f"({a} {op} {b})",
    st.sampled_from(["s", "long", "h", "nested", "fmt", "b", "big", "'%s'", "'%0999999999d'"])
    | st.sampled_from(["[0]", "(1,)", "[[0] * 1000]", "'x' * 1000", "[big]", "'%.99999f'"]),
    st.sampled_from(["*", "%", "+", "**", "*"]),
    st.sampled_from(["10**9", "999999", "1000", "2", "n", "big", "(s,) * 1000", "h", "long"])
    | st.sampled_from(["{'a': long}", "(10**9, 1)", "1e308", "10000", "-1", "nested"]),
)
_LEAVES = st.one_of(_NAMES, _LITERALS, _GROWING)
# Mostly evaluable expressions: these reach the limits of the operations.
EXPRESSIONS = st.recursive(_LEAVES, lambda inner: _compound(inner, forbidden=False), max_leaves=12)
# Growing operations composed with each other: mostly limits and their near misses.
GROWING = st.recursive(
    _GROWING,
    lambda inner: st.one_of(
        st.builds(lambda fn, a: f"{fn}({a})", st.sampled_from(["str", "sorted", "len"]), inner),
        st.builds(lambda a: f"sum({a}, [])", inner),
        st.builds(lambda a, b: f"[{a}, {b}]", inner, inner),
        st.builds(
            lambda a, op, b: f"({a} {op} {b})", inner, st.sampled_from(["+", "*", "%"]), inner
        ),
        st.builds(lambda a, b: f"({a} * {b})", inner, st.sampled_from(["1000", "n", "10**6"])),
    ),
    max_leaves=4,
)
# Anything the grammar can write, refused constructs included.
ANY_EXPRESSION = st.recursive(
    _LEAVES, lambda inner: _compound(inner, forbidden=True), max_leaves=12
)

# Text that strains the parser and the size checks: deep prefixes, long runs, odd characters.
STRAINING = st.one_of(
    ANY_EXPRESSION,
    st.builds(
        lambda prefix, times, atom: prefix * times + atom,
        st.sampled_from(["-", "~", "not ", "(", "[", "x.", "x[0]", "x + ", "2**", "x < "]),
        st.integers(1, MAX_SOURCE_LENGTH // 2 + 10),
        st.sampled_from(["1", "x", ")", "]"]),
    ),
    st.text(alphabet="x1()[]{}+-*/%<>=!.,:'\"\\ \n\t\x00~^|&@#", max_size=300),
    st.text(max_size=100),
)


def _peak_rss() -> int | None:
    """The peak resident size of this process in bytes, or None where it cannot be read."""
    if sys.platform == "win32":
        return None
    import resource  # Unix only

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux counts kilobytes


@pytest.fixture(scope="module")
def memory_peak() -> int | None:
    """The peak before the examples: each example may raise it by PEAK_GROWTH_BYTES at most."""
    return _peak_rss()


def _error_of(run: Callable[[], object]) -> Exception | None:
    """The ConditionError or StateKeyError ``run`` raises, or None; anything else propagates."""
    try:
        run()
    except (ConditionError, StateKeyError) as error:
        return error
    return None


def _outcome(source: str, peak_before: int | None) -> None:
    """Build and evaluate ``source``: a value or a ConditionError naming it, nothing else."""
    built = _error_of(lambda: compile_expression(source))
    if built is not None:
        assert isinstance(built, ConditionError)
        assert str(built).startswith("expr("), str(built)
        event("refused when built")
        return
    compiled, state = compile_expression(source), _state()
    for evaluate in (compiled.evaluator, expr(source).evaluate):
        error = _error_of(lambda: evaluate(state))  # noqa: B023 (called at once)
        if isinstance(error, StateKeyError):  # the one failure that keeps its type: absent key
            assert error.key in compiled.keys
            assert error.key not in state
            event("absent key")
        elif error is not None:
            assert str(error).startswith("expr("), str(error)
            event("over a limit" if "too large" in str(error) else "failed when evaluated")
        else:
            event("evaluated")
    peak = _peak_rss()
    if peak is not None and peak_before is not None:
        assert peak - peak_before < PEAK_GROWTH_BYTES, f"{source!r} raised the peak to {peak:,}"


@FUZZ
@given(source=EXPRESSIONS)
def test_generated_expressions_give_a_value_or_a_condition_error(
    memory_peak: int | None, source: str
) -> None:
    _outcome(source, memory_peak)


@FUZZ
@given(source=STRAINING)
def test_straining_text_gives_a_value_or_a_condition_error(
    memory_peak: int | None, source: str
) -> None:
    _outcome(source, memory_peak)


@FUZZ
@given(source=GROWING)
def test_composed_growing_operations_give_a_value_or_a_condition_error(
    memory_peak: int | None, source: str
) -> None:
    _outcome(source, memory_peak)
