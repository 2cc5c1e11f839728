"""A planner, a researcher and a writer handing work to each other, each its own application.

The parent graph: ``receive`` takes the question; ``plan`` spawns the **planner**, which splits
it into research tasks; ``research`` spawns one **researcher** per task (model and tools:
``search`` over the bundled documents, ``calculate``), each leaving a note; ``write`` spawns the
**writer**, which drafts the answer from the notes; ``plan`` spawns the planner again to review
the draft: it accepts it (``deliver``) or asks for another round of tasks, at most
``max_rounds`` rounds in all. Every agent is a child application linked to the parent step that
spawned it (``with_spawning_parent``) and recorded by the parent's tracker, so ``turnout ui``
shows each agent's own steps under the parent. ``handoffs`` in the state lists who handed what
to whom.

Offline by default: without ``OPENAI_API_KEY`` the agents talk to a local
``turnout.testing.FakeOpenAIServer`` whose scripted model (``agents.scripted_model``) plays all
three. With the key set, they use the real API (``OPENAI_MODEL``, default ``gpt-4.1-mini``).

Run it: ``python examples/multi_agent/application.py "How much taller is Mount Everest than
Mont Blanc?"`` (``--track`` records the run for ``turnout ui``; ``--max-rounds N``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
from dataclasses import dataclass
from typing import Any

from turnout import Application, ApplicationBuilder, ApplicationContext, State, action, when
from turnout.core.tracking import LocalTracker
from turnout.testing import openai_client

if __package__:
    from . import agents
else:  # run as a script: python examples/multi_agent/application.py
    import agents  # type: ignore[import-not-found,no-redef]

PROJECT = "multi-agent"
DEFAULT_QUESTION = "How much taller is Mount Everest than Mont Blanc?"


@dataclass(frozen=True, kw_only=True, slots=True)
class Team:
    """What the agents share: the model client, the model's name and the planner's budget."""

    client: Any
    model: str
    max_rounds: int = 3

    def __post_init__(self) -> None:
        if not isinstance(self.max_rounds, int) or self.max_rounds < 1:
            raise ValueError(
                f"Team(max_rounds={self.max_rounds!r}): the planner needs at least one round of "
                f"research; pass max_rounds=1 or more"
            )


def parse_plan(reply: str) -> tuple[list[str], bool]:
    """The planner's ``(tasks, done)`` from its JSON reply (found inside any prose around it);
    a reply with no JSON object counts as done with no tasks."""
    found = re.search(r"\{.*\}", reply, flags=re.DOTALL)
    try:
        plan = json.loads(found[0]) if found else {}
    except json.JSONDecodeError:
        plan = {}
    tasks = plan.get("tasks") if isinstance(plan, dict) else None
    tasks = [str(t) for t in tasks if str(t).strip()] if isinstance(tasks, list) else []
    done = bool(plan.get("done", not tasks)) if isinstance(plan, dict) else True
    return tasks, done


def _handoff(state: State, source: str, target: str, **what: Any) -> State:
    return state.append(handoffs={"from": source, "to": target, "round": state["round"], **what})


@action(reads=[], writes=["question", "round", "notes", "draft", "handoffs"])
def receive(state: State, question: str) -> State:
    """The user's question starts a fresh piece of work."""
    fresh = state.update(question=question, round=0, notes=[], draft="", handoffs=[])
    return _handoff(fresh, "user", "planner", question=question)


@action(reads=["question", "draft", "round"], writes=["tasks", "round", "verdict", "handoffs"])
def plan(state: State, __context: ApplicationContext, team: Team) -> State:
    """The planner splits the question into tasks, or reviews the draft: done or more tasks."""
    brief = f"Question: {state['question']}\n"
    if state["draft"]:
        brief += f"Draft answer: {state['draft']}\nRound {state['round']} of {team.max_rounds}.\n"
    tasks, done = parse_plan(agents.ask_planner(team.client, team.model, __context, brief))
    if done or not tasks or state["round"] >= team.max_rounds:
        capped = bool(tasks) and not done
        state = state.update(tasks=[], verdict="deliver")
        return _handoff(state, "planner", "user", accepted=not capped, unused_tasks=tasks)
    state = state.update(tasks=tasks, verdict="research", round=state["round"] + 1)
    return _handoff(state, "planner", "researcher", tasks=tasks)


@action(reads=["tasks", "notes"], writes=["notes", "handoffs"])
def research(state: State, __context: ApplicationContext, team: Team) -> State:
    """One researcher per task, in order; each leaves a note for the writer."""
    for index, task in enumerate(state["tasks"]):
        note = agents.ask_researcher(team.client, team.model, __context, index, task)
        state = _handoff(state.append(notes=note), "researcher", "writer", note=note)
    return state


@action(reads=["question", "notes"], writes=["draft", "handoffs"])
def write(state: State, __context: ApplicationContext, team: Team) -> State:
    """The writer drafts the answer from every note so far."""
    notes = "\n".join(
        f"{i}. {n['task']} -> {n['answer']}" for i, n in enumerate(state["notes"], start=1)
    )
    brief = f"Question: {state['question']}\nNotes:\n{notes}\n"
    draft = agents.ask_writer(team.client, team.model, __context, brief)
    return _handoff(state.update(draft=draft), "writer", "planner", draft=draft)


@action(reads=["draft"], writes=["answer"])
def deliver(state: State) -> State:
    """The accepted draft is the answer."""
    return state.update(answer=state["draft"] or "The planner found nothing to research.")


def application(
    team: Team, *, tracker: LocalTracker | None = None, app_id: str | None = None
) -> Application:
    """The parent application; ``tracker`` records it and, through it, every agent."""
    builder = (
        ApplicationBuilder()
        .with_actions(
            receive=receive,
            plan=plan.bind(team=team),
            research=research.bind(team=team),
            write=write.bind(team=team),
            deliver=deliver,
        )
        .with_transitions(
            ("receive", "plan"),
            ("plan", "research", when(verdict="research")),
            ("plan", "deliver"),
            ("research", "write"),
            ("write", "plan"),
            ("deliver", "receive"),
        )
        .with_entrypoint("receive")
        .with_identifiers(app_id=app_id)
    )
    if tracker is not None:
        builder.with_tracker(tracker)
    return builder.build()


def solve(app: Application, question: str) -> str:
    """Run the team on one question until it delivers; the answer."""
    _action, _result, state = app.run(halt_after=["deliver"], inputs={"question": question})
    return str(state["answer"])


def model_client() -> contextlib.AbstractContextManager[tuple[Any, str]]:
    """``(client, model)``: the real API if ``OPENAI_API_KEY`` is set, else the local fake."""
    return openai_client(agents.scripted_model, fake_model="fake-team")


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("question", nargs="?", default=DEFAULT_QUESTION)
    parser.add_argument("--max-rounds", type=int, default=3, help="research rounds at most")
    parser.add_argument("--track", action="store_true", help=f"record for turnout ui ({PROJECT})")
    parser.add_argument("--tracking-dir", help="with --track: where (default: TURNOUT_HOME)")
    args = parser.parse_args(argv)
    tracker = LocalTracker(PROJECT, args.tracking_dir) if args.track else None
    with model_client() as (client, model):
        team = Team(client=client, model=model, max_rounds=args.max_rounds)
        app = application(team, tracker=tracker)
        answer = solve(app, args.question)
    for handoff in app.state["handoffs"]:
        what = {k: v for k, v in handoff.items() if k not in ("from", "to", "round")}
        print(f"[round {handoff['round']}] {handoff['from']} -> {handoff['to']}: {_short(what)}")
    print(f"\nQ: {args.question}\nA: {answer}")
    if tracker is not None:
        print(f"\ntracked as {app.uid!r} in project {PROJECT!r}: run `turnout ui` to see it")
    return answer


def _short(what: dict[str, Any]) -> str:
    text = json.dumps(what, ensure_ascii=False)
    return text if len(text) <= 120 else text[:117] + "..."


if __name__ == "__main__":
    main()
