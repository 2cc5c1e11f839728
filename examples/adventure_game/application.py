"""An LLM-driven text adventure: the model reads the player's command and narrates, the map rules.

Each turn is three steps: ``command`` (the player's words join the conversation), ``interpret``
(the model turns the words into a tool call, ``move``/``take``/``use``, which ``world.judge``
checks against the map: an illegal move is refused and changes nothing) and ``narrate`` (the
model tells what happened, streamed token by token). The game halts after ``narrate`` for the
next command; holding the crown wins and ends the run. The position (room, inventory, unlocked
doors) lives in state and is only ever changed by ``world.judge``, never by the model's text.

Offline by default: without ``OPENAI_API_KEY`` the client talks to a local
``turnout.testing.FakeOpenAIServer`` whose scripted model parses commands like "go north",
"take the lamp" or "use key" (and narrates the judge's verdict); with the key set it is the real
API (``OPENAI_MODEL``, default ``gpt-4.1-mini``).

Run it: ``python examples/adventure_game/application.py`` (type commands; ``--walkthrough``
plays a winning game, ``--track`` records it for ``turnout ui``), or the Streamlit page:
``streamlit run examples/adventure_game/application.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import re
import sys
from collections.abc import Callable, Generator, Iterable
from typing import Any

from turnout import Application, ApplicationBuilder, State, action, streaming_action, when
from turnout.core.tracking import LocalTracker
from turnout.integrations.openai import ToolCallError, function_tool
from turnout.testing import FakeRequest, FakeToolCall, openai_client

if __package__:
    from . import world
else:  # run as a script (or by Streamlit): this directory is on sys.path
    import world  # type: ignore[import-not-found,no-redef]

PROJECT = "adventure-game"
TOOLS = {tool.name: tool for tool in map(function_tool, world.VERBS)}
WALKTHROUGH = (
    "take the lamp", "go up", "go north", "take key", "go south", "go east", "use key",
    "go east", "take crown",
)  # fmt: skip
"""A winning game; ``go east`` before ``use key`` is refused (the door is locked)."""

JUDGE_PROMPT = (
    "You are the parser of a text adventure. Turn the player's command into exactly one call "
    "of the tools move, take or use. Call a tool even if the action seems impossible: the game "
    "decides. If the command is none of these, answer in one short sentence without a tool.\n"
    "The player is here: {scene}\nThey carry: {inventory}."
)
NARRATOR_PROMPT = (
    "You narrate a text adventure in the second person, in two short sentences. Tell what "
    "happened exactly as the game decided (never invent a different outcome), then what the "
    "player now sees."
)
Item = dict[str, Any]


def position_of(state: State) -> world.Position:
    """The rules' view of the state."""
    return world.Position(
        room=state["room"],
        inventory=tuple(state["inventory"]),
        unlocked=tuple(state["unlocked"]),
        taken=tuple(state["taken"]),
    )


def _position_state(position: world.Position) -> dict[str, Any]:
    fields = dataclasses.asdict(position)
    return {
        key: list(value) if isinstance(value, tuple) else value for key, value in fields.items()
    }


@action(reads=[], writes=["chat_history", "command"])
def command(state: State, prompt: str) -> State:
    """The player's command joins the conversation."""
    return state.append(chat_history={"role": "user", "content": prompt}).update(command=prompt)


def parse_tool_call(message: Any) -> world.Command | None:
    """The model's proposal as a ``Command``: its first tool call, if it names one of our tools
    with arguments that fit; ``None`` for anything else (text, an unknown tool, bad JSON)."""
    for call in getattr(message, "tool_calls", None) or []:
        tool = TOOLS.get(call.function.name)
        if tool is None:
            return None
        try:
            made = tool.fn(**tool.arguments(call.function.arguments))
        except ToolCallError:
            return None
        return made if isinstance(made, world.Command) else None
    return None


@action(
    reads=["command", "room", "inventory", "unlocked", "taken"],
    writes=["room", "inventory", "unlocked", "taken", "outcome", "won"],
)
def interpret(state: State, client: Any, model: str) -> tuple[dict[str, Any], State]:
    """Ask the model what the command means (a tool call), then let the map rules judge it."""
    position = position_of(state)
    system = JUDGE_PROMPT.format(
        scene=world.describe(position), inventory=", ".join(position.inventory) or "nothing"
    )
    reply = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": system},
            {"role": "user", "content": state["command"]},
        ],
        tools=[tool.chat_schema() for tool in TOOLS.values()],
    )
    proposed = parse_tool_call(reply.choices[0].message)
    verdict = world.judge(position, proposed)
    outcome = {
        "command": state["command"],
        "proposed": dataclasses.asdict(proposed) if proposed is not None else None,
        "allowed": verdict.allowed,
        "message": verdict.message,
    }
    after = state.update(outcome=outcome, won=verdict.position.won)
    return outcome, after.update(**_position_state(verdict.position))


def narration_request(state: State) -> str:
    """What the narrator is told: the verdict and the scene, one fact a line."""
    outcome = state["outcome"]
    position = position_of(state)
    lines = [
        f"Player: {outcome['command']}",
        f"Verdict: {'allowed' if outcome['allowed'] else 'refused'}",
        f"What happened: {outcome['message']}",
        f"What the player sees: {world.describe(position)}",
    ]
    if position.won:
        lines.append("The player holds the crown: they have won. Congratulate them.")
    return "\n".join(lines)


@streaming_action(
    reads=["outcome", "room", "inventory", "unlocked", "taken", "won"], writes=["chat_history"]
)
def narrate(
    state: State, client: Any, model: str
) -> Generator[Item | tuple[Item, State], None, None]:
    """Stream the model's narration of the verdict, then add it to the conversation."""
    stream = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": NARRATOR_PROMPT},
            {"role": "user", "content": narration_request(state)},
        ],
        stream=True,
    )
    tokens: list[str] = []
    with contextlib.closing(stream):
        for chunk in stream:
            token = chunk.choices[0].delta.content if chunk.choices else None
            if token:
                tokens.append(token)
                yield {"delta": token}
    answer = "".join(tokens).strip()
    yield {"answer": answer}, state.append(chat_history={"role": "assistant", "content": answer})


def initial_state() -> dict[str, Any]:
    """A new game: the player in the cellar, empty-handed, told where they are."""
    start = world.Position()
    opening = f"You wake up in the {start.room}. {world.describe(start)}"
    return {
        **_position_state(start),
        "chat_history": [{"role": "assistant", "content": opening}],
        "command": "",
        "outcome": None,
        "won": False,
    }


def application(
    client: Any, model: str, *, tracker: Any = None, app_id: str | None = None
) -> Application:
    """``command`` -> ``interpret`` -> ``narrate`` -> ``command`` ... until the game is won."""
    builder = (
        ApplicationBuilder()
        .with_actions(
            command=command,
            interpret=interpret.bind(client=client, model=model),
            narrate=narrate.bind(client=client, model=model),
        )
        .with_transitions(
            ("command", "interpret"),
            ("interpret", "narrate"),
            ("narrate", "command", when(won=False)),
        )
        .with_state(**initial_state())
        .with_entrypoint("command")
        .with_identifiers(app_id=app_id)
    )
    if tracker is not None:
        builder = builder.with_tracker(tracker)
    return builder.build()


_VERB_WORDS = {
    "move": r"(?:go|walk|move|head|climb|run)",
    "take": r"(?:take|get|grab|pick up)",
    "use": r"(?:use|unlock with|try)",
}
_ARTICLES = re.compile(r"^(?:the|a|an|door|to)\s+|\s+(?:on|with|in)\s+.*$")


def offline_model(request: FakeRequest) -> str | FakeToolCall:
    """The scripted model of the offline game: it parses commands into tool calls (it proposes
    whatever the player asks, the rules decide) and narrates from the narrator's request."""
    if not request.tools:  # the narrator: say what happened, then what the player sees
        facts = dict(
            line.split(": ", 1) for line in request.user_text().splitlines() if ": " in line
        )
        won = " You hold the crown: you have won!" if "have won" in request.user_text() else ""
        return f"{facts.get('What happened', '')} {facts.get('What the player sees', '')}{won}"
    words = request.user_text().strip().lower().rstrip(".!")
    if words in ("north", "south", "east", "west", "up", "down"):
        return FakeToolCall(name="move", arguments={"direction": words})
    for verb, pattern in _VERB_WORDS.items():
        found = re.fullmatch(rf"{pattern}\s+(.+)", words)
        if found:
            target = _ARTICLES.sub("", _ARTICLES.sub("", found.group(1))).strip()
            key = "direction" if verb == "move" else "item"
            return FakeToolCall(name=verb, arguments={key: target})
    return "I do not understand that; try 'go north', 'take the lamp' or 'use key'."


def model_client() -> contextlib.AbstractContextManager[tuple[Any, str]]:
    """``(client, model)``: the real API if ``OPENAI_API_KEY`` is set, else the offline model."""
    return openai_client(offline_model, fake_model="fake-adventure")


def play_turn(app: Application, words: str, on_token: Callable[[str], None]) -> dict[str, Any]:
    """One turn: the command, the model's interpretation judged by the rules, the narration
    (streamed to ``on_token``). Returns the verdict (``outcome`` in state)."""
    if not app.has_next_action():
        raise RuntimeError("the game is over (the crown is won); start a new application")
    _action, container = app.stream_result(halt_after=["narrate"], inputs={"prompt": words})
    for item in container:
        on_token(item["delta"])
    container.get()
    return dict(app.state["outcome"])


def _print(token: str) -> None:
    sys.stdout.write(token)
    sys.stdout.flush()


def _typed_commands() -> Iterable[str]:
    while True:
        try:
            words = input("> ").strip()
        except EOFError:
            return
        if words in ("quit", "exit"):
            return
        if words:
            yield words


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """The terminal game; returns the final state."""
    parser = argparse.ArgumentParser(description="A text adventure judged by map rules.")
    parser.add_argument("commands", nargs="*", help="commands to play (default: type them)")
    parser.add_argument("--walkthrough", action="store_true", help="play a winning game")
    parser.add_argument("--track", action="store_true", help="record the run for turnout ui")
    parser.add_argument("--tracking-dir", help="where --track writes (default: ~/.turnout)")
    args = parser.parse_args(argv)
    scripted = WALKTHROUGH if args.walkthrough else tuple(args.commands)
    words: Iterable[str] = scripted or _typed_commands()
    with contextlib.ExitStack() as stack:
        tracker = None
        if args.track:
            tracker = LocalTracker(PROJECT, storage_dir=args.tracking_dir)
            stack.callback(tracker.close)
        client, model = stack.enter_context(model_client())
        app = application(client, model, tracker=tracker)
        print(app.state["chat_history"][0]["content"])
        for said in words:
            if scripted:
                print(f"> {said}")
            play_turn(app, said, _print)
            print()
            if app.state["won"]:
                print("*** You won! ***")
                break
        if tracker is not None:
            print(f"tracked as {app.uid} in {tracker.project_dir} (see it with: turnout ui)")
        return dict(app.state.get_all())


def page() -> None:
    """The Streamlit page: the story as a chat, and the map state, graph and trace aside."""
    import streamlit as st

    from turnout.integrations.streamlit import views
    from turnout.integrations.streamlit.render import without_remote_images

    st.title("The crown in the vault")
    if "app" not in st.session_state:
        stack = contextlib.ExitStack()  # the model client (and offline server) for this session
        client, model = stack.enter_context(model_client())
        st.session_state.model_stack = stack
        st.session_state.app = application(client, model)
    app: Application = st.session_state.app
    if app.state["won"]:
        for message in app.state["chat_history"]:
            role, text = views.message_parts(message)
            with st.chat_message(role):
                st.markdown(without_remote_images(text))
    else:
        said = views.chat(app, streaming_action="narrate", placeholder="What do you do? (go up)")
        if said is not None and app.state["won"]:
            st.rerun()  # the winning turn: draw the page again, without the command box
    if app.state["won"]:
        st.success("You hold the crown: you won!")
    with st.sidebar:
        st.subheader(f"Room: {app.state['room']}")
        st.caption("Inventory: " + (", ".join(app.state["inventory"]) or "nothing"))
        views.render_graph(app)
        turns = views.history(app)
        with st.expander("State", expanded=True):
            views.render_state(turns[-1] if turns else app)
        with st.expander("Trace"):
            views.render_trace(app)
        if st.button("New game"):
            st.session_state.model_stack.close()
            del st.session_state.app
            st.rerun()


def _in_streamlit() -> bool:
    """Whether a Streamlit script run (``streamlit run`` or ``AppTest``) executes this file."""
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx
    except ImportError:
        return False
    return get_script_run_ctx(suppress_warning=True) is not None


if __name__ == "__main__":
    if _in_streamlit():
        page()
    else:
        main()
