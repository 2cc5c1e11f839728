"""examples/hamilton_dataframe on SQLite: a DataFrame computed by a Hamilton DAG is saved with
every step and a new persister (a restarted process) resumes it with the frame and its dtypes
intact, finishing with the same totals as an uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("hamilton")
pd = pytest.importorskip("pandas")

from examples.hamilton_dataframe.application import (  # noqa: E402
    application,
    first_batch,
    resume,
)
from turnout.core.sqlite import SQLitePersister  # noqa: E402

DTYPES = {"day": "datetime64[ns]", "product": "category", "qty": "int64", "revenue": "float64"}


def test_a_restarted_process_resumes_the_frame_from_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "sales.db"
    with SQLitePersister(db) as persister:
        saved = first_batch(persister)
    with SQLitePersister(db) as persister:
        restored = application(persister).state["summary"]
        pd.testing.assert_frame_equal(restored, saved)
        assert {k: str(v) for k, v in restored.dtypes.items()} == DTYPES
        result, final = resume(persister)
    with SQLitePersister(tmp_path / "straight.db") as persister:
        app = application(persister)
        _action, straight, state = app.run(halt_after=["report"])
    assert result == straight == {"revenue": 82.0, "rows": 5}
    pd.testing.assert_frame_equal(final, state["summary"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sales.db", "straight.db"]
