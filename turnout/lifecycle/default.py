"""Ready-made hooks under Burr's module name (``burr.lifecycle.default``).

``StateAndResultsFullLogger`` appends one JSON line per step to a ``.jsonl`` file, in the layout
Burr writes, so scripts that read Burr's file read ours. ``SlowDownHook`` pauses before and after
every step, to watch an application in the UI.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from turnout.core.errors import InvalidNameError
from turnout.core.hooks import PostRunStepHook, PreRunStepHook

__all__ = ["SlowDownHook", "StateAndResultsFullLogger", "safe_json"]


def safe_json(obj: Any) -> str:
    """``obj`` as JSON text, with anything JSON cannot hold written as its ``str()``."""
    return json.dumps(obj, default=str)


class StateAndResultsFullLogger(PostRunStepHook, PreRunStepHook):
    """Append one JSON line per step to ``jsonl_path``.

    Each line holds ``state`` (every key, plus Burr's ``__SEQUENCE_ID`` and, after a successful
    step, ``__PRIOR_STEP``), ``action`` (its name), ``result`` (``null`` when the step failed),
    ``exception`` (its ``str()``, or ``"None"``) and ``start_time``/``end_time`` (local ISO
    times), like Burr's logger. Each line is written and flushed when its step ends.

    Args:
        jsonl_path: the file; its name must end with ``.jsonl``.
        mode: ``"append"`` keeps what the file holds; ``"w"`` empties it first.
        json_dump: turns a line's dict into text (default ``safe_json``).
    """

    def __init__(
        self,
        jsonl_path: str | Path,
        mode: Literal["append", "w"] = "append",
        json_dump: Callable[[dict[str, Any]], str] = safe_json,
    ) -> None:
        if not str(jsonl_path).endswith(".jsonl"):
            raise InvalidNameError(
                f"StateAndResultsFullLogger writes JSON lines: its path must end with '.jsonl', "
                f"got {str(jsonl_path)!r}; pass e.g. StateAndResultsFullLogger('steps.jsonl')."
            )
        if mode not in ("append", "w"):
            raise InvalidNameError(
                f"StateAndResultsFullLogger(mode={mode!r}): the modes are 'append' (keep the "
                f"file's lines) and 'w' (start an empty file)."
            )
        self.jsonl_path = str(jsonl_path)
        self.json_dump = json_dump
        self._starts: list[dt.datetime] = []
        with open(self.jsonl_path, "a" if mode == "append" else "w", encoding="utf-8"):
            pass  # "w" empties the file now, as Burr's does when it is built

    def pre_run_step(self, **future_kwargs: Any) -> None:
        self._starts.append(dt.datetime.now())

    def post_run_step(
        self,
        *,
        state: Any,
        action: Any,
        result: dict[str, Any] | None,
        exception: BaseException | None,
        sequence_id: int | None = None,
        **future_kwargs: Any,
    ) -> None:
        values = state.get_all()  # a new dict: adding Burr's control keys changes no state
        if sequence_id is not None:
            values["__SEQUENCE_ID"] = sequence_id
        if exception is None:
            values["__PRIOR_STEP"] = action.name
        start = self._starts.pop() if self._starts else dt.datetime.now()
        line = {
            "state": values,
            "action": action.name,
            "result": result,
            "exception": str(exception),
            "start_time": start.isoformat(),
            "end_time": dt.datetime.now().isoformat(),
        }
        with open(self.jsonl_path, "a", encoding="utf-8") as out:
            out.write(self.json_dump(line) + "\n")


class SlowDownHook(PostRunStepHook, PreRunStepHook):
    """Sleep ``pre_sleep_time`` seconds before and ``post_sleep_time`` after every step
    (for watching a run, never for production). ``sleep`` replaces ``time.sleep`` (tests)."""

    def __init__(
        self,
        pre_sleep_time: float = 0.5,
        post_sleep_time: float = 0.5,
        *,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self.pre_sleep_time = pre_sleep_time
        self.post_sleep_time = post_sleep_time
        self._sleep = sleep

    def _pause(self, seconds: float) -> None:
        (self._sleep or time.sleep)(seconds)

    def pre_run_step(self, **future_kwargs: Any) -> None:
        self._pause(self.pre_sleep_time)

    def post_run_step(self, **future_kwargs: Any) -> None:
        self._pause(self.post_sleep_time)
