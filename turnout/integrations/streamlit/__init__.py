"""turnout on Streamlit: the tracking UI (``turnout ui``), views for your own pages, and Burr's
explorer helpers.

``turnout ui`` runs ``app.py`` (the UI script) over a storage directory; ``data`` reads the local
tracker's logs for it without Streamlit; ``demo`` fills an empty directory with demo runs;
``views`` holds building blocks for your own page over a live application.

Burr's helpers (``burr.integrations.streamlit``) are importable from here, as in Burr:
``AppState``, ``Record``, ``get_state``, ``update_state``, ``set_slider_to_current``,
``load_state_from_log_file``, ``render_explorer``, ``render_state_machine``, ``render_action``
and ``render_state_results`` (``explorer``). They load on first use, so importing this package
for the UI or the views does not load them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from turnout.integrations._guard import missing_extra

try:
    import streamlit  # noqa: F401
except ImportError as _error:
    raise missing_extra(
        "turnout.integrations.streamlit", 'pip install "turnout[start]"', _error
    ) from _error

if TYPE_CHECKING:
    from turnout.integrations.streamlit.explorer import (
        AppState,
        Record,
        get_state,
        load_state_from_log_file,
        render_action,
        render_explorer,
        render_state_machine,
        render_state_results,
        set_slider_to_current,
        update_state,
    )

__all__ = [
    "AppState",
    "Record",
    "get_state",
    "load_state_from_log_file",
    "render_action",
    "render_explorer",
    "render_state_machine",
    "render_state_results",
    "set_slider_to_current",
    "update_state",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from turnout.integrations.streamlit import explorer

        return getattr(explorer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
