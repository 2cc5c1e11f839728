"""The run configuration of a runnable called inside a step: ``step_config``.

The user's callbacks, tags and metadata are kept, the step's identity is added to the metadata,
the run is named after the action, and a ``SpanCallbackHandler`` is added so the runnable's runs
become child spans of the step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import BaseCallbackManager
from langchain_core.runnables import RunnableConfig

from turnout.core.context import ApplicationContext
from turnout.core.tracing import TracerFactory
from turnout.integrations._spans import records
from turnout.integrations.langchain._tracing import SpanCallbackHandler

__all__ = ["step_config"]


def step_config(
    config: RunnableConfig | None = None,
    *,
    run_name: str | None = None,
    tags: Sequence[str] = (),
) -> RunnableConfig:
    """The run configuration for a runnable called inside the running step.

    Keeps everything in ``config`` (callbacks, tags, metadata, ...) and adds: the step's
    identity to the metadata (``turnout.app_id``, ``turnout.partition_key``,
    ``turnout.sequence_id``, ``turnout.action``), ``tags``, ``run_name`` (default: the action's
    name, unless ``config`` names the run), and a ``SpanCallbackHandler`` so the runnable's
    runs become child spans of the step. Outside a step it returns a copy of ``config``.

    Use it in your own ``@action`` functions::

        answer = chain.invoke({"q": state["question"]}, config=step_config())
    """
    return _step_config(config, run_name=run_name, tags=tags)[0]


def _step_config(
    config: RunnableConfig | None,
    *,
    run_name: str | None,
    tags: Sequence[str],
    name_run: bool = True,
) -> tuple[RunnableConfig, SpanCallbackHandler | None]:
    out: dict[str, Any] = dict(config or {})
    context = ApplicationContext.get()
    tracer = TracerFactory.current()
    all_tags = list(dict.fromkeys([*(out.get("tags") or ()), *tags]))
    if all_tags:
        out["tags"] = all_tags
    if context is None or tracer is None:
        return RunnableConfig(**out), None  # type: ignore[typeddict-item]
    out["metadata"] = {
        **(out.get("metadata") or {}),
        "turnout.app_id": context.app_id,
        "turnout.partition_key": context.partition_key,
        "turnout.sequence_id": context.sequence_id,
        "turnout.action": context.action_name,
    }
    if name_run:  # not for a config shared by several root runs (each tool call is one)
        out["run_name"] = out.get("run_name") or run_name or context.action_name
    if not records("langchain"):  # an instrumentor records the runs: no duplicates
        return RunnableConfig(**out), None  # type: ignore[typeddict-item]
    handler = SpanCallbackHandler(tracer)
    callbacks = out.get("callbacks")
    if callbacks is None:
        out["callbacks"] = [handler]
    elif isinstance(callbacks, BaseCallbackManager):
        manager = callbacks.copy()
        manager.add_handler(handler, inherit=True)
        out["callbacks"] = manager
    else:
        out["callbacks"] = [*callbacks, handler]
    return RunnableConfig(**out), handler  # type: ignore[typeddict-item]
