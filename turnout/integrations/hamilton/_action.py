"""``Hamilton``: a Hamilton driver, or the modules to build one, as an action."""

from __future__ import annotations

import inspect
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import hamilton.async_driver  # type: ignore[import-untyped]
import hamilton.driver  # type: ignore[import-untyped]
from hamilton.graph_types import HamiltonGraph  # type: ignore[import-untyped]

from turnout.core.action import SingleStepAction, _check_retry
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
from turnout.integrations.hamilton._draw import Wiring, walk
from turnout.integrations.hamilton._tracer import AsyncHamiltonTracer, HamiltonTracer

__all__ = ["AsyncHamilton", "Hamilton"]


def _is_async_driver(dr: Any) -> bool:
    return isinstance(dr, hamilton.async_driver.AsyncDriver)


def _has_async_nodes(modules: Sequence[types.ModuleType]) -> bool:
    """Whether a module defines an ``async def`` node; functions it imports (``from asyncio
    import sleep``) are not its nodes, as Hamilton does not make nodes of them either."""
    return any(
        inspect.iscoroutinefunction(fn)
        for module in modules
        for name, fn in vars(module).items()
        if not name.startswith("_") and inspect.isfunction(fn) and fn.__module__ == module.__name__
    )


def _module_list(modules: Any, owner: str) -> list[types.ModuleType]:
    """``modules`` as a list: one module is accepted as a list of one."""
    if modules is None:
        return []
    if isinstance(modules, types.ModuleType):
        return [modules]
    if isinstance(modules, str | bytes) or not isinstance(modules, Iterable):
        raise TypeError(
            f"{owner}: modules is {modules!r}; give the imported modules of Hamilton functions, "
            f"e.g. modules=[my_features]"
        )
    found = list(modules)
    bad = [m for m in found if not isinstance(m, types.ModuleType)]
    if bad:
        raise TypeError(
            f"{owner}: modules holds {bad!r}, which are not modules; import them and pass the "
            f"module objects, e.g. modules=[my_features]"
        )
    return found


def _driver_or_default(driver: Any, modules: Any) -> Any:
    """``driver``, or the one given to ``Hamilton.set_driver`` when neither ``driver`` nor
    ``modules`` is given (``__new__`` picks the class by it, ``__init__`` runs it)."""
    if driver is None and modules is None:
        return Hamilton._default_driver
    return driver


def _wants_async(driver: Any, modules: Any, asynchronous: bool | None) -> bool:
    if driver is not None:
        return _is_async_driver(driver)
    if asynchronous is not None:
        return asynchronous
    if isinstance(modules, types.ModuleType):
        modules = [modules]
    if not isinstance(modules, Sequence) or not all(
        isinstance(m, types.ModuleType) for m in modules
    ):
        return False  # __init__ refuses them with a clear message
    return _has_async_nodes(modules or ())


def _check_traced(dr: Any, owner: str) -> None:
    wanted = AsyncHamiltonTracer if _is_async_driver(dr) else HamiltonTracer
    adapters = getattr(getattr(dr, "adapter", None), "adapters", ())
    if any(isinstance(adapter, wanted) for adapter in adapters):
        return
    builder = "async_driver.Builder()" if wanted is AsyncHamiltonTracer else "driver.Builder()"
    raise ActionDefinitionError(
        f"{owner}: the driver has no {wanted.__name__}, so its nodes would not appear as spans; "
        f"build it with {builder}...with_adapters({wanted.__name__}()), pass modules=[...] and "
        f"let Hamilton(...) build it, or pass trace_nodes=False"
    )


def _static_overrides(spec: Any) -> Any:
    """Overrides: a str or ``from_state`` reads state; ``from_value`` or any other value is kept."""
    if not isinstance(spec, Mapping):
        return spec
    return {
        name: value if isinstance(value, str | from_state | from_value) else from_value(value)
        for name, value in spec.items()
    }


def _config_gated(modules: Iterable[types.ModuleType]) -> dict[str, list[str]]:
    """``{node name: config keys}`` of the functions under ``@config.when`` (and its kin) in
    ``modules``: nodes that exist only for some configurations."""
    gated: dict[str, list[str]] = {}
    for module in modules:
        for attr, fn in vars(module).items():
            resolvers = getattr(fn, "resolve", None) if inspect.isfunction(fn) else None
            if not isinstance(resolvers, list):
                continue
            for resolver in resolvers:
                try:
                    keys = [*resolver.required_config(), *(resolver.optional_config() or {})]
                except (AttributeError, TypeError):
                    continue
                target = getattr(resolver, "target_name", None)
                name = target if isinstance(target, str) else attr.split("__")[0]
                known = gated.setdefault(name, [])
                known.extend(k for k in keys if k not in known)
    return {name: keys for name, keys in gated.items() if keys}


class Hamilton(SingleStepAction):
    """An action running a Hamilton DAG: state in, requested nodes out.

    Args:
        inputs: the DAG's inputs, ``{input_name: from_state("key") | from_value(v) | "key"}``
            (a list of names reads same-named state keys; a function of state returning the
            dict needs ``reads=[...]``). As in Burr, a name of a computed node is an override:
            the node is not computed, its value comes from the input.
        outputs: the nodes to compute and where each goes, ``{node_name: update_state("key") |
            append_state("key") | extend_state("key") | "key"}``; a list of node names updates
            same-named keys.
        driver: a built ``Driver`` or ``AsyncDriver``, best carrying a ``HamiltonTracer`` (or
            ``AsyncHamiltonTracer``) adapter for one span per node; or give ``modules``.
        modules: modules of Hamilton functions to build the driver from (one module or a
            list).
        config: Hamilton configuration for the built driver.
        overrides: nodes to replace by values, ``{node_name: value | from_value(v) |
            from_state("key") | "key"}`` (a str is a state key, as in ``inputs``).
        adapters: more Hamilton adapters for the built driver.
        asynchronous: build an ``AsyncDriver`` (``None``: when a module has an ``async def``).
        trace_nodes: one span per node: ``None`` (the default) adds the tracer to a built
            driver and accepts a given one as it is (without the tracer, as in Burr, the step's
            span is the only one); ``True`` requires it on a given driver; ``False`` never
            traces nodes.
        reads: extra state keys read, required with a function input spec.
        writes: extra state keys written, required with a function output spec.
        tags: labels of the action.
        name: the action's name (else given by ``with_actions(name=...)``).
        retry: a ``RetryPolicy`` for failed steps.
        app_inputs: names of application inputs the action takes (``app.step(inputs={...})``;
            the other adapters' ``inputs=``, a name Burr gives the DAG's inputs here). An
            input the ``inputs`` spec reads as a state key is taken from the step's inputs
            instead; any other feeds the DAG input (or overrides the node) of its name.

    An ``AsyncDriver`` makes an ``AsyncHamilton`` action, run with ``astep``/``arun``. Without
    ``driver`` and ``modules``, the driver given to ``Hamilton.set_driver`` is used (Burr's).
    """

    # Burr's process-wide default driver (``Hamilton.set_driver``).
    _default_driver: ClassVar[Any] = None

    @staticmethod
    def set_driver(driver: Any) -> None:
        """Use ``driver`` for every ``Hamilton`` action given neither ``driver`` nor
        ``modules`` from now on (process-wide, as in Burr); ``None`` clears it."""
        if driver is not None and not isinstance(
            driver, hamilton.driver.Driver | hamilton.async_driver.AsyncDriver
        ):
            raise ActionDefinitionError(
                f"Hamilton.set_driver({driver!r}): give a built hamilton.driver.Driver or "
                f"hamilton.async_driver.AsyncDriver (call .build() on the Builder)."
            )
        Hamilton._default_driver = driver

    def __new__(cls, *args: Any, **kwargs: Any) -> Hamilton:
        driver = _driver_or_default(
            kwargs.get("driver", args[2] if len(args) > 2 else None), kwargs.get("modules")
        )
        if cls is Hamilton and _wants_async(
            driver,
            kwargs.get("modules"),
            kwargs.get("asynchronous"),
        ):
            cls = AsyncHamilton
        return super().__new__(cls)

    def __init__(
        self,
        inputs: Any,
        outputs: Mapping[str, Any] | Sequence[str],
        driver: Any = None,
        *,
        modules: Sequence[types.ModuleType] | types.ModuleType | None = None,
        config: Mapping[str, Any] | None = None,
        overrides: Any = None,
        adapters: Iterable[Any] = (),
        asynchronous: bool | None = None,
        trace_nodes: bool | None = None,
        reads: Sequence[str] | None = None,
        writes: Sequence[str] | None = None,
        tags: Sequence[str] = (),
        name: str | None = None,
        retry: RetryPolicy | None = None,
        app_inputs: Sequence[str] = (),
    ) -> None:
        super().__init__()
        owner = f"{type(self).__name__}({name!r})" if name is not None else "Hamilton(...)"
        self._app_inputs = input_names(app_inputs, owner)
        driver = _driver_or_default(driver, modules)
        self.retry = _check_retry(retry, owner)
        if name is not None:
            self._name = name
        self._tags = declared_names(tags, "tags", owner) or []
        self._driver = self._make_driver(
            driver,
            _module_list(modules, owner),
            config,
            list(adapters),
            asynchronous,
            trace_nodes,
            owner,
        )
        self._initialised = driver is not None  # a driver built by us needs ainit() (async)
        if isinstance(outputs, str) or not isinstance(outputs, Mapping | Sequence):
            raise TypeError(
                f"{owner}: outputs is {outputs!r}; give {{node_name: update_state('key'), ...}} "
                f"or a list of node names"
            )
        out_spec = outputs if isinstance(outputs, Mapping) else {n: n for n in outputs}
        self._final_vars = [str(name) for name in out_spec]
        self._read_inputs, input_keys = input_reader(
            list(inputs) if isinstance(inputs, tuple) else inputs, reads=reads, owner=owner
        )
        self._input_keys = input_keys
        override_spec = _static_overrides(overrides if overrides is not None else {})
        self._read_overrides, override_keys = input_reader(override_spec, reads=None, owner=owner)
        self._write, self._writes = output_writer(out_spec, writes=writes, owner=owner)
        self._reads = reads_besides(
            list(dict.fromkeys([*input_keys, *override_keys])), self._app_inputs
        )
        self._input_spec = self._named(inputs)
        self._override_spec = self._named(override_spec) or {}
        self._config = dict(config or getattr(getattr(self._driver, "graph", None), "config", {}))
        nodes = {n.name: n for n in HamiltonGraph.from_graph(self._driver.graph).nodes}
        self._computed = frozenset(n for n, node in nodes.items() if not node.is_external_input)
        self._move_computed_inputs(owner)
        self._validate(nodes, owner)
        self._wiring = Wiring(
            graph=self._driver.graph,
            final_vars=self._final_vars,
            inputs=self._input_spec,
            overrides=self._override_spec,
            config=self._config,
            outputs=dict(out_spec),
        )

    def _move_computed_inputs(self, owner: str) -> None:
        """Inputs naming computed nodes become overrides, as Burr decides for its inputs."""
        if self._input_spec is None:  # a function of state: split at run time
            return
        moved = {n: s for n, s in self._input_spec.items() if n in self._computed}
        both = sorted(set(moved) & set(self._override_spec))
        if both:
            raise ActionDefinitionError(
                f"{owner}: {both} given both in inputs (where a computed node is an override) "
                f"and in overrides; give each in one of the two"
            )
        self._input_spec = {n: s for n, s in self._input_spec.items() if n not in moved}
        self._override_spec = {**self._override_spec, **moved}

    @staticmethod
    def _make_driver(
        driver: Any,
        modules: list[types.ModuleType],
        config: Mapping[str, Any] | None,
        adapters: list[Any],
        asynchronous: bool | None,
        trace_nodes: bool | None,
        owner: str,
    ) -> Any:
        if driver is not None:
            if modules or config or adapters:
                raise TypeError(
                    f"{owner}: pass either driver=... or modules=[...] (with config/adapters), "
                    f"not both"
                )
            if not isinstance(driver, hamilton.driver.Driver | hamilton.async_driver.AsyncDriver):
                raise TypeError(
                    f"{owner}: driver is {driver!r}; give a built hamilton.driver.Driver or "
                    f"hamilton.async_driver.AsyncDriver (call .build() on the Builder)"
                )
            if trace_nodes is True:
                _check_traced(driver, owner)
            return driver
        if not modules:
            raise TypeError(
                f"{owner}: give driver=<a built Hamilton driver> or modules=[...], or set a "
                f"default driver with Hamilton.set_driver(driver)"
            )
        if _wants_async(None, modules, asynchronous):
            tracers: list[Any] = [AsyncHamiltonTracer()] if trace_nodes is not False else []
            return (
                hamilton.async_driver.Builder()
                .with_modules(*modules)
                .with_config(dict(config or {}))
                .with_adapters(*tracers, *adapters)
                .build_without_init()
            )
        builder = hamilton.driver.Builder().with_modules(*modules).with_config(dict(config or {}))
        tracers = [HamiltonTracer()] if trace_nodes is not False else []
        if tracers or adapters:
            builder = builder.with_adapters(*tracers, *adapters)
        return builder.build()

    @staticmethod
    def _named(spec: Any) -> dict[str, Any] | None:
        """``{name: source}`` of a mapping or list spec; ``None`` for a function of state."""
        if isinstance(spec, Mapping):
            return {str(k): from_state(v) if isinstance(v, str) else v for k, v in spec.items()}
        if isinstance(spec, Sequence) and not isinstance(spec, str):
            return {str(k): from_state(str(k)) for k in spec}
        return None

    def _validate(self, nodes: Mapping[str, Any], owner: str) -> None:
        computed = sorted(n for n, node in nodes.items() if not node.is_external_input)
        external = sorted(n for n, node in nodes.items() if node.is_external_input)
        unknown = [n for n in self._final_vars if n not in nodes]
        if unknown:
            raise ActionDefinitionError(
                f"{owner}: outputs name {unknown} but the DAG has no such node; its nodes are "
                f"{computed}"
            )
        unknown = [n for n in self._override_spec if n not in nodes]
        if unknown:
            raise ActionDefinitionError(
                f"{owner}: overrides name {unknown} but the DAG has no such node; its nodes are "
                f"{computed}"
            )
        if self._input_spec is None:  # a function of state: its names are known at run time
            return
        unknown = [n for n in self._input_spec if n not in nodes]
        if unknown:
            raise ActionDefinitionError(
                f"{owner}: inputs name {unknown} but the DAG has no such input or node; its "
                f"inputs are {external} (a computed node given as an input is an override)"
            )
        clash = sorted(set(self._input_spec) & set(self._config))
        if clash:
            raise ActionDefinitionError(
                f"{owner}: {clash} given both as inputs and in the Hamilton config; Hamilton "
                f"takes each name from one place, so drop them from one of the two"
            )
        given = {*self._input_spec, *self._override_spec, *self._config, *self._app_inputs}
        missing = sorted(walk(nodes, self._final_vars, self._override_spec)[1] - given)
        gated = _config_gated(getattr(self._driver, "graph_modules", ()) or ())
        unset = {n: gated[n] for n in missing if n in gated}
        if unset:
            name, keys = next(iter(unset.items()))
            raise ActionDefinitionError(
                f"{owner}: the node {name!r} is defined only under @config.when on the config "
                f"key(s) {keys}, and the config {self._config} gives none of its variants (so "
                f"Hamilton takes {name!r} for a DAG input); set it, e.g. "
                f"config={{{keys[0]!r}: ...}}"
                + (f" (the nodes {sorted(unset)} all wait on config)" if len(unset) > 1 else "")
            )
        if missing:
            raise ActionDefinitionError(
                f"{owner}: outputs {self._final_vars} need the DAG inputs {missing}, which inputs "
                f"does not give; add them, e.g. inputs={{{missing[0]!r}: from_state('key')}} "
                f"(the DAG's inputs are {external})"
            )

    @property
    def reads(self) -> list[str]:
        return self._reads

    @property
    def writes(self) -> list[str]:
        return self._writes

    @property
    def inputs(self) -> list[str]:
        return list(self._app_inputs)

    @property
    def tags(self) -> list[str]:
        return self._tags

    @property
    def driver(self) -> Any:
        """The Hamilton driver, built once and reused by every step."""
        return self._driver

    @property
    def final_vars(self) -> list[str]:
        """The nodes each step computes (the keys of ``outputs``)."""
        return list(self._final_vars)

    def _arguments(
        self, state: State, given: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        inputs = with_inputs(
            self._read_inputs, state, given, self._app_inputs,
            spec_keys=self._input_keys, owner=self._label(),
        )  # fmt: skip
        if not isinstance(inputs, Mapping):
            raise TypeError(
                f"{self._label()}: the inputs function returned {type(inputs).__name__}; it "
                f"must return a dict of the DAG's input names to values"
            )
        overrides = dict(self._read_overrides(state))
        overrides.update((k, v) for k, v in inputs.items() if k in self._computed)
        return {k: v for k, v in inputs.items() if k not in self._computed}, overrides

    def _finish(self, results: Any, state: State) -> tuple[dict[str, Any], State]:
        result = dict(results) if isinstance(results, Mapping) else {"result": results}
        return result, self._write(results, state)

    def _label(self) -> str:
        return f"Hamilton action {self.name!r}" if self.has_name else "Hamilton action"

    def run_and_update(self, state: State, **run_kwargs: Any) -> tuple[dict[str, Any], State]:
        inputs, overrides = self._arguments(state, run_kwargs)
        try:
            # raw_execute, as Burr calls it: the nodes' values, whatever result builder the
            # driver has (a Driver's default one would make pandas Series of them)
            results = self._driver.raw_execute(self._final_vars, inputs=inputs, overrides=overrides)
        except Exception as error:
            add_note(error, f"raised while running the DAG of {self._label()}")
            raise
        return self._finish(results, state)

    def dag_dot(self, *, full: bool = False) -> str:
        """The DAG as Graphviz DOT text: the nodes a step runs (``full``: every node), with
        where each input comes from and where each output goes."""
        return self._wiring.dot(full=full)

    def dag_mermaid(self, *, full: bool = False) -> str:
        """The DAG as a Mermaid flowchart; ``full`` as in ``dag_dot``."""
        return self._wiring.mermaid(full=full)


class AsyncHamilton(Hamilton):
    """A ``Hamilton`` action over an ``AsyncDriver``: run it with ``astep``/``arun``."""

    async def run_and_update(  # type: ignore[override]
        self, state: State, **run_kwargs: Any
    ) -> tuple[dict[str, Any], State]:
        if not self._initialised:  # adapters' post-graph-construct hooks, once per driver
            self._initialised = True
            await self._driver.ainit()
        inputs, overrides = self._arguments(state, run_kwargs)
        try:
            results = await self._driver.raw_execute(
                self._final_vars, inputs=inputs, overrides=overrides
            )
        except Exception as error:
            add_note(error, f"raised while running the DAG of {self._label()}")
            raise
        return self._finish(results, state)
