"""Every error turnout raises, in one hierarchy.

Each class also inherits the nearest built-in exception, so code that catches ``KeyError`` or
``ValueError`` keeps working; where Burr raises ``ValueError`` for the same mistake, the class
inherits ``ValueError`` too, so Burr code's ``except ValueError`` still catches it::

    TurnoutError(Exception)
    ├── GraphSetupError(ValueError)       build() found problems; one line per problem
    ├── ConditionError(ValueError)        a bad ``when``/``expr``, or an ``expr`` failed evaluating
    │   └── ConditionSyntaxError(SyntaxError)   an ``expr`` that is not Python syntax
    ├── StateKeyError(KeyError)           a state key is missing; lists the keys present
    ├── ConditionKeyError(KeyError, ValueError)   a transition's condition read a missing key
    ├── StateOperationError(TypeError, ValueError)   append/extend/increment on a wrong type
    ├── ActionDefinitionError(TypeError, ValueError)   an action is declared wrongly
    ├── InvalidActionReturnError(TypeError, ValueError)   an action returned the wrong shape
    ├── UndeclaredWriteError(ValueError)  an action changed a key it did not declare in writes
    ├── MissingWriteError(ValueError)     a declared write is absent from the state afterwards
    ├── StateValidationError(ValueError)  a typed state's value does not fit its declared type
    ├── InvalidInputsError(ValueError)    inputs that cannot be passed (reserved ``__`` names)
    │   └── MissingInputsError            required inputs were not given; shows how to pass them
    ├── UnknownActionError(ValueError)    a halt list or entrypoint names no action
    ├── AsyncRequiredError(RuntimeError, ValueError)  a sync method met something to await
    ├── HookError(RuntimeError)           a hook raised; the run is consistent (see hooks.py)
    ├── ActionTimeoutError(TimeoutError)  an async action ran past its ``timeout``
    ├── ChildApplicationError(RuntimeError)   children of a parallel step failed (retryable);
    │                                     also an instance of the first failed child's type
    ├── DeterminismError(RuntimeError)    a replayed step's durable calls differ from its journal
    ├── SuspensionError(RuntimeError)     a resume that does not fit the app's suspension
    │   └── AnswerValidationError(ValueError)   the answer does not match the suspension's schema
    ├── SerdeError(TypeError)             a value cannot be saved (or loaded); names its path
    ├── PersistenceError(RuntimeError)    a persister could not load or save; nothing was lost
    │   ├── ConcurrencyError              another writer saved this sequence id first
    │   ├── InvalidRecordError(ValueError)  a loader returned a record turnout cannot use
    │   ├── SchemaVersionError            a record's state schema version cannot be migrated
    │   ├── UnsupportedOperationError(NotImplementedError)  a persister lacks delete/prune
    │   └── TrackingAdminError(ValueError)  a prune or copy of tracking data asked wrongly
    ├── InvalidNameError(ValueError)      a name cannot name storage (a table prefix, a project)
    │   └── TrackingNameError             a project name cannot name a tracking directory
    ├── SessionStateError(ValueError)     a Streamlit page read an ``AppState`` it never stored
    ├── GalleryError(LookupError)         ``turnout demo`` names no gallery example, or finds none
    ├── ArtifactError(RuntimeError)       an artifact store could not store or return a blob
    │   ├── ArtifactNotFoundError(FileNotFoundError)   the store holds no blob for the ref
    │   ├── ArtifactIntegrityError(ValueError)   the stored bytes do not match the ref's digest
    │   └── InvalidArtifactRefError(ValueError)  a ref or digest that cannot name a blob
    └── MissingExtraError(ImportError)    an optional dependency is not installed

    GraphWarning(UserWarning)             a legal but suspicious graph (see ``build(strict=)``)
    TrackingWarning(UserWarning)          the tracker logged a placeholder; the app runs on (or
                                          damaged lines of a log read were skipped)
    PersistenceWarning(UserWarning)       a Burr persister argument turnout cannot honour
    UndeclaredWriteWarning(UserWarning)   an action changed a key outside its writes; applied
    SecurityWarning(UserWarning)          stored data is loaded with less protection than it needs

Messages say what failed, show the offending value and name the call that fixes it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ActionDefinitionError",
    "ActionTimeoutError",
    "AnswerValidationError",
    "ArtifactError",
    "ArtifactIntegrityError",
    "ArtifactNotFoundError",
    "AsyncRequiredError",
    "ChildApplicationError",
    "ConcurrencyError",
    "ConditionError",
    "ConditionKeyError",
    "ConditionSyntaxError",
    "DeterminismError",
    "GalleryError",
    "GraphSetupError",
    "GraphWarning",
    "HookError",
    "InvalidActionReturnError",
    "InvalidArtifactRefError",
    "InvalidInputsError",
    "InvalidNameError",
    "InvalidRecordError",
    "MissingExtraError",
    "MissingInputsError",
    "MissingWriteError",
    "PersistenceError",
    "PersistenceWarning",
    "SchemaVersionError",
    "SecurityWarning",
    "SerdeError",
    "SessionStateError",
    "StateKeyError",
    "StateOperationError",
    "StateValidationError",
    "SuspensionError",
    "TrackingAdminError",
    "TrackingNameError",
    "TrackingWarning",
    "TurnoutError",
    "UndeclaredWriteError",
    "UndeclaredWriteWarning",
    "UnknownActionError",
    "UnsupportedOperationError",
]


class TurnoutError(Exception):
    """Base class of every error raised by turnout."""


class GraphSetupError(TurnoutError, ValueError):
    """The graph or application cannot be built.

    Attributes:
        problems: one human-readable line per problem found.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        header = f"the application graph has {count} problem{'s' if count != 1 else ''}:"
        super().__init__("\n".join([header, *(f"  - {p}" for p in self.problems)]))


class ConditionError(TurnoutError, ValueError):
    """A condition (``when``, ``expr``, ``Condition``) is malformed, or evaluating an ``expr``
    failed or went over a limit (the error raised inside is the ``__cause__``).

    An ``expr`` whose evaluation raised is also an instance of that error's type, as Burr (whose
    ``expr`` lets it through) lets its users expect: ``except ZeroDivisionError`` catches
    ``expr("1 / x")`` with ``x == 0``. A ``KeyError`` inside (``d['absent']``) is not combined:
    turnout reads a ``KeyError`` as a state key the state lacks. Neither are types that cannot
    be combined (see ``ChildApplicationError``).
    """

    @classmethod
    def failed(cls, message: str, cause: Exception) -> ConditionError:
        """The error for an evaluation that raised ``cause``; see the class docstring."""
        error = _condition_error_type(type(cause))(message)
        error.__cause__ = cause
        return error


class ConditionSyntaxError(ConditionError, SyntaxError):
    """An ``expr``/``safe_expr`` text that does not parse (a ``SyntaxError`` too, as Burr's
    ``ast.parse`` raises); ``lineno``/``offset`` point into the expression."""

    def __init__(self, message: str, details: tuple[Any, ...] | None = None) -> None:
        # SyntaxError's own __init__ (ValueError's would come first) sets msg, lineno, ...
        if details is None:
            SyntaxError.__init__(self, message)
        else:
            SyntaxError.__init__(self, message, details)

    def __str__(self) -> str:  # the message alone, not SyntaxError's "(<file>, line 1)"
        return str(self.msg)


class StateKeyError(TurnoutError, KeyError):
    """A key was read from a ``State`` that does not hold it.

    Attributes:
        key: the missing key.
        present: the keys the state holds.
    """

    def __init__(self, key: str, present: list[str]) -> None:
        self.key = key
        self.present = present
        super().__init__(key)

    def __str__(self) -> str:  # KeyError.__str__ would repr() the whole message
        shown = ", ".join(repr(k) for k in sorted(self.present)) or "none"
        if self.key in ("__SEQUENCE_ID", "__PRIOR_STEP"):
            return (
                f"state has no key {self.key!r} (keys present: {shown}): turnout keeps the "
                f"sequence id and the prior action on the application, not in the state. Inside "
                f"a step, state[{self.key!r}] is computed (it is absent here: outside a step, or "
                f"__PRIOR_STEP on the first step); elsewhere use app.sequence_id / "
                f"app.prior_action, or __context.sequence_id in an action."
            )
        return (
            f"state has no key {self.key!r} (keys present: {shown}). If an action reads it, "
            f"declare it with @action(reads=[..., {self.key!r}]) and make sure the initial "
            f"state (ApplicationBuilder.with_state({self.key}=...)) or an earlier action "
            f"writes it."
        )


class ConditionKeyError(TurnoutError, KeyError, ValueError):
    """A transition's condition read a key that the state does not hold (a ``ValueError`` too:
    Burr raises one)."""

    def __str__(self) -> str:  # KeyError.__str__ would repr() the whole message
        return str(self.args[0]) if self.args else ""


class StateOperationError(TurnoutError, TypeError, ValueError):
    """A state operation met a value of the wrong type (``append`` to an int, ...); a
    ``ValueError`` too, as Burr raises."""


class ActionDefinitionError(TurnoutError, TypeError, ValueError):
    """An action is declared incorrectly (decorator arguments, ``bind``, class attributes); a
    ``ValueError`` too, as Burr raises for such mistakes."""


class InvalidActionReturnError(TurnoutError, TypeError, ValueError):
    """An action returned something other than what its kind must return; a ``ValueError`` too,
    as Burr raises."""


class UndeclaredWriteError(TurnoutError, ValueError):
    """An action changed state keys that it did not list in ``writes`` (in strict mode,
    ``build(strict=True)``; otherwise the change is applied with an ``UndeclaredWriteWarning``)."""


class MissingWriteError(TurnoutError, ValueError):
    """An action declared a write but the key is absent from the state after the step."""


class StateValidationError(TurnoutError, ValueError):
    """A value read or written by a typed action does not fit the state's type: the message
    names the action, the field, the value's type and the expected type (a ``ValueError``, as
    pydantic's ``ValidationError`` that Burr raises is; the original is its ``__cause__``)."""


class InvalidInputsError(TurnoutError, ValueError):
    """Inputs that cannot be passed to an application call."""


class MissingInputsError(InvalidInputsError):
    """An action needs inputs that the caller did not pass."""


class UnknownActionError(TurnoutError, ValueError):
    """A name given to ``halt_before``/``halt_after`` (or similar) is not an action."""


class AsyncRequiredError(TurnoutError, RuntimeError, ValueError):
    """A synchronous method (``step``, ``run``, ...) met an async action or hook; use the
    ``a``-prefixed method (``astep``, ``arun``, ...) and ``await`` it. A ``ValueError`` too,
    as Burr raises one for a sync call on an application built with ``abuild()``."""


class HookError(TurnoutError, RuntimeError):
    """A hook raised. Every other hook was still called and the application is consistent: a
    failing ``pre_*`` hook stops the step before its action runs; a failing ``post_*`` hook
    fires after the step was committed.

    Attributes:
        hook: the hook object that raised.
        method: the hook method's name.
    """

    def __init__(self, message: str, *, hook: object, method: str) -> None:
        super().__init__(message)
        self.hook = hook
        self.method = method


class ActionTimeoutError(TurnoutError, TimeoutError):
    """An async action did not finish within its ``timeout``.

    Attributes:
        action: the action's name.
        timeout: the limit, in seconds.
    """

    def __init__(self, action: str, timeout: float) -> None:
        super().__init__(
            f"action {action!r} did not finish within its timeout of {timeout:g} s; raise the "
            f"limit with @action(..., timeout=...) or route the failure with on_exception(...)."
        )
        self.action = action
        self.timeout = timeout


class ChildApplicationError(TurnoutError, RuntimeError):
    """One or more child applications of a parallel step failed.

    It reports a failure at run time, not a mistake in the code, so a ``RetryPolicy`` on the
    parallel action retries it (like ``ActionTimeoutError``; see ``RetryPolicy.should_retry``).
    The finished children's work is kept (persisted, and remembered across retries of the step);
    ``failures`` lists ``(index, app_id, exception)`` of every failed child, in index order, and
    the first of them is also the ``__cause__``.

    The error raised is also an instance of the first failed child's exception type, as Burr
    (which re-raises the child's exception) lets its users expect: ``except ValueError`` catches
    a child's ``ValueError``. It is a subclass made for that type,
    ``ChildApplicationError[ValueError]``, carrying the child exception's attributes too. Types
    that cannot be combined with it (``OSError`` and other built-ins with their own instance
    layout, and ``BaseException``s that are not ``Exception``s) give a plain
    ``ChildApplicationError``; catch that, and read ``failures``, to handle every case.
    """

    action: str
    failures: list[tuple[int, str, BaseException]]
    total: int

    def __new__(
        cls, action: str, failures: list[tuple[int, str, BaseException]], total: int
    ) -> ChildApplicationError:
        if cls is ChildApplicationError and failures:
            cls = _child_error_type(failures[0][2])
        return super().__new__(cls, action, failures, total)

    def __init__(
        self, action: str, failures: list[tuple[int, str, BaseException]], total: int
    ) -> None:
        import pickle  # here: `import turnout` does not pay for it

        index, app_id, first = failures[0]
        if type(self) is not ChildApplicationError:
            # the child exception's own attributes (``code``, ``response``...), for handlers
            # written against its type
            vars(self).update(getattr(first, "__dict__", {}))
        self.action = action
        self.failures = failures
        self.total = total
        hint = ""
        if isinstance(first, pickle.PicklingError) or "pickle" in str(first).lower():
            hint = (
                " The child could not be sent to the executor: with a process (or Ray/Dask) "
                "executor its actions must be module-level and its state, tracker and persister "
                "picklable."
            )
        if isinstance(first, AsyncRequiredError):
            hint = (
                " A sync parallel action runs its children synchronously: make it async (an "
                "async generator of tasks/states/actions, or is_async() returning True) and run "
                "the parent with astep/arun."
            )
        others = f" ({len(failures)} of {total} children failed)" if len(failures) > 1 else ""
        super().__init__(
            f"parallel action {action!r}: child {index} (app id {app_id!r}) failed with "
            f"{type(first).__name__}: {first}{others}.{hint} Children that finished are kept: "
            f"re-running the step (retry=RetryPolicy(...) on the action, or resuming the "
            f"application) runs only the unfinished ones."
        )

    def __str__(self) -> str:  # not the child type's __str__ (KeyError's would repr() it)
        return BaseException.__str__(self)

    def __reduce__(self) -> tuple[Any, ...]:
        # rebuilt through the base class, which picks the same subclass again
        return (ChildApplicationError, (self.action, self.failures, self.total))


_CHILD_ERROR_TYPES: dict[type[BaseException], type[ChildApplicationError]] = {}


def _child_error_type(first: BaseException) -> type[ChildApplicationError]:
    """``ChildApplicationError`` combined with ``type(first)``, made once per type; the plain
    class when the two cannot be combined."""
    child_type = type(first)
    if issubclass(child_type, ChildApplicationError):  # a grandchild failed: same combination
        return child_type if child_type in _CHILD_ERROR_TYPES.values() else ChildApplicationError
    if not issubclass(child_type, Exception) or isinstance(first, AsyncRequiredError):
        return ChildApplicationError
    made = _CHILD_ERROR_TYPES.get(child_type)
    if made is None:
        try:
            made = type(
                f"ChildApplicationError[{child_type.__qualname__}]",
                (ChildApplicationError, child_type),
                {"__module__": __name__, "__doc__": ChildApplicationError.__doc__},
            )
            # Some combinations are refused only when an instance is made (OSError's layout).
            super(ChildApplicationError, made).__new__(made)
        except TypeError:  # a layout conflict or a class that refuses subclasses
            made = ChildApplicationError
        _CHILD_ERROR_TYPES[child_type] = made
    return made


_CONDITION_ERROR_TYPES: dict[type[BaseException], type[ConditionError]] = {}


def _condition_error_type(cause: type[BaseException]) -> type[ConditionError]:
    """``ConditionError`` combined with ``cause``, made once per type; the plain class when
    they cannot (or must not) be combined."""
    if (
        issubclass(cause, (TurnoutError, KeyError, StopIteration, StopAsyncIteration))
        or not issubclass(cause, Exception)
        or cause is ValueError
    ):
        return ConditionError
    made = _CONDITION_ERROR_TYPES.get(cause)
    if made is None:
        try:
            made = type(
                f"ConditionError[{cause.__qualname__}]",
                (ConditionError, cause),
                {
                    "__module__": __name__,
                    "__doc__": ConditionError.__doc__,
                    "__str__": BaseException.__str__,
                    "__reduce__": _reduce_condition_error,
                    "_also": cause,
                },
            )
            made("probe")  # some combinations fail only here (a layout, a required argument)
        except TypeError:
            made = ConditionError
        _CONDITION_ERROR_TYPES[cause] = made
    return made


def _reduce_condition_error(self: ConditionError) -> tuple[Any, ...]:
    return (_rebuild_condition_error, (str(self), self._also))  # type: ignore[attr-defined]


def _rebuild_condition_error(message: str, also: type[BaseException]) -> ConditionError:
    return _condition_error_type(also)(message)


class DeterminismError(TurnoutError, RuntimeError):
    """A step ran again (a retry, a resume, a restart after a crash) and asked
    ``ApplicationContext.durable`` for another call than its journal holds at that place: the
    step's durable calls are not the same keys in the same order as on its first run, so the
    journaled results cannot be matched to them.

    Attributes:
        app_id, partition_key, sequence_id: the step.
        index: the call's place among the step's durable calls (0 for the first).
        key: the key the step asked for now.
        journaled_key: the key the journal holds at ``index``.
    """

    def __init__(
        self,
        *,
        app_id: str,
        partition_key: str | None,
        sequence_id: int,
        index: int,
        key: str,
        journaled_key: str,
    ) -> None:
        self.app_id = app_id
        self.partition_key = partition_key or None
        self.sequence_id = sequence_id
        self.index = index
        self.key = key
        self.journaled_key = journaled_key
        restart = (
            f"fork the app from the step before with ApplicationBuilder().initialize_from("
            f"persister, fork_from_app_id={app_id!r}, fork_from_sequence_id={sequence_id - 1}, "
            f"...): the fork's step {sequence_id} has no journal yet"
            if sequence_id > 0
            else "start the app afresh under another app id (with_identifiers(app_id=...))"
        )
        super().__init__(
            f"step {sequence_id} of app {app_id!r} (partition {self.partition_key!r}) asked "
            f"durable({key!r}) as its durable call #{index}, but its journal holds "
            f"durable({journaled_key!r}) there: on a replay a step must make the same durable "
            f"calls, with the same keys, in the same order, as when it first ran. Make what "
            f"decides the calls deterministic (read it from state or from an earlier durable "
            f"call), or {restart}."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_determinism_error, (self.__dict__.copy(),))


def _rebuild_determinism_error(fields: dict[str, Any]) -> DeterminismError:
    return DeterminismError(**fields)


class SuspensionError(TurnoutError, RuntimeError):
    """``Application.resume`` cannot deliver an answer: the application is not suspended (or
    its suspension was answered already), or it waits on another channel. Nothing changed."""


class AnswerValidationError(SuspensionError, ValueError):
    """An answer given to ``Application.resume`` (or a schema given to
    ``ApplicationContext.suspend``) does not fit: the message names the path in the value
    (``$.approved``) and what was expected there. Nothing changed.

    Attributes:
        path: where the first mismatch sits, e.g. ``$.items[2]``.
    """

    def __init__(self, message: str, *, path: str = "$") -> None:
        self.path = path
        super().__init__(message)


class SerdeError(TurnoutError, TypeError, ValueError):
    """A value cannot be turned into JSON, or stored data cannot be turned back into a value
    (it is malformed, names a class this process has not registered, or was crafted).

    Attributes:
        path: where the value sits, e.g. ``$.messages[3].args``; when loading, where the bad
            part sits in the stored JSON. Empty for a mistake in registering a type.
    """

    def __init__(
        self, path: str, value: Any, reason: str | None = None, *, loading: bool | None = None
    ) -> None:
        self.path = path
        if reason is None:
            reason = (
                f"{type(value).__module__}.{type(value).__qualname__} values are not supported; "
                f"register it with turnout.core.serde.DEFAULT_SERDE.register({type(value).__name__}"
                f", encode=..., decode=...), make it a dataclass, or keep it out of the state"
            )
        if not path:
            super().__init__(reason)
            return
        if loading is None:
            loading = value is None and path == "$"
        verb = "load stored data at" if loading else "serialise the value at"
        shown = path if len(path) <= 160 else f"{path[:100]}...{path[-40:]}"
        super().__init__(f"cannot {verb} {shown}: {reason}")


class PersistenceError(TurnoutError, RuntimeError):
    """A persister could not load or save. Records already saved are never changed by it."""


class ConcurrencyError(PersistenceError):
    """Another writer saved this (partition key, app id, sequence id) first: two applications
    are advancing the same app id. Reload it (``initialize_from``) before saving again. With
    ``deleted``, the app was deleted (``persister.delete``) while this application ran.

    Attributes:
        partition_key, app_id, sequence_id: the contested record.
        deleted: the app has no row any more: it was deleted, not advanced by another writer.
    """

    def __init__(
        self, partition_key: str | None, app_id: str, sequence_id: int, deleted: bool = False
    ) -> None:
        partition_key = partition_key or None  # stores keep the None partition as ""
        self.partition_key = partition_key
        self.app_id = app_id
        self.sequence_id = sequence_id
        self.deleted = deleted
        if deleted:
            message = (
                f"app {app_id!r} (partition {partition_key!r}) was deleted (persister.delete) "
                f"while this application was running, so its save of sequence id {sequence_id} "
                f"was refused: a deleted app never comes back half-way. To start the app id "
                f"afresh, build a new application with with_identifiers(app_id={app_id!r}) and "
                f"no initialize_from record; to keep an app, do not delete it while it runs."
            )
        else:
            message = (
                f"app {app_id!r} (partition {partition_key!r}) already has a record at sequence "
                f"id {sequence_id}: another application saved it first. Only one application may "
                f"advance an app id at a time; reload it with "
                f"ApplicationBuilder().initialize_from(...) and retry."
            )
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.partition_key, self.app_id, self.sequence_id, self.deleted))


class InvalidRecordError(PersistenceError, ValueError):
    """A loader's ``load()`` returned a record turnout cannot start from (no state, say); the
    message shows the record and what ``load()`` should return instead."""


class SchemaVersionError(PersistenceError):
    """A stored record's state schema version is newer than the code's, older than its oldest
    migration, or a migration failed (``turnout.core.versions``); the record is unchanged."""


class UnsupportedOperationError(PersistenceError, NotImplementedError):
    """A persister was asked for something it does not implement (a user's persister with only
    ``load``/``save``/``list_app_ids`` asked to ``delete`` or ``prune``); the message names the
    method to define."""


class TrackingAdminError(PersistenceError, ValueError):
    """``turnout prune`` or ``turnout tracking copy`` (``turnout.core.trackadmin``) was asked
    for something it cannot do (no rule to select by, a bad duration, a store it cannot write);
    nothing was changed."""


class InvalidNameError(TurnoutError, ValueError):
    """A name given to a persister or tracker cannot name its storage (a table or key prefix, a
    tracking project); the message shows the rule and an example."""


class TrackingNameError(InvalidNameError):
    """A project name that cannot name a tracking directory (``LocalTracker(project)``)."""


class SessionStateError(TurnoutError, ValueError):
    """A Streamlit page asked for the ``AppState`` of Burr's explorer helpers
    (``turnout.integrations.streamlit.get_state``) before storing one with ``update_state``;
    a ``ValueError`` too, as Burr raises one."""


class ArtifactError(TurnoutError, RuntimeError):
    """An artifact store (``turnout.core.artifacts``) could not store or return a blob: its
    directory or server failed. The message names the store and the ref."""


class ArtifactNotFoundError(ArtifactError, FileNotFoundError):
    """The store holds no blob for the ref (never stored there, or deleted). A
    ``FileNotFoundError`` too, as Burr's artifact stores raise one."""


class ArtifactIntegrityError(ArtifactError, ValueError):
    """The bytes a store holds for a ref do not hash to its digest: they were damaged or
    replaced. Nothing of them is returned; the message names the ref and where the bytes are."""


class InvalidArtifactRefError(ArtifactError, ValueError):
    """A ref (or stored ref data) that cannot name a blob: its digest is not 64 lowercase hex
    characters, its size is not a non-negative int, or it is not an ``ArtifactRef`` at all.
    Refusing it is what keeps a key from reaching outside a store."""


class GalleryError(TurnoutError, LookupError):
    """No gallery example has this name (the message suggests the closest), or the examples
    are not where a wheel or a source checkout puts them."""


class MissingExtraError(TurnoutError, ImportError):
    """An optional dependency is missing; the message names the exact install command."""


class GraphWarning(UserWarning):
    """A legal graph that is probably a mistake (unreachable action, read never provided)."""


class TrackingWarning(UserWarning):
    """The tracker could not log something as it is (it logged a placeholder instead); the
    application runs on. Issued once per application. Also issued when reading a log skipped
    damaged lines (``load_state_from_log_file``)."""


class PersistenceWarning(UserWarning):
    """A persister argument accepted for Burr compatibility that turnout cannot honour as Burr
    did (e.g. ``serde_kwargs``); the message names what to use instead."""


class UndeclaredWriteWarning(UserWarning):
    """An action changed (set, appended, deleted, ...) a state key it does not declare in
    ``writes``. The change was applied, as Burr applies it; the warning comes once per action
    and key of an application and names the ``writes=`` to declare. ``build(strict=True)`` makes
    it an ``UndeclaredWriteError``."""


class SecurityWarning(UserWarning):
    """Stored data is loaded with less protection than it should be (e.g. pickles registered
    without an allowlist: see ``turnout.integrations.serde.pickle``)."""
