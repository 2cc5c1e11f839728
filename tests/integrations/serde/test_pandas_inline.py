"""turnout's own pandas form: DataFrames and Series stored inside the state's record, as parquet
bytes when pyarrow is importable and as JSON keeping columns, index and dtypes when it is not;
either form loads whatever is installed now (parquet needs pyarrow, and says so); crafted data
is refused; a persister and the tracker resume a frame without writing side files."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pd = pytest.importorskip("pandas")
np = pytest.importorskip("numpy")
pytest.importorskip("pyarrow")

from turnout import ApplicationBuilder, State, action  # noqa: E402
from turnout.core.errors import PersistenceError, SerdeError  # noqa: E402
from turnout.core.serde import DEFAULT_SERDE, TAG, Serde  # noqa: E402
from turnout.core.sqlite import SQLitePersister  # noqa: E402
from turnout.core.tracking import LocalTracker  # noqa: E402


@pytest.fixture
def no_pyarrow(monkeypatch: pytest.MonkeyPatch) -> None:
    """pyarrow unimportable, as where it is not installed (modules already holding it aside)."""
    monkeypatch.setitem(sys.modules, "pyarrow", None)


FRAMES = {
    "ints-and-texts": lambda: pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}),
    "every-json-dtype": lambda: pd.DataFrame(
        {
            "i": [1, 2, 3],
            "f": [1.5, np.nan, 3.0],
            "b": [True, False, True],
            "u8": np.array([1, 2, 255], dtype="uint8"),
            "t": pd.to_datetime(["2020-01-01", None, "2021-05-05"]),
            "tz": pd.date_range("2020-03-29", periods=3, freq="h", tz="Europe/Paris"),
            "td": pd.to_timedelta([1, 2, 3], unit="s"),
            "c": pd.Categorical(["a", "b", "a"], categories=["b", "a"], ordered=True),
            "s": pd.array(["x", None, "z"], dtype="string"),
            "n": pd.array([1, None, 3], dtype="Int64"),
            "nb": pd.array([True, None, False], dtype="boolean"),
        },
        index=pd.Index([10, 20, 30], name="key"),
    ),
    "object-values": lambda: pd.DataFrame(
        {"o": np.array(["x", None], dtype=object), "lists": [[1], [2, 3]]}
    ),
    "multi-index": lambda: pd.DataFrame(
        {"v": [1.0, 2.0]},
        index=pd.MultiIndex.from_tuples([("a", 1), ("b", 2)], names=["x", "y"]),
    ),
    "int-column-labels": lambda: pd.DataFrame({0: [1], 1: [2]}),
    "repeated-labels": lambda: pd.DataFrame([[1, 2]], columns=["a", "a"]),
    "text-index": lambda: pd.DataFrame({"a": [1, 2]}, index=["r1", "r2"]),
    "empty": lambda: pd.DataFrame(),
}

SERIES = {
    "named-floats": lambda: pd.Series([1.5, 2.5], name="s"),
    "objects": lambda: pd.Series([{"a": 1}, None]),
    "text-index": lambda: pd.Series([1, 2], index=["a", "b"]),
    "category-tuple-name": lambda: pd.Series(pd.Categorical(["u", "v"]), name=("t", 1)),
    "datetimes": lambda: pd.Series(pd.to_datetime(["2024-02-29", None]), name="when"),
}


def _form(text: str) -> str:
    return str(json.loads(text)["v"]["format"])


@pytest.mark.parametrize("make", FRAMES.values(), ids=FRAMES.keys())
@pytest.mark.parametrize("pyarrow", ["pyarrow", "no-pyarrow"])
def test_a_frame_round_trips_in_its_record(
    make: Any, pyarrow: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if pyarrow == "no-pyarrow":
        monkeypatch.setitem(sys.modules, "pyarrow", None)
    frame = make()
    text = DEFAULT_SERDE.dumps(frame)
    assert text.startswith(f'{{"{TAG}":"pandas:DataFrame"')
    if pyarrow == "no-pyarrow":
        assert _form(text) == "json"
    pd.testing.assert_frame_equal(DEFAULT_SERDE.loads(text), frame)


@pytest.mark.parametrize("make", SERIES.values(), ids=SERIES.keys())
@pytest.mark.parametrize("pyarrow", ["pyarrow", "no-pyarrow"])
def test_a_series_round_trips_in_its_record(
    make: Any, pyarrow: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if pyarrow == "no-pyarrow":
        monkeypatch.setitem(sys.modules, "pyarrow", None)
    series = make()
    text = DEFAULT_SERDE.dumps(series)
    assert text.startswith(f'{{"{TAG}":"pandas:Series"')
    pd.testing.assert_series_equal(DEFAULT_SERDE.loads(text), series)


def test_parquet_is_used_with_pyarrow_unless_a_column_holds_python_objects() -> None:
    assert _form(DEFAULT_SERDE.dumps(FRAMES["every-json-dtype"]())) == "parquet"
    assert _form(DEFAULT_SERDE.dumps(FRAMES["object-values"]())) == "json"


def test_the_json_form_loads_once_pyarrow_is_back(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = FRAMES["every-json-dtype"]()
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    text = DEFAULT_SERDE.dumps(frame)
    monkeypatch.undo()
    pd.testing.assert_frame_equal(DEFAULT_SERDE.loads(text), frame)


def test_the_parquet_form_without_pyarrow_names_the_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    buffer = io.BytesIO()
    pd.DataFrame({"a": [1]}).to_parquet(buffer)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    stored = {"format": "parquet", "data": base64.b64encode(buffer.getvalue()).decode()}
    with pytest.raises(SerdeError, match=r"\$\.df: .*pip install pyarrow"):
        DEFAULT_SERDE.decode({"df": {TAG: "pandas:DataFrame", "v": stored}})


def test_a_dtype_the_json_form_cannot_keep_names_pyarrow_and_the_path(no_pyarrow: None) -> None:
    frame = pd.DataFrame({"p": pd.period_range("2024-01", periods=2, freq="M")})
    with pytest.raises(SerdeError, match=r"\$\.df: column 'p' has dtype period.*pip install"):
        DEFAULT_SERDE.dumps({"df": frame})


def _json_frame(column: dict[str, Any]) -> dict[str, Any]:
    index = {"kind": "range", "start": 0, "stop": 1, "step": 1, "name": None}
    columns = {"kind": "index", "name": None, "column": {"kind": "object", "values": ["c"]}}
    stored = {"format": "json", "index": index, "columns": columns, "data": [column]}
    return {TAG: "pandas:DataFrame", "v": stored}


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ({"kind": "pickle", "data": "gASV"}, "unknown kind"),
        ({"kind": "masked", "dtype": "object", "array": {}, "mask": {}}, "nullable column"),
        (
            {"kind": "datetimetz", "tz": "dateutil//etc/passwd", "array": {}},
            "time zone must be a name",
        ),
        ({"kind": "string", "na": "NA", "values": [1]}, "texts or None"),
        ({"kind": "numpy", "array": {"dtype": "|O", "shape": [1], "data": ""}}, "dtype"),
    ],
    ids=["unknown-kind", "masked-object", "tz-path", "string-not-text", "numpy-object"],
)
def test_a_crafted_json_frame_is_refused_before_building(column: Any, message: str) -> None:
    with pytest.raises(SerdeError, match=message):
        DEFAULT_SERDE.decode({"df": _json_frame(column)})


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(SerdeError, match="'format'"):
        DEFAULT_SERDE.decode({TAG: "pandas:Series", "v": {"format": "pickle", "data": ""}})


def test_a_serde_allowed_to_pickle_still_stores_frames_inline() -> None:
    text = Serde(allow_pickle=True).dumps(pd.DataFrame({"a": [1]}))
    assert text.startswith(f'{{"{TAG}":"pandas:DataFrame"')


@action(reads=["df"], writes=["df", "total"])
def grow(state: State) -> State:
    frame = state["df"]
    frame = pd.concat([frame, pd.DataFrame({"a": [len(frame)], "b": ["new"]})], ignore_index=True)
    return state.update(df=frame, total=pd.Series(frame["a"].cumsum(), name="total"))


def _builder(**builder: Any) -> Any:
    base = (
        ApplicationBuilder()
        .with_actions(grow)
        .with_transitions(("grow", "grow"))
        .with_identifiers(app_id="frames")
    )
    for method, arguments in builder.items():
        base = getattr(base, method)(*arguments)
    return base


@pytest.mark.parametrize("pyarrow", ["pyarrow", "no-pyarrow"])
def test_a_persister_and_the_tracker_resume_a_frame_without_side_files(
    tmp_path: Path, pyarrow: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if pyarrow == "no-pyarrow":
        monkeypatch.setitem(sys.modules, "pyarrow", None)
    tracker = LocalTracker("frames", tmp_path / "tracking")
    start = pd.DataFrame({"a": [0], "b": ["first"]})
    with SQLitePersister(tmp_path / "state.db") as persister:
        app = (
            _builder(with_state_persister=(persister,), with_tracker=(tracker,))
            .with_state(df=start)
            .with_entrypoint("grow")
            .build()
        )
        app.step()
        app.step()
        expected = app.state["df"]
        for source in (persister, tracker):
            resumed = _builder(initialize_from=(source, True, {}, "grow")).build()
            pd.testing.assert_frame_equal(resumed.state["df"], expected)
            pd.testing.assert_series_equal(resumed.state["total"], app.state["total"])
    assert not list(tmp_path.rglob("*.parquet"))


def test_a_record_whose_plugin_library_is_missing_names_the_extra(tmp_path: Path) -> None:
    with SQLitePersister(tmp_path / "state.db") as persister:
        _builder(with_state_persister=(persister,)).with_state(
            df=pd.DataFrame({"a": [0], "b": ["x"]})
        ).with_entrypoint("grow").build().step()
    code = (
        "import sys; sys.modules['pandas'] = None\n"
        "from turnout.core.sqlite import SQLitePersister\n"
        f"p = SQLitePersister({str(tmp_path / 'state.db')!r})\n"
        "try:\n    p.load('', 'frames')\nexcept Exception as e:\n    print(type(e).__name__, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith(PersistenceError.__name__)
    assert 'pip install "turnout[pandas]"' in out.stdout
    assert "intact" in out.stdout
