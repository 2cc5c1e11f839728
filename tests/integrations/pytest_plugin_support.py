"""Shared by the pytest plugin's tests: how an inner pytest run loads the plugin."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

PLUGIN = "turnout.integrations.pytest"


def plugin_args() -> list[str]:
    """``-p turnout.integrations.pytest`` unless the installed turnout's ``pytest11`` entry point
    loads it already (an editable install made before the entry point existed does not)."""
    if any(ep.value == PLUGIN for ep in entry_points(group="pytest11")):
        return []
    return ["-p", PLUGIN]


def run_inner(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Run pytest on the pytester directory in this process, with the plugin loaded (its
    markers must pass ``--strict-markers`` on their own)."""
    return pytester.runpytest(*plugin_args(), "-p", "no:cacheprovider", "--strict-markers", *args)
