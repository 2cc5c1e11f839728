"""An email assistant served over HTTP, with a browser page that streams its drafts.

The human stays in the loop twice: after the first draft the assistant asks clarifying questions
(``__context.suspend("clarifications", ...)``) and waits for the answers; after each revision it
waits for approval (``__context.suspend("approval", ...)``), where "request changes" with
feedback sends it back to drafting. Every draft is streamed token by token by a fake, offline
drafting model (``DraftingModel``), through a streaming action.

``serve(factory, persister=...)`` serves it under ``/api``; ``GET /`` is one static page
(``index.html``, plain JS, no build step) that reads the streams as Server-Sent Events.

* ``python examples/email_assistant_served/application.py``: the whole flow in process
  (Starlette's ``TestClient`` over the ASGI app), offline, printed (no server, no port).
* ``python examples/email_assistant_served/application.py --serve --port 8000``: uvicorn on
  127.0.0.1 (``--port`` alone serves too); open http://127.0.0.1:8000/.
* ``python examples/email_assistant_served/application.py --cli "Invite the team to lunch"``:
  no server; the same application (``application()``, driven by ``converse``) streams its
  drafts here and asks the clarifying questions and the approval with ``input()``;
  ``--answer``, ``--feedback`` and ``--approve`` script the replies, ``--track`` records the run
  for ``turnout ui``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import re
import sys
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

if __package__ in (None, ""):  # run as a script: make `examples` and `turnout` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

# The adapter first: without its library it raises MissingExtraError naming the extra.
import turnout.integrations.fastapi  # noqa: F401

# isort: split
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.testclient import TestClient

from turnout import (
    Application,
    ApplicationBuilder,
    ApplicationContext,
    State,
    action,
    default,
    expr,
    streaming_action,
    when,
)
from turnout.core.sqlite import AsyncSQLitePersister
from turnout.core.tracking import LocalTracker
from turnout.integrations.fastapi import ServedBuilder, serve

PAGE = Path(__file__).with_name("index.html")
CLARIFICATIONS = "clarifications"
APPROVAL = "approval"
PROJECT = "email-assistant"
DEFAULT_REQUEST = "Invite the team to the launch review"
Builder = TypeVar("Builder", bound=ApplicationBuilder[Any])


def answers_schema(count: int) -> dict[str, Any]:
    """The answer to ``count`` clarifying questions: one non-empty string each, in order."""
    return {
        "type": "object",
        "properties": {
            "answers": {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "minItems": count,
                "maxItems": count,
            }
        },
        "required": ["answers"],
        "additionalProperties": False,
    }


APPROVAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"approved": {"type": "boolean"}, "feedback": {"type": "string"}},
    "required": ["approved"],
    "additionalProperties": False,
}


class DraftingModel:
    """A stand-in for a language model: deterministic, offline, one word per token.

    Its questions come from what the request leaves open (no day named: "which day?"; no
    tone named: "formal or casual?"); its drafts quote the request and weave in the answers
    and the feedback, so each revision visibly differs from the last.
    """

    def __init__(self, token_delay: float = 0.0) -> None:
        self.token_delay = token_delay  # seconds between tokens, so a person sees them arrive

    def questions(self, request: str) -> list[str]:
        asked = []
        days = r"\b(mon|tues|wednes|thurs|fri|satur|sun)day\b|\btomorrow\b|\btoday\b"
        if not re.search(days, request, re.IGNORECASE):
            asked.append("Which day should the email propose?")
        if not re.search(r"\b(formal|casual|friendly)\b", request, re.IGNORECASE):
            asked.append("Should the tone be formal or casual?")
        return asked

    def words(self, request: str, answers: Sequence[str], feedback: Sequence[str]) -> Iterator[str]:
        lines = ["Hello,", "", f"About your request: {request}"]
        if answers:
            lines.append("Details: " + "; ".join(answers) + ".")
        for note in feedback:
            lines.append(f"Revised as asked: {note}.")
        lines += ["", "Best regards,", "Your assistant"]
        text = "\n".join(lines)
        yield from re.findall(r"\S+\s*|\s+", text)

    async def stream(
        self, request: str, answers: Sequence[str], feedback: Sequence[str]
    ) -> AsyncGenerator[str, None]:
        for token in self.words(request, answers, feedback):
            # Also lets the server flush each token to the page before making the next one.
            await asyncio.sleep(self.token_delay)
            yield token


@contextlib.contextmanager
def drafting_model(*, token_delay: float = 0.0, live: bool = True) -> Iterator[Any]:
    """The drafting model on the OpenAI API when ``OPENAI_API_KEY`` is set and ``live`` (the
    model from ``OPENAI_MODEL``, default ``gpt-4.1-mini``; needs ``pip install openai``), else
    the offline ``DraftingModel``; clients closed on exit."""
    if not (live and os.environ.get("OPENAI_API_KEY")):
        yield DraftingModel(token_delay)
        return
    import openai

    if __package__:
        from .openai_model import OpenAIDraftingModel
    else:  # run as a script: this directory is on sys.path
        from openai_model import OpenAIDraftingModel  # type: ignore[import-not-found,no-redef]

    client, async_client = openai.OpenAI(), openai.AsyncOpenAI()
    try:
        yield OpenAIDraftingModel(
            client, async_client, os.environ.get("OPENAI_MODEL", "gpt-4.1-mini")
        )
    finally:
        client.close()  # the async client goes with its event loop


@action(reads=[], writes=["request", "clarified", "questions", "answers", "feedback", "drafts"])
def receive(state: State, request: str) -> State:
    """The user's request starts a new email (and forgets any earlier one)."""
    return state.update(
        request=request, clarified=False, questions=[], answers=[], feedback=[], drafts=[]
    )


@streaming_action(reads=["request", "answers", "feedback"], writes=["draft", "drafts"])
async def draft(
    state: State, __context: ApplicationContext, model: DraftingModel
) -> AsyncGenerator[tuple[dict[str, Any], State | None], None]:
    tokens: list[str] = []
    async for token in model.stream(state["request"], state["answers"], state["feedback"]):
        tokens.append(token)
        yield {"token": token}, None
    text = "".join(tokens)
    yield {"draft": text}, state.update(draft=text).append(drafts=text)


@action(reads=["request", "draft"], writes=["clarified", "questions", "answers"])
def clarify(state: State, __context: ApplicationContext, model: DraftingModel) -> State:
    """Ask what the request leaves open and wait for the answers (nothing open: go on)."""
    questions = model.questions(state["request"])
    if not questions:
        return state.update(clarified=True, questions=[], answers=[])
    answer = __context.suspend(
        CLARIFICATIONS,
        schema=answers_schema(len(questions)),
        metadata={"questions": questions, "draft": state["draft"]},
    )
    return state.update(clarified=True, questions=questions, answers=list(answer["answers"]))


@action(reads=["draft"], writes=["approved", "feedback"])
def review(state: State, __context: ApplicationContext) -> State:
    """Wait for the human's verdict on the latest draft."""
    metadata = {"draft": state["draft"]}
    verdict = __context.suspend(APPROVAL, schema=APPROVAL_SCHEMA, metadata=metadata)
    note = str(verdict.get("feedback", "")).strip()
    updated = state.update(approved=bool(verdict["approved"]))
    return updated.append(feedback=note) if note and not verdict["approved"] else updated


@action(reads=["draft"], writes=["final_email"])
def send(state: State) -> State:
    return state.update(final_email=state["draft"])


def describe(builder: Builder, model: DraftingModel) -> Builder:
    """The assistant's actions, transitions, entrypoint and first state, on ``builder``: the
    ``ServedBuilder`` of ``serve()`` or a plain ``ApplicationBuilder`` (the terminal)."""
    return (
        builder.with_actions(
            receive, draft.bind(model=model), clarify.bind(model=model), review, send
        )
        .with_transitions(
            ("receive", "draft"),
            ("draft", "clarify", when(clarified=False)),
            ("draft", "review", default),
            ("clarify", "draft", expr("len(questions) > 0")),  # revise with the answers
            ("clarify", "review", default),
            ("review", "send", when(approved=True)),
            ("review", "draft", default),
        )
        .with_entrypoint("receive")
        .with_state(
            request="", clarified=False, questions=[], answers=[], feedback=[], drafts=[], draft=""
        )
    )


def make_factory(model: DraftingModel) -> Any:
    """The application factory ``serve()`` calls per request, with ``model`` bound."""

    def factory(builder: ServedBuilder) -> ServedBuilder:
        return describe(builder, model)

    return factory


def create_api(db: str, *, token_delay: float = 0.0, model: DraftingModel | None = None) -> FastAPI:
    """The web app: the served assistant under ``/api`` and the page at ``/``, drafting with
    ``model`` (default: the offline ``DraftingModel``). The SQLite persister at ``db`` is
    closed when the app shuts down."""
    persister = AsyncSQLitePersister(db)

    @contextlib.asynccontextmanager
    async def lifespan(_api: FastAPI) -> AsyncIterator[None]:
        yield
        await persister.close()

    api = FastAPI(title="turnout email assistant", lifespan=lifespan)
    factory = make_factory(model or DraftingModel(token_delay))
    api.include_router(serve(factory, persister=persister, prefix="/api"))
    page = PAGE.read_text(encoding="utf-8")
    headers = {"Content-Security-Policy": _policy(page), "X-Content-Type-Options": "nosniff"}

    @api.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(page, headers=headers)

    return api


def _policy(page: str) -> str:
    """Only the page's own inline script runs (by its hash); it talks to this origin only."""
    script = re.search(r"<script>(.*?)</script>", page, re.DOTALL)
    assert script is not None, "index.html has no inline <script>"
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
    return (
        f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
        f"connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'"
    )


# -- the offline demo: the page's requests, made in process ---------------------------------------

RUN = {"halt_after": ["send"]}


def sse_events(text: str) -> list[tuple[str, Any]]:
    """``(event, data)`` of a Server-Sent Events body."""
    events, name = [], "message"
    for line in text.splitlines():
        if line.startswith("event:"):
            name = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            events.append((name, json.loads(line.partition(":")[2].strip())))
    return events


# The client: an ``httpx.Client`` on a served URL, or Starlette's ``TestClient``.
Client = Any


def streamed(client: Client, app_id: str, **body: Any) -> tuple[str, dict[str, Any]]:
    """Run the app as the page does (``POST .../stream``): the draft tokens, joined, and the
    app as the run left it."""
    response = client.post(f"/api/apps/{app_id}/stream", json={**RUN, **body})
    response.raise_for_status()
    events = sse_events(response.text)
    tokens = [data["item"]["token"] for name, data in events if name == "item"]
    final = [data for name, data in events if name == "state"]
    return "".join(tokens), final[-1]


def answer(client: Client, app_id: str, channel: str, value: Any) -> dict[str, Any]:
    response = client.post(f"/api/apps/{app_id}/resume", json={"channel": channel, "value": value})
    response.raise_for_status()
    return dict(response.json())


def demo(db: str, request: str, replies: Sequence[str], feedback: str = "") -> dict[str, Any]:
    """The whole conversation, the page's requests made in process (Starlette's
    ``TestClient``: a sync httpx client over the ASGI app); what a person would see, printed.
    Returns the app as it ends (``state["final_email"]``)."""
    with TestClient(create_api(db), base_url="http://assistant") as client:
        app_id = client.post("/api/apps", json={}).json()["app_id"]
        print(f"you: {request}")
        text, view = streamed(client, app_id, inputs={"request": request})
        print(f"--- first draft ---\n{text}")
        waiting = view["suspension"]
        if waiting is not None and waiting["channel"] == CLARIFICATIONS:
            questions = waiting["metadata"]["questions"]
            for question, reply in zip(questions, replies, strict=False):
                print(f"assistant asks: {question}\nyou: {reply}")
            answer(client, app_id, CLARIFICATIONS, {"answers": list(replies[: len(questions)])})
            text, view = streamed(client, app_id)
            print(f"--- revision ---\n{text}")
        if feedback:
            print(f"you: request changes: {feedback}")
            answer(client, app_id, APPROVAL, {"approved": False, "feedback": feedback})
            text, view = streamed(client, app_id)
            print(f"--- revision ---\n{text}")
        print("you: approve")
        answer(client, app_id, APPROVAL, {"approved": True})
        _, view = streamed(client, app_id)
        print(f"--- sent ---\n{view['state']['final_email']}")
        return view


# -- the terminal: the same assistant, asking at the prompt ---------------------------------------

Ask = Callable[[str, str], str]
"""``ask(channel, question)``: the person's reply to one question of a suspension."""


def application(
    model: DraftingModel | None = None, *, tracker: Any = None, app_id: str | None = None
) -> Application:
    """The assistant as a plain application, no server: drive it with ``converse``."""
    builder = describe(ApplicationBuilder(), model or DraftingModel()).with_identifiers(
        app_id=app_id
    )
    if tracker is not None:
        builder = builder.with_tracker(tracker)
    return builder.build()


def _reply(waiting: Any, ask: Ask) -> dict[str, Any]:
    """The answer to a suspension, asked one question at a time (an empty reply asks again)."""

    def nonempty(question: str) -> str:
        while not (said := ask(waiting.channel, question).strip()):
            pass
        return said

    if waiting.channel == CLARIFICATIONS:
        return {"answers": [nonempty(q) for q in waiting.metadata["questions"]]}
    verdict = nonempty("Send this email? (yes, or say what to change)")
    if verdict.lower() in ("y", "yes", "ok", "send"):
        return {"approved": True}
    return {"approved": False, "feedback": verdict}


async def converse(
    app: Application, request: str, *, ask: Ask, say: Callable[[str], None]
) -> dict[str, Any]:
    """Run ``app`` on ``request`` until the email is sent: each draft streams to ``say``
    token by token; where the app suspends (the clarifying questions, the approval), the
    questions go to ``ask`` and the replies resume it. Returns the final state."""
    inputs: dict[str, Any] = {"request": request}
    while app.has_next_action():
        upcoming = app.get_next_action()
        if upcoming is not None and upcoming.name == "draft":
            say("--- draft ---\n")
            _action, container = await app.astream_result(halt_after=["draft"], inputs=inputs)
            async for item in container:
                say(item["token"])
            await container.get()
            say("\n---\n")
        else:
            await app.astep(inputs=inputs)
        inputs = {}
        while app.suspension is not None:
            await app.aresume(app.suspension.channel, _reply(app.suspension, ask))
    return dict(app.state.get_all())


def terminal(answers: Sequence[str] = (), verdicts: Sequence[str] = ()) -> Ask:
    """``ask`` at the terminal (``input()``), after the scripted ``answers`` (clarifying
    questions, in order) and ``verdicts`` (approvals: feedback, or "yes") are used up."""
    scripted = {CLARIFICATIONS: list(answers), APPROVAL: list(verdicts)}

    def ask(channel: str, question: str) -> str:
        if scripted[channel]:
            reply = scripted[channel].pop(0)
            print(f"{question} {reply}")
            return reply
        try:
            reply = input(f"{question} ")
        except EOFError:
            raise SystemExit(
                f"email assistant: no answer to {question!r} (stdin is closed); type it at a "
                f"terminal, or script it with --answer TEXT, --feedback TEXT and --approve"
            ) from None
        if not sys.stdin.isatty():
            print(reply)  # piped in: show it, as a terminal would have
        return reply

    return ask


def _say(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def run_in_terminal(args: argparse.Namespace) -> dict[str, Any]:
    """``--cli``: the conversation at this terminal, tracked with ``--track``."""
    tracker = LocalTracker(args.project, args.tracking_dir) if args.track else None
    with contextlib.ExitStack() as stack:
        if tracker is not None:
            stack.callback(tracker.close)
        live = not args.offline
        model = stack.enter_context(drafting_model(token_delay=args.token_delay, live=live))
        app = application(model, tracker=tracker, app_id=args.app_id)
        verdicts = [*args.feedback, *(["yes"] if args.approve else [])]
        print(f"you: {args.request}")
        state = asyncio.run(
            converse(app, args.request, ask=terminal(args.answer, verdicts), say=_say)
        )
    print(f"--- sent ---\n{state['final_email']}")
    if tracker is not None:
        print(f"tracked as {app.uid!r} in project {args.project!r}: run `turnout ui` to see it")
    return state


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--serve", action="store_true", help="run the web app with uvicorn")
    parser.add_argument("--port", type=int, help="port on 127.0.0.1 (implies --serve)")
    parser.add_argument("--db", help="SQLite file of the applications (default: a temp dir)")
    parser.add_argument("--token-delay", type=float, default=0.03, help="seconds per token")
    cli = parser.add_argument_group("in the terminal (--cli)")
    cli.add_argument("--cli", action="store_true", help="ask the questions here (input())")
    cli.add_argument("request", nargs="?", default=DEFAULT_REQUEST, help="what to write")
    cli.add_argument("--answer", action="append", default=[], help="answer the next question")
    cli.add_argument("--feedback", action="append", default=[], help="request these changes")
    cli.add_argument("--approve", action="store_true", help="then approve the draft")
    cli.add_argument("--track", action="store_true", help=f"record for turnout ui ({PROJECT})")
    cli.add_argument("--tracking-dir", help="with --track: where (default: $TURNOUT_HOME)")
    cli.add_argument("--project", default=PROJECT, help=f"with --track (default {PROJECT})")
    cli.add_argument("--app-id", default=None, help="the application's id (default: new)")
    parser.add_argument(
        "--offline", action="store_true",
        help="the offline drafting model even when OPENAI_API_KEY is set",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.cli:
        return run_in_terminal(args)
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or str(Path(tmp) / "assistant.db")
        if not (args.serve or args.port is not None):
            return demo(db, args.request, ["Thursday", "casual"])
        import uvicorn

        live = not args.offline
        with drafting_model(token_delay=args.token_delay, live=live) as model:
            api = create_api(db, token_delay=args.token_delay, model=model)
            port = 8000 if args.port is None else args.port
            uvicorn.run(api, host="127.0.0.1", port=port, log_level="info")
    return None


if __name__ == "__main__":
    main()
