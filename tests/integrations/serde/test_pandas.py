"""Burr's pandas serde plugin on turnout: DataFrames saved as parquet files under the configured
directory, through ``State.serialize``, a SQLite persister and the tracker (``serde_kwargs``),
and stored paths that would read outside that directory refused."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

from turnout import ApplicationBuilder, State, action  # noqa: E402
from turnout.core.errors import SerdeError  # noqa: E402
from turnout.core.serde import KEY  # noqa: E402
from turnout.core.sqlite import SQLitePersister  # noqa: E402
from turnout.core.tracking import LocalTracker  # noqa: E402


def _frame(offset: int = 0) -> Any:
    return pd.DataFrame({"a": [1 + offset, 2, 3], "b": ["x", "y", "z"]})


def test_a_frame_round_trips_as_a_file_named_relative_to_the_directory(tmp_path: Path) -> None:
    data = State({"df": _frame(), "n": 1}).serialize(pandas_kwargs={"path": tmp_path})
    stored = data["df"]
    assert stored[KEY] == "pandas.DataFrame"
    assert os.path.basename(stored["path"]) == stored["path"]
    assert (tmp_path / stored["path"]).is_file()
    back = State.deserialize(data, pandas_kwargs={"path": tmp_path})
    pd.testing.assert_frame_equal(back["df"], _frame())
    assert back["n"] == 1


def test_frames_with_the_same_shape_but_other_values_get_their_own_files(tmp_path: Path) -> None:
    """Burr 0.43 names the file after columns, shape and dtypes, so such frames overwrite each
    other; turnout names it after the file's content."""
    data = State({"one": _frame(0), "two": _frame(10)}).serialize(pandas_kwargs={"path": tmp_path})
    assert data["one"]["path"] != data["two"]["path"]
    back = State.deserialize(data, pandas_kwargs={"path": tmp_path})
    pd.testing.assert_frame_equal(back["one"], _frame(0))
    pd.testing.assert_frame_equal(back["two"], _frame(10))
    again = State({"same": _frame(0)}).serialize(pandas_kwargs={"path": tmp_path})
    assert again["same"]["path"] == data["one"]["path"]  # equal content, one file
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        {data["one"]["path"], data["two"]["path"]}
    )


def test_without_a_directory_the_error_names_the_field_and_the_fix() -> None:
    with pytest.raises(ValueError, match="Failed to serialize state field 'df'") as info:
        State({"df": _frame()}).serialize()
    assert isinstance(info.value, SerdeError)
    assert 'serde_kwargs={"pandas_kwargs": {"path"' in str(info.value)


@pytest.mark.parametrize(
    "stored",
    ["../outside.parquet", "http://example.com/df.parquet", "", None, 7, "a\x00b", "."],
    ids=["parent", "url", "empty", "none", "int", "nul", "the-directory"],
)
def test_a_stored_path_outside_the_directory_is_refused_before_reading(
    tmp_path: Path, stored: Any
) -> None:
    base = tmp_path / "base"
    base.mkdir()
    _frame().to_parquet(tmp_path / "outside.parquet")
    with pytest.raises(SerdeError, match="Failed to deserialize state field 'df'"):
        State.deserialize(
            {"df": {KEY: "pandas.DataFrame", "path": stored}}, pandas_kwargs={"path": base}
        )


def test_an_absolute_path_or_a_link_leading_outside_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    outside = tmp_path / "outside.parquet"
    _frame().to_parquet(outside)
    (base / "link.parquet").symlink_to(outside)
    for stored in (str(outside), "link.parquet"):
        with pytest.raises(SerdeError, match="resolves outside the configured directory"):
            State.deserialize(
                {"df": {KEY: "pandas.DataFrame", "path": stored}}, pandas_kwargs={"path": base}
            )


@action(reads=["n"], writes=["df", "n"])
def make_frame(state: State) -> State:
    return state.update(df=_frame(state["n"]), n=state["n"] + 1)


def _app(tmp_path: Path, **builder: Any) -> Any:
    base = (
        ApplicationBuilder()
        .with_actions(make_frame)
        .with_transitions(("make_frame", "make_frame"))
        .with_identifiers(app_id="frames")
    )
    for method, argument in builder.items():
        base = getattr(base, method)(*argument)
    return base


def test_a_sqlite_persister_with_serde_kwargs_saves_and_resumes_a_frame(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    kwargs = {"pandas_kwargs": {"path": str(frames)}}
    with SQLitePersister(tmp_path / "state.db", serde_kwargs=kwargs) as persister:
        app = (
            _app(tmp_path, with_state_persister=(persister,))
            .with_state(n=0)
            .with_entrypoint("make_frame")
            .build()
        )
        app.step()
        app.step()
    assert len(list(frames.glob("df_*.parquet"))) == 2
    with SQLitePersister(tmp_path / "state.db", serde_kwargs=kwargs) as persister:
        loaded = persister.load("", "frames")
        assert loaded is not None
        pd.testing.assert_frame_equal(loaded["state"]["df"], _frame(1))
        resumed = (
            _app(tmp_path, initialize_from=(persister, True, {"n": 0}, "make_frame"))
            .with_state_persister(persister)
            .build()
        )
        resumed.step()
        assert resumed.state["n"] == 3
        pd.testing.assert_frame_equal(resumed.state["df"], _frame(2))


def test_a_persister_without_serde_kwargs_keeps_the_frame_in_its_own_record(
    tmp_path: Path,
) -> None:
    """Burr's files only when ``serde_kwargs`` ask for them; otherwise turnout's inline form."""
    with SQLitePersister(tmp_path / "state.db") as persister:
        app = (
            _app(tmp_path, with_state_persister=(persister,))
            .with_state(n=0)
            .with_entrypoint("make_frame")
            .build()
        )
        app.step()
        loaded = persister.load("", "frames")
    assert loaded is not None
    pd.testing.assert_frame_equal(loaded["state"]["df"], _frame(0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.db"]


def test_the_tracker_with_serde_kwargs_logs_a_frame_and_loads_it_back(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    tracker = LocalTracker(
        "p", tmp_path / "tracking", serde_kwargs={"pandas_kwargs": {"path": str(frames)}}
    )
    app = (
        _app(tmp_path, with_tracker=(tracker,))
        .with_state(n=0)
        .with_entrypoint("make_frame")
        .build()
    )
    app.step()
    log = next((tmp_path / "tracking").rglob("log.jsonl")).read_text()
    assert '"pandas.DataFrame"' in log
    loaded = tracker.load(None, "frames")
    assert loaded is not None
    pd.testing.assert_frame_equal(loaded["state"]["df"], _frame(0))
