"""Hamilton DAGs as actions: ``Hamilton(inputs=..., outputs=..., modules=[...])``.

A Hamilton driver (``hamilton.driver.Driver`` or ``hamilton.async_driver.AsyncDriver``), or the
modules to build one, becomes one action of the state machine::

    summarise = Hamilton(
        inputs={"text": from_state("document"), "top_k": from_value(3)},
        outputs={"n_words": update_state("word_count"), "keywords": append_state("history")},
        modules=[text_features],
    )

The DAG's external inputs come from state keys or constants, the requested nodes' values go into
state, and ``reads``/``writes`` are derived from the two mappings. Overrides replace nodes with
values (constants, or from state with ``from_state``); as in Burr, an input naming a computed
node is an override too. The driver is built once, validated against
the mappings at construction, and reused by every step.

Each step opens a ``hamilton.execute`` span with one ``node:<name>`` child per node that ran,
timed by Hamilton's lifecycle hooks (``HamiltonTracer`` on the sync driver, ``AsyncHamiltonTracer``
on the async one, whose node hooks await the node). A failing node's exception keeps its type and
gains a note naming the node. ``dag_dot()``/``dag_mermaid()`` draw the DAG, and ``to_dot``/
``to_mermaid`` draw a whole graph with each Hamilton action's DAG next to its node.
"""

from __future__ import annotations

from turnout.integrations._guard import missing_extra

try:
    import hamilton.async_driver  # type: ignore[import-untyped]
    import hamilton.driver  # type: ignore[import-untyped]
    import hamilton.lifecycle  # type: ignore[import-untyped]  # noqa: F401
except ImportError as _error:  # pragma: no cover - exercised in a subprocess
    raise missing_extra(
        "turnout.integrations.hamilton", 'pip install "turnout[hamilton]"', _error
    ) from _error

from turnout.integrations._mapping import (
    append_state,
    extend_state,
    from_state,
    from_value,
    update_state,
)
from turnout.integrations.hamilton._action import AsyncHamilton, Hamilton
from turnout.integrations.hamilton._draw import to_dot, to_mermaid
from turnout.integrations.hamilton._tracer import AsyncHamiltonTracer, HamiltonTracer

__all__ = [
    "AsyncHamilton",
    "AsyncHamiltonTracer",
    "Hamilton",
    "HamiltonTracer",
    "append_state",
    "extend_state",
    "from_state",
    "from_value",
    "to_dot",
    "to_mermaid",
    "update_state",
]
