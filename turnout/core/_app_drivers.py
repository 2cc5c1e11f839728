"""What ``Application``'s sync and async drivers share: the execute-call hooks around a call,
the halt conditions, and the streamed steps of ``stream_result``/``stream_iterate`` and their
async twins.

``Application`` (``turnout.core.application``) inherits these from ``_Drivers``, which adds
them to the step algorithm of ``turnout.core.engine.StepEngine``. Not public API.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Coroutine, Iterable, Mapping
from typing import Any, TypeVar

from turnout.core.action import Action, bound_name
from turnout.core.context import StepScope
from turnout.core.engine import (
    Final,
    StepEngine,
    StepTuple,
    _Final,
    _fire_after_failure,
    async_required,
    drive,
    drive_iteration,
)
from turnout.core.errors import AsyncRequiredError, UnknownActionError
from turnout.core.step import check_inputs, prepare
from turnout.core.streaming import (
    AsyncStreamingResultContainer,
    StreamingResultContainer,
    _Finished,
)
from turnout.core.suspension import SuspensionRecord, check_answer, journal_of, save_answer

__all__: list[str] = []

logger = logging.getLogger("turnout")

T = TypeVar("T")
_NOTHING: frozenset[str] = frozenset()


class _Drivers(StepEngine):
    """The parts of ``Application`` its sync and async drivers share."""

    _async_only: bool
    _sync_refused: bool
    _call_hooks: bool
    _in_call: bool
    _answered: SuspensionRecord | None = None  # answered in another process, not yet rerun
    _suspension_missing: str | None = None  # why a suspended record's suspension cannot load

    # -- suspend and resume (turnout.core.suspension) ------------------------------------------

    @property
    def suspension(self) -> SuspensionRecord | None:
        """The suspension the application waits on (``__context.suspend(...)`` in its last
        step), or ``None``. ``resume(channel, value)`` answers it."""
        return self._suspension

    def resume(self, channel: str, value: Any) -> StepTuple:
        """Answer the suspension on ``channel`` and run the suspended action again.

        The answer is checked first (the channel, then the value against the suspension's
        schema): a mistake raises ``SuspensionError``/``AnswerValidationError`` and changes
        nothing. Then it is stored by the persister (committed), and the action runs from its
        start with the step's inputs and entry state; its ``suspend(channel)`` call returns the
        answer. Returns that step's ``(action, result, state)`` (which is a suspension again
        when the action waits once more); continue with ``run()``.
        """
        self._require_sync("resume")
        return drive(self._called("resume", self._resume(channel, value, True)))

    async def aresume(self, channel: str, value: Any) -> StepTuple:
        """``resume``, awaitable: runs async actions, hooks and persisters."""
        return await self._called("aresume", self._resume(channel, value, False))

    async def _resume(self, channel: str, value: Any, sync: bool) -> StepTuple:
        pending, value = check_answer(self, channel, value)
        access = journal_of(getattr(self, "_persister", None))
        if access is not None:
            value = await save_answer(access, pending, value)
        self._suspension = None
        self._answers = (*pending.answers, {"channel": channel, "value": value})
        out = await self._step(dict(pending.inputs), f"app.{'' if sync else 'a'}resume(", sync)
        assert out is not None
        return out

    def _require_sync(self, method: str) -> None:
        if self._sync_refused:
            self._refuse_sync(method)

    def _refuse_sync(self, method: str) -> None:
        why = (
            "it was built with abuild()"
            if self._async_only
            else f"it has async hooks ({', '.join(self._hooks.async_methods)})"
        )
        raise AsyncRequiredError(
            f"application {self._app_id!r} must be run asynchronously because {why}; "
            f"use `await app.a{method}(...)` instead of app.{method}(...)."
        )

    async def _called(self, method: str, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` inside the execute-call hooks (once, for the outermost call)."""
        if not self._call_hooks or self._in_call:
            return await coro
        self._in_call = True
        try:
            try:
                await self._fire_call("pre_run_execute_call", method)
            except BaseException:
                coro.close()  # never started: close it so it is not reported as unawaited
                raise
            try:
                out = await coro
            except BaseException as exc:
                await self._fire_call("post_run_execute_call", method, exc, failing=True)
                raise
            await self._fire_call("post_run_execute_call", method, None)
            return out
        finally:
            self._in_call = False

    async def _called_iteration(
        self, method: str, steps: AsyncGenerator[Any, None]
    ) -> AsyncGenerator[Any, None]:
        if not self._call_hooks or self._in_call:
            async for value in steps:
                yield value
            return
        self._in_call = True
        try:
            await self._fire_call("pre_run_execute_call", method)
            try:
                async for value in steps:
                    yield value
            except GeneratorExit:  # the caller stopped early: not a failure
                await self._fire_call("post_run_execute_call", method, None)
                raise
            except BaseException as exc:
                await self._fire_call("post_run_execute_call", method, exc, failing=True)
                raise
            await self._fire_call("post_run_execute_call", method, None)
        finally:
            self._in_call = False

    async def _fire_call(
        self, name: str, method: str, *exception: BaseException | None, failing: bool = False
    ) -> None:
        payload: dict[str, Any] = {
            "app_id": self._app_id,
            "partition_key": self._partition_key,
            "state": self._state,
            "method": method,
        }
        if exception:
            payload["exception"] = exception[0]
        if failing:  # the call's own exception is what propagates
            await _fire_after_failure(self._hooks, name, payload)
        else:
            await self._hooks.fire(name, **payload)

    async def _stream_source(
        self, after: frozenset[str], before: frozenset[str], inputs: dict[str, Any], call: str,
        sync: bool,
    ) -> tuple[Action | None, Any]:  # fmt: skip
        """Run up to the first action in ``after`` and start it: its stream, or its outcome."""
        nxt = self.get_next_action()
        if nxt is not None and nxt.name not in after:
            if nxt.name in before:
                return nxt, _Finished(None, self._state)
            out = await self._run(before | after, _NOTHING, inputs, call, sync)
            if self._suspension is not None:
                return out[0], _Finished(out[1], self._state)
            nxt = self.get_next_action()
            if nxt is None or nxt.name not in after:  # the graph ended, or a halt_before
                return (nxt or out[0]), _Finished(out[1] if nxt is None else None, self._state)
        return await self._stream_one(inputs, call, sync)

    async def _stream_one(
        self, inputs: dict[str, Any], call: str, sync: bool
    ) -> tuple[Action | None, Any]:
        """Start the next step: a streaming action's stream, or any other action's outcome."""
        if self._suspension is not None:
            waiting = self._waiting()
            return waiting[0], _Finished(waiting[1], self._state)
        nxt = self.get_next_action()
        if nxt is None:
            return None, _Finished(None, self._state)
        spec = self._spec_of[id(nxt)]
        if spec.streaming:
            if sync and spec.is_async:  # raise now, not when the caller starts iterating
                raise async_required(spec, call)
            return nxt, self._stream(spec, nxt, inputs, call, sync)
        out = await self._step(inputs, call, sync)
        assert out is not None
        return out[0], _Finished(out[1], out[2])

    async def _stream_steps(
        self, before: frozenset[str], after: frozenset[str], inputs: dict[str, Any], call: str,
        sync: bool,
    ) -> AsyncGenerator[Any, None]:  # fmt: skip
        last: Final = (None, None, self._state)
        self._halt_requested = False
        while not self._stop_now():
            action, source = await self._stream_one(inputs, call, sync)
            if action is None:
                break
            if sync:
                iterator = None if isinstance(source, _Finished) else drive_iteration(source)
                container: Any = StreamingResultContainer._of_step(self, source, iterator)
                yield action, container
                result, state = container.get()
            else:
                container = AsyncStreamingResultContainer._of_step(self, source)
                yield action, container
                result, state = await container.get()
            if container.failed:  # its error already reached the caller: the iteration ends
                break
            out: StepTuple = (action, result, state)
            last = out
            halt = self._halt(out, before, after)
            if halt is not None:
                yield _Final(halt)
                return
        yield _Final(last)

    def _halt_sets(
        self, halt_before: Iterable[str] | None, halt_after: Iterable[str] | None
    ) -> tuple[frozenset[str], frozenset[str]]:
        if halt_before is None and halt_after is None:
            logger.warning(
                "no halt_before/halt_after given: application %r runs until no transition "
                "matches, which may be never",
                self._app_id,
            )
        return self._validate_halt_conditions(halt_before, halt_after)

    def _validate_halt_conditions(
        self, halt_before: Iterable[str] | None, halt_after: Iterable[str] | None
    ) -> tuple[frozenset[str], frozenset[str]]:
        """The action names of ``halt_before`` and ``halt_after`` (tags expanded); one
        ``UnknownActionError`` names every unknown entry of both."""
        expanded: list[frozenset[str]] = []
        problems: list[str] = []
        for names, argument in ((halt_before, "halt_before"), (halt_after, "halt_after")):
            try:
                expanded.append(self._expand(names, argument))
            except UnknownActionError as exc:
                problems.append(str(exc))
        if problems:
            raise UnknownActionError(" ".join(problems))
        return expanded[0], expanded[1]

    def _process_control_flow_params(
        self,
        halt_before: Iterable[str] | None = None,
        halt_after: Iterable[str] | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> tuple[list[str], list[str], dict[str, Any]]:
        """Burr's internal: the halt lists as action names (tags expanded) and the checked
        inputs, as ``run``/``iterate`` use them."""
        before, after = self._halt_sets(halt_before, halt_after)
        return sorted(before), sorted(after), check_inputs(inputs)

    def _process_inputs(self, inputs: Mapping[str, Any], action: Action) -> dict[str, Any]:
        """Burr's internal: the keyword arguments a step of ``action`` would receive now (its
        declared inputs from ``inputs``, and ``__context``/``__tracer`` if it takes them)."""
        spec = self._spec_of[id(action)]
        sequence_id = 0 if self._sequence_id is None else self._sequence_id + 1
        scope = StepScope(self, sequence_id, spec)
        scope.base = self._state
        return prepare(spec, check_inputs(inputs), scope, "app.step(")

    def _expand(self, names: Iterable[str] | None, argument: str) -> frozenset[str]:
        if names is None:
            return _NOTHING
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
                    out.update(bound_name(a) for a in self._graph.get_actions_by_tag(name[5:]))
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
