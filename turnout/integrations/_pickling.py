"""What the process-based executors (Ray, Dask) say when a call cannot be sent to a worker."""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["call", "sending", "unpicklable"]


def call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """What a worker runs: a wrapper, so that the call's own keyword arguments never reach the
    engine's submit."""
    return fn(*args, **kwargs)


@contextlib.contextmanager
def sending(fn: Callable[..., Any], engine: str) -> Iterator[None]:
    """Submitting ``fn`` to ``engine``: a failure to pickle it becomes ``unpicklable``'s error."""
    try:
        yield
    except (TypeError, pickle.PicklingError) as error:
        clear = unpicklable(error, fn, engine)
        if clear is None:
            raise
        raise clear from error


def unpicklable(error: BaseException, fn: Callable[..., Any], engine: str) -> TypeError | None:
    """A clear error for a call that cannot be pickled (``None`` if ``error`` is another)."""
    chain: list[BaseException] = [error]
    while chain[-1].__cause__ is not None and len(chain) < 20:
        chain.append(chain[-1].__cause__)
    if not any("pickle" in str(e).lower() or "serializ" in str(e).lower() for e in chain):
        return None
    name = getattr(fn, "__qualname__", repr(fn))
    return TypeError(
        f"cannot send {name}(...) to the {engine} workers: {chain[-1]}. The callable and its "
        f"arguments must pickle (with cloudpickle): define functions at module level and keep "
        f"open connections, locks and files out of them and out of State"
    )
