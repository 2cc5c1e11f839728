"""Typed state with pydantic models (Burr's ``burr.integrations.pydantic``).

Declare the state as a model and hand it to the builder; actions then read and write models::

    class Counter(pydantic.BaseModel):
        count: int = 0

    @action.pydantic(reads=["count"], writes=["count"])
    def count(state: Counter, step: int = 1) -> Counter:
        state.count += step
        return state

    app = (
        ApplicationBuilder()
        .with_actions(count)
        .with_transitions(("count", "count"))
        .with_typing(PydanticTypingSystem(Counter))
        .with_state(Counter())
        .with_entrypoint("count")
        .build()
    )
    app.step()
    app.state.data  # Counter(count=1)

Each action sees a model made of the fields it reads (its writes, when not read, are optional
there) and only the fields it writes are taken from what it returns, validated, and merged into
the state. A value that does not fit raises ``StateValidationError`` (a ``ValueError``) naming the
action, the field, the value's type and the expected type; pydantic's error is its ``__cause__``.

Class actions (``Action`` with ``run``/``update``, ``StreamingAction``) receive models too when
their ``schema`` is a ``PydanticActionSchema``: ``run`` gets the model of its reads, ``update``
gets the model of the whole state and returns it (or a ``State``); its ``writes`` are validated
and merged as above.

``@action.pydantic`` and ``@streaming_action.pydantic`` load this module by themselves. Needs
``pip install "turnout[pydantic]"``.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import functools
import inspect
import typing
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Generator, Sequence
from typing import Any, TypeVar

from turnout.integrations._guard import missing_extra

try:
    import pydantic
    from pydantic_core import PydanticUndefined
except ImportError as _error:  # pragma: no cover - exercised in a subprocess
    raise missing_extra(
        "turnout.integrations.pydantic", 'pip install "turnout[pydantic]"', _error
    ) from _error

from turnout.core.action import Action, FunctionBasedAction, _attach, derive_inputs_from_fn
from turnout.core.context import ApplicationContext
from turnout.core.errors import (
    ActionDefinitionError,
    InvalidActionReturnError,
)
from turnout.core.graph import Graph
from turnout.core.schemas import DIALECT
from turnout.core.serde import DEFAULT_SERDE
from turnout.core.state import State
from turnout.core.streaming import FunctionBasedStreamingAction
from turnout.core.typing import ActionSchema, TypingSystem
from turnout.integrations._pydantic_answers import validate_answer as validate_answer
from turnout.integrations._pydantic_checks import (
    _check_stream_type,
    _is_model,
    _short,
    _validate_and_extract_signature_types,
    _validate_keys,
    _validation_error,
)
from turnout.integrations._pydantic_fast import construct, constructible, exact_types

__all__ = [
    "PydanticActionFunction",
    "PydanticActionSchema",
    "PydanticTypingSystem",
    "merge_to_state",
    "model_from_state",
    "model_to_dict",
    "pydantic_action",
    "pydantic_streaming_action",
    "subset_model",
]

PydanticActionFunction = Callable[..., pydantic.BaseModel | Awaitable[pydantic.BaseModel]]
"""A function ``@action.pydantic`` decorates: a model (and inputs) in, a model out."""

ModelType = TypeVar("ModelType", bound=pydantic.BaseModel)
StateModel = TypeVar("StateModel", bound=pydantic.BaseModel)
Model = type[pydantic.BaseModel]


# -- models and state ----------------------------------------------------------------------------


def model_to_dict(
    model: pydantic.BaseModel, include: Sequence[str] | None = None
) -> dict[str, Any]:
    """The fields of ``model`` (those in ``include`` only, when given) as a dict of their values,
    not dumped: nested models stay models."""
    fields = _fields(type(model))
    keys = list(fields) if include is None else [key for key in include if key in fields]
    return {key: getattr(model, key) for key in keys}


def _fields(model: Model) -> dict[str, Any]:
    # The class's field map without going through the ``model_fields`` descriptor, which costs
    # a microsecond per access on every step.
    fields: dict[str, Any] = getattr(model, "__pydantic_fields__", None) or model.model_fields
    return fields


def subset_model(
    model: type[ModelType],
    fields: Sequence[str],
    force_optional_fields: Sequence[str],
    model_name_suffix: str,
) -> type[ModelType]:
    """A model of ``model``'s ``fields`` as declared, plus its ``force_optional_fields`` made
    optional (a required one gets ``None`` as its default). Names absent from ``model`` are
    ignored; the configuration is ``model``'s."""
    new_fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name in fields:
            new_fields[name] = (info.annotation, info)
        elif name in force_optional_fields:
            optional = copy.deepcopy(info)
            if optional.default_factory is None and optional.default is PydanticUndefined:
                optional.default = None
                declared: Any = info.annotation
                if declared is not None:
                    optional.annotation = declared | None
            new_fields[name] = (optional.annotation, optional)
    created: type[ModelType] = pydantic.create_model(
        model.__name__ + model_name_suffix, __config__=model.model_config, **new_fields
    )
    return created


def merge_to_state(model: pydantic.BaseModel, write_keys: Sequence[str], state: State) -> State:
    """``state`` updated with the fields of ``model`` named in ``write_keys``."""
    return state.update(**model_to_dict(model, include=write_keys))


def model_from_state(model: type[ModelType], state: State) -> ModelType:
    """A ``model`` (validated) from the state's values of its fields; fields absent from the
    state take their defaults."""
    return model(**{key: state[key] for key in model.model_fields if key in state})


# -- errors --------------------------------------------------------------------------------------


def _build(
    model: Model, values: dict[str, Any], shown: str, action: str | Callable[[], str], verb: str
) -> Any:
    """``model`` validated from ``values``; ``action`` (a name, or a function giving it, called
    only on failure) names the action in the ``StateValidationError``."""
    try:
        return model.__pydantic_validator__.validate_python(values)
    except pydantic.ValidationError as exc:
        name = action if isinstance(action, str) else action()
        raise _validation_error(exc, model, shown, f"action {name!r} {verb}") from exc


def _checked_as(state: State, model: Model) -> bool:
    """Whether ``state``'s values were validated against ``model`` already: its typing system
    is ``PydanticTypingSystem(model)``, which checks the initial state at ``build()`` and every
    write at its step, so reading needs no second check."""
    typing_system = state.typing_system
    return isinstance(typing_system, PydanticTypingSystem) and typing_system.model_type is model


def _action_name(fn: Callable[..., Any]) -> str:
    """The running step's action name (the name in the graph), else the function's name."""
    context = ApplicationContext.get()
    if context is not None and context.action_name is not None:
        return context.action_name
    return str(getattr(fn, "__name__", fn))


# -- declarations --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _cached_subset(model: Model, fields: tuple[str, ...], optional: tuple[str, ...]) -> Model:
    return subset_model(model, fields, optional, "_" + "_".join(fields or ("none",)))


class PydanticActionSchema(ActionSchema[StateModel, StateModel, Any]):
    """An action's state models (Burr's class): what it reads, what it writes, and the type of
    its result or streamed items. A class action returning one from ``schema`` receives models
    in ``run`` and ``update`` (see the module docstring)."""

    converts_state = True

    def __init__(
        self,
        input_type: type[StateModel],
        output_type: type[StateModel],
        intermediate_result_type: Any = dict,
    ) -> None:
        self._input_type = input_type
        self._output_type = output_type
        self._intermediate_result_type = intermediate_result_type

    def state_input_type(self) -> type[StateModel]:
        return self._input_type

    def state_output_type(self) -> type[StateModel]:
        return self._output_type

    def intermediate_result_type(self) -> Any:
        return self._intermediate_result_type

    def for_run(self, state: State, action: Action) -> Any:
        reads = tuple(action.reads)
        optional = tuple(key for key in action.writes if key not in reads)
        model = _cached_subset(self._input_type, reads, optional)
        values = {key: state[key] for key in _fields(model) if key in state}
        if not _checked_as(state, self._input_type):
            checked = _build(model, values, self._input_type.__name__, str(action.name), "reads")
            values = model_to_dict(checked, include=reads)
        # An instance of the declared class itself, as the action's annotations say, the
        # fields it does not read left at their defaults.
        return self._input_type.model_construct(**values)

    def for_update(self, state: State, action: Action) -> Any:
        # Every field was validated when it was written: build the model without validating.
        model = self._output_type
        return model.model_construct(**{k: state[k] for k in model.model_fields if k in state})

    def merge_update(self, returned: Any, state: State, action: Action) -> Any:
        if not isinstance(returned, pydantic.BaseModel):
            return returned
        writes = tuple(action.writes)
        model = _cached_subset(self._output_type, writes, ())
        values = model_to_dict(returned, include=writes)
        output = _build(model, values, self._output_type.__name__, str(action.name), "wrote")
        return merge_to_state(output, writes, state)


# -- decorators ----------------------------------------------------------------------------------


def _types(
    fn: Callable[..., Any], state_input_type: Model | None, state_output_type: Model | None
) -> tuple[Model, Model]:
    if state_input_type is None and state_output_type is None:
        return _validate_and_extract_signature_types(fn)
    if state_input_type is None or state_output_type is None:
        raise ActionDefinitionError(
            f"@action.pydantic on {getattr(fn, '__qualname__', fn)!r}: give both "
            f"state_input_type= and state_output_type=, or neither (they are then read from the "
            f"annotations)."
        )
    for given in (state_input_type, state_output_type):
        if not _is_model(given):
            raise ActionDefinitionError(
                f"@action.pydantic on {getattr(fn, '__qualname__', fn)!r}: state types must be "
                f"pydantic.BaseModel subclasses, got {given!r}."
            )
    return state_input_type, state_output_type


class _Models:
    """The subset models of one pydantic action and the conversions between them and state."""

    def __init__(
        self,
        fn: Callable[..., Any],
        reads: list[str],
        writes: list[str],
        itype: Model,
        otype: Model,
    ) -> None:
        _validate_keys(itype, reads, fn)
        _validate_keys(otype, writes, fn)
        self.fn = fn
        self.writes = writes
        self.itype, self.otype = itype, otype
        self.input = subset_model(
            itype, reads, [key for key in writes if key not in reads], f"{fn.__name__}_input"
        )
        self.input_fields = tuple(self.input.model_fields)
        self.output = subset_model(otype, writes, [], f"{fn.__name__}_output")
        self.output_keys = tuple(key for key in writes if key in _fields(self.output))
        self.validate_input = self.input.__pydantic_validator__.validate_python
        self.constructible = constructible(self.input)
        # Written values whose exact type pydantic would keep unchanged skip its run (see
        # _pydantic_fast), when the function returns the model it got or a whole state model.
        exact = exact_types(self.output)
        self.write_checks = (
            None if exact is None else tuple((key, exact[key]) for key in self.output_keys)
        )
        self.fast_classes = tuple(
            cls for cls in (self.input, otype) if set(self.output_keys) <= set(_fields(cls))
        )

    def name(self) -> str:
        return _action_name(self.fn)

    def model_in(self, state: State) -> Any:
        values = state.pick(self.input_fields)
        if (
            self.constructible
            and len(values) == len(self.input_fields)
            and _checked_as(state, self.itype)
        ):
            # Every value was validated against these very fields when it was written, and
            # plain values are immutable: validating them again would change nothing.
            return construct(self.input, values)
        # Otherwise validated, which also copies lists and dicts, so the function's changes to
        # them never reach the state it was given.
        try:
            return self.validate_input(values)
        except pydantic.ValidationError as exc:
            shown = self.itype.__name__
            subject = f"action {self.name()!r} reads"
            raise _validation_error(exc, self.input, shown, subject) from exc

    def state_out(self, returned: Any, state: State) -> State:
        checks = self.write_checks
        if checks is not None and type(returned) in self.fast_classes:
            given = returned.__dict__
            values = {}
            for key, types in checks:
                value = given.get(key, given)  # ``given``: absent (a model_construct gap)
                if type(value) not in types:
                    break
                values[key] = value
            else:
                return state.update(**values)  # what pydantic would return, unchanged
        fields = getattr(type(returned), "__pydantic_fields__", None)
        if fields is None:
            raise InvalidActionReturnError(
                f"action {_action_name(self.fn)!r} (@action.pydantic on "
                f"{self.fn.__qualname__!r}) must return a {self.otype.__name__} model, got "
                f"{type(returned).__name__}: {_short(returned)}."
            )
        values = {key: getattr(returned, key) for key in self.writes if key in fields}
        output = _build(self.output, values, self.otype.__name__, self.name, "wrote")
        # Every write, as validated (pydantic may convert a value), as Burr merges them.
        return state.update(**output.__dict__)


def pydantic_action(
    reads: list[str],
    writes: list[str],
    state_input_type: Model | None = None,
    state_output_type: Model | None = None,
    tags: list[str] | None = None,
) -> Callable[[PydanticActionFunction], PydanticActionFunction]:
    """``@action.pydantic``: the function takes a model of the state's ``reads`` (its
    ``writes`` optional) and its inputs, and returns a model whose ``writes`` are validated and
    merged into the state. The model types come from the ``state`` parameter's and the return
    annotation unless both are given. Sync or ``async def``."""

    def decorator(fn: PydanticActionFunction) -> PydanticActionFunction:
        itype, otype = _types(fn, state_input_type, state_output_type)
        models = _Models(fn, reads, writes, itype, otype)

        def action_function(state: State, **kwargs: Any) -> State:
            return models.state_out(fn(state=models.model_in(state), **kwargs), state)

        async def async_action_function(state: State, **kwargs: Any) -> State:
            returned = await fn(state=models.model_in(state), **kwargs)  # type: ignore[misc]
            return models.state_out(returned, state)

        run = async_action_function if inspect.iscoroutinefunction(fn) else action_function
        spec = FunctionBasedAction(
            functools.wraps(fn)(run),
            reads,
            writes,
            input_spec=_inputs(fn),
            originating_fn=fn,
            schema=_self_validating(PydanticActionSchema(models.input, models.output, dict), otype),
            tags=tags,
        )
        _attach(fn, spec)
        return fn

    return decorator


def _self_validating(schema: PydanticActionSchema[Any], otype: Model) -> PydanticActionSchema[Any]:
    """``schema``, marked as the schema of a function whose returned writes ``_Models``
    validates against ``otype``'s fields: in an application typed with ``otype``, the engine
    skips the typing system's second check of them."""
    schema.writes_validated_as = otype
    return schema


def _inputs(fn: Callable[..., Any]) -> tuple[list[str], list[str]]:
    return derive_inputs_from_fn({}, fn)


def pydantic_streaming_action(
    reads: list[str],
    writes: list[str],
    state_input_type: Model,
    state_output_type: Model,
    stream_type: Any,
    tags: list[str] | None = None,
) -> Callable[[Callable[..., Any]], Any]:
    """``@streaming_action.pydantic``: a generator (sync or async) taking a model of the
    state's ``reads`` that yields ``(item, None)`` and, last, ``(item, model)``; the last
    model's ``writes`` are validated and merged into the state. ``stream_type`` is the items'
    type: a model, a union of models, or ``dict``."""

    def decorator(fn: Callable[..., Any]) -> Any:
        item_type = _check_stream_type(stream_type, fn)
        itype, otype = _types(fn, state_input_type, state_output_type)
        models = _Models(fn, reads, writes, itype, otype)

        def action_generator(
            state: State, **kwargs: Any
        ) -> Generator[tuple[Any, State | None], None, None]:
            for item, update in fn(state=models.model_in(state), **kwargs):
                yield item, None if update is None else models.state_out(update, state)

        async def async_action_generator(
            state: State, **kwargs: Any
        ) -> AsyncGenerator[tuple[Any, State | None], None]:
            async for item, update in fn(state=models.model_in(state), **kwargs):
                yield item, None if update is None else models.state_out(update, state)

        run = async_action_generator if inspect.isasyncgenfunction(fn) else action_generator
        spec = FunctionBasedStreamingAction(
            functools.wraps(fn)(run),
            reads,
            writes,
            input_spec=_inputs(fn),
            originating_fn=fn,
            schema=_self_validating(
                PydanticActionSchema(models.input, models.output, item_type), otype
            ),
            tags=tags,
        )
        _attach(fn, spec)
        return fn

    return decorator


# -- the typing system ---------------------------------------------------------------------------


def _dataclass_hints(cls: type) -> list[Any]:
    try:  # a dataclass's field types are strings under `from __future__ import annotations`
        return list(typing.get_type_hints(cls).values())
    except (NameError, TypeError):
        return [field.type for field in dataclasses.fields(cls)]


def _declared_types(model: Model) -> list[type]:
    """``model`` and every model, enum and dataclass its fields' annotations name, however
    nested (``list[Message]``, ``Reply | None``, a model's own fields)."""
    found: dict[type, None] = {}
    pending: list[Any] = [model]
    while pending:
        annotation = pending.pop()
        pending.extend(typing.get_args(annotation))
        try:
            if not isinstance(annotation, type) or annotation in found:
                continue
            if _is_model(annotation):
                pending.extend(info.annotation for info in _fields(annotation).values())
            elif dataclasses.is_dataclass(annotation):
                pending.extend(_dataclass_hints(annotation))
            elif not issubclass(annotation, enum.Enum):
                continue
        except TypeError:  # a generic alias such as list[int] passes isinstance(..., type)
            continue
        found[annotation] = None
    return list(found)


class PydanticTypingSystem(TypingSystem[StateModel]):
    """The state typed as ``model_type``: ``state.data`` is a ``model_type`` and
    ``with_state(model_type(...))`` sets the initial state.

    The models, enums and dataclasses ``model_type`` declares (itself, its fields' types,
    nested) are registered with ``DEFAULT_SERDE`` for loading, so a typed application resumes
    from a persister or tracker in a new process without a ``register_type`` call; as in Burr,
    which loads any model stored data names, but only the classes the code declared."""

    def __init__(self, model_type: type[StateModel]) -> None:
        if not _is_model(model_type):
            raise ActionDefinitionError(
                f"PydanticTypingSystem() takes a pydantic.BaseModel subclass, got {model_type!r}."
            )
        self.model_type = model_type
        DEFAULT_SERDE.register_type(*_declared_types(model_type))

    def state_type(self) -> type[StateModel]:
        return self.model_type

    def state_pre_action_run_type(self, action: Action, graph: Graph) -> type[Any]:
        schema = action.schema
        if isinstance(schema, PydanticActionSchema):
            return schema.state_input_type()
        return self.model_type

    def state_post_action_run_type(self, action: Action, graph: Graph) -> type[Any]:
        schema = action.schema
        if isinstance(schema, PydanticActionSchema):
            return schema.state_output_type()
        return self.model_type

    def field_names(self) -> frozenset[str]:
        """The model's fields: ``build()`` checks every action's reads and writes name one."""
        return frozenset(_fields(self.model_type))

    def state_json_schema(self) -> dict[str, Any]:
        """The model's ``model_json_schema()``, naming the JSON Schema dialect."""
        return {"$schema": DIALECT, **self.model_type.model_json_schema()}

    def validate_state(self, state: State) -> None:
        """``StateValidationError`` naming each field of ``state`` that does not fit the model
        (fields the state does not hold yet are not required). ``build()`` calls it."""
        self._validate(state, [key for key in state if key in _fields(self.model_type)])

    def validate_writes(self, state: State, keys: Collection[str], action: Action) -> None:
        """Check the model's fields an action wrote, once per step. A ``@action.pydantic``
        function's writes were checked against its output model when it returned them (the
        engine does not call this for it when that model is this system's); this covers the
        other actions of a typed app (a class action's ``update`` may return a ``State``) and
        functions whose output model is another one."""
        if getattr(action.schema, "writes_validated_as", None) is self.model_type:
            return  # checked when the function returned its model
        fields = _fields(self.model_type)
        written = sorted(key for key in keys if key in fields)
        if written:
            self._validate(state, written, f"action {action.name!r} wrote")

    def _validate(self, state: State, keys: list[str], subject: str = "the state holds") -> None:
        """``StateValidationError`` unless ``state``'s values at ``keys`` fit the model."""
        model = _cached_subset(self.model_type, tuple(keys), ())
        try:
            model.model_validate({key: state[key] for key in keys})
        except pydantic.ValidationError as exc:
            raise _validation_error(exc, model, self.model_type.__name__, subject) from exc

    def construct_data(self, state: State) -> StateModel:
        return model_from_state(self.model_type, state)

    def construct_state(self, data: StateModel) -> State:
        if not isinstance(data, pydantic.BaseModel):
            raise ActionDefinitionError(
                f"PydanticTypingSystem({self.model_type.__name__}) makes a state from a "
                f"{self.model_type.__name__}, got {type(data).__name__}: {_short(data)}."
            )
        return State(model_to_dict(data), typing_system=self)

    def __repr__(self) -> str:
        return f"PydanticTypingSystem({self.model_type.__name__})"
