"""Building blocks for your own Streamlit app, over a live ``Application`` kept in
``st.session_state``.

- ``render_graph(app)``: the graph, the next action highlighted.
- ``render_state(app)``: the state, with a colour-coded diff against a previous state.
- ``step_controls(app)``: Step / Run to halt / Reset buttons and a slider over the recorded steps.
- ``render_trace(app)``: the recorded steps as a table with their state deltas.
- ``chat(app, streaming_action=...)``: a chat view streaming a streaming action's tokens.

The steps these views drive are recorded per application (by ``app.uid``) in session state;
``history(app)`` returns them. Streamlit reruns the whole script on every interaction, so build
the application once, e.g. ``if "app" not in st.session_state: st.session_state.app = build()``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import streamlit as st

from turnout.core.action import bound_name
from turnout.core.application import Application
from turnout.core.trackview import StateDiff, diff_states
from turnout.integrations._artifact_refs import compact
from turnout.integrations.streamlit.render import (
    diff_html,
    plain,
    truncate,
    without_remote_images,
)

__all__ = [
    "Record",
    "chat",
    "history",
    "message_parts",
    "render_graph",
    "render_state",
    "render_trace",
    "step_controls",
]

_HISTORIES = "_turnout_histories"  # session-state key: {app.uid: [Record, ...]}
_INITIAL = "_turnout_initial_states"  # session-state key: {app.uid: state before any step}
_TEXT_KEYS = ("delta", "text", "content", "token")
_ANSWER_KEYS = ("answer", "response", "content", "text")
# LangChain message types (``message.type``) -> the chat roles Streamlit draws with an avatar
_ROLES = {"human": "user", "ai": "assistant", "AIMessageChunk": "assistant", "chat": "assistant"}


@dataclass(frozen=True)
class Record:
    """One recorded step: the action's name, its result, and the state before and after it.

    A chat turn is recorded as one record named after the streaming action; its ``before``
    is the state the turn started from (so the delta includes the user's message too).
    """

    sequence_id: int | None
    action: str
    result: dict[str, Any] | None
    before: dict[str, Any]
    state: dict[str, Any]

    @property
    def diff(self) -> StateDiff:
        return diff_states(self.before, self.state)


def _plain(state: Mapping[str, Any]) -> dict[str, Any]:
    return dict(state.items())


def _remember_initial(app: Application) -> None:
    initial: dict[str, dict[str, Any]] = st.session_state.setdefault(_INITIAL, {})
    initial.setdefault(app.uid, _plain(app.state))


def history(app: Application) -> list[Record]:
    """The steps recorded for ``app`` in this session (oldest first); the list is live."""
    histories: dict[str, list[Record]] = st.session_state.setdefault(_HISTORIES, {})
    return histories.setdefault(app.uid, [])


def _record(app: Application, name: str, result: Any, before: dict[str, Any]) -> Record:
    record = Record(
        sequence_id=app.sequence_id,
        action=name,
        result=dict(result) if isinstance(result, Mapping) else None,
        before=before,
        state=_plain(app.state),
    )
    history(app).append(record)
    return record


def render_graph(app: Application, **dot_options: Any) -> str:
    """Draw ``app``'s graph with ``st.graphviz_chart``, the next action filled.

    ``dot_options`` go to ``app.graph.to_dot`` (e.g. ``include_state=True``). Returns the DOT.
    """
    nxt = app.get_next_action()
    dot = app.graph.to_dot(current=nxt.name if nxt is not None else None, **dot_options)
    st.graphviz_chart(dot)
    st.caption(f"Next action: **{plain(nxt.name)}**" if nxt is not None else "No next action.")
    return dot


def render_state(
    app_or_state: Application | Record | Mapping[str, Any],
    previous: Mapping[str, Any] | None = None,
) -> StateDiff | None:
    """Show a state as JSON and, when there is a previous state, the colour-coded diff.

    ``app_or_state`` is an application (its current state), a ``Record`` (the state after the
    step, diffed against the state before it unless ``previous`` is given) or a mapping.
    Returns the diff shown, or ``None`` when there was nothing to diff against.
    """
    if isinstance(app_or_state, Record):
        current = app_or_state.state
        previous = app_or_state.before if previous is None else previous
    elif isinstance(app_or_state, Application):
        current = _plain(app_or_state.state)
    else:
        current = _plain(app_or_state)
    diff = None
    if previous is not None:
        diff = diff_states(_plain(previous), current)
        st.markdown(diff_html(diff), unsafe_allow_html=True)
    st.json(compact(truncate(current)), expanded=True)
    return diff


def _run_to_halt(
    app: Application,
    inputs: Mapping[str, Any] | None,
    halt_before: Sequence[str] | None,
    halt_after: Sequence[str] | None,
    max_steps: int,
) -> str | None:
    """Run with ``app.iterate``, recording each step; a notice if ``max_steps`` stopped it."""
    steps = app.iterate(halt_before=halt_before, halt_after=halt_after, inputs=inputs)
    before = _plain(app.state)
    try:
        for count, (act, result, _state) in enumerate(steps, start=1):
            before = _record(app, bound_name(act), result, before).state
            if count >= max_steps:
                nxt = app.get_next_action()
                halted = act.name in (halt_after or ()) or (
                    nxt is not None and nxt.name in (halt_before or ())
                )
                if nxt is None or halted:
                    return None
                return f"Stopped after {max_steps} steps (max_steps)."
    finally:
        steps.close()
    return None


def step_controls(
    app: Application,
    key: str = "turnout",
    inputs: Mapping[str, Any] | None = None,
    *,
    halt_before: Sequence[str] | None = None,
    halt_after: Sequence[str] | None = None,
    max_steps: int = 100,
) -> Record | None:
    """Step / Run to halt / Reset buttons driving ``app``, and a slider over the recorded steps.

    **Step** runs the next action with ``inputs``; **Run to halt** runs (``app.iterate``) with
    ``halt_before``/``halt_after`` for at most ``max_steps`` steps; **Reset** puts back the state
    the app had when the controls first saw it and makes the entrypoint next (the sequence id
    keeps counting). After a button moved the app the script reruns (``st.rerun``), so views
    drawn above the controls show the new position too; an action's exception is shown with
    ``st.exception`` instead. ``key`` prefixes the widget keys, so several controls can share
    a page.
    Returns the step the slider selects (the newest by default), or ``None`` before any step;
    pass it to ``render_state`` to explore it.
    """
    _remember_initial(app)
    steps = history(app)
    slider, notice = f"{key}_step", f"{key}_notice"
    if notice in st.session_state:
        st.warning(st.session_state.pop(notice))
    step_col, run_col, reset_col = st.columns(3)
    idle = not app.has_next_action()
    moved = False
    try:
        if step_col.button("Step", key=f"{key}_step_button", disabled=idle):
            before = _plain(app.state)
            done = app.step(inputs=inputs)
            if done is not None:
                _record(app, bound_name(done[0]), done[1], before)
            moved = True
        if run_col.button("Run to halt", key=f"{key}_run", disabled=idle):
            stopped = _run_to_halt(app, inputs, halt_before, halt_after, max_steps)
            if stopped:
                st.session_state[notice] = stopped
            moved = True
    except Exception as error:  # show the action's failure on the page, keep the app usable
        st.exception(error)
    if reset_col.button("Reset", key=f"{key}_reset"):
        app.update_state(st.session_state[_INITIAL][app.uid])
        app.reset_to_entrypoint()
        steps.clear()
        moved = True
    if moved:  # rerun, so the buttons and what the page drew before them show the new position
        st.session_state.pop(slider, None)  # the slider starts at the newest step again
        st.rerun()
    if not steps:
        st.caption("No steps yet.")
        return None
    if len(steps) == 1:
        return steps[0]
    index = st.slider("Step", 0, len(steps) - 1, len(steps) - 1, key=slider)
    return steps[int(index)]


def _delta_text(diff: StateDiff, width: int = 120) -> str:
    def short(value: Any) -> str:
        return json.dumps(compact(truncate(value, 5)), ensure_ascii=False, default=repr)

    parts = [f"+{k}={short(v)}" for k, v in diff.added.items()]
    parts += [f"-{k}" for k in diff.removed]
    for k, (old, new) in diff.changed.items():
        grown = isinstance(old, list) and isinstance(new, list) and new[: len(old)] == old
        parts.append(
            f"{k} += {short(new[len(old) :])}" if grown else f"~{k}: {short(old)} → {short(new)}"
        )
    text = "; ".join(parts) or "(no change)"
    return text if len(text) <= width else text[: width - 1] + "…"


def render_trace(app_or_history: Application | Sequence[Record]) -> list[dict[str, Any]]:
    """The recorded steps (of an application, or a list of ``Record``) as a table: sequence
    id, action, result and the state delta. Returns the rows shown."""
    records = history(app_or_history) if isinstance(app_or_history, Application) else app_or_history
    rows = [
        {
            "sequence_id": r.sequence_id,
            "action": r.action,
            "result": json.dumps(truncate(r.result, 5), ensure_ascii=False, default=repr)[:120],
            "delta": _delta_text(r.diff),
        }
        for r in records
    ]
    if rows:
        st.dataframe(rows, hide_index=True)
    else:
        st.caption("No steps recorded yet.")
    return rows


def _item_text(item: Any) -> str:
    if isinstance(item, Mapping):
        for name in _TEXT_KEYS:
            if isinstance(item.get(name), str):
                return str(item[name])
        return ""
    return item if isinstance(item, str) else ""


def _content_text(content: Any) -> str:
    """A message's content as text: a string, or the text parts of a list of content blocks
    (LangChain's ``[{"type": "text", "text": ...}]``, LlamaIndex ``TextBlock``s)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Mapping):
        text = content.get("text", content.get("content"))
        return text if isinstance(text, str) else ""
    if isinstance(content, Sequence):
        return "".join(_content_text(part) for part in content)
    text = getattr(content, "text", None)  # a content block object (LlamaIndex ``TextBlock``)
    return text if isinstance(text, str) else str(content)


def _role_name(role: Any) -> str:
    value = getattr(role, "value", role)  # LlamaIndex ``MessageRole`` is an enum
    name = str(value) if value is not None else "assistant"
    return _ROLES.get(name, name)


def message_parts(message: Any) -> tuple[str, str]:
    """``(role, text)`` of a chat message as any adapter writes it to state: a dict with
    ``role``/``content`` (OpenAI), LangChain's ``messages_to_dict`` form (``type``/``data``), a
    LangChain ``BaseMessage`` (``type``/``content``), a LlamaIndex ``ChatMessage`` (``role``
    enum, ``blocks``) or any object with ``role`` and ``content``. Roles ``human``/``ai``
    become ``user``/``assistant``."""
    if isinstance(message, Mapping):
        if "role" in message or "content" in message:
            return _role_name(message.get("role")), _content_text(message.get("content"))
        data = message.get("data")
        if isinstance(data, Mapping):  # LangChain messages_to_dict: {"type": ..., "data": ...}
            return _role_name(message.get("type")), _content_text(data.get("content"))
        return "assistant", _content_text(message.get("text"))
    if isinstance(message, str):
        return "assistant", message
    role = getattr(message, "role", None)
    if role is None:
        role = getattr(message, "type", None)  # LangChain BaseMessage
    blocks = getattr(message, "blocks", None)
    content = getattr(message, "content", None)
    if content is None and blocks is not None:
        content = blocks
    return _role_name(role), _content_text(content)


def _answer(result: Mapping[str, Any] | None, streamed: str) -> str:
    for name in _ANSWER_KEYS:
        if result is not None and isinstance(result.get(name), str):
            return str(result[name])
    return streamed


def _write_stream(tokens: Iterator[str], shown: Callable[[str], str]) -> str:
    """Stream ``tokens`` into one markdown element, re-rendering the whole text each time (an
    image's ``![`` may arrive split over two tokens); the text streamed."""
    slot = st.empty()
    text = ""
    for token in tokens:
        if token:
            text += token
            slot.markdown(shown(text))
    return text


def chat(
    app: Application,
    *,
    streaming_action: str,
    input_key: str = "prompt",
    history_key: str = "chat_history",
    placeholder: str = "Say something",
    key: str = "turnout_chat",
    allow_remote_images: bool = False,
) -> str | None:
    """A chat over ``app``: the messages in ``state[history_key]`` (dicts with ``role`` and
    ``content``, LangChain messages, LlamaIndex ``ChatMessage``s: see ``message_parts``),
    then a chat input. A message runs ``app.stream_result(halt_after=[streaming_action],
    inputs={input_key: message})`` and streams the items' ``delta`` (or
    ``text``/``content``/``token``) into an assistant message as they arrive.

    The streaming action is expected to append the answer to ``state[history_key]`` (it then
    shows from the state on the next rerun). The turn is recorded in ``history(app)``.
    Returns the answer (the result's ``answer``, or the streamed text), ``None`` without input.
    Needs a sync application (``stream_result``).

    Messages are rendered as markdown, but a markdown or HTML image in them is shown as its
    text, not loaded: a model's output (or a prompt injected into it) cannot make the reader's
    browser fetch a URL. ``allow_remote_images=True`` renders images, for apps whose model
    output is trusted.
    """

    def shown(text: str) -> str:
        return text if allow_remote_images else without_remote_images(text)

    for message in app.state.get(history_key) or []:
        role, text = message_parts(message)
        with st.chat_message(role):
            st.markdown(shown(text))
    prompt = st.chat_input(placeholder, key=key)
    if not prompt:
        return None
    with st.chat_message("user"):
        st.markdown(shown(prompt))
    before = _plain(app.state)
    _action, container = app.stream_result(
        halt_after=[streaming_action], inputs={input_key: prompt}
    )
    with st.chat_message("assistant"):
        tokens: Iterator[str] = (_item_text(item) for item in container)
        streamed = _write_stream(tokens, shown)
        result, _state = container.get()
        answer = _answer(result, streamed)
        if not streamed:
            st.markdown(shown(answer))
    _record(app, streaming_action, result, before)
    return answer
