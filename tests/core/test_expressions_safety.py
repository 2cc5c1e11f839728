"""Tests for what keeps ``expr`` safe besides its size limits: no eval, attribute chains that
stop at code, and every failure raised as a ConditionError naming the expression.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import types
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, NoReturn

import pytest

import turnout.core._expr_ops as expr_ops
import turnout.core.expressions as expressions
from tests.core.expr_checks import evaluate, refusal
from turnout import ApplicationBuilder, action
from turnout.core.condition import expr
from turnout.core.errors import ConditionError, StateKeyError
from turnout.core.state import State

# -- attribute chains ------------------------------------------------------------------------------


def _generator() -> Iterator[int]:
    yield 1


@pytest.mark.parametrize(
    "source",
    [
        "g.gi_frame.f_globals",
        "g.gi_frame",
        "g.gi_code",
        "obj.frame.f_globals",
        "obj.frame.f_back",
        "obj.frame.f_locals",
        "obj.frame.f_builtins",
        "obj.code.co_consts",
        "c.cr_frame",
        "a.ag_frame",
        "tb.tb_frame",
        "fn.func_globals",
        "x.__globals__",
        "x._private",
    ],
)
def test_attributes_of_frames_code_and_generators_are_refused_when_built(source: str) -> None:
    with pytest.raises(ConditionError, match=r"attributes (of frames|starting with '_')"):
        expr(source)


class _Holder:
    """A state object with a method, a property and a plain attribute."""

    def __init__(self) -> None:
        self.count = 3
        self.gen = _generator()
        self.fn = _generator
        self.module = types
        self.cls = int

    def method(self) -> int:
        return 1

    @property
    def double(self) -> int:
        return self.count * 2


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("obj.gen", "generator"),
        ("obj.fn", "function"),
        ("obj.method", "method"),
        ("obj.module", "module"),
        ("obj.module.sys", "module"),
        ("s.upper", "builtin_function_or_method"),
        ("obj.cls.mro", "method_descriptor|builtin_function_or_method"),
        ("obj.fn.closure", "function"),
    ],
    ids=[
        "generator",
        "function",
        "method",
        "module",
        "through-a-module",
        "str-method",
        "class-method",
        "through-a-function",
    ],
)
def test_an_attribute_chain_stops_at_code_functions_and_modules(source: str, kind: str) -> None:
    """Reading ``obj.gen`` would hand on a generator, whose frame leads to a module's globals."""
    message = refusal(source, obj=_Holder(), s="text")
    assert "not data" in message or "attributes of data only" in message
    assert any(k in message for k in kind.split("|")), message
    assert message.endswith(
        "Store the data the condition needs in the state, or write the check as "
        "Condition.lmda(fn, keys)."
    )


def test_data_attributes_of_state_objects_are_read() -> None:
    holder = _Holder()
    assert evaluate("obj.count + obj.double", obj=holder) == 9
    assert evaluate("obj.cls", obj=holder) is int
    assert evaluate("p.x < p.y", p=SimpleNamespace(x=1, y=2)) is True
    assert evaluate("(3 + 4j).imag + n.real", n=2) == 6.0


# -- every failure is a ConditionError naming the expression ---------------------------------------


class _Exploding:
    """A state value whose operations raise the error it is given."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __add__(self, other: Any) -> NoReturn:
        raise self.error

    def __bool__(self) -> NoReturn:
        raise self.error


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("source", "values", "cause"),
    [
        ("1 / 0", {}, ZeroDivisionError),
        ("n % 0", {"n": 1}, ZeroDivisionError),
        ("int(f * 10)", {"f": 1e308}, OverflowError),
        ("2.0 ** 5000", {}, OverflowError),
        ("int('zz')", {}, ValueError),
        ("max([])", {}, ValueError),
        ("len(n)", {"n": 1}, TypeError),
        ("sorted([1, 'a'])", {}, TypeError),
        ("'%d' % 'a'", {}, TypeError),
        ("h[5]", {"h": []}, IndexError),
        ("h[10 ** 100]", {"h": []}, IndexError),
        ("d['absent']", {"d": {}}, KeyError),
        ("p.absent", {"p": SimpleNamespace()}, AttributeError),
        ("a == b", {"a": _nested(100_000), "b": _nested(100_000)}, RecursionError),
        ("x + 1", {"x": _Exploding(MemoryError())}, MemoryError),
        ("x + 1", {"x": _Exploding(OverflowError("boom"))}, OverflowError),
    ],
    ids=[
        "division-by-zero",
        "modulo-by-zero",
        "float-to-int-overflow",
        "float-power-overflow",
        "bad-int-literal",
        "empty-max",
        "len-of-int",
        "unorderable",
        "bad-format-argument",
        "index",
        "index-too-large",
        "missing-subscript-key",
        "missing-attribute",
        "recursion",
        "memory",
        "state-object-overflow",
    ],
)
def test_every_failure_is_a_condition_error_naming_the_expression(
    source: str, values: dict[str, Any], cause: type[BaseException]
) -> None:
    with pytest.raises(ConditionError) as info:
        expr(source).evaluate(State(values))
    message = str(info.value)
    assert message.startswith(f"expr({source!r}) failed: {cause.__name__}"), message
    assert "Condition.lmda(fn, keys)" in message
    assert isinstance(info.value.__cause__, cause)


def test_a_value_whose_truth_cannot_be_decided_is_a_condition_error() -> None:
    with pytest.raises(ConditionError, match=r"^expr\('x'\) failed: ValueError: ambiguous"):
        expr("x").evaluate(State({"x": _Exploding(ValueError("ambiguous"))}))


def test_a_state_key_the_state_lacks_is_still_a_state_key_error() -> None:
    """The one failure that keeps its type: a running application reports it as
    ConditionKeyError, naming the transition."""
    with pytest.raises(StateKeyError) as info:
        expr("d['k'] if flag else absent").evaluate(State({"d": {}, "flag": False}))
    assert info.value.key == "absent"


def test_a_failing_condition_stops_the_run_with_the_condition_error() -> None:
    @action(reads=[], writes=["d"])
    def start(state: State) -> State:
        return state.update(d={})

    @action(reads=[], writes=[])
    def end(state: State) -> State:
        return state

    app = (
        ApplicationBuilder()
        .with_actions(start, end)
        .with_transitions(("start", "end", expr("d['absent'] > 1")))
        .with_entrypoint("start")
        .build()
    )
    app.step()  # runs start; the transition out of it is chosen on the next step
    with pytest.raises(ConditionError, match=r"expr\(\"d\['absent'\] > 1\"\) failed: KeyError"):
        app.step()


# -- no eval, exec or compile ----------------------------------------------------------------------

_CODE_RUNNERS = {"eval", "exec", "compile", "__import__"}


def _is_regex_compile(node: ast.Attribute) -> bool:
    """``re.compile`` compiles a pattern, not code."""
    return isinstance(node.value, ast.Name) and node.value.id == "re" and node.attr == "compile"


@pytest.mark.parametrize("module", [expressions, expr_ops], ids=["compiler", "operations"])
def test_the_evaluator_source_never_calls_or_names_eval_exec_or_compile(
    module: types.ModuleType,
) -> None:
    tree = ast.parse(inspect.getsource(module))
    offending = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in _CODE_RUNNERS:
            offending.append(f"name {node.id} on line {node.lineno}")
        if (
            isinstance(node, ast.Attribute)
            and node.attr in _CODE_RUNNERS
            and not _is_regex_compile(node)
        ):
            offending.append(f"attribute .{node.attr} on line {node.lineno}")
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [alias.name for alias in node.names]
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            offending.extend(
                f"import of {module} on line {node.lineno}"
                for module in modules
                if module.split(".")[0] in {"builtins", "importlib", "code", "codeop", "runpy"}
            )
    assert offending == []
    # the walk really saw the module: its entry point and its ast.parse call are there
    names = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    assert "compile_expression" in names or "multiply" in names


def test_building_and_evaluating_never_calls_eval_or_exec(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError("eval/exec must not be used")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    condition = expr("len(h) > 1 and h[-1]['ok'] and (n ** 2 if n else 0) >= 4")
    state = State({"h": [{}, {"ok": True}], "n": 2})
    assert condition.evaluate(state) is True
