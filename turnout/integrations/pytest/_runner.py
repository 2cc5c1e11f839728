"""The ``run_app`` fixture's runner: build an application tracked in the test's home, run it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turnout.core.application import Application
from turnout.core.builder import ApplicationBuilder
from turnout.core.state import State

__all__ = ["AppRunner", "RunOutcome"]

PROJECT = "pytest"


@dataclass(frozen=True, kw_only=True, slots=True)
class RunOutcome:
    """What ``run_app`` returns.

    Attributes:
        action: the name of the last action run (or the one halted before; ``None`` if
            the run was stopped before any step).
        result: its result (``None`` when halted before it).
        state: the final state.
        app: the application, to step it further or inspect it.
        log_path: the tracking log of the run, or ``None`` for an application built elsewhere.
    """

    action: str | None
    result: Mapping[str, Any] | None
    state: State
    app: Application
    log_path: Path | None


class AppRunner:
    """``run_app(builder_or_factory, *, halt_before=None, halt_after=None, inputs=None)``.

    ``builder_or_factory`` is an ``ApplicationBuilder`` (it gets a local tracker in the test's
    tracking home, project ``pytest``), or a function of no
    arguments returning a builder or a built ``Application`` (run as it is).
    """

    def __init__(self, *, storage_dir: Path) -> None:
        self.storage_dir = storage_dir

    def __call__(
        self,
        builder_or_factory: ApplicationBuilder | Callable[[], ApplicationBuilder | Application],
        *,
        halt_before: Iterable[str] | None = None,
        halt_after: Iterable[str] | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> RunOutcome:
        made: Any = builder_or_factory
        if not isinstance(made, ApplicationBuilder) and callable(made):
            made = made()
        log_path: Path | None = None
        if isinstance(made, ApplicationBuilder):
            from turnout.core.tracking import LocalTracker  # not at pytest's start

            tracker = LocalTracker(PROJECT, self.storage_dir)
            made = made.with_tracker(tracker).build()
            log_path = tracker.log_path(made.uid)
        if not isinstance(made, Application):
            raise TypeError(
                f"run_app: expected an ApplicationBuilder, an Application or a function "
                f"returning one, got {builder_or_factory!r}"
            )
        action, result, state = made.run(
            halt_before=halt_before, halt_after=halt_after, inputs=inputs
        )
        return RunOutcome(
            action=action.name if action is not None else None,
            result=result,
            state=state,
            app=made,
            log_path=log_path,
        )
