"""A Burr-style Streamlit page over the counter (the layout of Burr's examples'
``streamlit_app.py``): a Forward button steps the application, each step is appended to the
history as a ``Record``, and ``render_explorer`` shows the graph, the action and the state of the
step the slider picks. Past the end, Forward starts the count again."""

from __future__ import annotations

import counter_application as counter
import streamlit as st

from turnout.integrations.streamlit import (
    AppState,
    Record,
    get_state,
    render_explorer,
    set_slider_to_current,
    update_state,
)


def counter_view(app_state: AppState) -> None:
    application = app_state.app
    if st.button("Forward", width="stretch"):
        step_output = application.step()
        if step_output is None:  # the run ended: count again from 0
            application.update_state(application.state.update(counter=0))
            application.reset_to_entrypoint()
            step_output = application.step()
        assert step_output is not None
        action, result, state = step_output
        app_state.history.append(Record(state.get_all(), action.name, result))
        set_slider_to_current()


def retrieve_state() -> AppState:
    if "burr_state" not in st.session_state:
        return AppState.from_empty(app=counter.application())
    return get_state()


def main() -> None:
    st.title("Counting with turnout")
    app_state = retrieve_state()
    left, right = st.columns(2)
    with left:
        counter_view(app_state)
        lines = [
            f"Counted to {r.state['counter']}!" if r.action == "counter" else "Done counting."
            for r in app_state.history
        ]
        st.code("\n".join(lines), language=None)
    with right:
        render_explorer(app_state)
    update_state(app_state)


main()
