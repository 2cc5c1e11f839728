"""``DaskExecutor``: a ``concurrent.futures.Executor`` over a ``dask.distributed`` client.

Pass it where turnout takes an executor, e.g. to run the children of a map action on a Dask
cluster::

    client = Client("tcp://scheduler:8786")  # or Client(LocalCluster(...))
    app = (
        ApplicationBuilder()
        ...
        .with_parallel_executor(lambda: DaskExecutor(client))
        .build()
    )

``Client.get_executor()`` is already an executor; this class builds on it and makes it behave
like the standard library's: every ``submit`` runs (Dask would otherwise merge calls with equal
arguments into one task), keyword arguments always reach the callable (never Dask's own
``key=``/``workers=``/``retries=``...), ``map`` refuses new work after ``shutdown`` and takes
``shutdown(cancel_futures=True)``, and a failed call fails its future with the original
exception type and its remote traceback.

Every call travels to a worker with cloudpickle, so the callable, its arguments and its result must
pickle: turnout ``State`` does, and so do actions defined at module level of a module the workers
can import.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from turnout.integrations._guard import missing_extra
from turnout.integrations._pickling import call, sending

try:
    import distributed
except ImportError as _error:  # pragma: no cover - exercised in a subprocess
    raise missing_extra(
        "turnout.integrations.dask", 'pip install "turnout[dask]"', _error
    ) from _error

__all__ = ["DaskExecutor"]

_T = TypeVar("_T")


class DaskExecutor(cf.Executor):
    """Runs each ``submit(fn, *args, **kwargs)`` as a Dask task and returns a standard future.

    Args:
        client: the ``distributed.Client`` to submit to. ``None``: the client current when the
            first call is submitted (``distributed.get_client()``: the default client, or the
            worker's own client inside a Dask task).
        workers: the workers (addresses or names) allowed to run the calls.
        resources: abstract resources each call needs, e.g. ``{"GPU": 1}``.
        retries: how often Dask re-runs a call that raised.
        allow_other_workers: let other workers run the calls when ``workers`` are busy.
        close_client: close the client in ``shutdown()`` (with the cluster it started, if any).

    Raises:
        TypeError: ``client`` is not a ``distributed.Client``.
    """

    def __init__(
        self,
        client: distributed.Client | None = None,
        *,
        workers: str | Iterable[str] | None = None,
        resources: Mapping[str, float] | None = None,
        retries: int | None = None,
        allow_other_workers: bool | None = None,
        close_client: bool = False,
    ) -> None:
        if client is not None and not isinstance(client, distributed.Client):
            raise TypeError(
                f"DaskExecutor(client=...) needs a distributed.Client, got {client!r}: "
                "pass DaskExecutor(Client(address)) or DaskExecutor() inside a Client's scope"
            )
        if workers is not None and not isinstance(workers, str):
            workers = list(workers)
        options: dict[str, Any] = {
            "workers": workers,
            "resources": dict(resources) if resources is not None else None,
            "retries": retries,
            "allow_other_workers": allow_other_workers,
        }
        self._options = {key: value for key, value in options.items() if value is not None}
        self._client = client
        self._close_client = close_client
        self._lock = threading.Lock()
        self._closed = False
        self._inner: Any = None
        self._pending: set[cf.Future[Any]] = set()

    @property
    def client(self) -> distributed.Client:
        """The client calls go to (found with ``distributed.get_client()`` if none was given).

        Raises:
            ValueError: no client was given and none is current.
        """
        if self._client is None:
            try:
                self._client = distributed.get_client()
            except ValueError as error:
                raise ValueError(
                    "DaskExecutor() found no Dask client: pass one, "
                    "DaskExecutor(Client(address)), or create a distributed.Client first"
                ) from error
        return self._client

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> cf.Future[_T]:
        """Schedules ``fn(*args, **kwargs)`` as a Dask task.

        Returns:
            A ``concurrent.futures.Future`` holding the call's result or exception.

        Raises:
            TypeError: ``fn`` is not callable, or it or an argument cannot be pickled.
            RuntimeError: the executor was shut down.
            ValueError: no client was given and none is current.
        """
        if not callable(fn):
            raise TypeError(f"DaskExecutor.submit() needs a callable, got {fn!r}")
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if self._inner is None:
                self._inner = self.client.get_executor(  # type: ignore[no-untyped-call]
                    pure=False, **self._options
                )
            inner = self._inner
            with sending(fn, "Dask"):
                future: cf.Future[_T] = inner.submit(call, fn, args, kwargs)
            self._pending.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: cf.Future[Any]) -> None:
        with self._lock:
            self._pending.discard(future)

    def map(
        self,
        fn: Callable[..., _T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[_T]:
        """Like ``Executor.map``: every call is submitted at once; results come in order.

        ``chunksize`` is accepted for compatibility and ignored (each call is one task).
        """
        return super().map(fn, *iterables, timeout=timeout)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stops accepting calls; like ``ThreadPoolExecutor.shutdown``.

        Args:
            wait: block until every submitted call has finished.
            cancel_futures: cancel the calls that have not finished.
        """
        with self._lock:
            self._closed = True
            pending = list(self._pending)
        if cancel_futures:
            for future in pending:
                future.cancel()
        if wait:
            cf.wait(pending)
        if self._close_client and self._client is not None:
            self._client.close()  # type: ignore[no-untyped-call]
