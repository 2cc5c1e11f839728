"""Versioned state on a real PostgreSQL server, typed with pydantic: a version 1 application
resumed by version 3 code (migrated, then validated by the model; sync and async), a migration
whose result the model refuses, and ``turnout migrate --postgres``.

Skips when the server is not reachable, except under ``CI=true`` (the ``server`` fixture of
test_postgres).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("psycopg")
pytest.importorskip("psycopg_pool")
pytest.importorskip("pydantic")
import pydantic

from tests.core.versioned import MIGRATIONS, add_label, run_v1, stored, v1_builder, v3_builder
from tests.integrations.test_postgres import DSN, prefix, server
from turnout.cli import main
from turnout.core._chain import snapshot_version
from turnout.core.errors import SchemaVersionError, StateValidationError
from turnout.core.versions import StateSchema
from turnout.integrations.postgres import AsyncPostgreSQLPersister, PostgreSQLPersister
from turnout.integrations.pydantic import PydanticTypingSystem

__all__ = ["prefix", "server"]  # fixtures, shared with test_postgres


class Counter(pydantic.BaseModel):
    total: int = 0
    label: str = ""


TYPED = PydanticTypingSystem(Counter)
TYPED_SCHEMA = StateSchema(version=3, migrations=MIGRATIONS, typing=TYPED)


def test_v1_app_on_postgres_resumes_under_typed_v3_code(prefix: str) -> None:
    with PostgreSQLPersister(DSN, prefix) as persister:
        run_v1(persister, 3)
        app = (
            v3_builder(typing=TYPED)
            .initialize_from(persister, default_entrypoint="bump")
            .with_state_persister(persister)
            .build()
        )
        assert app.state.data == Counter(total=3, label="total=3")
        app.step()
        records = stored(persister)
        loaded = persister.load(None, "app")
    assert records[-1].kind == "snapshot"
    assert snapshot_version(records[-1].payload) == 3
    assert loaded is not None
    assert loaded.schema_version == 3
    assert loaded.state.get_all() == {"total": 4, "label": "total=4"}


def test_a_migrated_state_the_model_refuses_fails_the_build(prefix: str) -> None:
    with PostgreSQLPersister(DSN, prefix) as persister:
        run_v1(persister, 1)
        builder = (
            v3_builder()
            .with_typing(
                TYPED, version=3, migrations={1: lambda s: {"total": "many"}, 2: add_label}
            )
            .initialize_from(persister, default_entrypoint="bump")
        )
        with pytest.raises(StateValidationError, match="total"):
            builder.build()


def test_async_v1_app_on_postgres_resumes_under_typed_v3_code(prefix: str) -> None:
    async def scenario() -> tuple[Counter, int]:
        async with AsyncPostgreSQLPersister(DSN, prefix) as persister:
            old = await (
                v1_builder()
                .with_state(count=0)
                .with_entrypoint("bump")
                .with_state_persister(persister)
                .abuild()
            )
            await old.astep()
            app = await (
                v3_builder(typing=TYPED)
                .initialize_from(persister, default_entrypoint="bump")
                .with_state_persister(persister)
                .abuild()
            )
            data = app.state.data
            await app.astep()
            loaded = await persister.load(None, "app")
            assert loaded is not None
            return data, loaded.schema_version

    assert asyncio.run(scenario()) == (Counter(total=1, label="total=1"), 3)


def test_newer_postgres_record_is_refused(prefix: str) -> None:
    with PostgreSQLPersister(DSN, prefix) as persister:
        app = (
            v3_builder()
            .with_state(total=0)
            .with_entrypoint("bump")
            .with_state_persister(persister)
            .build()
        )
        app.step()
        with pytest.raises(SchemaVersionError, match="declares version 1"):
            v1_builder().initialize_from(persister, default_entrypoint="bump").build()


def test_turnout_migrate_on_postgres(prefix: str, capsys: pytest.CaptureFixture[str]) -> None:
    with PostgreSQLPersister(DSN, prefix, snapshot_every=2) as persister:
        run_v1(persister, 4, app_id="old")
        before = stored(persister, "old")
    spec = f"{__name__}:TYPED_SCHEMA"
    command = ["migrate", spec, "--postgres", DSN, "--table", prefix]
    assert main(command) == 0
    assert "would rewrite 4 of 4 records, version 1 -> 3" in capsys.readouterr().out
    with PostgreSQLPersister(DSN, prefix) as persister:
        assert stored(persister, "old") == before
    assert main([*command, "--apply"]) == 0
    assert "rewrote 4 of 4 records" in capsys.readouterr().out
    assert main([*command, "--apply"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    with PostgreSQLPersister(DSN, prefix) as persister:
        records: list[Any] = stored(persister, "old")
        assert {snapshot_version(r.payload) for r in records} == {3}
        for seq in range(4):
            loaded = persister.load(None, "old", seq)
            assert loaded is not None
            assert loaded.state.get_all() == {"total": seq + 1, "label": f"total={seq + 1}"}
