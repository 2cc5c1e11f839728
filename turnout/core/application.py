"""``Application``: a graph, a state and a position, run step by step.

Build one with ``ApplicationBuilder``. ``step`` runs one action, ``iterate`` yields every step
until a halt condition, ``run`` returns the last one. The sequence id and the prior action live
on the application, never inside the user's state.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterable, Mapping
from pathlib import Path
from typing import Any

from turnout.core.action import Action
from turnout.core.condition import default
from turnout.core.context import _CURRENT, ApplicationContext
from turnout.core.errors import StateOperationError, UnknownActionError
from turnout.core.graph import ApplicationGraph
from turnout.core.hooks import HookSet
from turnout.core.state import Change, RawChange, State, as_changes
from turnout.core.step import ActionSpec, check_inputs, finish, prepare, run_action
from turnout.core.visualize import render

__all__ = ["Application", "StepTuple"]

logger = logging.getLogger("turnout")

StepTuple = tuple[Action, "dict[str, Any] | None", State]
_UNKNOWN: Any = object()
_NO_INPUTS: dict[str, Any] = {}


class Application:
    """A running state machine. Create it with ``ApplicationBuilder().....build()``."""

    def __init__(
        self,
        *,
        graph: ApplicationGraph,
        state: State,
        app_id: str,
        partition_key: str | None = None,
        sequence_id: int | None = None,
        hooks: HookSet | None = None,
    ) -> None:
        self._graph = graph
        self._entrypoint = graph.entrypoint.name
        self._specs = {act.name: ActionSpec(act) for act in graph.actions}
        self._spec_of = {id(spec.action): spec for spec in self._specs.values()}
        # An action whose first transition is unconditional always leads to the same action:
        # the hot path then skips the graph lookup.
        self._fixed_next = {
            name: edges[0][1]
            for name, edges in graph._outgoing.items()
            if edges and edges[0][0] is default
        }
        self._state = state
        self._app_id = app_id
        self._partition_key = partition_key
        self._sequence_id = sequence_id
        self._prior: str | None = None
        self._next: Action | None = _UNKNOWN
        self._last_changes: tuple[RawChange, ...] = ()
        self._hooks = hooks if hooks is not None else HookSet(())
        self._has_hooks = bool(self._hooks)
        self._call_hooks = self._hooks.implements("pre_run_execute_call") or self._hooks.implements(
            "post_run_execute_call"
        )
        if self._has_hooks:
            self._hooks.fire(
                "post_application_create",
                app_id=app_id,
                partition_key=partition_key,
                state=state,
                application_graph=graph,
            )

    # -- properties ------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """The current state."""
        return self._state

    @property
    def sequence_id(self) -> int | None:
        """The id of the last step run (0 for the first), ``None`` before any step."""
        return self._sequence_id

    @property
    def uid(self) -> str:
        """The application id (``with_identifiers(app_id=...)`` or a generated UUID)."""
        return self._app_id

    @property
    def app_id(self) -> str:
        return self._app_id

    @property
    def partition_key(self) -> str | None:
        return self._partition_key

    @property
    def graph(self) -> ApplicationGraph:
        return self._graph

    @property
    def entrypoint(self) -> str:
        return self._entrypoint

    @property
    def prior_action(self) -> str | None:
        """The name of the last action that completed, ``None`` at the entrypoint."""
        return self._prior

    @property
    def last_changes(self) -> tuple[Change, ...]:
        """The state changes made by the last completed step."""
        return as_changes(self._last_changes)

    @property
    def context(self) -> ApplicationContext:
        """The context the next step would run with."""
        nxt = self.get_next_action()
        return ApplicationContext(
            app_id=self._app_id,
            partition_key=self._partition_key,
            sequence_id=0 if self._sequence_id is None else self._sequence_id + 1,
            action_name=nxt.name if nxt is not None else None,
        )

    # -- position --------------------------------------------------------------------------------

    def get_next_action(self) -> Action | None:
        """The action the next step would run, or ``None`` when the run is over."""
        if self._next is _UNKNOWN:
            self._next = self._graph.next_action(self._prior, self._state, self._entrypoint)
        return self._next

    def has_next_action(self) -> bool:
        return self.get_next_action() is not None

    def reset_to_entrypoint(self) -> None:
        """Make the entrypoint the next action again; the state and sequence id are kept."""
        self._prior = None
        self._next = _UNKNOWN

    def update_state(self, new_state: State | Mapping[str, Any]) -> None:
        """Replace the whole state (for example after a human edited it)."""
        if not isinstance(new_state, State):
            if not isinstance(new_state, Mapping):
                raise StateOperationError(
                    f"update_state() takes a State (or a mapping), got "
                    f"{type(new_state).__name__}: {new_state!r}."
                )
            new_state = State(new_state)
        self._state = new_state
        self._next = _UNKNOWN

    # -- running ---------------------------------------------------------------------------------

    def step(self, inputs: Mapping[str, Any] | None = None) -> StepTuple | None:
        """Run the next action; return ``(action, result, state)``, or ``None`` if there is none.

        Args:
            inputs: values for the action's inputs; keys it does not take are ignored.
        """
        if not self._call_hooks:
            return self._step(_NO_INPUTS if inputs is None else check_inputs(inputs), "app.step(")
        with _ExecuteCall(self, "step"):
            return self._step(check_inputs(inputs), "app.step(")

    def iterate(
        self,
        *,
        halt_before: Iterable[str] | None = None,
        halt_after: Iterable[str] | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> Generator[StepTuple, None, StepTuple | tuple[None, None, State]]:
        """Yield ``(action, result, state)`` for each step until a halt condition or the end.

        At least one step runs. After each step the run stops if the next action is in
        ``halt_before`` or the one just run is in ``halt_after`` (names, or ``"@tag:<tag>"``).
        The generator's return value is what ``run`` returns. ``inputs`` go to every step.
        """
        before, after = self._halt_sets(halt_before, halt_after)
        call = _call_text("iterate", halt_before, halt_after)
        steps = self._iterate(before, after, check_inputs(inputs), call)
        return self._hooked_iteration(steps) if self._call_hooks else steps

    def _hooked_iteration(
        self, steps: Generator[StepTuple, None, StepTuple | tuple[None, None, State]]
    ) -> Generator[StepTuple, None, StepTuple | tuple[None, None, State]]:
        with _ExecuteCall(self, "iterate"):
            return (yield from steps)

    def run(
        self,
        *,
        halt_before: Iterable[str] | None = None,
        halt_after: Iterable[str] | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> StepTuple | tuple[None, None, State]:
        """Run until a halt condition or the end; return the final ``(action, result, state)``.

        On ``halt_before`` the tuple is ``(next_action, None, state)``; on ``halt_after`` it is
        the halting step's; when no transition matches it is the last step's.
        """
        before, after = self._halt_sets(halt_before, halt_after)
        checked = check_inputs(inputs)
        call = _call_text("run", halt_before, halt_after)
        with _ExecuteCall(self, "run"):
            last: StepTuple | tuple[None, None, State] = (None, None, self._state)
            while True:
                out = self._step(checked, call)
                if out is None:
                    return last
                last = out
                halt = self._halt(out, before, after)
                if halt is not None:
                    return halt

    def _iterate(
        self, before: frozenset[str], after: frozenset[str], inputs: dict[str, Any], call: str
    ) -> Generator[StepTuple, None, StepTuple | tuple[None, None, State]]:
        last: StepTuple | tuple[None, None, State] = (None, None, self._state)
        while True:
            out = self._step(inputs, call)
            if out is None:
                return last
            yield out
            last = out
            halt = self._halt(out, before, after)
            if halt is not None:
                return halt

    def _halt(
        self, out: StepTuple, before: frozenset[str], after: frozenset[str]
    ) -> StepTuple | None:
        """What a run returns if it must stop after the step ``out``; ``None`` to go on.

        ``halt_before`` is checked first: the next action is returned, not run.
        """
        if before:
            nxt = self.get_next_action()
            if nxt is not None and nxt.name in before:
                return nxt, None, self._state
        if self._prior in after:
            return out
        return None

    def _halt_sets(
        self, halt_before: Iterable[str] | None, halt_after: Iterable[str] | None
    ) -> tuple[frozenset[str], frozenset[str]]:
        if halt_before is None and halt_after is None:
            logger.warning(
                "no halt_before/halt_after given: application %r runs until no transition "
                "matches, which may be never",
                self._app_id,
            )
        return self._expand(halt_before, "halt_before"), self._expand(halt_after, "halt_after")

    def _expand(self, names: Iterable[str] | None, argument: str) -> frozenset[str]:
        if names is None:
            return frozenset()
        if isinstance(names, str):
            raise UnknownActionError(
                f"{argument} takes a list of action names, got the string {names!r}; "
                f"write {argument}=[{names!r}]."
            )
        out: set[str] = set()
        unknown: list[str] = []
        for name in names:
            if isinstance(name, str) and name.startswith("@tag:"):
                try:
                    out.update(a.name for a in self._graph.get_actions_by_tag(name[5:]))
                except ValueError as exc:
                    raise UnknownActionError(f"{argument}: {exc}") from None
            elif name in self._specs:
                out.add(name)
            else:
                unknown.append(name)
        if unknown:
            raise UnknownActionError(
                f"{argument} names {', '.join(map(repr, unknown))}, which "
                f"{'is not an action' if len(unknown) == 1 else 'are not actions'}; the actions "
                f"are {', '.join(map(repr, self._specs))} (or use '@tag:<tag>')."
            )
        return frozenset(out)

    def _step(self, inputs: dict[str, Any], call: str) -> StepTuple | None:
        nxt = self._next
        if nxt is _UNKNOWN:
            nxt = self.get_next_action()
        if nxt is None:
            return None
        spec = self._spec_of[id(nxt)]
        sequence_id = 0 if self._sequence_id is None else self._sequence_id + 1

        def ctx() -> ApplicationContext:
            return ApplicationContext(
                app_id=self._app_id,
                partition_key=self._partition_key,
                sequence_id=sequence_id,
                action_name=spec.name,
            )

        base, kwargs = prepare(spec, self._state, inputs, ctx, call)
        # Like Burr, a step that fails still uses up its sequence id.
        self._sequence_id = sequence_id
        hooks = self._has_hooks
        if hooks:
            self._hooks.fire(
                "pre_run_step",
                app_id=self._app_id,
                partition_key=self._partition_key,
                sequence_id=sequence_id,
                state=self._state,
                action=nxt,
                inputs=kwargs,
            )
        token = _CURRENT.set(ctx)
        try:
            result, state, changes = finish(spec, base, run_action(spec, base, kwargs))
        except BaseException as exc:
            if hooks:
                self._fire_post_step(nxt, sequence_id, kwargs, None, self._state, (), exc)
            raise
        finally:
            _CURRENT.reset(token)
        self._state = state
        self._prior = spec.name
        self._next = self._fixed_next.get(spec.name, _UNKNOWN)
        self._last_changes = changes
        if hooks:
            self._fire_post_step(nxt, sequence_id, kwargs, result, state, changes, None)
        return nxt, result, state

    def _fire_post_step(
        self,
        act: Action,
        sequence_id: int,
        inputs: dict[str, Any],
        result: dict[str, Any] | None,
        state: State,
        changes: tuple[RawChange, ...],
        exception: BaseException | None,
    ) -> None:
        self._hooks.fire(
            "post_run_step",
            app_id=self._app_id,
            partition_key=self._partition_key,
            sequence_id=sequence_id,
            state=state,
            action=act,
            inputs=inputs,
            result=result,
            changes=as_changes(changes),
            exception=exception,
        )

    # -- drawing ---------------------------------------------------------------------------------

    def visualize(
        self,
        output_file_path: str | Path | None = None,
        include_conditions: bool = True,
        include_state: bool = False,
        view: bool = False,
        engine: str = "graphviz",
        write_dot: bool = False,
        *,
        format: str | None = None,
        highlight_next: bool = True,
    ) -> str:
        """Draw the graph; return its DOT text and, given a path, write an image there too.

        The image (PNG by default, or the path's suffix / ``format``: svg, pdf, ...) needs the
        Graphviz ``dot`` program; the text does not. ``write_dot`` also writes ``<path>.dot``.
        ``highlight_next`` highlights the action the next step would run.
        """
        if engine != "graphviz":
            raise ValueError(f"engine must be 'graphviz', got {engine!r}")
        nxt = self.get_next_action() if highlight_next else None
        source = self._graph.to_dot(
            current=nxt.name if nxt is not None else None,
            include_conditions=include_conditions,
            include_state=include_state,
        )
        if output_file_path is not None:
            path = Path(output_file_path)
            if write_dot:
                render(source, path.with_suffix(".dot") if path.suffix else Path(f"{path}.dot"))
            written = render(source, path, format=format)
            if view:
                import webbrowser

                webbrowser.open(written.resolve().as_uri())
        return source

    def __repr__(self) -> str:
        return (
            f"Application(app_id={self._app_id!r}, partition_key={self._partition_key!r}, "
            f"sequence_id={self._sequence_id!r}, "
            f"next={getattr(self.get_next_action(), 'name', None)!r})"
        )


def _call_text(method: str, halt_before: Any, halt_after: Any) -> str:
    """The caller's call up to its inputs, for error messages: ``app.run(halt_after=['x'], ``."""
    args = [
        f"{name}={list(value)!r}, "
        for name, value in (("halt_before", halt_before), ("halt_after", halt_after))
        if value is not None
    ]
    return f"app.{method}({''.join(args)}"


class _ExecuteCall:
    """Fires ``pre_run_execute_call``/``post_run_execute_call`` around a public call."""

    __slots__ = ("_app", "_method")

    def __init__(self, app: Application, method: str) -> None:
        self._app = app
        self._method = method

    def __enter__(self) -> None:
        hooks = self._app._hooks
        if hooks.implements("pre_run_execute_call"):
            hooks.fire(
                "pre_run_execute_call",
                app_id=self._app._app_id,
                partition_key=self._app._partition_key,
                state=self._app._state,
                method=self._method,
            )

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        hooks = self._app._hooks
        if hooks.implements("post_run_execute_call"):
            hooks.fire(
                "post_run_execute_call",
                app_id=self._app._app_id,
                partition_key=self._app._partition_key,
                state=self._app._state,
                method=self._method,
                # A caller that stops consuming iterate() early is not a failure.
                exception=None if isinstance(exc, GeneratorExit) else exc,
            )
