"""A Streamlit chatbot built from ``turnout.integrations.streamlit.views``.

``respond`` is a streaming action over a stand-in model (the words of a canned reply, so the app
runs offline and always streams the same tokens). The page is the ``chat`` view; the sidebar
shows the graph with the next action, the state explorer (the state after the last turn, diffed
against the one before) and the trace of the turns.

Run it: ``streamlit run examples/streamlit_chatbot/application.py``. Run with plain ``python``
it plays one turn in the terminal and prints that hint.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from typing import Any

from turnout import Application, ApplicationBuilder, State, action, streaming_action

Message = dict[str, str]
Item = dict[str, Any]


def canned_tokens(history: list[Message]) -> Iterator[str]:
    """A deterministic stand-in for a streaming chat model: the words of a canned reply (each
    with its trailing space), which echoes the last user message."""
    turns = sum(1 for message in history if message["role"] == "user")
    reply = f"(turn {turns}) You said {history[-1]['content']!r}. I stream one word at a time."
    yield from re.findall(r"\S+\s*", reply)


@action(reads=[], writes=["chat_history"])
def user_input(state: State, prompt: str) -> State:
    """Append the user's message to the conversation."""
    return state.append(chat_history={"role": "user", "content": prompt})


@streaming_action(reads=["chat_history"], writes=["chat_history"])
def respond(state: State) -> Generator[Item | tuple[Item, State], None, None]:
    """Stream the stand-in model's answer, then append it to the conversation."""
    tokens: list[str] = []
    for token in canned_tokens(state["chat_history"]):
        tokens.append(token)
        yield {"delta": token}
    answer = "".join(tokens).strip()
    yield {"answer": answer}, state.append(chat_history={"role": "assistant", "content": answer})


def application(app_id: str | None = None) -> Application:
    """The chatbot: ``user_input`` -> ``respond`` -> ``user_input`` -> ..."""
    return (
        ApplicationBuilder()
        .with_actions(user_input=user_input, respond=respond)
        .with_transitions(("user_input", "respond"), ("respond", "user_input"))
        .with_state(chat_history=[])
        .with_entrypoint("user_input")
        .with_identifiers(app_id=app_id)
        .build()
    )


def page() -> None:
    """The Streamlit page: the chat, and the graph, state and trace in the sidebar."""
    import streamlit as st

    from turnout.integrations.streamlit import views

    st.title("turnout chatbot")
    if "app" not in st.session_state:
        st.session_state.app = application()
    app: Application = st.session_state.app
    views.chat(app, streaming_action="respond")  # first, so the sidebar shows the new turn
    with st.sidebar:
        st.subheader("Graph")
        views.render_graph(app)
        turns = views.history(app)
        with st.expander("State", expanded=True):
            views.render_state(turns[-1] if turns else app)
        with st.expander("Trace"):
            views.render_trace(app)
        if st.button("New conversation"):
            del st.session_state.app
            st.rerun()


def _in_streamlit() -> bool:
    """Whether a Streamlit script run (``streamlit run`` or ``AppTest``) executes this file."""
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx
    except ImportError:
        return False
    return get_script_run_ctx(suppress_warning=True) is not None


def main() -> str:
    """Outside Streamlit: play one turn in the terminal and say how to open the page."""
    app = application()
    _action, container = app.stream_result(halt_after=["respond"], inputs={"prompt": "hello"})
    print("user: hello\nbot:  ", end="")
    for item in container:
        print(item["delta"], end="", flush=True)
    result, _state = container.get()
    print("\nThis is a Streamlit app: streamlit run examples/streamlit_chatbot/application.py")
    return str(result["answer"]) if result else ""


# Streamlit runs this file as ``__main__`` on every rerun; importing it runs nothing.
if __name__ == "__main__":
    if _in_streamlit():
        page()
    else:
        main()
