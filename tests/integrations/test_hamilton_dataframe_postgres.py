"""examples/hamilton_dataframe on a real PostgreSQL server: the Hamilton-computed DataFrame is
saved with every step and a new persister resumes it intact. Skips when the server is not
reachable, except under ``CI=true``."""

from __future__ import annotations

import pytest

pytest.importorskip("hamilton")
pytest.importorskip("psycopg")
pd = pytest.importorskip("pandas")

from examples.hamilton_dataframe.application import (  # noqa: E402
    application,
    first_batch,
    resume,
)
from tests.integrations.test_postgres import DSN, prefix, server  # noqa: E402
from turnout.integrations.postgres import PostgreSQLPersister  # noqa: E402

__all__ = ["prefix", "server"]  # fixtures, shared with test_postgres


def test_a_restarted_process_resumes_the_frame_from_postgres(prefix: str) -> None:
    with PostgreSQLPersister(DSN, prefix) as persister:
        saved = first_batch(persister)
    with PostgreSQLPersister(DSN, prefix) as persister:
        pd.testing.assert_frame_equal(application(persister).state["summary"], saved)
        result, final = resume(persister)
    assert result == {"revenue": 82.0, "rows": 5}
    assert str(final["product"].dtype) == "category"
    assert len(final) == 5
