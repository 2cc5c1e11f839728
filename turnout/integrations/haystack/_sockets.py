"""What a Haystack component or pipeline takes and gives, read once at an action's construction,
so that a mapping naming a socket that does not exist fails there, naming the real ones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from haystack.core.pipeline.base import PipelineBase

from turnout.core.errors import ActionDefinitionError

__all__ = ["Sockets", "sockets_of"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Sockets:
    """The inputs and outputs of a component (``pipeline`` is ``False``) or a pipeline.

    Names are sorted (a ``PromptBuilder``'s template variables come in no fixed order). For a
    pipeline, inputs and outputs are named ``"component.socket"``; ``bare`` maps a socket
    name to the components whose open input of that name it feeds, and ``leaves`` lists the
    outputs the pipeline returns without ``include_outputs_from``.
    """

    pipeline: bool
    inputs: tuple[str, ...]
    mandatory: tuple[str, ...]
    outputs: tuple[str, ...]
    bare: Mapping[str, tuple[str, ...]]
    leaves: tuple[str, ...]

    def check_inputs(self, names: Sequence[str], owner: str) -> None:
        """Every name is an input; every mandatory input is given."""
        unknown = [n for n in names if n not in self.inputs and n not in self.bare]
        if unknown:
            bare = (
                f" (or a socket name alone, fed to each: {sorted(self.bare)})" if self.bare else ""
            )
            raise ActionDefinitionError(
                f"{owner}: {unknown} {'is not an input' if len(unknown) == 1 else 'are not inputs'}"
                f"; the inputs are {list(self.inputs)}{bare}. Fix the input mapping"
            )
        given = set(names)
        missing = [
            m for m in self.mandatory if m not in given and m.rpartition(".")[2] not in given
        ]
        if missing:
            raise ActionDefinitionError(
                f"{owner}: mandatory inputs not fed: {missing}; map each from state, e.g. "
                f"input={{{missing[0]!r}: 'state_key'}}, or bind a constant with from_value(...)"
            )

    def output_path(self, field: str, owner: str) -> tuple[str, ...]:
        """Where output ``field`` is in the result: ``(socket,)`` of a component,
        ``(component, socket)`` of a pipeline."""
        if field in self.outputs:
            return tuple(field.split(".", 1)) if self.pipeline else (field,)
        if self.pipeline:
            found = [o for o in self.leaves if o.rpartition(".")[2] == field]
            if len(found) == 1:
                return tuple(found[0].split(".", 1))
            if len(found) > 1:
                raise ActionDefinitionError(
                    f"{owner}: output {field!r} is given by several components {found}; name one "
                    f"of them"
                )
        raise ActionDefinitionError(
            f"{owner}: {field!r} is not an output; the outputs are {list(self.outputs)}. Fix "
            f"the output mapping"
        )


def _component_sockets(component: Any, attribute: str, owner: str) -> dict[str, Any]:
    sockets = getattr(component, attribute, None)
    found = getattr(sockets, "_sockets_dict", None)
    if not isinstance(found, dict):
        raise ActionDefinitionError(
            f"{owner}: {component!r} is not a Haystack component or pipeline; decorate its class "
            f"with @component, or pass a Pipeline"
        )
    return found


def sockets_of(target: Any, owner: str) -> Sockets:
    """The sockets of a component or pipeline (``ActionDefinitionError`` for anything else)."""
    if isinstance(target, PipelineBase):
        open_inputs = target.inputs()
        inputs: list[str] = []
        mandatory: list[str] = []
        bare: dict[str, list[str]] = {}
        for component, sockets in open_inputs.items():
            for socket, about in sockets.items():
                inputs.append(f"{component}.{socket}")
                if about.get("is_mandatory"):
                    mandatory.append(f"{component}.{socket}")
                bare.setdefault(socket, []).append(component)
        outputs: list[str] = []
        for component, instance in target.walk():
            outputs.extend(
                f"{component}.{s}"
                for s in _component_sockets(instance, "__haystack_output__", owner)
            )
        leaves = [f"{c}.{s}" for c, sockets in target.outputs().items() for s in sockets]
        return Sockets(
            pipeline=True,
            inputs=tuple(sorted(inputs)),
            mandatory=tuple(sorted(mandatory)),
            outputs=tuple(sorted(outputs)),
            bare={k: tuple(v) for k, v in bare.items()},
            leaves=tuple(leaves),
        )
    ins = _component_sockets(target, "__haystack_input__", owner)
    outs = _component_sockets(target, "__haystack_output__", owner)
    return Sockets(
        pipeline=False,
        inputs=tuple(sorted(ins)),
        mandatory=tuple(sorted(n for n, s in ins.items() if getattr(s, "is_mandatory", False))),
        outputs=tuple(sorted(outs)),
        bare={},
        leaves=tuple(outs),
    )
