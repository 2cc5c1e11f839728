"""Burr's serde plugins (pandas, pydantic, LangChain), imported the first time they are needed.

Burr's state module imports its plugins when it is imported, so every Burr program pays for
pandas, pydantic and LangChain at start-up. turnout's core stays standard-library only and cheap
to import; instead, the matching plugin module of ``turnout.integrations.serde`` is imported
when it is first needed:

* ``serialize`` meets a value whose class (or a base of it) comes from ``pandas``, ``pydantic``
  or ``langchain_core`` and has no registration: that library is already imported (the program
  made the value), so importing the plugin costs nothing new;
* ``deserialize`` meets a ``"__burr_serde__"`` key one of the plugins registers.

The module imported is always one of the three fixed names below: stored data selects at most
*which* of them, never a module name of its own. The one exception to "the core imports no
adapter": it happens only when a program (or its stored state) already uses that library.
"""

from __future__ import annotations

import importlib
import threading

__all__ = ["PLUGIN_KEYS", "PLUGIN_LIBRARIES", "load_for_key", "load_for_type", "why_missing"]

_PANDAS = "turnout.integrations.serde.pandas"
_PYDANTIC = "turnout.integrations.serde.pydantic"
_LANGCHAIN = "turnout.integrations.serde.langchain"

PLUGIN_LIBRARIES: dict[str, str] = {
    "pandas": _PANDAS,
    "pydantic": _PYDANTIC,
    "langchain_core": _LANGCHAIN,
}
"""The top-level package a class comes from -> the plugin that registers codecs for it."""

PLUGIN_KEYS: dict[str, str] = {
    "pandas.DataFrame": _PANDAS,
    "pydantic": _PYDANTIC,
    "lc_document": _LANGCHAIN,
    "lc_document_with_state": _LANGCHAIN,
    "lc_document_hack": _LANGCHAIN,
    "lc_message": _LANGCHAIN,
    "lc_message_hack": _LANGCHAIN,
}
"""Burr's ``"__burr_serde__"`` keys -> the plugin that registers their decoders."""

_tried: set[str] = set()
_failed: dict[str, str] = {}  # plugin module -> why it could not be imported
_lock = threading.Lock()


def _load(module: str) -> bool:
    """Import ``module`` once; whether this call imported it (a second call returns False, so a
    caller retries at most once). A missing library (``MissingExtraError``) is not an error
    here: the caller then reports what it would have reported without plugins."""
    with _lock:
        if module in _tried:
            return False
        _tried.add(module)
    try:
        importlib.import_module(module)
    except ImportError as exc:
        _failed[module] = str(exc)
        return False
    return True


def load_for_type(cls: type) -> bool:
    """Import the plugins for the libraries ``cls`` and its bases come from (a LangChain message
    is a pydantic model too) that were not imported yet; whether any was."""
    loaded = False
    for base in cls.__mro__:
        module = PLUGIN_LIBRARIES.get(str(base.__module__).partition(".")[0])
        if module is not None and module not in _tried:
            loaded = _load(module) or loaded
    return loaded


def load_for_key(key: object) -> bool:
    """Import the plugin that decodes ``key``, if there is one and it was not imported yet."""
    module = PLUGIN_KEYS.get(key) if isinstance(key, str) else None
    return module is not None and _load(module)


def why_missing(key: object) -> str | None:
    """Why the plugin that decodes ``key`` could not be imported (its ``MissingExtraError``
    message, naming the extra to install), or ``None``."""
    module = PLUGIN_KEYS.get(key) if isinstance(key, str) else None
    return _failed.get(module) if module is not None else None
