"""``HaystackAction``: a Haystack component or pipeline as an action."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from haystack.tracing.tracer import tracer as haystack_tracer

from turnout.core.action import Action
from turnout.core.errors import ActionDefinitionError
from turnout.core.retry import RetryPolicy
from turnout.core.state import State
from turnout.integrations._inputs import input_names, reads_besides, with_inputs
from turnout.integrations._mapping import (
    declared_names,
    from_state,
    from_value,
    input_reader,
    output_writer,
)
from turnout.integrations._notes import add_note
from turnout.integrations.haystack._sockets import Sockets, sockets_of
from turnout.integrations.haystack._tracing import trace_haystack

__all__ = ["HaystackAction"]


class HaystackAction(Action):
    """A Haystack component (anything made with ``@component``) or ``Pipeline`` as an action.

    Args:
        component: the component or pipeline to run: ``run`` (``run_async`` with
            ``is_async=True``; a component without ``run_async`` then runs in a worker thread).
        input: what it receives, by input name: a list of names (each read from the state key
            of that name), one name, a mapping ``{input: "state_key" | from_state(...) |
            from_value(constant)}``, or a function of the state returning the mapping (then pass
            ``reads``). A pipeline's inputs are named ``"component.socket"``, or by the socket
            alone to feed every component with that open input (as ``Pipeline.run`` does).
        output: where the output goes: a state key (the whole output dict), a mapping of output
            names (``"replies"``; ``"component.socket"`` or a socket alone for a pipeline) to
            ``"state_key"`` / ``update_state`` / ``append_state`` / ``extend_state``, or a
            function ``(output, state) -> state`` (then pass ``writes``).
        reads: state keys read besides the input's; as in Burr, without ``input`` it is the input
            (a list of names, or ``{input: state_key}``).
        writes: state keys written besides the output's; as in Burr, without ``output`` it is
            the output (a list of output names, or ``{state_key: output}``).
        inputs: names of application inputs (``app.step(inputs={...})``) fed to the inputs of
            their name (or replacing a state key of their name in ``input``).
        name: the action's name (else given by ``with_actions(name=...)``).
        bound_params: constants for inputs (Burr's), like ``from_value`` in ``input``.
        do_warm_up: call the component's ``warm_up()`` once before its first run (pipelines warm
            their components up themselves).
        is_async: run with ``run_async``; the action must then run with ``astep``/``arun``.
        tags: action tags (``halt_after=["@tag:x"]``).
        retry: a ``RetryPolicy`` for failed steps.

    Names are checked against the component's real inputs and outputs here, at construction.
    The step's result is the component's (or pipeline's) output dict. Each run opens Haystack's
    spans inside ``trace_haystack()``, so they nest under the step span.
    """

    def __init__(
        self,
        component: Any,
        input: Any = None,
        output: Any = None,
        *,
        reads: Sequence[str] | Mapping[str, str] | None = None,
        writes: Sequence[str] | Mapping[str, str] | None = None,
        inputs: Sequence[str] = (),
        name: str | None = None,
        bound_params: Mapping[str, Any] | None = None,
        do_warm_up: bool = True,
        is_async: bool = False,
        tags: Sequence[str] = (),
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__()
        owner = f"HaystackAction({name or type(component).__name__})"
        self._sockets: Sockets = sockets_of(component, owner)
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ActionDefinitionError(
                f"{owner}: retry= takes a RetryPolicy(max_attempts=..., ...), got {retry!r}"
            )
        if input is None:  # Burr's form: reads is the input
            input, reads = ({} if reads is None else reads), None
        if output is None:  # Burr's form: writes is the output, {state_key: output}
            if writes is None:
                raise ActionDefinitionError(
                    f"{owner}: say where the output goes: output='state_key' (the whole output), "
                    f"output={{'output_name': 'state_key'}}, or writes=[output names]"
                )
            output, writes = _burr_writes(writes, owner), None
        input = _input_spec(input, bound_params, owner)
        self.component = component
        self._owner = owner
        self._inputs = input_names(inputs, owner)
        self._read, self._spec_keys = input_reader(input, reads=_names(reads, owner), owner=owner)
        self._reads = reads_besides(self._spec_keys, self._inputs)
        if isinstance(input, Mapping):
            named = list(input)
            named += [n for n in self._inputs if n not in named and n not in self._spec_keys]
            self._sockets.check_inputs(named, owner)
        self._paths: dict[str, tuple[str, ...]] | None = None
        if isinstance(output, Mapping):
            self._paths = {f: self._sockets.output_path(str(f), owner) for f in output}
        self._write, self._writes = output_writer(output, writes=_names(writes, owner), owner=owner)
        self._include = _include_outputs_from(self._sockets, self._paths)
        self._async = bool(is_async)
        self._tags = declared_names(tags, "tags", owner) or []
        self._warm_up = bool(do_warm_up) and not self._sockets.pipeline
        self._warm_lock = threading.Lock()
        self._warmed = False
        self.retry = retry
        if name is not None:
            self._name = name

    @property
    def reads(self) -> list[str]:
        return list(self._reads)

    @property
    def writes(self) -> list[str]:
        return list(self._writes)

    @property
    def inputs(self) -> list[str]:
        return list(self._inputs)

    @property
    def tags(self) -> list[str]:
        return list(self._tags)

    def is_async(self) -> bool:
        return self._async

    def _unnamed_label(self) -> str:
        return self._owner

    def run(self, state: State, **given: Any) -> Any:
        """The component's (pipeline's) output dict, or a coroutine of it when async."""
        data = self._data(state, given)
        if self._async:
            return self._arun(data)
        with self._running():
            if self._sockets.pipeline:
                return dict(self.component.run(data, include_outputs_from=self._include))
            self._warm()
            with self._span():
                return dict(self.component.run(**data))

    async def _arun(self, data: dict[str, Any]) -> dict[str, Any]:
        with self._running():
            if self._sockets.pipeline:
                out = await self.component.run_async(data, include_outputs_from=self._include)
                return dict(out)
            self._warm()
            with self._span():
                if getattr(self.component, "__haystack_supports_async__", False):
                    return dict(await self.component.run_async(**data))
                # as Haystack's async pipeline runs a sync component: in a worker thread, which
                # copies the context, so spans it opens nest under this one
                return dict(await asyncio.to_thread(self.component.run, **data))

    def update(self, result: dict[str, Any], state: State) -> State:
        """Write the output with the output spec."""
        if self._paths is None:
            return self._write(result, state)
        view = {field: _at(result, path, field, self._owner) for field, path in self._paths.items()}
        return self._write(view, state)

    def _data(self, state: State, given: dict[str, Any]) -> dict[str, Any]:
        value = with_inputs(
            self._read, state, given, self._inputs, spec_keys=self._spec_keys, owner=self._owner
        )
        if not isinstance(value, Mapping):
            raise TypeError(
                f"{self._owner}: the input must be a mapping of input names to values, but the "
                f"input spec gave {type(value).__name__}: {value!r}"
            )
        if not self._sockets.pipeline:
            return dict(value)
        data: dict[str, dict[str, Any]] = {}
        for key, item in value.items():
            component, dot, socket = str(key).partition(".")
            targets = [(component, socket)] if dot else [(c, key) for c in self._sockets.bare[key]]
            for comp, sock in targets:
                data.setdefault(comp, {})[sock] = item
        return data

    def _warm(self) -> None:
        if not self._warm_up or self._warmed:
            return
        with self._warm_lock:
            if not self._warmed:
                warm_up = getattr(self.component, "warm_up", None)
                if callable(warm_up):
                    warm_up()
                self._warmed = True

    @contextmanager
    def _running(self) -> Iterator[None]:
        try:
            with trace_haystack():
                yield
        except Exception as error:
            name = self.name if self.has_name else self._owner
            what = "pipeline" if self._sockets.pipeline else "component"
            add_note(error, f"raised by the Haystack {what} of action {name!r}")
            raise

    def _span(self) -> Any:
        """The span of a lone component's run, as a pipeline opens one per component."""
        name = self.name if self.has_name else type(self.component).__name__
        return haystack_tracer.trace(
            "haystack.component.run",
            tags={
                "haystack.component.name": name,
                "haystack.component.type": type(self.component).__name__,
            },
        )


def _names(value: Any, owner: str) -> list[str] | None:
    if isinstance(value, Mapping):  # Burr's mapping forms are consumed before this
        raise ActionDefinitionError(
            f"{owner}: reads/writes beside input=/output= are extra state keys (a list); "
            f"put the mapping in input=/output="
        )
    return declared_names(value, "reads/writes", owner)


def _burr_writes(writes: Any, owner: str) -> dict[str, str]:
    """Burr's ``writes``: output names (each written to the state key of its name) or
    ``{state_key: output}``, as an output spec ``{output: state_key}``."""
    if isinstance(writes, Mapping):
        return {str(out): str(key) for key, out in writes.items()}
    names = declared_names(writes, "writes", owner) or []
    return {n: n for n in names}


def _input_spec(spec: Any, bound: Mapping[str, Any] | None, owner: str) -> Any:
    """A name becomes a list of one; a list a mapping; bound constants join a mapping."""
    if isinstance(spec, str | from_state):
        key = spec if isinstance(spec, str) else spec.key
        spec = {key: spec}
    elif isinstance(spec, Sequence) and all(isinstance(k, str) for k in spec):
        spec = {k: k for k in spec}
    if not bound:
        return spec
    if not isinstance(spec, Mapping):
        raise ActionDefinitionError(
            f"{owner}: bound_params needs a list or mapping input, not {spec!r}; or put "
            f"from_value(...) in the function's result"
        )
    return {**spec, **{k: from_value(v) for k, v in bound.items()}}


def _include_outputs_from(
    sockets: Sockets, paths: Mapping[str, tuple[str, ...]] | None
) -> set[str] | None:
    """The components whose outputs the mapping names although the pipeline does not return
    them (they feed other components)."""
    if not sockets.pipeline or paths is None:
        return None
    wanted = {".".join(p) for p in paths.values()}
    return {name.split(".", 1)[0] for name in wanted if name not in sockets.leaves} or None


def _at(result: Mapping[str, Any], path: tuple[str, ...], field: str, owner: str) -> Any:
    value: Any = result
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(
                f"{owner}: the output has no {field!r} this run (it has {sorted(result)}); a "
                f"component that did not run gives no output"
            )
        value = value[part]
    return value
