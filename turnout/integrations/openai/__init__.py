"""OpenAI actions over the official ``openai`` client (``pip install "turnout[openai]"``).

A model call is one action, built from a client the caller passes in (``OpenAI`` for a sync
action, ``AsyncOpenAI`` for an async one); the conversation comes from state and the reply goes
back to it::

    from openai import OpenAI
    from turnout.integrations.openai import chat_action, tool_action, tool_calls_requested

    ask = chat_action(OpenAI(), model="gpt-4.1-mini", messages="messages", stream=True)

* ``chat_action`` (chat completions) and ``responses_action`` (Responses API): streaming or not;
  a streaming action yields ``{"delta": token}`` items; each request is a child span
  ``chat <model>`` with the OpenTelemetry GenAI attributes (``gen_ai.request.model``,
  ``gen_ai.usage.input_tokens``, ``gen_ai.usage.output_tokens``, ``gen_ai.response.*``,
  ``gen_ai.response.time_to_first_chunk`` for streams).
* Tools: ``function_tool`` builds a JSON schema from a function's signature, type hints and
  docstring; ``tool_action`` runs the calls the model asked for and appends the results;
  ``tool_calls_requested`` routes to it.
* Errors: the client's exceptions keep their types (``openai.RateLimitError``...) with the action
  and model in their message; a stream that fails once begun raises ``StreamFailedError`` (an
  ``openai.APIError``) with the server's message; ``openai_retry_policy`` retries the transient
  ones.
* The input and output specs (``from_state``, ``from_value``, ``update_state``, ``append_state``,
  ``extend_state``) are those of every turnout adapter.

Test against ``turnout.testing.FakeOpenAIServer``, a local OpenAI-compatible server.
"""

from __future__ import annotations

from turnout.integrations._guard import missing_extra

try:
    import openai  # noqa: F401 - the guard: fail here, with the install command
except ImportError as _error:  # pragma: no cover - exercised in a subprocess
    raise missing_extra(
        "turnout.integrations.openai", 'pip install "turnout[openai]"', _error
    ) from _error

from turnout.integrations._mapping import (
    append_state,
    extend_state,
    from_state,
    from_value,
    update_state,
)
from turnout.integrations.openai._actions import (
    RETRYABLE_ERRORS,
    chat_action,
    openai_retry_policy,
    responses_action,
    tool_action,
    tool_calls_requested,
)
from turnout.integrations.openai._calls import StreamFailedError
from turnout.integrations.openai._tools import Tool, ToolCallError, ToolSchemaError, function_tool

__all__ = [
    "RETRYABLE_ERRORS",
    "StreamFailedError",
    "Tool",
    "ToolCallError",
    "ToolSchemaError",
    "append_state",
    "chat_action",
    "extend_state",
    "from_state",
    "from_value",
    "function_tool",
    "openai_retry_policy",
    "responses_action",
    "tool_action",
    "tool_calls_requested",
    "update_state",
]
