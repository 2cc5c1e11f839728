"""The three agents of the multi-agent example, each a small application of its own.

* the **planner** (one model call) splits the question into research tasks, and later reads the
  writer's draft and either accepts it or asks for more tasks;
* the **researcher** answers one task with tools (``search`` over the bundled documents in
  ``library/``, ``calculate``), looping model -> tools -> model until it answers, then
  ``report`` turns its conversation into a note (the answer and the tool results it used);
* the **writer** (one model call) composes the answer from the notes.

``scripted_model`` is the offline stand-in for all three (it tells them apart by their system
prompt); it is deterministic, so the example's test knows every hand-off in advance.
"""

from __future__ import annotations

import ast
import json
import operator
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from turnout import ApplicationBuilder, ApplicationContext, State, action, expr
from turnout.integrations.openai import (
    chat_action,
    function_tool,
    tool_action,
    tool_calls_requested,
)
from turnout.testing import FakeRequest, FakeToolCall

LIBRARY = Path(__file__).resolve().parent / "library"

PLANNER = (
    "You are the planner of a research team. Split the user's question into short, "
    "self-contained research tasks (a look-up, or an arithmetic calculation). Reply with JSON "
    'only: {"tasks": ["..."], "done": false}. When you are shown a draft answer that fully '
    'answers the question, reply {"tasks": [], "done": true}; otherwise list only the tasks '
    "still needed."
)
RESEARCHER = (
    "You are the researcher of a research team. Answer the task with the tools: search the "
    "library for facts, calculate arithmetic. Answer in one sentence and name the source "
    "document in parentheses, e.g. (source: everest)."
)
WRITER = (
    "You are the writer of a research team. Compose a short answer to the question using only "
    "the numbered research notes, keeping their sources."
)

# -- tools -----------------------------------------------------------------------------------------


def _documents() -> dict[str, tuple[str, str]]:
    """``{id: (title, text)}`` of the bundled documents: the file's stem, first line, the rest."""
    found: dict[str, tuple[str, str]] = {}
    for path in sorted(LIBRARY.glob("*.md")):
        title, _, body = path.read_text(encoding="utf-8").partition("\n")
        found[path.stem] = (title.strip(), " ".join(body.split()))
    return found


DOCUMENTS = _documents()
_STOP = {"the", "and", "how", "what", "find", "about", "facts", "with", "than", "from", "high"}
_STOP |= {"is", "it", "of", "in", "on", "to", "an", "by", "at", "as", "or", "much", "many"}


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 1 and w not in _STOP}


def search(query: str, limit: int = 2) -> dict[str, Any]:
    """Search the team's library of documents.

    Args:
        query: the words to look for, e.g. "height of Mont Blanc".
        limit: how many documents to return at most.
    """
    wanted = _words(query)
    scored = []
    for doc_id, (title, text) in DOCUMENTS.items():
        score = len(wanted & _words(title)) * 2 + len(wanted & _words(text))
        if score:
            scored.append((-score, doc_id, title, text))
    hits = [{"id": d, "title": t, "text": x} for _s, d, t, x in sorted(scored)[: max(limit, 0)]]
    return {"query": query, "hits": hits}


_OPERATORS: dict[type, Callable[..., Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def _evaluate(node: ast.AST, expression: str) -> float:
    """Arithmetic only: numbers, ``+ - * /`` and parentheses; anything else is refused."""
    value = node.value if isinstance(node, ast.Constant) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _evaluate(node.left, expression), _evaluate(node.right, expression)
        return float(_OPERATORS[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return float(_OPERATORS[type(node.op)](_evaluate(node.operand, expression)))
    raise ValueError(
        f"calculate({expression!r}): only numbers, + - * / and parentheses are allowed, "
        f"not {ast.unparse(node)!r}"
    )


def calculate(expression: str) -> dict[str, Any]:
    """Evaluate an arithmetic expression.

    Args:
        expression: numbers with + - * / and parentheses, e.g. "8849 - 4806".
    """
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"calculate({expression!r}) is not an arithmetic expression") from exc
    try:
        value = _evaluate(tree.body, expression)
    except (ZeroDivisionError, OverflowError) as exc:
        raise ValueError(f"calculate({expression!r}) has no value: {exc}") from exc
    return {"expression": expression, "value": int(value) if value.is_integer() else value}


TOOLS = [function_tool(search), function_tool(calculate)]

# -- the offline stand-in for the model ------------------------------------------------------------


def scripted_model(request: FakeRequest) -> str | FakeToolCall:
    """Plays the planner, the researcher or the writer, as the system prompt says."""
    conversation = request.conversation()
    system = str(conversation[0].get("content", "")) if conversation else ""
    if system.startswith("You are the planner"):
        return _scripted_planner(request.user_text())
    if system.startswith("You are the researcher"):
        return _scripted_researcher(conversation, request.user_text())
    return _scripted_writer(request.user_text())


def _scripted_planner(brief: str) -> str:
    question = brief.partition("Question: ")[2].partition("\n")[0]
    draft = brief.partition("Draft answer: ")[2].partition("\n")[0]
    if not draft:  # the first round: one look-up per document the question names
        asked = question.lower()
        named = [t for t, _ in DOCUMENTS.values() if t.lower() in asked]
        titles = sorted(named, key=lambda title: asked.find(title.lower()))
        return json.dumps({"tasks": [f"Find facts about {t}" for t in titles], "done": False})
    comparing = re.search(r"\b(how much|difference|taller|longer|more)\b", question.lower())
    numbers = re.findall(r"\b\d{3,}\b", draft)
    if comparing and " = " not in draft and len(numbers) >= 2:
        return json.dumps({"tasks": [f"Calculate {numbers[0]} - {numbers[1]}"], "done": False})
    return json.dumps({"tasks": [], "done": True})


def _scripted_researcher(conversation: list[dict[str, Any]], task: str) -> str | FakeToolCall:
    last = conversation[-1]
    if last.get("role") != "tool":
        calculation = re.fullmatch(r"Calculate (.+)", task.strip())
        if calculation:
            return FakeToolCall(name="calculate", arguments={"expression": calculation[1]})
        return FakeToolCall(name="search", arguments={"query": task})
    result = _parsed(last["content"])
    if not isinstance(result, dict):
        return f"The tool failed: {result}"
    if "expression" in result:
        return f"{result['expression']} = {result['value']} (source: calculate)."
    if not result["hits"]:
        return "The library has nothing on this."
    top = result["hits"][0]
    return f"{top['text'].rstrip('.')} (source: {top['id']})."


def _scripted_writer(brief: str) -> str:
    notes = re.findall(r"^\d+\. .+? -> (.+)$", brief, flags=re.MULTILINE)
    return " ".join(notes) if notes else "The research found nothing to write about."


# -- the agents as applications --------------------------------------------------------------------


@action(reads=["messages", "task"], writes=["note"])
def report(state: State) -> State:
    """The researcher's note: its answer and every tool call with the result it used."""
    calls: dict[str, dict[str, Any]] = {}
    for message in state["messages"]:
        for call in message.get("tool_calls") or ():
            calls[call["id"]] = {
                "name": call["function"]["name"],
                "arguments": _parsed(call["function"]["arguments"] or "{}"),
            }
        if message.get("role") == "tool" and message.get("tool_call_id") in calls:
            calls[message["tool_call_id"]]["result"] = _parsed(message["content"])
    answer = str(state["messages"][-1].get("content") or "")
    if not answer:  # the model was still asking for tools when MAX_RESEARCH_MESSAGES cut it off
        answer = "No answer: the researcher ran out of tool calls."
    return state.update(
        note={"task": state["task"], "answer": answer, "tools": list(calls.values())}
    )


def _parsed(content: Any) -> Any:
    """A tool's JSON result, or the error text ``tool_action`` reported for a failing tool."""
    try:
        return json.loads(content)
    except (TypeError, ValueError):
        return content


def _child(context: ApplicationContext, role: str, index: int | None = None) -> ApplicationBuilder:
    """A builder for an agent spawned by the parent's current step: named after the step and
    the role, linked to the step, recorded by the parent's tracker when it has one."""
    suffix = role if index is None else f"{role}-{index}"
    builder = (
        ApplicationBuilder()
        .with_identifiers(
            app_id=f"{context.app_id}-{context.sequence_id}-{suffix}",
            partition_key=context.partition_key,
        )
        .with_spawning_parent(context.app_id, context.sequence_id, context.partition_key)
    )
    if context.tracker is not None:
        builder.with_tracker(context.tracker)
    return builder


def planner_builder(client: Any, model: str, context: ApplicationContext) -> ApplicationBuilder:
    """The planner: one model call on the brief in ``messages``."""
    return _child(context, "planner").with_actions(
        plan=chat_action(client, model=model, system=PLANNER)
    )


MAX_RESEARCH_MESSAGES = 16
"""The researcher stops asking for tools once its conversation is this long."""


def researcher_builder(
    client: Any, model: str, context: ApplicationContext, index: int
) -> ApplicationBuilder:
    """The researcher: model and tools in a loop (bounded), then ``report``."""
    ask = chat_action(client, model=model, system=RESEARCHER, tools=TOOLS)
    more = tool_calls_requested() & expr(f"len(messages) < {MAX_RESEARCH_MESSAGES}")
    return (
        _child(context, "researcher", index)
        .with_actions(research=ask, use_tools=tool_action(TOOLS), report=report)
        .with_transitions(
            ("research", "use_tools", more),
            ("use_tools", "research"),
            ("research", "report"),
        )
    )


def writer_builder(client: Any, model: str, context: ApplicationContext) -> ApplicationBuilder:
    """The writer: one model call on the question and the notes."""
    return _child(context, "writer").with_actions(
        write=chat_action(client, model=model, system=WRITER)
    )


def ask_planner(client: Any, model: str, context: ApplicationContext, brief: str) -> str:
    app = (
        planner_builder(client, model, context)
        .with_state(messages=[{"role": "user", "content": brief}])
        .with_entrypoint("plan")
        .build()
    )
    _action, _result, state = app.run(halt_after=["plan"])
    return str(state["messages"][-1]["content"])


def ask_researcher(
    client: Any, model: str, context: ApplicationContext, index: int, task: str
) -> dict[str, Any]:
    app = (
        researcher_builder(client, model, context, index)
        .with_state(messages=[{"role": "user", "content": task}], task=task)
        .with_entrypoint("research")
        .build()
    )
    _action, _result, state = app.run(halt_after=["report"])
    return dict(state["note"])


def ask_writer(client: Any, model: str, context: ApplicationContext, brief: str) -> str:
    app = (
        writer_builder(client, model, context)
        .with_state(messages=[{"role": "user", "content": brief}])
        .with_entrypoint("write")
        .build()
    )
    _action, _result, state = app.run(halt_after=["write"])
    return str(state["messages"][-1]["content"])
