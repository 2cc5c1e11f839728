"""Human-in-the-loop approval: draft -> (a human reviews) -> publish, or revise and review again.

- ``assess`` decides whether a draft needs a human: public posts do, so it calls
  ``__context.request_halt()`` and the run stops after it, waiting for a decision.
- The decision is an input of ``review``. A rejected draft goes to ``revise``, and the driver's
  ``halt_before=["review"]`` stops the run again before the revision is reviewed.
- ``publish`` calls a flaky stand-in service: a ``RetryPolicy`` attempts it up to three times,
  and when every attempt failed an ``on_exception`` transition routes to ``notify_failure``.

Run it: ``python examples/approval/application.py --reject 1 --publish-failures 2`` (or
``--approve``, ``--publish-failures 3`` to exhaust the retries, ``--async``).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Mapping
from typing import Any

from turnout import (
    Application,
    ApplicationBuilder,
    ApplicationContext,
    RetryPolicy,
    State,
    action,
    on_exception,
    when,
)
from turnout.lifecycle import PostRunStepHook

# Both endings are terminal, so a run ends after either. Not "publish": a publish step whose
# failure is routed to notify_failure still counts as publish having run, so
# halt_after=["publish"] would stop the run before notify_failure.
DONE = ["notify_failure"]
DECISIONS = ("approve", "reject")


class PublishError(ConnectionError):
    """The publishing service could not be reached."""


class FlakyPublisher:
    """A stand-in publishing service whose first ``failures`` calls fail."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls = 0

    def publish(self, text: str) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise PublishError(f"service unavailable (call {self.calls})")
        return f"https://example.invalid/posts/{self.calls}"


# In production give retries a delay (initial_delay=0.5 doubles from there); 0 keeps the
# example instant.
PUBLISH_RETRY = RetryPolicy(max_attempts=3, retry_on=(PublishError,), initial_delay=0.0)


@action(reads=[], writes=["topic", "audience", "draft", "revision", "reviews"])
def draft(state: State, topic: str, audience: str = "public") -> State:
    """Write the first draft."""
    return state.update(
        topic=topic,
        audience=audience,
        draft=f"{topic}: first draft.",
        revision=1,
        reviews=[],
    )


@action(reads=["audience"], writes=["needs_approval"])
def assess(state: State, __context: ApplicationContext) -> State:
    """Decide whether a human must approve the draft; if so, hand control back to the caller."""
    needs_approval = state["audience"] != "internal"
    if needs_approval:
        __context.request_halt()
    return state.update(needs_approval=needs_approval)


@action(reads=["revision"], writes=["approved", "reviews"])
def review(state: State, decision: str, feedback: str = "") -> State:
    """Record the human's decision on the current revision."""
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {DECISIONS}, got {decision!r}")
    return state.update(approved=decision == "approve").append(
        reviews={"revision": state["revision"], "decision": decision, "feedback": feedback}
    )


@action(reads=["topic", "revision", "reviews"], writes=["draft", "revision"])
def revise(state: State) -> State:
    """Write the next revision, answering the last review's feedback."""
    revision = state["revision"] + 1
    feedback = state["reviews"][-1]["feedback"] or "no feedback given"
    return state.update(
        draft=f"{state['topic']}: revision {revision} ({feedback}).", revision=revision
    )


@action(reads=["draft"], writes=["status", "url"], retry=PUBLISH_RETRY)
def publish(state: State, publisher: FlakyPublisher) -> State:
    """Send the approved draft to the publishing service (retried on ``PublishError``)."""
    return state.update(status="published", url=publisher.publish(state["draft"]))


@action(reads=["error"], writes=["status", "notification"])
def notify_failure(state: State) -> State:
    """Every publish attempt failed: tell a human instead of crashing."""
    error = state["error"]
    notification = (
        f"could not publish after {error['attempts']} attempts: {error['type']}: {error['message']}"
    )
    return state.update(status="failed", notification=notification)


def application(
    publisher: FlakyPublisher | None = None,
    *,
    hooks: tuple[Any, ...] = (),
    app_id: str | None = None,
) -> Application:
    """The approval flow; ``publisher`` defaults to one that never fails."""
    builder = (
        ApplicationBuilder()
        .with_actions(
            draft,
            assess,
            review,
            revise,
            publish.bind(publisher=publisher or FlakyPublisher()),
            notify_failure,
        )
        .with_transitions(
            ("draft", "assess"),
            ("assess", "review", when(needs_approval=True)),
            ("assess", "publish"),
            ("review", "publish", when(approved=True)),
            ("review", "revise"),
            ("revise", "review"),
            ("publish", "notify_failure", on_exception(PublishError)),
        )
        .with_state(status="draft")
        .with_entrypoint("draft")
        .with_identifiers(app_id=app_id)
    )
    if hooks:
        builder = builder.with_hooks(*hooks)
    return builder.build()


# -- drivers -------------------------------------------------------------------------------------


def submit(app: Application, topic: str, audience: str = "public") -> State:
    """Draft and assess; stops when ``assess`` asks for a human, or once the post is out."""
    _action, _result, state = app.run(
        halt_after=DONE, inputs={"topic": topic, "audience": audience}
    )
    return state


def decide(app: Application, decision: str, feedback: str = "") -> State:
    """Give the human's decision: publish it, or revise and stop before the next review."""
    _action, _result, state = app.run(
        halt_before=["review"], halt_after=DONE, inputs=_decision(decision, feedback)
    )
    return state


async def asubmit(app: Application, topic: str, audience: str = "public") -> State:
    """``submit`` with the async driver."""
    _action, _result, state = await app.arun(
        halt_after=DONE, inputs={"topic": topic, "audience": audience}
    )
    return state


async def adecide(app: Application, decision: str, feedback: str = "") -> State:
    """``decide`` with the async driver."""
    _action, _result, state = await app.arun(
        halt_before=["review"], halt_after=DONE, inputs=_decision(decision, feedback)
    )
    return state


def _decision(decision: str, feedback: str) -> dict[str, str]:
    return {"decision": decision, "feedback": feedback}


def awaiting_review(app: Application) -> bool:
    """Whether the application is stopped waiting for a human decision."""
    nxt = app.get_next_action()
    return nxt is not None and nxt.name == "review"


class StagePrinter(PostRunStepHook):
    """Prints every step (and every failed attempt) as it completes."""

    def post_run_step(
        self,
        *,
        sequence_id: int,
        action: Any,
        state: Any,
        exception: BaseException | None,
        attempt: int,
        will_retry: bool,
        **future_kwargs: Any,
    ) -> None:
        if exception is not None:
            then = "retrying" if will_retry else "giving up"
            outcome = f"attempt {attempt} failed ({exception}); {then}"
        else:
            outcome = _describe(action.name, state)
        print(f"  [{sequence_id}] {action.name}: {outcome}")


def _describe(name: str, state: Mapping[str, Any]) -> str:
    if name in ("draft", "revise"):
        return f"revision {state['revision']}: {state['draft']!r}"
    if name == "assess":
        return "needs a human" if state["needs_approval"] else "no approval needed"
    if name == "review":
        return str(state["reviews"][-1]["decision"])
    if name == "publish":
        return f"published at {state['url']}"
    return str(state.get("notification", "done"))


# -- the scripted session ------------------------------------------------------------------------


def session(decisions: list[str], publisher: FlakyPublisher, audience: str = "public") -> State:
    """Run a whole session with the sync driver, taking the human's decisions in order."""
    app = application(publisher, hooks=(StagePrinter(),))
    print(f"submit ({audience})")
    state = submit(app, "Quarterly update", audience)
    for decision, feedback in _script(decisions):
        if not awaiting_review(app):
            break
        print(f"human: {decision}" + (f" ({feedback})" if feedback else ""))
        state = decide(app, decision, feedback)
    return state


async def asession(
    decisions: list[str], publisher: FlakyPublisher, audience: str = "public"
) -> State:
    """``session`` with the async driver."""
    app = application(publisher, hooks=(StagePrinter(),))
    print(f"submit ({audience})")
    state = await asubmit(app, "Quarterly update", audience)
    for decision, feedback in _script(decisions):
        if not awaiting_review(app):
            break
        print(f"human: {decision}" + (f" ({feedback})" if feedback else ""))
        state = await adecide(app, decision, feedback)
    return state


def _script(decisions: list[str]) -> list[tuple[str, str]]:
    return [
        (decision, f"make it shorter (#{index + 1})" if decision == "reject" else "")
        for index, decision in enumerate(decisions)
    ]


def main(argv: list[str] | None = None) -> State:
    parser = argparse.ArgumentParser(description=__doc__)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--approve", action="store_true", help="approve the first draft (default)")
    group.add_argument(
        "--reject", type=int, default=0, metavar="N", help="reject N drafts, then approve"
    )
    parser.add_argument(
        "--publish-failures",
        type=int,
        default=0,
        metavar="N",
        help="the publishing service fails N times (3 or more exhausts the retries)",
    )
    parser.add_argument("--internal", action="store_true", help="an internal post: no review")
    parser.add_argument("--async", dest="use_async", action="store_true", help="use arun")
    args = parser.parse_args(argv)
    decisions = ["reject"] * args.reject + ["approve"]
    publisher = FlakyPublisher(failures=args.publish_failures)
    audience = "internal" if args.internal else "public"
    if args.use_async:
        state = asyncio.run(asession(decisions, publisher, audience))
    else:
        state = session(decisions, publisher, audience)
    print(f"status: {state['status']}")
    return state


if __name__ == "__main__":
    main()
