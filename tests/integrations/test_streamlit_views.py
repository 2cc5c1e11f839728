"""The Streamlit building blocks (``turnout.integrations.streamlit.views``) through
``streamlit.testing``, each driving a real ``Application``, and the example chatbot page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("streamlit")

from streamlit.testing.v1 import AppTest

from examples.streamlit_chatbot import application as chatbot
from turnout.core.visualize import HIGHLIGHT_FILL

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "streamlit_chatbot" / "application.py"


def counter_page(show: str = "all", max_steps: int = 100) -> None:
    """A page over a counter: ``increment`` three times, then ``done``. Run by AppTest as a
    script, so it imports what it uses."""
    import streamlit as st

    from turnout import ApplicationBuilder, State, action, expr
    from turnout.integrations.streamlit import views

    @action(reads=["count"], writes=["count"])
    def increment(state: State) -> State:
        return state.update(count=state["count"] + 1)

    @action(reads=["count"], writes=["message"])
    def done(state: State) -> State:
        return state.update(message=f"counted to {state['count']}")

    if "app" not in st.session_state:
        st.session_state.app = (
            ApplicationBuilder()
            .with_actions(increment=increment, done=done)
            .with_transitions(
                ("increment", "increment", expr("count < 3")),
                ("increment", "done"),
            )
            .with_state(count=0)
            .with_entrypoint("increment")
            .build()
        )
    app = st.session_state.app
    selected = views.step_controls(app, key="counter", halt_after=["done"], max_steps=max_steps)
    if show in ("all", "graph"):
        views.render_graph(app)
    if show in ("all", "state"):
        views.render_state(selected if selected is not None else app)
    if show in ("all", "trace"):
        views.render_trace(app)


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def _page(show: str = "all") -> AppTest:
    return _run(AppTest.from_function(counter_page, args=(show,), default_timeout=30))


def _dot(at: AppTest) -> str:
    (chart,) = at.get("graphviz_chart")
    return str(chart.proto.spec)


def _node(dot: str, name: str) -> str:
    match = re.search(rf'^\s*"{name}"(.*);$', dot, re.MULTILINE)
    assert match, dot
    return match.group(1)


def _button(at: AppTest, label: str) -> None:
    (button,) = [b for b in at.button if b.label == label]
    button.click()
    _run(at)


def _diff_html(at: AppTest) -> str:
    return "".join(m.value for m in at.markdown if "turnout-diff" in m.value)


def test_graph_highlights_the_next_action() -> None:
    at = _page("graph")
    dot = _dot(at)
    assert HIGHLIGHT_FILL in _node(dot, "increment")
    assert HIGHLIGHT_FILL not in _node(dot, "done")
    assert "Next action: **increment**" in [c.value for c in at.caption]

    for _ in range(3):
        _button(at, "Step")
    dot = _dot(at)
    assert HIGHLIGHT_FILL in _node(dot, "done")
    assert HIGHLIGHT_FILL not in _node(dot, "increment")


def test_step_button_advances_the_app_and_the_state_shows_its_diff() -> None:
    at = _page("state")
    assert at.session_state["app"].sequence_id is None
    assert not _diff_html(at)  # nothing to diff against before a step
    assert at.json[0].value == '{"count": 0}'

    _button(at, "Step")
    app = at.session_state["app"]
    assert app.sequence_id == 0
    assert app.state["count"] == 1
    diff = _diff_html(at)
    assert "~ changed" in diff
    assert "<code>count</code>" in diff
    assert "<td><code>0</code></td><td><code>1</code></td>" in diff
    assert not at.slider  # one step: nothing to slide over yet

    _button(at, "Step")
    assert at.session_state["app"].state["count"] == 2
    assert "<td><code>1</code></td><td><code>2</code></td>" in _diff_html(at)
    (slider,) = at.slider
    assert slider.value == 1

    slider.set_value(0)  # back to the first step: its state and diff
    _run(at)
    assert "<td><code>0</code></td><td><code>1</code></td>" in _diff_html(at)
    assert at.session_state["app"].state["count"] == 2  # exploring does not move the app


def test_run_to_halt_then_reset() -> None:
    at = _page("trace")
    _button(at, "Run to halt")
    app = at.session_state["app"]
    assert app.state["message"] == "counted to 3"
    assert not app.has_next_action()
    assert [b.disabled for b in at.button if b.label in ("Step", "Run to halt")] == [True, True]
    rows = at.dataframe[0].value
    assert list(rows["action"]) == ["increment", "increment", "increment", "done"]
    assert list(rows["sequence_id"]) == [0, 1, 2, 3]
    assert rows["delta"][0] == "~count: 0 → 1"
    assert rows["delta"][3] == '+message="counted to 3"'
    assert at.slider[0].value == 3

    _button(at, "Reset")
    app = at.session_state["app"]
    assert dict(app.state.items()) == {"count": 0}
    assert app.get_next_action().name == "increment"
    assert not at.dataframe
    assert not at.slider
    _button(at, "Step")
    assert at.session_state["app"].state["count"] == 1


def test_run_to_halt_stops_at_max_steps_and_says_so() -> None:
    at = _run(AppTest.from_function(counter_page, args=("trace", 2), default_timeout=30))
    _button(at, "Run to halt")
    assert at.session_state["app"].state["count"] == 2
    assert [w.value for w in at.warning] == ["Stopped after 2 steps (max_steps)."]
    assert len(at.dataframe[0].value) == 2
    _button(at, "Run to halt")  # continues from where it stopped
    assert at.session_state["app"].state["message"] == "counted to 3"
    assert not at.warning


def test_a_failing_step_is_shown_not_raised() -> None:
    def page() -> None:
        import streamlit as st

        from turnout import ApplicationBuilder, State, action
        from turnout.integrations.streamlit import views

        @action(reads=[], writes=[])
        def boom(state: State) -> State:
            raise ValueError("boom")

        if "app" not in st.session_state:
            st.session_state.app = (
                ApplicationBuilder().with_actions(boom=boom).with_entrypoint("boom").build()
            )
        views.step_controls(st.session_state.app)

    at = _run(AppTest.from_function(page, default_timeout=30))
    next(b for b in at.button if b.label == "Step").click().run()
    assert "boom" in at.exception[0].message


def chat_page() -> None:
    import streamlit as st

    from examples.streamlit_chatbot.application import application
    from turnout.integrations.streamlit import views

    if "app" not in st.session_state:
        st.session_state.app = application()
    st.session_state.answer = views.chat(st.session_state.app, streaming_action="respond")


def _messages(at: AppTest) -> list[tuple[str, str]]:
    return [(m.name, "".join(md.value for md in m.markdown)) for m in at.chat_message]


def test_chat_streams_the_answer_and_appends_it_to_the_state() -> None:
    at = _run(AppTest.from_function(chat_page, default_timeout=30))
    assert not at.chat_message
    at.chat_input[0].set_value("hello")
    _run(at)
    answer = "(turn 1) You said 'hello'. I stream one word at a time."
    assert _messages(at) == [("user", "hello"), ("assistant", answer)]
    assert at.session_state["answer"] == answer
    app = at.session_state["app"]
    assert app.state["chat_history"] == [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": answer},
    ]
    assert app.get_next_action().name == "user_input"

    at.chat_input[0].set_value("again")
    _run(at)  # the first turn now comes from the state, the second streams
    second = "(turn 2) You said 'again'. I stream one word at a time."
    assert _messages(at) == [
        ("user", "hello"),
        ("assistant", answer),
        ("user", "again"),
        ("assistant", second),
    ]
    assert len(at.session_state["app"].state["chat_history"]) == 4

    _run(at)  # a rerun without input shows the conversation from the state and runs nothing
    assert len(_messages(at)) == 4
    assert at.session_state["answer"] is None
    assert at.session_state["app"].sequence_id == 3


def test_the_example_page_shows_chat_graph_state_and_trace() -> None:
    at = _run(AppTest.from_file(str(EXAMPLE), default_timeout=30))
    assert HIGHLIGHT_FILL in _node(_dot(at), "user_input")
    at.chat_input[0].set_value("hi")
    _run(at)
    assert _messages(at)[-1] == (
        "assistant",
        "(turn 1) You said 'hi'. I stream one word at a time.",
    )
    assert HIGHLIGHT_FILL in _node(_dot(at), "user_input")  # the sidebar shows the new turn
    assert "turnout-diff" in "".join(m.value for m in at.sidebar.markdown)
    (trace,) = at.sidebar.dataframe
    assert list(trace.value["action"]) == ["respond"]
    assert trace.value["delta"][0].startswith('chat_history += [{"role": "user", "content": "hi"}')

    next(b for b in at.sidebar.button if b.label == "New conversation").click()
    _run(at)
    assert not at.chat_message


def test_the_example_app_streams_offline() -> None:
    app = chatbot.application()
    _action, container = app.stream_result(halt_after=["respond"], inputs={"prompt": "x"})
    tokens = [item["delta"] for item in container]
    result, state = container.get()
    assert result is not None
    assert "".join(tokens).strip() == result["answer"]
    assert state["chat_history"][-1] == {"role": "assistant", "content": result["answer"]}


IMAGE = "![x](http://127.0.0.1:9/x.png)"
HTML_IMAGE = "<img src='http://127.0.0.1:9/y.png'>"


def image_chat_page(allow_remote_images: bool) -> None:
    """A chat whose model answers with a markdown image split over two tokens and an HTML one."""
    from collections.abc import Iterator
    from typing import Any

    import streamlit as st

    from turnout import ApplicationBuilder, State, action, streaming_action
    from turnout.integrations.streamlit import views

    @action(reads=[], writes=["chat_history"])
    def ask(state: State, prompt: str) -> State:
        return state.append(chat_history={"role": "user", "content": prompt})

    @streaming_action(reads=["chat_history"], writes=["chat_history"])
    def answer(state: State) -> Iterator[Any]:
        tokens = [
            "Look: !",
            "[x](http://127.0.0.1:9/x.png) and ",
            "<img src='http://127.0.0.1:9/y.png'>",
        ]
        for token in tokens:
            yield {"delta": token}
        text = "".join(tokens)
        yield {"answer": text}, state.append(chat_history={"role": "assistant", "content": text})

    if "app" not in st.session_state:
        st.session_state.app = (
            ApplicationBuilder()
            .with_actions(ask=ask, answer=answer)
            .with_transitions(("ask", "answer"), ("answer", "ask"))
            .with_state(chat_history=[])
            .with_entrypoint("ask")
            .build()
        )
    views.chat(
        st.session_state.app, streaming_action="answer", allow_remote_images=allow_remote_images
    )


def test_chat_shows_images_in_model_output_as_text_unless_allowed() -> None:
    at = _run(AppTest.from_function(image_chat_page, args=(False,), default_timeout=30))
    at.chat_input[0].set_value(f"show me {IMAGE}")
    _run(at)
    streamed = _messages(at)
    _run(at)  # the conversation again, now from the state
    for messages in (streamed, _messages(at)):
        assert [name for name, _ in messages] == ["user", "assistant"]
        for _name, text in messages:
            assert "![" not in text  # no markdown image left to load
            assert "<img" not in text  # nor an HTML one
        assert messages[0][1] == "show me !\\[x](http://127.0.0.1:9/x.png)"
        assert messages[1][1] == (
            "Look: !\\[x](http://127.0.0.1:9/x.png) and &lt;img src='http://127.0.0.1:9/y.png'>"
        )
    assert at.session_state["app"].state["chat_history"][1]["content"].startswith("Look: ![x]")


def test_chat_renders_images_when_the_app_allows_them() -> None:
    at = _run(AppTest.from_function(image_chat_page, args=(True,), default_timeout=30))
    at.chat_input[0].set_value(f"show me {IMAGE}")
    _run(at)
    assert _messages(at) == [
        ("user", f"show me {IMAGE}"),
        ("assistant", f"Look: {IMAGE} and {HTML_IMAGE}"),
    ]


def test_without_remote_images_leaves_code_alone() -> None:
    from turnout.integrations.streamlit.render import without_remote_images

    text = f"`{IMAGE}`\n```\n{HTML_IMAGE}\n```\n![ref][r]"
    assert without_remote_images(text) == f"`{IMAGE}`\n```\n{HTML_IMAGE}\n```\n!\\[ref][r]"


def typed_chat_page(kind: str) -> None:
    """A chat whose actions write the message type an adapter writes: LangChain messages,
    LlamaIndex ``ChatMessage``s, LangChain's ``messages_to_dict`` form or plain dicts."""
    from collections.abc import Iterator
    from typing import Any

    import streamlit as st

    from turnout import ApplicationBuilder, State, action, streaming_action
    from turnout.integrations.streamlit import views

    def make(role: str, text: str) -> Any:
        if kind == "langchain":
            from langchain_core.messages import AIMessage, HumanMessage

            return HumanMessage(text) if role == "user" else AIMessage(content=[text])
        if kind == "langchain_dict":
            from langchain_core.messages import AIMessage, HumanMessage, messages_to_dict

            msg = HumanMessage(text) if role == "user" else AIMessage(text)
            return messages_to_dict([msg])[0]
        if kind == "llamaindex":
            from llama_index.core.llms import ChatMessage

            return ChatMessage(role=role, content=text)
        return {"role": role, "content": text}

    @action(reads=[], writes=["chat_history"])
    def ask(state: State, prompt: str) -> State:
        return state.append(chat_history=make("user", prompt))

    @streaming_action(reads=["chat_history"], writes=["chat_history"])
    def answer(state: State) -> Iterator[Any]:
        text = f"answer {len(state['chat_history']) // 2 + 1}"
        yield {"delta": text}
        yield {"answer": text}, state.append(chat_history=make("assistant", text))

    if "app" not in st.session_state:
        st.session_state.app = (
            ApplicationBuilder()
            .with_actions(ask=ask, answer=answer)
            .with_transitions(("ask", "answer"), ("answer", "ask"))
            .with_state(chat_history=[])
            .with_entrypoint("ask")
            .build()
        )
    views.chat(st.session_state.app, streaming_action="answer")


@pytest.mark.parametrize("kind", ["langchain", "langchain_dict", "llamaindex", "dict"])
def test_chat_renders_every_adapters_message_type_on_the_next_turn(kind: str) -> None:
    pytest.importorskip("langchain_core")
    pytest.importorskip("llama_index.core")
    at = _run(AppTest.from_function(typed_chat_page, args=(kind,), default_timeout=30))
    at.chat_input[0].set_value("hello")
    _run(at)
    at.chat_input[0].set_value("again")
    _run(at)  # the first turn is drawn from the state: the adapter's message objects
    assert _messages(at) == [
        ("user", "hello"),
        ("assistant", "answer 1"),
        ("user", "again"),
        ("assistant", "answer 2"),
    ]


def test_message_parts_reads_each_shape() -> None:
    from langchain_core.messages import AIMessage, SystemMessage, ToolMessage
    from llama_index.core.llms import ChatMessage

    from turnout.integrations.streamlit.views import message_parts

    assert message_parts(AIMessage(content=[{"type": "text", "text": "hi"}, " there"])) == (
        "assistant",
        "hi there",
    )
    assert message_parts(SystemMessage("rules")) == ("system", "rules")
    assert message_parts(ToolMessage("42", tool_call_id="c1")) == ("tool", "42")
    assert message_parts(ChatMessage(role="assistant", content=None)) == ("assistant", "")
    assert message_parts({"role": "user", "content": None}) == ("user", "")
