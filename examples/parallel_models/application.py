"""Ask several models the same question at once, then merge their answers.

Each "model" is a plain function standing in for a real one (offline, deterministic), wrapped in
an action; ``AskAll`` (a ``MapActions``) runs every model as a child application of the step,
in parallel, and its ``reduce`` keeps every answer and picks the most confident. One model is
flaky: it fails on its first call, and the ``RetryPolicy`` on its action retries it inside its
own child application. A child that still fails fails the step, and the ``RetryPolicy`` on
``AskAll`` then re-runs only the children that did not finish.

Run it: ``python examples/parallel_models/application.py "what is 6 * 7"``
(``--stream`` shows the streaming model's words as they come; ``--tracking-dir DIR`` records
the parent and its children for ``turnout ui``).
"""

from __future__ import annotations

import argparse
import re
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from turnout import (
    Application,
    ApplicationBuilder,
    ApplicationContext,
    MapActions,
    RetryPolicy,
    State,
    action,
    streaming_action,
)

# -- the stand-in models ---------------------------------------------------------------------------

FACTS = {
    "capital of france": "Paris",
    "largest planet": "Jupiter",
    "boiling point of water": "100 degrees Celsius at sea level",
}


def lookup_model(question: str) -> tuple[str, float]:
    """Knows a few facts by keyword; confident when it finds one."""
    for key, fact in FACTS.items():
        if key in question.lower():
            return fact, 0.8
    return "no idea", 0.0


def arithmetic_model(question: str) -> tuple[str, float]:
    """Computes ``a <op> b``; very confident when the question is arithmetic."""
    match = re.search(r"(-?\d+(?:\.\d+)?)\s*([-+*/])\s*(-?\d+(?:\.\d+)?)", question)
    if match is None:
        return "not arithmetic", 0.0
    a, op, b = float(match[1]), match[2], float(match[3])
    if op == "/" and b == 0:
        return "undefined (division by zero)", 0.9
    value = {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else 0.0}[op]
    return f"{value:g}", 0.95


def cautious_model(question: str) -> Iterator[str]:
    """Streams a hedge, word by word; never confident."""
    yield from f"I would need to check: {question.rstrip('?')}?".split()


_FLAKY_CALLS: dict[str, int] = {}
_FLAKY_LOCK = threading.Lock()


def flaky_model(question: str) -> tuple[str, float]:
    """Times out on the first call for each question (a rate limit, say), then answers."""
    with _FLAKY_LOCK:
        _FLAKY_CALLS[question] = _FLAKY_CALLS.get(question, 0) + 1
        first = _FLAKY_CALLS[question] == 1
    if first:
        raise TimeoutError("flaky model: rate limited, try again")
    return f"{len(question.split())} words in your question", 0.3


# -- the models as actions (module-level: any executor, even a process pool, can run them) --------


@action(reads=["question"], writes=["answer", "confidence", "model"])
def lookup(state: State) -> State:
    answer, confidence = lookup_model(state["question"])
    return state.update(answer=answer, confidence=confidence, model="lookup")


@action(reads=["question"], writes=["answer", "confidence", "model"])
def arithmetic(state: State) -> State:
    answer, confidence = arithmetic_model(state["question"])
    return state.update(answer=answer, confidence=confidence, model="arithmetic")


@action(
    reads=["question"],
    writes=["answer", "confidence", "model"],
    retry=RetryPolicy(max_attempts=2, initial_delay=0, jitter=0),
)
def flaky(state: State) -> State:
    answer, confidence = flaky_model(state["question"])
    return state.update(answer=answer, confidence=confidence, model="flaky")


@streaming_action(reads=["question"], writes=["answer", "confidence", "model"])
def cautious(state: State) -> Iterator[Any]:
    words: list[str] = []
    for word in cautious_model(state["question"]):
        words.append(word)
        yield {"delta": word}
    answer = " ".join(words)
    yield {"answer": answer}, state.update(answer=answer, confidence=0.1, model="cautious")


MODELS = [lookup, arithmetic, cautious, flaky]


class AskAll(MapActions):
    """Every model answers the question in its own child application; ``reduce`` merges."""

    retry = RetryPolicy(max_attempts=3, initial_delay=0, jitter=0)

    @property
    def reads(self) -> list[str]:
        return ["question"]

    @property
    def writes(self) -> list[str]:
        return ["answers", "best"]

    def actions(
        self, state: State, context: ApplicationContext, inputs: dict[str, Any]
    ) -> Iterable[Any]:
        return MODELS

    def state(self, state: State, inputs: dict[str, Any]) -> State:
        return State({"question": state["question"]})

    def reduce(self, state: State, states: Iterable[State]) -> State:
        answers = [
            {"model": s["model"], "answer": s["answer"], "confidence": s["confidence"]}
            for s in states
        ]
        best = max(answers, key=lambda a: a["confidence"])
        return state.update(answers=answers, best=best)


@action(reads=[], writes=["question"])
def ask(state: State, question: str) -> State:
    return state.update(question=question)


def application(*, stream: bool = False, tracking_dir: str | None = None) -> Application:
    """``ask`` takes the question (an input), ``ask_all`` fans it out and merges, in a loop."""
    builder = (
        ApplicationBuilder()
        .with_actions(ask, ask_all=AskAll(stream=stream))
        .with_transitions(("ask", "ask_all"), ("ask_all", "ask"))
        .with_entrypoint("ask")
    )
    if tracking_dir is not None:
        params = {"storage_dir": tracking_dir}
        builder.with_tracker("local", project="parallel-models", params=params)
    return builder.build()


def answer(app: Application, question: str, *, show_stream: bool = False) -> dict[str, Any]:
    """Ask one question; return the merged answers (``{"answers": [...], "best": {...}}``)."""
    app.run(halt_after=["ask"], inputs={"question": question})
    if not show_stream:
        _, _, state = app.run(halt_after=["ask_all"])
    else:
        _, container = app.stream_result(halt_after=["ask_all"])
        for item in container:
            if "item" in item:
                print(f"  [{item['action']}] {item['item']['delta']}")
        _, state = container.get()
    return {"answers": state["answers"], "best": state["best"]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("question", nargs="?", default="what is 6 * 7")
    parser.add_argument("--stream", action="store_true", help="print streamed words")
    parser.add_argument("--tracking-dir", help="track into this directory (for turnout ui)")
    args = parser.parse_args(argv)
    app = application(stream=args.stream, tracking_dir=args.tracking_dir)
    merged = answer(app, args.question, show_stream=args.stream)
    print(f"Q: {args.question}")
    for entry in merged["answers"]:
        print(f"  {entry['model']:<11} {entry['confidence']:.2f}  {entry['answer']}")
    best = merged["best"]
    print(f"best: {best['answer']} (from {best['model']})")
    return merged


if __name__ == "__main__":
    main()
