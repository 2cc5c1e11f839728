"""numpy arrays and scalars stored inline by turnout's serde: exact bytes with dtype and shape,
object dtypes refused with the fix, crafted payloads refused before anything is built, and a
persister and the tracker resuming an array."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

np = pytest.importorskip("numpy")

from turnout import ApplicationBuilder, State, action  # noqa: E402
from turnout.core.errors import SerdeError  # noqa: E402
from turnout.core.serde import DEFAULT_SERDE, TAG, Serde  # noqa: E402
from turnout.core.sqlite import SQLitePersister  # noqa: E402
from turnout.core.tracking import LocalTracker  # noqa: E402

ARRAYS = {
    "ints-2d": np.arange(6).reshape(2, 3),
    "floats-nan-inf": np.array([1.5, np.nan, -np.inf]),
    "bools": np.array([True, False]),
    "uint8": np.array([0, 255], dtype=np.uint8),
    "complex": np.array([1 + 2j]),
    "datetime64": np.array(["2024-01-01", "NaT"], dtype="datetime64[ms]"),
    "timedelta64": np.array([5, -3], dtype="timedelta64[s]"),
    "text": np.array(["a", "bcd"]),
    "bytes": np.array([b"ab", b"c"]),
    "big-endian": np.arange(3, dtype=">i4"),
    "empty": np.zeros((0, 4)),
    "not-contiguous": np.arange(12).reshape(3, 4)[:, ::2],
    "zero-dimensional": np.array(7.0),
}


@pytest.mark.parametrize("array", ARRAYS.values(), ids=ARRAYS.keys())
def test_an_array_round_trips_with_its_dtype_shape_and_values(array: Any) -> None:
    text = DEFAULT_SERDE.dumps({"a": array})
    assert '"numpy:ndarray"' in text
    back = DEFAULT_SERDE.loads(text)["a"]
    assert back.dtype == array.dtype
    assert back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable  # its own array, as the saved one was


def test_numpy_scalars_keep_their_type_and_python_subclasses_keep_theirs() -> None:
    values = [np.int64(3), np.float32(2.5), np.bool_(True), np.datetime64("2024-01-02")]
    back = DEFAULT_SERDE.loads(DEFAULT_SERDE.dumps(values))
    assert [type(v) for v in back] == [type(v) for v in values]
    assert back == values
    assert DEFAULT_SERDE.loads(DEFAULT_SERDE.dumps(np.float64(1.5))) == 1.5  # a float already


def test_an_object_array_is_refused_with_its_path_and_the_fix() -> None:
    with pytest.raises(SerdeError, match=r"\$\.data\[1\]: .*dtype object.*tolist\(\)"):
        DEFAULT_SERDE.dumps({"data": [1, np.array([{}, 1], dtype=object)]})


def _stored(dtype: str, shape: Any, data: bytes = b"") -> dict[str, Any]:
    payload = {"dtype": dtype, "shape": shape, "data": base64.b64encode(data).decode()}
    return {TAG: "numpy:ndarray", "v": payload}


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        (_stored("|O", [1], bytes(8)), "dtype must be one turnout writes"),
        (_stored("i4,O", [1], bytes(12)), "dtype must be one turnout writes"),
        (_stored("|V8", [1], bytes(8)), "dtype must be one turnout writes"),
        (_stored("<i8", [2], bytes(8)), "holds 8 bytes"),
        (_stored("<i8", [-1]), "list of sizes"),
        (_stored("<i8", [2**40, 2**40]), "too large"),
        ({TAG: "numpy:ndarray", "v": {"dtype": "<i8", "shape": [0], "data": "!"}}, "not base64"),
    ],
    ids=["object", "structured-object", "void", "short-data", "negative", "huge", "not-base64"],
)
def test_a_crafted_array_is_refused_before_it_is_built(stored: Any, message: str) -> None:
    with pytest.raises(SerdeError, match=message):
        DEFAULT_SERDE.decode({"a": stored})


@action(reads=["arr"], writes=["arr"])
def double(state: State) -> State:
    return state.update(arr=state["arr"] * 2)


def _builder(**builder: Any) -> Any:
    base = (
        ApplicationBuilder()
        .with_actions(double)
        .with_transitions(("double", "double"))
        .with_identifiers(app_id="arrays")
    )
    for method, arguments in builder.items():
        base = getattr(base, method)(*arguments)
    return base


def test_a_sqlite_persister_and_the_tracker_resume_an_array(tmp_path: Path) -> None:
    tracker = LocalTracker("arrays", tmp_path / "tracking")
    with SQLitePersister(tmp_path / "state.db") as persister:
        app = (
            _builder(with_state_persister=(persister,), with_tracker=(tracker,))
            .with_state(arr=np.arange(4.0))
            .with_entrypoint("double")
            .build()
        )
        app.step()
        app.step()
        for source in (persister, tracker):
            resumed = _builder(initialize_from=(source, True, {}, "double")).build()
            np.testing.assert_array_equal(resumed.state["arr"], np.arange(4.0) * 4)


def test_a_serde_allowed_to_pickle_still_stores_arrays_inline() -> None:
    text = Serde(allow_pickle=True).dumps(np.arange(2))
    assert '"numpy:ndarray"' in text
    assert "pickle" not in text
