"""A streaming chatbot served over HTTP, with a browser page that streams its replies.

``user_input`` -> ``respond`` -> ``user_input`` ...: ``respond`` streams the reply token by token
(``{"delta": token}`` items). Offline it is a scripted model (``ScriptedModel``: deterministic,
one word per token); with ``OPENAI_API_KEY`` set it is the OpenAI adapter's
``chat_action(AsyncOpenAI(), stream=True)`` (``OPENAI_MODEL``, default ``gpt-4.1-mini``).

``serve(factory, persister=..., on_busy="enqueue")`` serves it under ``/api``: a message sent
while a reply streams waits its turn and is answered next (the page shows it as queued).
``GET /`` is one static page (``index.html``, plain JS, no build step) reading the streams as
Server-Sent Events.

* ``python examples/chatbot_served/application.py``: two turns in process (Starlette's
  ``TestClient``), offline, printed (no server, no port).
* ``python examples/chatbot_served/application.py --port 8000``: uvicorn on 127.0.0.1; open
  http://127.0.0.1:8000/.
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
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `examples` and `turnout` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.testclient import TestClient

from turnout import Action, State, action, streaming_action
from turnout.core.sqlite import AsyncSQLitePersister
from turnout.integrations.fastapi import ServedBuilder, serve

PAGE = Path(__file__).with_name("index.html")
ON_BUSY = "enqueue"  # a message sent while a reply streams is answered after it
SYSTEM = "You are a concise, friendly assistant."
RUN = {"halt_after": ["respond"]}
Message = dict[str, str]


class ScriptedModel:
    """A stand-in for a streaming chat model: offline, deterministic, one word per token.

    Args:
        token_delay: seconds between tokens, so a person sees them arrive.
        hold: awaited before each reply's last token (``--hold-until-file``: a demo or a test
            keeps a reply streaming until it says so).
    """

    def __init__(
        self, token_delay: float = 0.0, hold: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self.token_delay = token_delay
        self.hold = hold

    def reply(self, messages: Sequence[Message]) -> str:
        """The whole reply to a conversation: it counts the turns and echoes the last one."""
        turns = sum(1 for m in messages if m["role"] == "user")
        return (
            f"(turn {turns}) You said {messages[-1]['content']!r}. I am a scripted model "
            f"streaming one word at a time; set OPENAI_API_KEY for a real one."
        )

    def tokens(self, messages: Sequence[Message]) -> list[str]:
        """The reply's tokens: words with their trailing space (joined: the reply)."""
        return re.findall(r"\S+\s*", self.reply(messages))

    async def stream(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        tokens = self.tokens(messages)
        for index, token in enumerate(tokens):
            if index == len(tokens) - 1 and self.hold is not None:
                await self.hold()
            await asyncio.sleep(self.token_delay)  # also lets the server flush each token
            yield token


@action(reads=[], writes=["messages"])
def user_input(state: State, prompt: str) -> State:
    """Append the user's message to the conversation."""
    return state.append(messages={"role": "user", "content": prompt})


@streaming_action(reads=["messages"], writes=["messages"])
async def scripted_respond(
    state: State, model: ScriptedModel
) -> AsyncGenerator[tuple[dict[str, Any], State | None], None]:
    """Stream the scripted model's reply, then append it to the conversation."""
    tokens: list[str] = []
    async for token in model.stream(state["messages"]):
        tokens.append(token)
        yield {"delta": token}, None
    text = "".join(tokens)
    yield {"content": text}, state.append(messages={"role": "assistant", "content": text})


def make_factory(respond: Action) -> Callable[[ServedBuilder], ServedBuilder]:
    """The application factory ``serve()`` calls per request, answering with ``respond``."""

    def factory(builder: ServedBuilder) -> ServedBuilder:
        return (
            builder.with_actions(user_input=user_input, respond=respond)
            .with_transitions(("user_input", "respond"), ("respond", "user_input"))
            .with_entrypoint("user_input")
            .with_state(messages=[])
        )

    return factory


def create_api(db: str, *, model: ScriptedModel | None = None) -> FastAPI:
    """The web app: the chat under ``/api`` and the page at ``/``. The reply comes from OpenAI
    when ``OPENAI_API_KEY`` is set, else from ``model`` (default: a ``ScriptedModel``)."""
    persister = AsyncSQLitePersister(db)
    closing: list[Any] = []
    respond: Action
    if os.environ.get("OPENAI_API_KEY"):
        import openai

        from turnout.integrations.openai import chat_action

        client = openai.AsyncOpenAI()
        closing.append(client)
        name = os.environ.get("OPENAI_MODEL", "gpt-4.1-mini")
        respond = chat_action(client, model=name, system=SYSTEM, stream=True)
    else:
        respond = scripted_respond.bind(model=model or ScriptedModel())

    @contextlib.asynccontextmanager
    async def lifespan(_api: FastAPI) -> AsyncIterator[None]:
        yield
        for client in closing:
            await client.close()
        await persister.close()

    api = FastAPI(title="turnout chatbot", lifespan=lifespan)
    api.include_router(serve(make_factory(respond), persister=persister, prefix="/api",
                             on_busy=ON_BUSY))  # fmt: skip
    page = PAGE.read_text(encoding="utf-8")
    headers = {"Content-Security-Policy": _policy(page), "X-Content-Type-Options": "nosniff"}

    @api.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(page, headers=headers)

    return api


def _policy(page: str) -> str:
    """Only the page's own inline script runs (allowed by its hash), and it talks only to
    this origin."""
    script = re.search(r"<script>(.*?)</script>", page, re.DOTALL)
    assert script is not None, "index.html has no inline <script>"
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
    return (
        f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
        f"connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'"
    )


def hold_until_file(path: Path) -> Callable[[], Awaitable[None]]:
    """A ``ScriptedModel`` hold that waits until ``path`` exists."""

    async def hold() -> None:
        while not path.exists():
            await asyncio.sleep(0.02)  # a demo aid: a file is the simplest signal across processes

    return hold


# -- the offline demo ----------------------------------------------------------------------------


def sse_events(text: str) -> list[tuple[str, Any]]:
    """``(event, data)`` of a Server-Sent Events body."""
    events, name = [], "message"
    for line in text.splitlines():
        if line.startswith("event:"):
            name = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            events.append((name, json.loads(line.partition(":")[2].strip())))
    return events


def chat(client: Any, app_id: str, prompt: str) -> tuple[list[str], dict[str, Any]]:
    """One turn as the page sends it (``POST .../stream``): the streamed tokens and the app
    after the run. ``client``: an ``httpx.Client`` on the server, or a ``TestClient``."""
    response = client.post(f"/api/apps/{app_id}/stream", json={"inputs": {"prompt": prompt}, **RUN})
    response.raise_for_status()
    events = sse_events(response.text)
    tokens = [data["item"]["delta"] for name, data in events if name == "item"]
    return tokens, [data for name, data in events if name == "state"][-1]


def demo(db: str, prompts: Sequence[str]) -> list[str]:
    """Chat in process (Starlette's ``TestClient`` over the ASGI app); the replies, printed."""
    replies = []
    with TestClient(create_api(db), base_url="http://chat") as client:
        app_id = client.post("/api/apps", json={}).json()["app_id"]
        for prompt in prompts:
            tokens, _ = chat(client, app_id, prompt)
            replies.append("".join(tokens))
            print(f"you: {prompt}\nbot: {replies[-1]}  ({len(tokens)} tokens streamed)")
    return replies


def main(argv: Sequence[str] | None = None) -> list[str] | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("prompts", nargs="*", default=["hello", "how are you?"])
    parser.add_argument("--port", type=int, help="serve on 127.0.0.1:PORT with uvicorn")
    parser.add_argument("--db", help="SQLite file of the conversations (default: a temp dir)")
    parser.add_argument("--token-delay", type=float, default=0.05, help="seconds per token")
    parser.add_argument(
        "--hold-until-file", type=Path, help="hold each reply before its last token until FILE "
        "exists (to see, or test, a message typed while a reply streams)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or str(Path(tmp) / "chat.db")
        if args.port is None:
            return demo(db, args.prompts)
        import uvicorn

        hold = None if args.hold_until_file is None else hold_until_file(args.hold_until_file)
        api = create_api(db, model=ScriptedModel(args.token_delay, hold))
        uvicorn.run(api, host="127.0.0.1", port=args.port, log_level="info")
    return None


if __name__ == "__main__":
    main()
