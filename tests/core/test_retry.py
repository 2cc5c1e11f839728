"""Retries and exception transitions: ``RetryPolicy`` (validation, delays, which failures are
retried), retried steps in sync and async modes, and ``on_exception`` routing, drawing and
validation."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import pytest

from turnout import (
    Action,
    ApplicationBuilder,
    GraphBuilder,
    RetryPolicy,
    State,
    action,
    on_exception,
)
from turnout.core import engine
from turnout.core.application import Application
from turnout.core.errors import (
    ActionDefinitionError,
    ChildApplicationError,
    ConditionError,
    GraphWarning,
    InvalidActionReturnError,
    TurnoutError,
    UndeclaredWriteError,
)
from turnout.core.retry import ExceptionCondition
from turnout.core.state import Change
from turnout.core.streaming import streaming_action

# -- drivers, actions and hooks ------------------------------------------------------------------


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    """Sync mode runs a sync action with ``step``/``run``; async mode an async action with
    ``astep``/``arun``."""
    return str(request.param)


def do_step(app: Application, mode: str) -> Any:
    if mode == "sync":
        return app.step()
    return asyncio.run(app.astep())


def do_run(app: Application, mode: str, **kwargs: Any) -> Any:
    if mode == "sync":
        return app.run(**kwargs)
    return asyncio.run(app.arun(**kwargs))


def do_iterate(app: Application, mode: str, **kwargs: Any) -> list[Any]:
    if mode == "sync":
        return list(app.iterate(**kwargs))

    async def go() -> list[Any]:
        return [out async for out in app.aiterate(**kwargs)]

    return asyncio.run(go())


class Flaky:
    """Raises the queued ``failures`` one per attempt, then increments ``n``; records the
    ``n`` each attempt started from."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.seen: list[int] = []

    def attempt(self, state: State) -> State:
        self.seen.append(state["n"])
        if self.failures:
            raise self.failures.pop(0)
        return state.increment(n=1)

    def action(self, mode: str, retry: RetryPolicy | None = None) -> Any:
        if mode == "sync":

            @action(reads=["n"], writes=["n"], retry=retry)
            def risky(state: State) -> State:
                return self.attempt(state)

            return risky

        @action(reads=["n"], writes=["n"], retry=retry)
        async def risky_async(state: State) -> State:
            await asyncio.sleep(0)
            return self.attempt(state)

        return risky_async


@action(reads=["error"], writes=["handled"])
def handler(state: State) -> State:
    return state.update(handled=state["error"]["type"])


@action(reads=["n"], writes=["n"])
def ok(state: State) -> State:
    return state.increment(n=100)


class StepLog:
    """Records the attempts hooks see."""

    def __init__(self) -> None:
        self.pre: list[tuple[int, int]] = []
        self.post: list[dict[str, Any]] = []

    def pre_run_step(self, *, sequence_id: int, attempt: int, **future_kwargs: Any) -> None:
        self.pre.append((sequence_id, attempt))

    def post_run_step(self, **payload: Any) -> None:
        self.post.append(payload)

    def attempts(self) -> list[tuple[int, int, bool, str | None]]:
        return [
            (
                p["sequence_id"],
                p["attempt"],
                p["will_retry"],
                type(p["exception"]).__name__ if p["exception"] is not None else None,
            )
            for p in self.post
        ]


def _app(act: Any, *transitions: tuple[Any, ...], hooks: tuple[Any, ...] = ()) -> Application:
    """``risky`` (the entrypoint, ``act``) and whichever of ``handler`` and ``ok`` the
    transitions name."""
    named = {name for t in transitions for name in t[:2]}
    others = {name: a for name, a in (("handler", handler), ("ok", ok)) if name in named}
    return (
        ApplicationBuilder()
        .with_actions(risky=act, **others)
        .with_transitions(*transitions)
        .with_state(n=0)
        .with_entrypoint("risky")
        .with_hooks(*hooks)
        .build()
    )


# -- RetryPolicy validation ----------------------------------------------------------------------

INVALID_POLICIES = {
    "zero-attempts": ({"max_attempts": 0}, ValueError, "at least 1"),
    "negative-attempts": ({"max_attempts": -2}, ValueError, "at least 1"),
    "retry-on-a-string": ({"retry_on": (ValueError, "KeyError")}, TypeError, "exception types"),
    "retry-on-a-class": ({"retry_on": (int,)}, TypeError, "exception types"),
    "retry-on-an-instance": ({"retry_on": (ValueError("x"),)}, TypeError, "exception types"),
    "negative-initial-delay": ({"initial_delay": -1}, ValueError, "initial_delay=-1"),
    "negative-max-delay": ({"max_delay": -0.5}, ValueError, "max_delay=-0.5"),
    "negative-jitter": ({"jitter": -0.1}, ValueError, "jitter=-0.1"),
    "shrinking-multiplier": ({"multiplier": 0.5}, ValueError, "multiplier=0.5"),
}


@pytest.mark.parametrize(
    ("kwargs", "error", "message"), INVALID_POLICIES.values(), ids=list(INVALID_POLICIES)
)
def test_an_invalid_retry_policy_is_refused(kwargs, error, message):
    with pytest.raises(error, match=message):
        RetryPolicy(**kwargs)


def test_a_single_retry_on_type_is_accepted_as_a_tuple():
    assert RetryPolicy(retry_on=KeyError).retry_on == (KeyError,)


def test_the_boundary_values_are_valid():
    policy = RetryPolicy(max_attempts=1, initial_delay=0, max_delay=0, jitter=0, multiplier=1)
    assert policy.delay(1) == 0


@pytest.mark.parametrize(
    "decorate",
    [
        lambda retry: action(reads=[], writes=[], retry=retry),
        lambda retry: streaming_action(reads=[], writes=[], retry=retry),
    ],
    ids=["action", "streaming_action"],
)
@pytest.mark.parametrize("retry", [3, {"max_attempts": 3}, "RetryPolicy()"], ids=repr)
def test_decorators_take_only_a_retry_policy(decorate, retry):
    with pytest.raises(ActionDefinitionError, match="RetryPolicy"):
        decorate(retry)


# -- delays --------------------------------------------------------------------------------------


def test_delays_grow_exponentially():
    policy = RetryPolicy(initial_delay=0.5, multiplier=3, max_delay=1000, jitter=0)
    assert [policy.delay(n) for n in range(1, 6)] == pytest.approx([0.5, 1.5, 4.5, 13.5, 40.5])


def test_a_multiplier_of_one_gives_constant_delays():
    policy = RetryPolicy(initial_delay=2, multiplier=1, jitter=0)
    assert [policy.delay(n) for n in range(1, 5)] == [2, 2, 2, 2]


def test_delays_stop_growing_at_max_delay():
    policy = RetryPolicy(initial_delay=1, multiplier=2, max_delay=5, jitter=0)
    assert [policy.delay(n) for n in range(1, 7)] == [1, 2, 4, 5, 5, 5]


def test_max_delay_caps_even_a_very_late_attempt():
    policy = RetryPolicy(max_attempts=5000, initial_delay=1, multiplier=2.0, max_delay=5, jitter=0)
    assert policy.delay(2000) == 5


@pytest.mark.parametrize(
    ("drawn", "expected"),
    [(0.0, 2.0 * 0.75), (0.5, 2.0), (1.0, 2.0 * 1.25), (0.25, 2.0 * 0.875)],
    ids=["lowest", "middle", "highest", "quarter"],
)
def test_jitter_moves_the_delay_by_up_to_its_fraction(drawn, expected):
    policy = RetryPolicy(initial_delay=1, multiplier=2, jitter=0.25, random=lambda: drawn)
    assert policy.delay(2) == pytest.approx(expected)


def test_random_jitter_stays_within_its_bounds():
    draws = random.Random(7)
    policy = RetryPolicy(initial_delay=4, jitter=0.1, random=draws.random)
    delays = [policy.delay(1) for _ in range(500)]
    assert all(3.6 <= d <= 4.4 for d in delays)
    assert len(set(delays)) > 1


def test_jitter_larger_than_one_never_gives_a_negative_delay():
    policy = RetryPolicy(initial_delay=1, jitter=3, random=lambda: 0.0)
    assert policy.delay(1) == 0


def test_jitter_never_exceeds_max_delay():
    """``max_delay``: "no delay is longer than this", jitter included."""
    policy = RetryPolicy(initial_delay=10, max_delay=10, jitter=0.5, random=lambda: 1.0)
    assert policy.delay(1) <= 10


def test_zero_initial_delay_means_no_delay_whatever_the_jitter():
    policy = RetryPolicy(initial_delay=0, jitter=0.5, random=lambda: 1.0)
    assert [policy.delay(n) for n in range(1, 4)] == [0, 0, 0]


def test_the_random_source_does_not_take_part_in_equality():
    assert RetryPolicy(random=lambda: 0.1) == RetryPolicy(random=lambda: 0.9)


# -- should_retry --------------------------------------------------------------------------------


class Transient(ConnectionError):
    pass


SHOULD_RETRY = {
    "first-attempt": (RetryPolicy(max_attempts=3), ValueError(), 1, True),
    "before-the-last": (RetryPolicy(max_attempts=3), ValueError(), 2, True),
    "last-attempt": (RetryPolicy(max_attempts=3), ValueError(), 3, False),
    "single-attempt": (RetryPolicy(max_attempts=1), ValueError(), 1, False),
    "listed-type": (RetryPolicy(retry_on=(ConnectionError,)), ConnectionError(), 1, True),
    "subclass-of-listed": (RetryPolicy(retry_on=(ConnectionError,)), Transient(), 1, True),
    "unlisted-type": (RetryPolicy(retry_on=(ConnectionError,)), ValueError(), 1, False),
    "turnout-error": (RetryPolicy(), InvalidActionReturnError("shape"), 1, False),
    "turnout-error-listed": (
        RetryPolicy(retry_on=(ValueError,)),
        UndeclaredWriteError("a ValueError too"),
        1,
        False,
    ),
    "turnout-base-listed": (RetryPolicy(retry_on=(TurnoutError,)), TurnoutError(), 1, False),
    "failed-children": (
        RetryPolicy(),
        ChildApplicationError("fan", [(0, "child", ConnectionError("down"))], 1),
        1,
        True,
    ),
}


@pytest.mark.parametrize(
    ("policy", "exception", "attempt", "expected"), SHOULD_RETRY.values(), ids=list(SHOULD_RETRY)
)
def test_should_retry(policy, exception, attempt, expected):
    assert policy.should_retry(exception, attempt) is expected


# -- retried steps -------------------------------------------------------------------------------


def test_a_step_succeeds_on_its_last_attempt(mode):
    flaky = Flaky(ValueError("1"), ValueError("2"))
    log = StepLog()
    policy = RetryPolicy(max_attempts=3, initial_delay=0)
    app = _app(flaky.action(mode, policy), ("risky", "ok"), hooks=(log,))
    act, result, state = do_step(app, mode)
    assert (act.name, result, state) == ("risky", {}, {"n": 1})
    assert flaky.seen == [0, 0, 0]  # every attempt starts from the same state
    assert log.pre == [(0, 1), (0, 2), (0, 3)]
    assert log.attempts() == [
        (0, 1, True, "ValueError"),
        (0, 2, True, "ValueError"),
        (0, 3, False, None),
    ]
    assert (app.sequence_id, app.prior_action) == (0, "risky")
    assert app.get_next_action().name == "ok"


def test_a_failed_attempt_reports_the_unchanged_state(mode):
    flaky = Flaky(ValueError("1"))
    log = StepLog()
    app = _app(flaky.action(mode, RetryPolicy(initial_delay=0)), ("risky", "ok"), hooks=(log,))
    do_step(app, mode)
    first, second = log.post
    assert (first["state"], first["result"], first["changes"]) == ({"n": 0}, None, ())
    assert (second["state"], second["changes"]) == ({"n": 1}, (Change("increment", "n", 1),))


def test_exhausted_retries_raise_the_last_exception_with_the_state_unchanged(mode):
    last = ValueError("3")
    flaky = Flaky(ValueError("1"), ValueError("2"), last)
    log = StepLog()
    app = _app(
        flaky.action(mode, RetryPolicy(max_attempts=3, initial_delay=0)),
        ("risky", "ok"),
        hooks=(log,),
    )
    with pytest.raises(ValueError, match="3") as info:
        do_step(app, mode)
    assert info.value is last
    assert app.state == {"n": 0}
    assert app.prior_action is None
    assert app.get_next_action().name == "risky"
    assert [will_retry for _s, _a, will_retry, _e in log.attempts()] == [True, True, False]
    assert app.sequence_id == 0  # used up, like any failed step


def test_the_step_after_a_retried_one_takes_the_next_sequence_id(mode):
    flaky = Flaky(ValueError("1"))
    log = StepLog()
    app = _app(
        flaky.action(mode, RetryPolicy(initial_delay=0)),
        ("risky", "ok"),
        hooks=(log,),
    )
    do_run(app, mode, halt_after=["ok"])
    assert log.pre == [(0, 1), (0, 2), (1, 1)]
    assert app.state == {"n": 101}


def test_an_exception_not_in_retry_on_is_not_retried(mode):
    flaky = Flaky(KeyError("k"))
    log = StepLog()
    policy = RetryPolicy(retry_on=(ValueError,), initial_delay=0)
    app = _app(flaky.action(mode, policy), ("risky", "ok"), hooks=(log,))
    with pytest.raises(KeyError):
        do_step(app, mode)
    assert log.pre == [(0, 1)]


def test_turnout_errors_are_never_retried(mode):
    attempts: list[int] = []
    policy = RetryPolicy(max_attempts=5, initial_delay=0)
    if mode == "sync":

        @action(reads=["n"], writes=["n"], retry=policy)
        def risky(state: State) -> Any:
            attempts.append(1)
            return 42  # not a State

    else:

        @action(reads=["n"], writes=["n"], retry=policy)
        async def risky(state: State) -> Any:
            attempts.append(1)
            return 42

    app = _app(risky, ("risky", "ok"))
    with pytest.raises(InvalidActionReturnError):
        do_step(app, mode)
    assert attempts == [1]


class Abort(BaseException):
    """Like ``KeyboardInterrupt``: not an ``Exception``."""


def test_a_base_exception_is_never_retried(mode):
    flaky = Flaky(Abort())
    policy = RetryPolicy(retry_on=(BaseException,), initial_delay=0)
    app = _app(flaky.action(mode, policy), ("risky", "ok"))
    with pytest.raises(Abort):
        do_step(app, mode)
    assert flaky.seen == [0]


def test_a_class_action_with_a_retry_attribute_is_retried(mode):
    flaky = Flaky(ValueError("1"))

    class Risky(Action):
        retry = RetryPolicy(initial_delay=0)

        @property
        def reads(self) -> list[str]:
            return ["n"]

        @property
        def writes(self) -> list[str]:
            return ["n"]

        def run(self, state: State, **run_kwargs: Any) -> dict[str, Any]:
            return {"n": flaky.attempt(state)["n"]}

        def update(self, result: dict[str, Any], state: State) -> State:
            return state.update(n=result["n"])

    app = _app(Risky(), ("risky", "ok"))
    _act, result, state = do_step(app, mode)
    assert (result, state) == ({"n": 1}, {"n": 1})
    assert flaky.seen == [0, 0]


# -- delays are honoured -------------------------------------------------------------------------


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[float]]:
    """Record the delays the engine sleeps instead of sleeping them."""
    recorded: dict[str, list[float]] = {"time.sleep": [], "asyncio.sleep": []}

    def fake_sleep(seconds: float) -> None:
        recorded["time.sleep"].append(seconds)

    real_asyncio_sleep = asyncio.sleep

    async def fake_asyncio_sleep(seconds: float, result: Any = None) -> Any:
        if seconds:
            recorded["asyncio.sleep"].append(seconds)
        return await real_asyncio_sleep(0, result)

    monkeypatch.setattr(engine.time, "sleep", fake_sleep)
    monkeypatch.setattr(engine.asyncio, "sleep", fake_asyncio_sleep)
    return recorded


def test_retry_delays_are_slept_without_blocking_the_event_loop(mode, sleeps):
    flaky = Flaky(ValueError("1"), ValueError("2"))
    policy = RetryPolicy(max_attempts=3, initial_delay=0.01, multiplier=3, jitter=0)
    app = _app(flaky.action(mode, policy), ("risky", "ok"))
    do_step(app, mode)
    if mode == "sync":
        used, unused = "time.sleep", "asyncio.sleep"
    else:
        used, unused = "asyncio.sleep", "time.sleep"
    assert sleeps[used] == pytest.approx([0.01, 0.03])
    assert sleeps[unused] == []


def test_jittered_delays_are_the_ones_slept(mode, sleeps):
    flaky = Flaky(ValueError("1"))
    policy = RetryPolicy(initial_delay=0.02, jitter=0.5, random=lambda: 0.0)
    app = _app(flaky.action(mode, policy), ("risky", "ok"))
    do_step(app, mode)
    slept = sleeps["time.sleep"] if mode == "sync" else sleeps["asyncio.sleep"]
    assert slept == pytest.approx([0.01])


def test_no_sleep_after_the_last_attempt_or_with_a_zero_delay(mode, sleeps):
    flaky = Flaky(ValueError("1"), ValueError("2"))
    policy = RetryPolicy(max_attempts=2, initial_delay=0.01, jitter=0)
    app = _app(flaky.action(mode, policy), ("risky", "ok"))
    with pytest.raises(ValueError, match="2"):
        do_step(app, mode)
    assert sleeps["time.sleep"] + sleeps["asyncio.sleep"] == [0.01]


def test_a_zero_delay_does_not_sleep(mode, sleeps):
    flaky = Flaky(ValueError("1"), ValueError("2"))
    app = _app(flaky.action(mode, RetryPolicy(initial_delay=0)), ("risky", "ok"))
    do_step(app, mode)
    assert flaky.seen == [0, 0, 0]
    assert sleeps == {"time.sleep": [], "asyncio.sleep": []}


def test_a_real_short_delay_is_waited(mode):
    flaky = Flaky(ValueError("1"))
    policy = RetryPolicy(initial_delay=0.01, jitter=0)
    app = _app(flaky.action(mode, policy), ("risky", "ok"))
    started = time.monotonic()
    _act, _result, state = do_step(app, mode)
    assert time.monotonic() - started >= 0.009  # a lower bound only: sleeping is never shorter
    assert state == {"n": 1}
    assert flaky.seen == [0, 0]


# -- on_exception routing ------------------------------------------------------------------------


def test_a_matching_exception_routes_to_the_handler_with_the_error_in_state(mode):
    flaky = Flaky(ValueError("bad value"))
    log = StepLog()
    app = _app(
        flaky.action(mode),
        ("risky", "handler", on_exception(ValueError)),
        ("risky", "ok"),
        ("handler", "ok"),
        hooks=(log,),
    )
    act, result, state = do_step(app, mode)
    assert (act.name, result) == ("risky", None)
    error = state["error"]
    assert set(error) == {"type", "message", "action", "sequence_id", "attempts", "traceback"}
    assert (error["type"], error["message"], error["action"]) == (
        "ValueError",
        "bad value",
        "risky",
    )
    assert (error["sequence_id"], error["attempts"]) == (0, 1)
    assert "Traceback" in error["traceback"]
    assert "ValueError: bad value" in error["traceback"]
    assert state == {"n": 0, "error": error}
    assert app.state is state
    assert (app.prior_action, app.sequence_id) == ("risky", 0)
    assert app.last_changes == (Change("set", "error", error),)
    (post,) = log.post
    assert isinstance(post["exception"], ValueError)
    assert post["state"] is state
    assert post["changes"] == (Change("set", "error", error),)
    assert app.get_next_action().name == "handler"
    act, _result, state = do_step(app, mode)
    assert act.name == "handler"
    assert state["handled"] == "ValueError"


def test_the_error_goes_to_a_custom_state_key(mode):
    @action(reads=["problem"], writes=["handled"])
    def custom_handler(state: State) -> State:
        return state.update(handled=state["problem"]["message"])

    flaky = Flaky(KeyError("missing"))
    app = (
        ApplicationBuilder()
        .with_actions(risky=flaky.action(mode), handler=custom_handler)
        .with_transitions(("risky", "handler", on_exception(KeyError, state_key="problem")))
        .with_state(n=0)
        .with_entrypoint("risky")
        .build()
    )
    _act, _result, state = do_run(app, mode, halt_after=["handler"])
    assert "error" not in state
    assert state["problem"]["type"] == "KeyError"
    assert state["handled"] == "'missing'"


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        (KeyError, LookupError, "handler"),
        (LookupError, KeyError, "handler"),
        (IndexError, LookupError, "ok"),
    ],
    ids=["exact-first", "base-class-first", "second-matches"],
)
def test_the_first_matching_exception_transition_wins(mode, first, second, expected):
    flaky = Flaky(KeyError("k"))
    app = _app(
        flaky.action(mode),
        ("risky", "handler", on_exception(first)),
        ("risky", "ok", on_exception(second)),
        ("handler", "ok"),
    )
    do_step(app, mode)
    assert app.get_next_action().name == expected


def test_an_exception_matching_no_transition_propagates_with_the_state_unchanged(mode):
    flaky = Flaky(TypeError("unexpected"))
    app = _app(
        flaky.action(mode),
        ("risky", "ok"),  # an ordinary transition is never taken after a failure
        ("risky", "handler", on_exception(ValueError, KeyError)),
        ("handler", "ok"),
    )
    with pytest.raises(TypeError, match="unexpected"):
        do_step(app, mode)
    assert app.state == {"n": 0}
    assert app.prior_action is None
    assert app.get_next_action().name == "risky"


def test_on_exception_never_applies_after_a_success(mode):
    app = _app(
        Flaky().action(mode),
        ("risky", "handler", on_exception()),
        ("risky", "ok"),
        ("handler", "ok"),
    )
    do_step(app, mode)
    assert app.get_next_action().name == "ok"


def test_after_a_success_with_only_exception_transitions_the_run_ends(mode):
    app = _app(Flaky().action(mode), ("risky", "handler", on_exception()))
    act, result, state = do_run(app, mode, halt_after=["handler"])
    assert (act.name, result, state) == ("risky", {}, {"n": 1})
    assert app.get_next_action() is None


def test_routing_happens_after_the_retries_are_exhausted(mode):
    flaky = Flaky(ValueError("1"), ValueError("2"), ValueError("3"))
    log = StepLog()
    app = _app(
        flaky.action(mode, RetryPolicy(max_attempts=3, initial_delay=0)),
        ("risky", "handler", on_exception(ValueError)),
        ("handler", "ok"),
        hooks=(log,),
    )
    _act, _result, state = do_step(app, mode)
    assert state["error"]["attempts"] == 3
    assert state["error"]["message"] == "3"
    assert log.attempts() == [
        (0, 1, True, "ValueError"),
        (0, 2, True, "ValueError"),
        (0, 3, False, "ValueError"),
    ]
    assert [p["state"].get("error") is not None for p in log.post] == [False, False, True]


def test_a_retry_that_succeeds_is_not_routed(mode):
    flaky = Flaky(ValueError("1"))
    app = _app(
        flaky.action(mode, RetryPolicy(initial_delay=0)),
        ("risky", "handler", on_exception(ValueError)),
        ("risky", "ok"),
        ("handler", "ok"),
    )
    _act, _result, state = do_step(app, mode)
    assert state == {"n": 1}
    assert app.get_next_action().name == "ok"


class Custom(Exception):
    pass


@pytest.mark.parametrize(
    "exception",
    [ValueError("v"), KeyError("k"), Custom("c"), InvalidActionReturnError("shape")],
    ids=["ValueError", "KeyError", "custom", "turnout-error"],
)
def test_on_exception_without_types_matches_any_exception(mode, exception):
    app = _app(
        Flaky(exception).action(mode),
        ("risky", "handler", on_exception()),
        ("handler", "ok"),
    )
    _act, _result, state = do_step(app, mode)
    assert state["error"]["type"] == type(exception).__name__


@pytest.mark.parametrize(
    "condition",
    [on_exception(), on_exception(Abort), on_exception(BaseException)],
    ids=["any", "the-type-itself", "BaseException"],
)
def test_a_base_exception_is_never_routed(mode, condition):
    app = _app(
        Flaky(Abort()).action(mode),
        ("risky", "handler", condition),
        ("handler", "ok"),
    )
    with pytest.raises(Abort):
        do_step(app, mode)
    assert app.state == {"n": 0}
    assert app.get_next_action().name == "risky"


def test_a_run_continues_through_the_handler(mode):
    flaky = Flaky(ConnectionError("down"))
    app = _app(
        flaky.action(mode),
        ("risky", "handler", on_exception(ConnectionError)),
        ("handler", "ok"),
    )
    steps = do_iterate(app, mode, halt_after=["ok"])
    assert [(act.name, result) for act, result, _state in steps] == [
        ("risky", None),
        ("handler", {}),
        ("ok", {}),
    ]
    assert steps[-1][2] == {"n": 100, "handled": "ConnectionError", "error": steps[0][2]["error"]}


# -- build and drawing ---------------------------------------------------------------------------


@pytest.mark.parametrize("state_key", ["error", "failure"], ids=str)
def test_build_treats_the_state_key_as_provided(state_key):
    @action(reads=[state_key], writes=[])
    def reader(state: State) -> State:
        return state

    builder = (
        ApplicationBuilder()
        .with_actions(risky=Flaky().action("sync"), reader=reader)
        .with_transitions(("risky", "reader", on_exception(state_key=state_key)))
        .with_state(n=0)
        .with_entrypoint("risky")
    )
    builder.build(strict=True)  # would raise if the key counted as never provided


def test_without_the_exception_transition_the_state_key_is_not_provided():
    @action(reads=["error"], writes=[])
    def reader(state: State) -> State:
        return state

    builder = (
        ApplicationBuilder()
        .with_actions(risky=Flaky().action("sync"), reader=reader)
        .with_transitions(("risky", "reader"))
        .with_state(n=0)
        .with_entrypoint("risky")
    )
    with pytest.warns(GraphWarning, match="'error'"):
        builder.build()


def _drawn_graph() -> Any:
    return (
        GraphBuilder()
        .with_actions(risky=Flaky().action("sync"), handler=handler, ok=ok)
        .with_transitions(("risky", "handler", on_exception(ValueError)), ("risky", "ok"))
        .build()
    )


def test_to_dot_draws_exception_edges_dashed_and_red():
    lines = _drawn_graph().to_dot().splitlines()
    edge = '"risky" -> "handler" [label="on_exception(ValueError)", style=dashed, color="#c0392b"];'
    assert f"  {edge}" in lines
    assert '  "risky" -> "ok";' in lines


def test_to_dot_without_conditions_still_marks_exception_edges():
    dot = _drawn_graph().to_dot(include_conditions=False)
    assert '  "risky" -> "handler" [style=dashed, color="#c0392b"];' in dot.splitlines()


def test_to_mermaid_labels_exception_edges():
    lines = _drawn_graph().to_mermaid().splitlines()
    assert '    a0 -->|"on_exception(ValueError)"| a1' in lines
    assert "    a0 --> a2" in lines


def test_visualize_draws_the_exception_edge_of_an_application():
    app = _app(
        Flaky().action("sync"), ("risky", "handler", on_exception(ValueError)), ("handler", "ok")
    )
    assert 'color="#c0392b"' in app.visualize()


# -- on_exception() itself -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        ((), "on_exception(Exception)"),
        ((ValueError,), "on_exception(ValueError)"),
        ((TimeoutError, ValueError), "on_exception(TimeoutError, ValueError)"),
    ],
    ids=["no-types", "one", "two"],
)
def test_on_exception_is_a_named_condition(types, expected):
    condition = on_exception(*types)
    assert isinstance(condition, ExceptionCondition)
    assert condition.name == expected
    assert condition.state_key == "error"


BAD_ON_EXCEPTION: dict[str, Callable[[], Any]] = {
    "a-string": lambda: on_exception("ValueError"),
    "a-class": lambda: on_exception(int),
    "an-instance": lambda: on_exception(ValueError("x")),
    "one-bad-among-good": lambda: on_exception(ValueError, dict),
    "empty-state-key": lambda: on_exception(ValueError, state_key=""),
    "non-string-state-key": lambda: on_exception(ValueError, state_key=3),
}


@pytest.mark.parametrize("make", BAD_ON_EXCEPTION.values(), ids=list(BAD_ON_EXCEPTION))
def test_on_exception_refuses_what_is_not_an_exception_type(make):
    with pytest.raises(ConditionError):
        make()
