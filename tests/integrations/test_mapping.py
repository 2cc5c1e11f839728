"""The input and output specs every adapter shares (turnout.integrations._mapping)."""

from __future__ import annotations

from typing import Any

import pytest

from turnout import State
from turnout.integrations._mapping import (
    append_state,
    extend_state,
    from_state,
    from_value,
    input_reader,
    output_writer,
    update_state,
)

STATE = State({"question": "why?", "history": ["hi"], "k": 2})


@pytest.mark.parametrize(
    ("spec", "expected", "reads"),
    [
        ("question", "why?", ["question"]),
        (from_state("question"), "why?", ["question"]),
        (from_value(7), 7, []),
        (["question", "k"], {"question": "why?", "k": 2}, ["question", "k"]),
        (
            {"q": "question", "top": from_value(3), "n": from_state("k")},
            {"q": "why?", "top": 3, "n": 2},
            ["question", "k"],
        ),
    ],
    ids=["key", "from_state", "from_value", "keys", "mapping"],
)
def test_input_specs_read_state_and_derive_reads(spec, expected, reads):
    read, derived = input_reader(spec, reads=None, owner="act")
    assert read(STATE) == expected
    assert derived == reads


def test_a_function_input_needs_declared_reads():
    with pytest.raises(TypeError, match=r"act: input is a function.*reads=\[\.\.\.\]"):
        input_reader(lambda state: state["k"], reads=None, owner="act")
    read, reads = input_reader(lambda state: state["k"] * 2, reads=["k"], owner="act")
    assert (read(STATE), reads) == (4, ["k"])


def test_declared_reads_add_to_derived_ones_without_duplicates():
    _, reads = input_reader("question", reads=["question", "history"], owner="act")
    assert reads == ["question", "history"]


@pytest.mark.parametrize(
    "spec", [42, {"q": 42}, [1, 2]], ids=["number", "mapping-of-number", "list-of-numbers"]
)
def test_a_bad_input_spec_names_the_action_and_the_fix(spec):
    with pytest.raises(TypeError, match=r"^act: .*(state key|from_value)"):
        input_reader(spec, reads=None, owner="act")


@pytest.mark.parametrize(
    ("spec", "output", "key", "value"),
    [
        ("answer", "yes", "answer", "yes"),
        (update_state("answer"), "yes", "answer", "yes"),
        (append_state("history"), "yes", "history", ["hi", "yes"]),
        (extend_state("history"), ("a", "b"), "history", ["hi", "a", "b"]),
    ],
    ids=["key", "update", "append", "extend"],
)
def test_whole_output_targets(spec, output, key, value):
    write, writes = output_writer(spec, writes=None, owner="act")
    assert write(output, STATE)[key] == value
    assert writes == [key]


def test_a_mapping_output_spreads_fields_of_a_dict_or_an_object():
    write, writes = output_writer(
        {"text": "answer", "docs": append_state("history")}, writes=None, owner="act"
    )
    assert writes == ["answer", "history"]
    state = write({"text": "t", "docs": "d", "ignored": 1}, STATE)
    assert (state["answer"], state["history"]) == ("t", ["hi", "d"])

    class Response:
        text = "from attr"
        docs = "doc"

    assert write(Response(), STATE)["answer"] == "from attr"


def test_a_missing_output_field_names_it_and_what_is_there():
    write, _ = output_writer({"text": "answer"}, writes=None, owner="act")
    with pytest.raises(KeyError, match=r"act: the output has no field 'text' \(it has \['x'\]\)"):
        write({"x": 1}, STATE)
    with pytest.raises(KeyError, match=r"act: the output \(int\) has no field 'text'"):
        write(3, STATE)


def test_a_function_output_needs_declared_writes():
    def put(output: Any, state: State) -> State:
        return state.update(answer=output.upper())

    with pytest.raises(TypeError, match=r"act: output is a function.*writes=\[\.\.\.\]"):
        output_writer(put, writes=None, owner="act")
    write, writes = output_writer(put, writes=["answer"], owner="act")
    assert (write("yes", STATE)["answer"], writes) == ("YES", ["answer"])


def test_a_bad_output_spec_names_the_action_and_the_fix():
    with pytest.raises(TypeError, match=r"^act: output 42 is not understood"):
        output_writer(42, writes=None, owner="act")
    with pytest.raises(TypeError, match=r"^act: output\['a'\] is 3"):
        output_writer({"a": 3}, writes=None, owner="act")


@pytest.mark.parametrize("option", ["reads", "writes"])
def test_a_string_for_a_list_of_keys_is_refused_as_action_refuses_it(option):
    from turnout.core.errors import ActionDefinitionError

    make = input_reader if option == "reads" else output_writer
    with pytest.raises(ActionDefinitionError, match=f"write {option}=\\['ab'\\]"):
        make(lambda *_: None, **{option: "ab"}, owner="act")  # type: ignore[operator]


@pytest.mark.parametrize("output", ["text", {"a": 1}, 3], ids=["str", "dict", "int"])
def test_extend_state_refuses_an_output_that_is_not_a_list_of_items(output):
    write, _ = output_writer(extend_state("docs"), writes=None, owner="act")
    with pytest.raises(TypeError, match=r"act: extend_state\('docs'\) needs a list"):
        write(output, State({"docs": []}))


def test_from_state_missing_drop_leaves_the_name_out_while_the_key_is_absent():
    read, reads = input_reader(
        {"q": "question", "top": from_state("top_k", missing="drop")}, reads=None, owner="act"
    )
    assert reads == ["question", "top_k"]
    assert read(STATE) == {"q": "why?"}
    assert read(STATE.update(top_k=4)) == {"q": "why?", "top": 4}


def test_from_state_missing_drop_needs_a_mapping_input():
    with pytest.raises(TypeError, match="only applies to a name of a mapping input"):
        input_reader(from_state("k", missing="drop"), reads=None, owner="act")
    with pytest.raises(ValueError, match="missing must be 'error' or 'drop'"):
        from_state("k", missing="skip")  # type: ignore[arg-type]
