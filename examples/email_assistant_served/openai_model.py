"""The email assistant's drafting model on the OpenAI API (``OPENAI_API_KEY`` set).

``OpenAIDraftingModel`` answers the two questions ``application.DraftingModel`` answers
offline: what the request leaves open (a JSON list of at most three questions) and the draft
itself, streamed token by token from a chat completion. ``application.drafting_model(...)``
picks it when a key is set, else the offline stand-in, so every way of running the example
(the page, the terminal, the gallery) talks to the real model with a key and stays offline
without one.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Sequence
from typing import Any

QUESTIONS_PROMPT = (
    "You help write an email. Given the user's request, list what it leaves open that the "
    "email needs (a day, a place, a tone, ...), as questions to the user. Answer with a JSON "
    "array of at most three short questions, and nothing else; [] when nothing is open."
)
DRAFT_PROMPT = (
    "You write emails. Write the email the user asks for, with a greeting and a sign-off, "
    "using their answers and applying their requested changes. Answer with the email only."
)


class OpenAIDraftingModel:
    """``DraftingModel``'s questions and drafts from a chat model: ``client`` (an
    ``openai.OpenAI``) asks the questions, ``async_client`` (an ``openai.AsyncOpenAI``)
    streams the drafts, both with ``model``."""

    def __init__(self, client: Any, async_client: Any, model: str) -> None:
        self.client, self.async_client, self.model = client, async_client, model

    def questions(self, request: str) -> list[str]:
        # A sync call, as the clarify step is a sync action: it holds a served worker's loop
        # for one short completion, which an example can afford.
        reply = self.client.chat.completions.create(
            model=self.model,
            messages=[
                {"role": "system", "content": QUESTIONS_PROMPT},
                {"role": "user", "content": request},
            ],
        )
        return parse_questions(reply.choices[0].message.content or "")

    async def stream(
        self, request: str, answers: Sequence[str], feedback: Sequence[str]
    ) -> AsyncGenerator[str, None]:
        asked = [f"Request: {request}"]
        asked += [f"Answer: {answer}" for answer in answers]
        asked += [f"Change: {note}" for note in feedback]
        chunks = await self.async_client.chat.completions.create(
            model=self.model,
            messages=[
                {"role": "system", "content": DRAFT_PROMPT},
                {"role": "user", "content": "\n".join(asked)},
            ],
            stream=True,
        )
        async for chunk in chunks:
            text = chunk.choices[0].delta.content if chunk.choices else None
            if text:
                yield text


def parse_questions(text: str) -> list[str]:
    """The questions of a model's answer: a JSON array of strings (at most three kept); an
    answer that is not one gives its lines that end with a question mark."""
    try:
        parsed = json.loads(text.strip().removeprefix("```json").strip("`\n "))
    except ValueError:
        parsed = [line.strip(" -*\t") for line in text.splitlines() if line.strip().endswith("?")]
    if not isinstance(parsed, list):
        return []
    return [str(item).strip() for item in parsed if str(item).strip()][:3]
