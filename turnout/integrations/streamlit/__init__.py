"""turnout on Streamlit: views for your own Streamlit pages, and Burr's explorer helpers.

``views`` holds building blocks for your own page over a live application (graph, state with
its diff, step controls, trace, chat); ``render`` the text helpers they share. The tracking UI
(``turnout ui``) is a web application of its own (``turnout.integrations.fastapi.ui``) and does
not use Streamlit.

Burr's helpers (``burr.integrations.streamlit``) are importable from here, as in Burr:
``AppState``, ``Record``, ``get_state``, ``update_state``, ``set_slider_to_current``,
``load_state_from_log_file``, ``render_explorer``, ``render_state_machine``, ``render_action``
and ``render_state_results`` (``explorer``). They load on first use, so importing this package
for the views does not load them.

Needs ``pip install "turnout[streamlit]"``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from turnout.integrations._guard import missing_extra

try:
    import streamlit  # noqa: F401
except ImportError as _error:
    raise missing_extra(
        "turnout.integrations.streamlit", 'pip install "turnout[streamlit]"', _error
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
