"""A streaming chatbot on the OpenAI adapter, tracked locally and (optionally) over OTLP.

``respond`` is ``chat_action(client, model=..., stream=True)``: it sends the conversation in
state to the model, yields ``{"delta": token}`` as the tokens arrive and appends the answer.
Each request is a ``chat <model>`` span with its token usage (``gen_ai.usage.*``).

Offline by default: without ``OPENAI_API_KEY`` the client talks to a local
``turnout.testing.FakeOpenAIServer``; with the key set it talks to the real API
(``OPENAI_MODEL``, default ``gpt-4.1-mini``). Every run is tracked by a ``LocalTracker`` in
``$TURNOUT_HOME`` or ``~/.turnout`` (``--tracking-dir`` elsewhere), so ``turnout ui`` shows it,
and when ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set and
``turnout[opentelemetry]`` is installed, the spans are exported over OTLP/HTTP too.

Run it: ``python examples/openai_chatbot/application.py "hello" "tell me more"`` (``--async`` for
``AsyncOpenAI`` and ``astream_result``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Callable
from typing import Any

from turnout import Action, Application, ApplicationBuilder, State, action
from turnout.core.tracking import LocalTracker
from turnout.integrations.openai import chat_action
from turnout.testing import FakeRequest, openai_client

SYSTEM = "You are a concise, friendly assistant."


def offline_reply(request: FakeRequest) -> str:
    """What the local fake model says: it echoes, and tells how to use a real model."""
    turns = sum(1 for m in request.conversation() if m.get("role") == "user")
    return f"(turn {turns}) You said {request.user_text()!r}. Set OPENAI_API_KEY for a real model."


def model_client(use_async: bool = False) -> contextlib.AbstractContextManager[tuple[Any, str]]:
    """``(client, model)``: the real API if ``OPENAI_API_KEY`` is set, else a local fake."""
    return openai_client(offline_reply, fake_model="fake-chat", use_async=use_async)


@action(reads=[], writes=["messages"])
def user_input(state: State, prompt: str) -> State:
    """Append the user's message to the conversation."""
    return state.append(messages={"role": "user", "content": prompt})


def application(
    client: Any, model: str, *, hooks: tuple[Any, ...] = (), tracker: Any = None,
    app_id: str | None = None,
) -> Application:  # fmt: skip
    """``user_input`` -> ``respond`` (streamed) -> ``user_input`` -> ..."""
    respond: Action = chat_action(client, model=model, system=SYSTEM, stream=True)
    builder = (
        ApplicationBuilder()
        .with_actions(user_input=user_input, respond=respond)
        .with_transitions(("user_input", "respond"), ("respond", "user_input"))
        .with_state(messages=[])
        .with_entrypoint("user_input")
        .with_identifiers(app_id=app_id)
        .with_hooks(*hooks)
    )
    if tracker is not None:
        builder = builder.with_tracker(tracker)
    return builder.build()


def stream_chat(app: Application, prompt: str, on_token: Callable[[str], None]) -> str:
    """One turn with the sync driver; ``on_token`` sees each token as it arrives."""
    _action, container = app.stream_result(halt_after=["respond"], inputs={"prompt": prompt})
    for item in container:
        on_token(item["delta"])
    result, _state = container.get()
    assert result is not None
    return str(result["content"])


async def astream_chat(app: Application, prompt: str, on_token: Callable[[str], None]) -> str:
    """One turn with the async driver."""
    _action, container = await app.astream_result(halt_after=["respond"], inputs={"prompt": prompt})
    async for item in container:
        on_token(item["delta"])
    result, _state = await container.get()
    assert result is not None
    return str(result["content"])


def otlp_hooks(stack: contextlib.ExitStack) -> tuple[Any, ...]:
    """An ``OpenTelemetryHook`` exporting to ``$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (or
    ``$OTEL_EXPORTER_OTLP_ENDPOINT`` + ``/v1/traces``), if one is set and
    ``turnout[opentelemetry]`` is installed; no hook otherwise."""
    variables = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
    if not any(os.environ.get(name) for name in variables):
        return ()
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from turnout.integrations.opentelemetry import OpenTelemetryHook
    except ImportError:
        print("(OTLP export skipped: pip install 'turnout[opentelemetry]')", file=sys.stderr)
        return ()
    provider = TracerProvider(resource=Resource.create({"service.name": "openai-chatbot"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    stack.callback(provider.shutdown)  # flushes the spans before the process ends
    return (OpenTelemetryHook(tracer_provider=provider),)


def _print(token: str) -> None:
    sys.stdout.write(token)
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("prompts", nargs="*", default=["hello", "what can you do?"])
    parser.add_argument("--async", dest="use_async", action="store_true")
    parser.add_argument(
        "--tracking-dir", help="where LocalTracker writes (default: $TURNOUT_HOME or ~/.turnout)"
    )
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        tracker = LocalTracker("openai-chatbot", storage_dir=args.tracking_dir)
        stack.callback(tracker.close)
        hooks = otlp_hooks(stack)
        client, model = stack.enter_context(model_client(args.use_async))
        app = application(client, model, hooks=hooks, tracker=tracker)
        answers = asyncio.run(_chat_async(app, client, args.prompts)) if args.use_async else []
        for prompt in [] if args.use_async else args.prompts:
            print(f"user: {prompt}\nbot:  ", end="", flush=True)
            answers.append(stream_chat(app, prompt, _print))
            print()
        print(f"tracked as {app.uid} in {tracker.project_dir} (see it with: turnout ui)")
    return answers


async def _chat_async(app: Application, client: Any, prompts: list[str]) -> list[str]:
    answers = []
    async with client:  # closes the async client inside this event loop
        for prompt in prompts:
            print(f"user: {prompt}\nbot:  ", end="", flush=True)
            answers.append(await astream_chat(app, prompt, _print))
            print()
    return answers


if __name__ == "__main__":
    main()
