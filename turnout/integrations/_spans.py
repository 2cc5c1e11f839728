"""Whether the adapters record their library's runs as turnout spans.

The LangChain, LlamaIndex and OpenAI adapters open a span for every run of their library (a
chain, a retriever, a model call, a tool). An OpenInference (or other OpenTelemetry)
instrumentor of the same library exports those runs too, so with both the trace shows each
model call twice. ``library_spans(False)`` turns the adapters' own spans off (the steps, calls
and ``__tracer`` spans stay); ``library_spans("auto")`` turns them off for each library whose
OpenInference instrumentor is on; ``library_spans(True)`` is the default. The environment
variable ``TURNOUT_LIBRARY_SPANS`` (``on``, ``off``, ``auto``) sets the starting value.
"""

from __future__ import annotations

import os
import sys
from typing import Literal

__all__ = ["library_spans", "records"]

Setting = bool | Literal["auto"]

# The OpenInference instrumentor of each library: (module, class).
_INSTRUMENTORS = {
    "langchain": ("openinference.instrumentation.langchain", "LangChainInstrumentor"),
    "llama_index": ("openinference.instrumentation.llama_index", "LlamaIndexInstrumentor"),
    "openai": ("openinference.instrumentation.openai", "OpenAIInstrumentor"),
}
_WORDS: dict[str, Setting] = {"on": True, "true": True, "1": True, "off": False}
_WORDS |= {"false": False, "0": False, "auto": "auto"}


def _from_environment() -> Setting:
    word = os.environ.get("TURNOUT_LIBRARY_SPANS", "on").strip().lower()
    if word not in _WORDS:
        raise ValueError(
            f"TURNOUT_LIBRARY_SPANS={word!r} is not understood; set it to on, off or auto"
        )
    return _WORDS[word]


_SETTING: list[Setting] = []  # read from the environment on first use


def library_spans(setting: Setting | None = None) -> Setting:
    """Set (with ``setting``) and return whether the adapters record their library's runs as
    spans: ``True``, ``False``, or ``"auto"`` (off where an OpenInference instrumentor of the
    library is on). Process-wide."""
    if setting is not None:
        if setting not in (True, False, "auto"):
            raise ValueError(
                f"library_spans({setting!r}): give True, False or 'auto' (off where an "
                f"OpenInference instrumentor of the library is on)"
            )
        _SETTING[:] = [setting]
    if not _SETTING:
        _SETTING.append(_from_environment())
    return _SETTING[0]


def records(library: Literal["langchain", "llama_index", "openai"]) -> bool:
    """Whether the adapter of ``library`` should open spans for its runs now."""
    setting = library_spans()
    if setting != "auto":
        return bool(setting)
    module, name = _INSTRUMENTORS[library]
    loaded = sys.modules.get(module)
    if loaded is None:  # never imported: not instrumenting
        return True
    instrumentor = getattr(loaded, name, None)
    try:  # instrumentors are singletons: this is the one the user switched on, if any
        on = bool(instrumentor is not None and instrumentor().is_instrumented_by_opentelemetry)
    except Exception:
        return True
    return not on
