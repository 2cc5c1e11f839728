"""``RayExecutor``: a ``concurrent.futures.Executor`` that runs each submitted call as a Ray task.

Pass it where turnout takes an executor, e.g. to run the children of a map action on a Ray
cluster::

    app = (
        ApplicationBuilder()
        ...
        .with_parallel_executor(lambda: RayExecutor(num_cpus=1))
        .build()
    )

Every call travels to a worker process with cloudpickle, so the callable, its arguments and its
result must pickle: turnout ``State`` does, and so do actions defined at module level of an
importable module (Ray workers on the same machine see the driver's ``sys.path``; on other
machines ship the code with ``runtime_env``).

Ray starts lazily: the first ``submit`` connects to the running Ray (``ray.init`` already called
in this process) or calls ``ray.init(address=..., **init_options)`` itself. Ray stays up after
``shutdown()`` unless ``shutdown_ray=True``, because an application may create one executor per
map step and starting Ray takes seconds.

Futures are plain ``concurrent.futures.Future`` objects. A task that raises fails its future with
the original exception (its type and arguments, not Ray's ``RayTaskError`` wrapper), with the
remote traceback attached as a note; Ray's own failures (a worker crash, a lost object) stay
Ray exceptions.
"""

from __future__ import annotations

import concurrent.futures as cf
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from turnout.integrations._guard import missing_extra
from turnout.integrations._pickling import call, sending

try:
    import ray
    import ray.exceptions
except ImportError as _error:  # pragma: no cover - exercised in a subprocess
    raise missing_extra(
        "turnout.integrations.ray", 'pip install "turnout[ray]"', _error
    ) from _error

__all__ = ["RayExecutor"]

_T = TypeVar("_T")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours the task name in its error text

# The one remote function every call goes through: ``ray.remote(fn)`` per submit would export a new
# function to the cluster each time, which costs more than the task itself.
_REMOTE: Any = None
_REMOTE_LOCK = threading.Lock()


def _remote_call() -> Any:
    global _REMOTE
    with _REMOTE_LOCK:
        if _REMOTE is None:
            _REMOTE = ray.remote(call)
        return _REMOTE


class RayExecutor(cf.Executor):
    """Runs each ``submit(fn, *args, **kwargs)`` as a Ray task and returns a standard future.

    Args:
        num_cpus: CPUs Ray reserves for each task (Ray's default: 1).
        num_gpus: GPUs Ray reserves for each task.
        runtime_env: the tasks' Ray runtime environment (``pip``, ``env_vars``,
            ``working_dir``, ...).
        max_retries: how often Ray re-runs a task whose worker died (Ray's default: 3). A
            Python exception raised by the call is not retried.
        task_options: any other ``ray.remote`` options (``resources``, ``scheduling_strategy``,
            ...), passed to ``.options(...)``.
        address: the cluster to connect to when this executor starts Ray (``None``: a
            ``RAY_ADDRESS`` cluster if set, else a new local instance; ``"auto"``: a running one).
        init_options: further ``ray.init`` keyword arguments when this executor starts Ray
            (``num_cpus``, ``include_dashboard``, ...). Ignored when Ray already runs.
        shutdown_ray: call ``ray.shutdown()`` in ``shutdown()``, whoever started Ray.
        shutdown_on_end: Burr's name for ``shutdown_ray`` (either one set turns it on).

    Raises:
        TypeError: an option has the wrong type, or ``task_options`` repeats a named option.
    """

    def __init__(
        self,
        *,
        num_cpus: float | None = None,
        num_gpus: float | None = None,
        runtime_env: Mapping[str, Any] | None = None,
        max_retries: int | None = None,
        task_options: Mapping[str, Any] | None = None,
        address: str | None = None,
        init_options: Mapping[str, Any] | None = None,
        shutdown_ray: bool = False,
        shutdown_on_end: bool = False,
    ) -> None:
        named = {
            "num_cpus": num_cpus,
            "num_gpus": num_gpus,
            "runtime_env": dict(runtime_env) if runtime_env is not None else None,
            "max_retries": max_retries,
        }
        options = {key: value for key, value in named.items() if value is not None}
        extra = dict(task_options or {})
        clash = sorted(set(extra) & set(named))
        if clash:
            raise TypeError(
                f"RayExecutor(task_options=...) repeats {clash}: pass them as "
                f"RayExecutor({clash[0]}=...) instead"
            )
        options.update(extra)
        self._options = options
        self._address = address
        self._init_options = dict(init_options or {})
        if "address" in self._init_options:
            raise TypeError(
                "RayExecutor(init_options=...) holds 'address': pass RayExecutor(address=...)"
            )
        self._shutdown_ray = shutdown_ray or shutdown_on_end
        self._lock = threading.Lock()
        self._closed = False
        self._remote: Any = None
        self._pending: dict[cf.Future[Any], ray.ObjectRef[Any]] = {}

    @property
    def options(self) -> dict[str, Any]:
        """The options every task is submitted with (a copy)."""
        return dict(self._options)

    def _ensure_ray(self) -> Any:
        """Connects to (or starts) Ray once; returns the remote function with the task options."""
        if self._remote is None:
            if not ray.is_initialized():
                ray.init(address=self._address, **self._init_options)
            remote = _remote_call()
            self._remote = remote.options(**self._options) if self._options else remote
        return self._remote

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> cf.Future[_T]:
        """Schedules ``fn(*args, **kwargs)`` as a Ray task.

        Returns:
            A ``concurrent.futures.Future`` holding the call's result or exception.

        Raises:
            TypeError: ``fn`` is not callable, or it or an argument cannot be pickled.
            RuntimeError: the executor was shut down.
        """
        if not callable(fn):
            raise TypeError(f"RayExecutor.submit() needs a callable, got {fn!r}")
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            remote = self._ensure_ray()
        with sending(fn, "Ray"):
            ref = remote.remote(fn, args, kwargs)
        outer: cf.Future[_T] = cf.Future()
        with self._lock:
            self._pending[outer] = ref
        outer.add_done_callback(self._forget)
        ref.future().add_done_callback(lambda inner: _settle(outer, inner))
        return outer

    def _forget(self, future: cf.Future[Any]) -> None:
        with self._lock:
            ref = self._pending.pop(future, None)
        if future.cancelled():
            # Like the standard executors: without this, wait() and as_completed() never
            # count the cancelled future as done.
            future.set_running_or_notify_cancel()
            if ref is not None:
                ray.cancel(ref)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stops accepting calls; like ``ThreadPoolExecutor.shutdown``.

        Args:
            wait: block until every submitted call has finished.
            cancel_futures: cancel the calls that have not finished (Ray cancels the task if it
                has not started, and interrupts it if it has).
        """
        with self._lock:
            self._closed = True
            pending = list(self._pending)
        if cancel_futures:
            for future in pending:
                future.cancel()
        if wait:
            cf.wait(pending)
        if self._shutdown_ray and ray.is_initialized():
            ray.shutdown()


def _settle(outer: cf.Future[Any], inner: cf.Future[Any]) -> None:
    """Copies Ray's outcome into the caller's future, unwrapping the user's exception."""
    if outer.done():  # cancelled by the caller meanwhile
        return
    try:
        error = inner.exception()
    except cf.CancelledError:
        outer.cancel()
        return
    try:
        if error is None:
            outer.set_result(inner.result())
        else:
            outer.set_exception(_unwrap(error))
    except cf.InvalidStateError:  # cancelled between the check and the set
        pass
    except BaseException as unexpected:  # never leave the caller's future pending
        if not outer.done():
            outer.set_exception(unexpected)


def _unwrap(error: BaseException) -> BaseException:
    cause = (
        getattr(error, "cause", None) if isinstance(error, ray.exceptions.RayTaskError) else None
    )
    if not isinstance(cause, BaseException) or isinstance(cause, ray.exceptions.RayError):
        return error
    # str() of Ray's error holds the task name, the worker's pid and the remote traceback.
    cause.add_note("Raised in a Ray task:\n" + _ANSI.sub("", str(error)))
    return cause
