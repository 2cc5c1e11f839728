"""Burr's serde plugins (pandas, pydantic, LangChain), imported the first time they are needed.

Burr's state module imports its plugins when it is imported, so every Burr program pays for
pandas, pydantic and LangChain at start-up. turnout's core stays standard-library only and cheap
to import; instead, the matching plugin module of ``turnout.integrations.serde`` is imported
when it is first needed:

* ``serialize`` meets a value whose class (or a base of it) comes from ``pandas``, ``pydantic``
  or ``langchain_core`` and has no registration: that library is already imported (the program
  made the value), so importing the plugin costs nothing new;
* ``deserialize`` meets a ``"__burr_serde__"`` key one of the plugins registers;
* turnout's ``Serde`` meets such a value with no codec of its own, or a tag (``"pandas:DataFrame"``)
  a plugin's codec writes. Those codecs (``register_plugin_codec``) serve every ``Serde``, after
  its own registrations and any ``@serialize.register`` function.

The modules are registered by the ``turnout`` package (``turnout/__init__.py`` calls
``register_serde_plugin``), as the OpenTelemetry adapter's loader is, so the core names no
adapter: the map is fixed at import, and stored data selects at most *which* registered module,
never a module name of its own. A plugin is imported only when the program (or its stored state)
already uses that library.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any

__all__ = [
    "PLUGIN_CODECS",
    "PLUGIN_DECODERS",
    "PLUGIN_KEYS",
    "PLUGIN_LIBRARIES",
    "PLUGIN_TAGS",
    "load_for_key",
    "load_for_tag",
    "load_for_type",
    "plugin_decoder",
    "register_plugin_codec",
    "register_serde_plugin",
    "why_missing",
    "why_missing_tag",
]

PLUGIN_LIBRARIES: dict[str, str] = {}
"""The top-level package a class comes from -> the plugin module that registers codecs for it."""

PLUGIN_KEYS: dict[str, str] = {}
"""Burr's ``"__burr_serde__"`` keys -> the plugin module that registers their decoders."""

PLUGIN_TAGS: dict[str, str] = {}
"""turnout's tags (``{"__turnout__": "pandas:DataFrame", ...}``) -> the plugin module whose codec
reads them."""

PLUGIN_CODECS: dict[type, tuple[str, Callable[[Any], Any]]] = {}
"""Classes a plugin's codec encodes -> (its tag, its encoder); every ``Serde`` consults it."""

PLUGIN_DECODERS: dict[str, Callable[[Any], Any]] = {}
"""Tags a plugin's codec wrote -> its decoder."""


def register_serde_plugin(
    module: str,
    *,
    libraries: tuple[str, ...],
    keys: tuple[str, ...] = (),
    tags: tuple[str, ...] = (),
) -> None:
    """Load the plugin ``module`` when a serialiser meets a class from one of ``libraries``,
    ``deserialize`` meets one of Burr's ``keys``, or turnout's ``Serde`` meets one of ``tags``.
    Called by the ``turnout`` package for its own plugins, so the core names no adapter; the map
    is fixed when ``turnout`` is imported."""
    for library in libraries:
        PLUGIN_LIBRARIES[library] = module
    for key in keys:
        PLUGIN_KEYS[key] = module
    for tag in tags:
        PLUGIN_TAGS[tag] = module


def register_plugin_codec(
    cls: type, *, name: str, encode: Callable[[Any], Any], decode: Callable[[Any], Any]
) -> None:
    """A codec every ``Serde`` uses for ``cls`` (and subclasses) after its own registrations:
    how turnout's plugins (pandas, numpy) store their values inline. ``name`` is the stored tag;
    ``decode`` receives decoded data only, as for ``Serde.register``."""
    PLUGIN_CODECS[cls] = (name, encode)
    PLUGIN_DECODERS[name] = decode


_tried: set[str] = set()
_failed: dict[str, str] = {}  # plugin module -> why it could not be imported
# Held while a plugin is imported: a thread meeting the plugin meanwhile waits for it, rather than
# finding its codecs not registered yet.
_lock = threading.RLock()


def _load(module: str) -> bool:
    """Import ``module`` once; whether it is imported now (by this call or an earlier one; the
    callers retry their look-up once). A missing library (``MissingExtraError``) is not an error
    here: the caller then reports what it would have reported without plugins."""
    with _lock:
        if module in _tried:
            return module not in _failed
        _tried.add(module)
        try:
            importlib.import_module(module)
        except ImportError as exc:
            _failed[module] = str(exc)
            return False
        return True


def load_for_type(cls: type) -> bool:
    """Import the plugins for the libraries ``cls`` and its bases come from (a LangChain message
    is a pydantic model too); whether any is imported."""
    loaded = False
    for base in cls.__mro__:
        module = PLUGIN_LIBRARIES.get(str(base.__module__).partition(".")[0])
        if module is not None:
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


def load_for_tag(tag: str) -> bool:
    """Import the plugin whose codec reads ``tag``, if there is one; whether it is imported."""
    module = PLUGIN_TAGS.get(tag)
    return module is not None and _load(module)


def plugin_decoder(tag: str) -> Callable[[Any], Any] | None:
    """The decoder a plugin registered for ``tag``, importing that plugin first if needed."""
    decode = PLUGIN_DECODERS.get(tag)
    if decode is None and load_for_tag(tag):
        decode = PLUGIN_DECODERS.get(tag)
    return decode


def why_missing_tag(tag: str) -> str | None:
    """Why the plugin that reads ``tag`` could not be imported (naming the extra), or ``None``."""
    module = PLUGIN_TAGS.get(tag)
    return _failed.get(module) if module is not None else None
