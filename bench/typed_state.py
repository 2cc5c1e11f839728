"""Cost of typed state: microseconds per step with a 10-field pydantic model vs untyped.

This is a benchmark script, not a test. Both applications run the same user work (add one to a
field) in a self loop driven one ``app.step()`` at a time; the typed one declares the state as a
10-field model (``PydanticTypingSystem``) and its action with ``@action.pydantic``, so each step
validates the fields it reads and the fields it writes. Two actions: one reading and writing one
``int`` field; one reading all ten fields and writing three (an ``int``, a ``str``, a
``float``). Typed and untyped runs are measured interleaved, round by round, and the median
per-step time of each is reported with their ratio. Print the load average next to a figure.

    python bench/typed_state.py [--steps 5000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import pydantic

from turnout import ApplicationBuilder, State, action
from turnout.integrations.pydantic import PydanticTypingSystem


class TenFields(pydantic.BaseModel):
    a0: int = 0
    a1: int = 0
    a2: int = 0
    a3: int = 0
    a4: int = 0
    a5: str = ""
    a6: str = ""
    a7: str = ""
    a8: float = 0.0
    a9: float = 0.0


@action.pydantic(reads=["a0"], writes=["a0"])
def typed_step(state: TenFields) -> TenFields:
    state.a0 += 1
    return state


@action(reads=["a0"], writes=["a0"])
def plain_step(state: State) -> State:
    return state.update(a0=state["a0"] + 1)


_ALL = [f"a{i}" for i in range(10)]


@action.pydantic(reads=_ALL, writes=["a0", "a5", "a8"])
def typed_wide(state: TenFields) -> TenFields:
    state.a0 += 1
    state.a5 = state.a6 or "x"
    state.a8 = state.a9 + state.a0
    return state


@action(reads=_ALL, writes=["a0", "a5", "a8"])
def plain_wide(state: State) -> State:
    a0 = state["a0"] + 1
    return state.update(a0=a0, a5=state["a6"] or "x", a8=state["a9"] + a0)


def _app(fn: Any, typed: bool) -> Any:
    builder = ApplicationBuilder().with_actions(step=fn).with_transitions(("step", "step"))
    builder = builder.with_entrypoint("step")
    if typed:
        return builder.with_typing(PydanticTypingSystem(TenFields)).with_state(TenFields()).build()
    return builder.with_state(**TenFields().model_dump()).build()


def _per_step(fn: Any, typed: bool, steps: int) -> float:
    app = _app(fn, typed)
    start = time.perf_counter()
    for _ in range(steps):
        app.step()
    return (time.perf_counter() - start) / steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    scenarios = [
        ("reads 1 int field, writes it", plain_step, typed_step),
        ("reads 10 fields, writes 3 (int, str, float)", plain_wide, typed_wide),
    ]
    for label, untyped_fn, typed_fn in scenarios:
        plain: list[float] = []
        typed: list[float] = []
        for _ in range(args.rounds):
            plain.append(_per_step(untyped_fn, False, args.steps))
            typed.append(_per_step(typed_fn, True, args.steps))
        untyped_us, typed_us = statistics.median(plain), statistics.median(typed)
        print(f"{label}:")
        print(f"  untyped: {untyped_us:.1f} us/step")
        print(f"  typed (10-field pydantic model): {typed_us:.1f} us/step")
        print(f"  ratio: {typed_us / untyped_us:.2f}x")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
