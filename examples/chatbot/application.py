"""A two-action chatbot: take the user's message, answer it, wait for the next one.

The reply function is a stand-in for a language model, so the example runs offline; replace
``canned_reply`` with a call to your model of choice.

Run it: ``python examples/chatbot/application.py "hello" "what can you do?"``
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from turnout import Application, ApplicationBuilder, State, action

Reply = Callable[[list[dict[str, str]]], str]


def canned_reply(history: list[dict[str, str]]) -> str:
    """A deterministic stand-in for a chat model: echoes the last user message."""
    last = history[-1]["content"]
    turns = sum(1 for message in history if message["role"] == "user")
    return f"(turn {turns}) You said: {last!r}. I am a stand-in model."


@action(reads=[], writes=["chat_history"])
def user_input(state: State, prompt: str) -> State:
    """Append the user's message to the conversation."""
    return state.append(chat_history={"role": "user", "content": prompt})


@action(reads=["chat_history"], writes=["chat_history"])
def respond(state: State, reply: Reply = canned_reply) -> tuple[dict[str, str], State]:
    """Ask the model for an answer and append it to the conversation."""
    answer = reply(state["chat_history"])
    return {"answer": answer}, state.append(chat_history={"role": "assistant", "content": answer})


def application(reply: Reply = canned_reply, app_id: str | None = None) -> Application:
    """The chatbot: ``user_input`` -> ``respond`` -> ``user_input`` -> ..."""
    return (
        ApplicationBuilder()
        .with_actions(user_input, respond.bind(reply=reply))
        .with_transitions(("user_input", "respond"), ("respond", "user_input"))
        .with_state(chat_history=[])
        .with_entrypoint("user_input")
        .with_identifiers(app_id=app_id)
        .build()
    )


def chat(app: Application, prompt: str) -> str:
    """One turn: run from the user's message until the answer is appended."""
    _action, result, _state = app.run(halt_after=["respond"], inputs={"prompt": prompt})
    assert result is not None
    return str(result["answer"])


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("prompts", nargs="*", default=["hello", "how are you?"])
    args = parser.parse_args(argv)
    app = application()
    answers = []
    for prompt in args.prompts:
        answer = chat(app, prompt)
        print(f"user: {prompt}\nbot:  {answer}")
        answers.append(answer)
    return answers


if __name__ == "__main__":
    main()
