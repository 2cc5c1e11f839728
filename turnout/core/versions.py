"""Versioned state: a schema version for an application's state and the migrations between them.

An application declares the version of its state (``ApplicationBuilder.with_typing(...,
version=3, migrations={1: up_to_2, 2: up_to_3})``, or a ``StateSchema`` holding the same);
``migrations[n]`` turns the state dict of version ``n`` into version ``n + 1``. Every record a
persister or the local tracker saves carries the version its state was written under; a record
written before versions existed, or by an application that declares none, is version 1.

Loading a record older than the code's version runs the migrations in order, on the decoded dict
and before the typing system validates it; a record newer than the code's version is refused
with ``SchemaVersionError``. ``turnout migrate`` (``turnout.core.migrate``) rewrites stored
records in place so that old versions need not be loaded again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from turnout.core.errors import GraphSetupError, SchemaVersionError

__all__ = [
    "Declaration",
    "Migration",
    "StateSchema",
    "check_declaration",
    "declare",
    "migrate_state",
    "persister_problems",
]

Migration = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns the state dict of version ``n`` into the state dict of version ``n + 1``."""


def check_declaration(version: object, migrations: object) -> list[str]:
    """The problems of a ``version=`` / ``migrations=`` declaration, one line each (``[]``
    when it is sound): a version is an integer >= 1; migrations map each version from the
    lowest one declared up to ``version - 1`` to a callable, with no gap."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return [
            f"the state schema version must be an integer >= 1, got {version!r}: e.g. "
            f"with_typing(..., version=2, migrations={{1: upgrade_1_to_2}})."
        ]
    if not isinstance(migrations, Mapping):
        return [
            f"migrations must be a mapping of version -> function, got "
            f"{type(migrations).__name__}: {migrations!r}; e.g. migrations={{1: upgrade_1_to_2}}."
        ]
    problems: list[str] = []
    keys = list(migrations)
    bad = [k for k in keys if isinstance(k, bool) or not isinstance(k, int)]
    if bad:
        problems.append(
            f"migrations keys are the versions they upgrade from (integers), got "
            f"{', '.join(map(repr, bad))}."
        )
    steps = sorted(k for k in keys if k not in bad)
    out_of_range = [k for k in steps if k < 1 or k >= version]
    if out_of_range:
        problems.append(
            f"migrations from version {', '.join(map(str, out_of_range))} cannot exist with "
            f"version={version}: a migration n turns version n into n + 1, so its keys are "
            f"1 to {version - 1}. Raise version= or drop those migrations."
        )
    in_range = [k for k in steps if 1 <= k < version]
    if in_range:
        missing = sorted(set(range(in_range[0], version)) - set(in_range))
        if missing:
            problems.append(
                f"migrations skip version{'s' if len(missing) > 1 else ''} "
                f"{', '.join(map(str, missing))}: every step from version {in_range[0]} to "
                f"{version} needs a migration (migrations[n] turns version n into n + 1)."
            )
    for key in in_range:
        if not callable(migrations[key]):
            problems.append(
                f"migrations[{key}] must be a function taking the state dict of version {key} "
                f"and returning the one of version {key + 1}, got {migrations[key]!r}."
            )
    return problems


@dataclass(frozen=True, kw_only=True, slots=True)
class StateSchema:
    """An application's state version, its migrations and (optionally) its typing.

    Give it to ``ApplicationBuilder.with_typing(schema)``; ``turnout migrate MODULE:ATTR``
    imports one to rewrite stored records. ``oldest`` is the oldest version its migrations can
    load (``version`` itself when there are none).

    Args:
        version: the version of the state this code reads and writes (>= 1).
        migrations: ``{n: function}``, each turning the state dict of version ``n`` into version
            ``n + 1``; every step from the lowest key to ``version - 1``.
        typing: what ``with_typing`` takes besides: a typing system (``PydanticTypingSystem``),
            or ``None`` for untyped state.

    Raises:
        GraphSetupError: the declaration is not sound (one line per problem).
    """

    version: int = 1
    migrations: Mapping[int, Migration] = field(default_factory=dict)
    typing: Any = None

    def __post_init__(self) -> None:
        problems = check_declaration(self.version, self.migrations)
        if problems:
            raise GraphSetupError(problems)
        object.__setattr__(self, "migrations", dict(self.migrations))

    @property
    def oldest(self) -> int:
        return min(self.migrations, default=self.version)


@dataclass(frozen=True, kw_only=True, slots=True)
class Declaration:
    """What ``with_typing`` was given, sorted out: the schema (``None`` if no version was
    declared), the typing system to use, and the problems ``build()`` reports."""

    schema: StateSchema | None
    typing: Any
    problems: tuple[str, ...] = ()


def declare(
    typing: Any, version: int | None, migrations: Mapping[int, Migration] | None
) -> Declaration:
    """Sort out ``with_typing(typing, version=, migrations=)``; ``typing`` may be a
    ``StateSchema``, whose own typing is then the one to use."""
    if isinstance(typing, StateSchema):
        problems = (
            ()
            if version is None and migrations is None
            else (
                "with_typing(StateSchema(...)) takes its version and migrations from the "
                "schema; drop version= and migrations= (or put them in the StateSchema).",
            )
        )
        return Declaration(schema=typing, typing=typing.typing, problems=problems)
    if version is None and migrations is None:
        return Declaration(schema=None, typing=typing)
    found = (
        ["migrations= needs version=<the current version>, e.g. version=2."]
        if version is None
        else check_declaration(version, migrations if migrations is not None else {})
    )
    if found:
        return Declaration(
            schema=None, typing=typing, problems=tuple(f"with_typing(): {p}" for p in found)
        )
    assert version is not None
    schema = StateSchema(version=version, migrations=migrations or {}, typing=typing)
    return Declaration(schema=schema, typing=typing)


def persister_problems(schema: StateSchema | None, persister: object) -> list[str]:
    """The problem of saving versioned state to a persister that cannot record the version: it
    would store a state of version > 1 as version 1, and a later load would migrate it again."""
    if schema is None or schema.version == 1 or persister is None:
        return []
    if getattr(persister, "stores_schema_version", False):
        return []
    name = type(persister).__name__
    return [
        f"with_state_persister(): {name} cannot record the state schema version of what it "
        f"saves, so this application's version={schema.version} states would load as version "
        f"1 and be migrated again. Use one of turnout's persisters (SQLite, PostgreSQL, MySQL, "
        f"Redis, in-memory), or give {name} a save(..., schema_version=) that stores it, a "
        f"load() that reports it (PersistedStateData(schema_version=...)) and "
        f"stores_schema_version = True."
    ]


def migrate_state(
    state: Mapping[str, Any], stored: int, schema: StateSchema, *, source: str
) -> dict[str, Any]:
    """``state`` (written under version ``stored``) brought to ``schema.version``.

    Args:
        state: the decoded state dict of the record.
        stored: the version the record was written under.
        schema: the code's version and migrations.
        source: the record, for messages (``"app 'x' (partition None) at sequence id 3"``).

    Raises:
        SchemaVersionError: the record is newer than the code, older than its oldest migration,
            or a migration failed or returned something other than a dict.
    """
    if stored > schema.version:
        raise SchemaVersionError(
            f"the record of {source} was written under state schema version {stored}, but this "
            f"code declares version {schema.version}: it was saved by newer code, and loading it "
            f"could lose what that code added. Run the newer code, or declare version={stored} "
            f"with migrations up to it in with_typing(..., version=, migrations=)."
        )
    if stored < schema.oldest:
        raise SchemaVersionError(
            f"the record of {source} was written under state schema version {stored}, and this "
            f"code (version {schema.version}) has migrations from version {schema.oldest} only. "
            f"Add migrations[{stored}] (and every step up to {schema.version - 1}) to "
            f"with_typing(..., migrations=), or start the app afresh."
        )
    data = dict(state)
    for version in range(stored, schema.version):
        step = schema.migrations[version]
        try:
            result = step(data)
        except Exception as exc:
            raise SchemaVersionError(
                f"migrations[{version}] ({_name(step)}) failed on the record of {source}: "
                f"{type(exc).__name__}: {exc}. The stored record is unchanged; fix the "
                f"migration and load again."
            ) from exc
        if not isinstance(result, Mapping):
            raise SchemaVersionError(
                f"migrations[{version}] ({_name(step)}) returned {type(result).__name__} for the "
                f"record of {source}; a migration returns the state dict of version "
                f"{version + 1} (e.g. `return {{**state, 'new_key': default}}`)."
            )
        data = dict(result)
    return data


def _name(step: Migration) -> str:
    return getattr(step, "__qualname__", None) or repr(step)
