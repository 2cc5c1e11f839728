"""Closing the event loop LlamaIndex's sync code leaves behind.

LlamaIndex runs some coroutines from sync code with ``llama_index.core.async_utils.asyncio_run``,
which calls ``asyncio.get_event_loop()``: in the main thread with no loop set, that creates a loop,
sets it as the thread's loop and never closes it (a chat engine estimating the tokens of its
chat history does this). The loop is collected later -- at the next ``asyncio.run()`` -- with a
``ResourceWarning: unclosed event loop``. Sync actions run inside ``closing_leaked_loop()``, which
closes a loop that appeared during the call and restores the thread's previous state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["closing_leaked_loop"]


def _set_loop() -> Any:
    # The policy's own record of the thread's loop; reading it never creates one (unlike
    # asyncio.get_event_loop()). Other policies may lack it: then nothing is done.
    local = getattr(asyncio.get_event_loop_policy(), "_local", None)
    return getattr(local, "_loop", None)


@contextlib.contextmanager
def closing_leaked_loop() -> Iterator[None]:
    """Close an event loop set for this thread during the block, if none was set before."""
    before = _set_loop()
    try:
        yield
    finally:
        if before is None:
            after = _set_loop()
            if isinstance(after, asyncio.AbstractEventLoop) and not after.is_running():
                after.close()
                asyncio.set_event_loop(None)
