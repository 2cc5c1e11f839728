"""The multi-agent example end to end, offline: the real ``openai`` client against the fake
OpenAI server playing the planner, the researcher and the writer (scripted, deterministic).
Checks the hand-offs, the tool results the researchers used, what each agent was sent, the
final answer, the bound on rounds, and that the tracker holds every agent as a child
application linked to the parent step that spawned it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("openai")

import openai

from examples.multi_agent import agents
from examples.multi_agent import application as team_app
from turnout import ApplicationContext
from turnout.core.tracking import LocalTracker, read_log
from turnout.core.trackview import AppLog
from turnout.testing import FakeOpenAIServer, FakeRequest, FakeToolCall

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "How much taller is Mount Everest than Mont Blanc?"
EVEREST = "Mount Everest, on the border of Nepal and China, is 8849 metres high"
BLANC = "Mont Blanc, in the Alps between France and Italy, is 4806 metres high"


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(agents.scripted_model) as fake:
        yield fake


@pytest.fixture
def client(server: FakeOpenAIServer) -> Iterator[openai.OpenAI]:
    made = openai.OpenAI(base_url=server.base_url, api_key="offline", max_retries=0)
    yield made
    made.close()


def _role(request: FakeRequest) -> str:
    return str(request.conversation()[0]["content"]).split()[3]  # "You are the <role> ..."


def test_the_team_plans_researches_writes_and_reviews_in_two_rounds(
    server: FakeOpenAIServer, client: openai.OpenAI
) -> None:
    app = team_app.application(team_app.Team(client=client, model="fake-team"))
    answer = team_app.solve(app, QUESTION)

    handoffs = app.state["handoffs"]
    assert [(h["round"], h["from"], h["to"]) for h in handoffs] == [
        (0, "user", "planner"),
        (1, "planner", "researcher"),
        (1, "researcher", "writer"),
        (1, "researcher", "writer"),
        (1, "writer", "planner"),
        (2, "planner", "researcher"),
        (2, "researcher", "writer"),
        (2, "writer", "planner"),
        (2, "planner", "user"),
    ]
    assert handoffs[1]["tasks"] == ["Find facts about Mount Everest", "Find facts about Mont Blanc"]
    assert handoffs[5]["tasks"] == ["Calculate 8849 - 4806"]
    assert handoffs[-1]["accepted"] is True
    assert answer == (
        f"{EVEREST} (source: everest). {BLANC} (source: mont-blanc). "
        "8849 - 4806 = 4043 (source: calculate)."
    )
    assert app.state["answer"] == handoffs[-2]["draft"] == answer

    # each note carries the tool call its researcher made and the result it answered from
    everest, blanc, difference = app.state["notes"]
    assert everest["tools"][0]["name"] == "search"
    assert everest["tools"][0]["arguments"] == {"query": "Find facts about Mount Everest"}
    assert everest["tools"][0]["result"]["hits"][0]["id"] == "everest"
    assert blanc["tools"][0]["result"]["hits"][0]["id"] == "mont-blanc"
    assert difference["tools"] == [
        {
            "name": "calculate",
            "arguments": {"expression": "8849 - 4806"},
            "result": {"expression": "8849 - 4806", "value": 4043},
        }
    ]

    # what each agent was sent: the model calls in order, the researchers with the tools
    roles = [_role(r) for r in server.requests]
    assert roles == ["planner", *["researcher"] * 4, "writer", "planner",
                     *["researcher"] * 2, "writer", "planner"]  # fmt: skip
    assert all(r.tools for r in server.requests if _role(r) == "researcher")
    assert not any(r.tools for r in server.requests if _role(r) != "researcher")
    first_writer = next(r for r in server.requests if _role(r) == "writer")
    assert first_writer.user_text() == (
        f"Question: {QUESTION}\nNotes:\n"
        f"1. Find facts about Mount Everest -> {EVEREST} (source: everest).\n"
        f"2. Find facts about Mont Blanc -> {BLANC} (source: mont-blanc).\n"
    )
    review = server.requests[6]
    assert f"Draft answer: {handoffs[4]['draft']}\nRound 1 of 3." in review.user_text()


def test_the_planner_is_held_to_max_rounds(client: openai.OpenAI) -> None:
    app = team_app.application(team_app.Team(client=client, model="fake-team", max_rounds=1))
    answer = team_app.solve(app, QUESTION)

    last = app.state["handoffs"][-1]
    assert (last["round"], last["from"], last["to"]) == (1, "planner", "user")
    assert last["accepted"] is False
    assert last["unused_tasks"] == ["Calculate 8849 - 4806"]
    assert answer == f"{EVEREST} (source: everest). {BLANC} (source: mont-blanc)."
    assert [n["task"] for n in app.state["notes"]] == [
        "Find facts about Mount Everest",
        "Find facts about Mont Blanc",
    ]


def test_the_tracker_holds_every_agent_as_a_child_linked_to_its_parent_step(
    client: openai.OpenAI, tmp_path: Path
) -> None:
    tracker = LocalTracker("multi-agent", tmp_path)
    app = team_app.application(
        team_app.Team(client=client, model="fake-team"), tracker=tracker, app_id="team-1"
    )
    team_app.solve(app, QUESTION)

    parent = list(read_log(tracker.log_path("team-1")))
    steps = {r["seq"]: r["action"] for r in parent if r["t"] == "begin"}
    links = [(r["seq"], r["child_app_id"]) for r in parent if r["t"] == "child"]
    assert [r["kind"] for r in parent if r["t"] == "child"] == ["spawn"] * len(links)
    assert [(steps[seq], child) for seq, child in links] == [
        ("plan", "team-1-1-planner"),
        ("research", "team-1-2-researcher-0"),
        ("research", "team-1-2-researcher-1"),
        ("write", "team-1-3-writer"),
        ("plan", "team-1-4-planner"),
        ("research", "team-1-5-researcher-0"),
        ("write", "team-1-6-writer"),
        ("plan", "team-1-7-planner"),
    ]
    expected_steps = {
        "planner": ["plan"],
        "researcher": ["research", "use_tools", "research", "report"],
        "writer": ["write"],
    }
    for seq, child in links:
        records = list(read_log(tracker.log_path(child)))
        (app_record,) = [r for r in records if r["t"] == "app"]
        assert app_record["spawning_parent"] == {
            "app_id": "team-1",
            "partition_key": None,
            "sequence_id": seq,
        }
        role = child.split("-")[3]
        assert [r["action"] for r in records if r["t"] == "begin"] == expected_steps[role]
        spans = {r["name"] for r in records if r["t"] == "span_start"}
        assert "chat fake-team" in spans
        if role == "researcher":
            assert spans & {"execute_tool search", "execute_tool calculate"}

    # what `turnout ui` reads: the parent's steps list their agents, each agent its parent step
    view = AppLog(tracker.log_path("team-1"))
    view.load_all()
    shown = [(seq, c.app_id) for seq in sorted(steps) for c in view.children_of(seq)]
    assert shown == links
    researcher = AppLog(tracker.log_path("team-1-5-researcher-0"))
    researcher.load_all()
    assert researcher.parent is not None
    assert (researcher.parent.app_id, researcher.parent.sequence_id) == ("team-1", 5)
    assert researcher.parent.kind == "spawn"


def test_the_script_tracks_into_the_given_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    answer = team_app.main(["--track", "--tracking-dir", str(tmp_path), "--max-rounds", "2"])
    printed = capsys.readouterr().out
    assert f"A: {answer}" in printed
    assert "[round 2] planner -> researcher" in printed
    apps = sorted(p.name for p in (tmp_path / "multi-agent").iterdir())
    (parent,) = [a for a in apps if not any(a.startswith(other + "-") for other in apps)]
    assert f"tracked as {parent!r}" in printed
    assert len(apps) == 1 + 8  # the parent and its eight agents


def test_the_readme_mermaid_graphs_are_the_applications_graphs(client: openai.OpenAI) -> None:
    readme = (ROOT / "examples" / "multi_agent" / "README.md").read_text(encoding="utf-8")
    drawn = [block.split("```", 1)[0].strip() for block in readme.split("```mermaid\n")[1:]]
    parent = team_app.application(team_app.Team(client=client, model="fake-team"))
    context = ApplicationContext(app_id="readme", partition_key=None, sequence_id=0,
                                 action_name=None)  # fmt: skip
    researcher = (
        agents.researcher_builder(client, "fake-team", context, 0)
        .with_state(messages=[], task="")
        .with_entrypoint("research")
        .build()
    )
    assert drawn == [parent.graph.to_mermaid().strip(), researcher.graph.to_mermaid().strip()]


def test_search_ranks_the_documents_that_share_the_most_words() -> None:
    found = agents.search("how long is the Nile river", limit=3)
    assert [hit["id"] for hit in found["hits"]] == ["nile", "amazon"]
    assert agents.search("volcanoes of Iceland")["hits"] == []
    assert agents.search("Mont Blanc", limit=0)["hits"] == []


@pytest.mark.parametrize(
    ("expression", "value"),
    [("8849 - 4806", 4043), ("(6650 - 6400) / 2", 125), ("-3 * 2.5", -7.5), ("7 / 2", 3.5)],
    ids=["subtract", "parentheses", "negative-float", "division"],
)
def test_calculate_evaluates_arithmetic(expression: str, value: float) -> None:
    assert agents.calculate(expression) == {"expression": expression, "value": value}


@pytest.mark.parametrize(
    ("expression", "culprit"),
    [
        ("__import__('os')", "__import__('os')"),
        ("2 ** 100000", "2 ** 100000"),
        ("1 +", "1 +"),
        ("1 / (2 - 2)", "1 / (2 - 2)"),
        ("1" + "0" * 400, "1" + "0" * 400),
    ],
    ids=["call", "power", "syntax", "division-by-zero", "too-large"],
)
def test_calculate_refuses_anything_but_arithmetic(expression: str, culprit: str) -> None:
    with pytest.raises(ValueError, match="calculate") as caught:
        agents.calculate(expression)
    assert repr(culprit) in str(caught.value)


def test_a_failing_tool_is_reported_to_the_researcher_who_answers_anyway(
    client: openai.OpenAI,
) -> None:
    context = ApplicationContext(app_id="p", partition_key=None, sequence_id=0, action_name=None)
    note = agents.ask_researcher(client, "fake-team", context, 0, "Calculate 2 ** 3")
    (call,) = note["tools"]
    assert call["name"] == "calculate"
    assert "only numbers, + - * / and parentheses are allowed" in call["result"]
    assert note["answer"].startswith("The tool failed: ")


@pytest.mark.parametrize(
    ("reply", "plan"),
    [
        ('{"tasks": ["a", "b"], "done": false}', (["a", "b"], False)),
        ('Sure! ```json\n{"tasks": [], "done": true}\n```', ([], True)),
        ('{"tasks": ["a", " "]}', (["a"], False)),
        ("I cannot plan this.", ([], True)),
        ('{"tasks": "a"}', ([], True)),
        ("{not json}", ([], True)),
    ],
    ids=["json", "json-in-prose", "blank-task-dropped", "no-json", "tasks-not-a-list", "broken"],
)
def test_the_planners_reply_is_read_leniently(reply: str, plan: tuple[list[str], bool]) -> None:
    assert team_app.parse_plan(reply) == plan


def test_a_team_without_a_round_is_refused_naming_the_fix() -> None:
    with pytest.raises(ValueError, match=r"max_rounds=0.*max_rounds=1 or more"):
        team_app.Team(client=None, model="m", max_rounds=0)


def test_a_researcher_that_never_stops_asking_for_tools_is_cut_off() -> None:
    def insistent(request: FakeRequest) -> FakeToolCall:
        return FakeToolCall(name="search", arguments={"query": "Nile"})

    context = ApplicationContext(app_id="p", partition_key=None, sequence_id=0, action_name=None)
    with FakeOpenAIServer(insistent) as fake:
        client = openai.OpenAI(base_url=fake.base_url, api_key="offline", max_retries=0)
        with client:
            note = agents.ask_researcher(client, "fake-team", context, 0, "Find the Nile")
    # each model call adds its request and then the tool's result to the one-message task; the
    # call that brings the conversation to the limit is not run
    asked = agents.MAX_RESEARCH_MESSAGES // 2
    assert len(fake.requests) == asked
    assert ["result" in call for call in note["tools"]] == [True] * (asked - 1) + [False]
    assert note["answer"] == "No answer: the researcher ran out of tool calls."


def test_the_ui_lists_each_agent_under_the_parent_step(
    client: openai.OpenAI, tmp_path: Path
) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("jinja2")
    from fastapi.testclient import TestClient

    from turnout.integrations.fastapi.ui import create_ui_app

    tracker = LocalTracker("multi-agent", tmp_path)
    app = team_app.application(
        team_app.Team(client=client, model="fake-team", max_rounds=1),
        tracker=tracker,
        app_id="team-ui",
    )
    team_app.solve(app, QUESTION)
    api = "/api/v1/projects/multi-agent/apps"
    with TestClient(create_ui_app(tmp_path)) as ui:
        steps = ui.get(f"{api}/team-ui/steps").json()["steps"]
        writer = ui.get(f"{api}/team-ui-3-writer").json()["summary"]
    shown = [(s["action"], [c["app_id"] for c in s["children"]]) for s in steps]
    assert sorted(zip([s["seq"] for s in steps], shown, strict=True)) == [
        (0, ("receive", [])),
        (1, ("plan", ["team-ui-1-planner"])),
        (2, ("research", ["team-ui-2-researcher-0", "team-ui-2-researcher-1"])),
        (3, ("write", ["team-ui-3-writer"])),
        (4, ("plan", ["team-ui-4-planner"])),
        (5, ("deliver", [])),
    ]
    assert writer["parent"]["app_id"] == "team-ui"
