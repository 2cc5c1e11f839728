"""pandas in state: ``DataFrame`` and ``Series`` stored inline by turnout, or as Burr's parquet
files when Burr's ``pandas_kwargs`` ask for them.

**turnout's form** (persisters and trackers, no side files): a frame or series is stored in the
state's own record as ``{"__turnout__": "pandas:DataFrame", "v": {"format": ..., ...}}``:

* ``"parquet"``: the parquet file's bytes (base64), when pyarrow (>= 14.0.1) is importable and no
  column or index level has the ``object`` dtype. Parquet keeps every dtype pandas and pyarrow
  round-trip (period, interval, pyarrow-backed dtypes...), index names and ``df.attrs``;
* ``"json"``: otherwise (see ``turnout.integrations.serde._pandas_json``): column names and
  order, the index, and the dtypes int/uint/float/complex/bool, ``datetime64`` (tz-aware too),
  ``timedelta64``, ``category``, pandas' string and nullable dtypes, and ``object`` columns whose
  values turnout's serde stores. ``df.attrs``, ``flags`` and an index's ``freq`` are not kept.

Loading reads either form whatever is installed now, except that the parquet form needs pyarrow
(a ``SerdeError`` names ``pip install pyarrow``). Neither form calls code the stored data names:
the JSON form builds values from fixed tables, and parquet is read by pyarrow, whose extension
types resolve only among types registered in the process (pyarrow < 14.0.1 could unpickle an
``arrow.py_extension_type``: such a pyarrow is refused), and pandas' metadata selects dtypes by
name among those pandas registers. No pickle.

**Burr's form**: ``State.serialize(pandas_kwargs={"path": base})`` (or a persister or tracker
built with ``serde_kwargs={"pandas_kwargs": {"path": base}}``) writes each DataFrame to
``<base>/df_<sha256>.parquet`` and stores ``{"__burr_serde__": "pandas.DataFrame", "path":
"df_<sha256>.parquet"}``, the file name relative to ``base``. The other ``pandas_kwargs`` go to
``DataFrame.to_parquet`` when saving and to ``pandas.read_parquet`` when loading (e.g.
``columns=[...]``). ``State.deserialize(data, pandas_kwargs={"path": base})`` reads it back.

Unlike Burr 0.43, the file name is the hash of the file's *content*: two frames with the same
columns and shape no longer overwrite each other's file. A file is written whole (to a temporary
name, then renamed), so a reader never sees half of one.

**Stored data is untrusted.** The stored path is only ever read inside ``base``: a URL, a path
with ``..`` or an absolute path leading outside it, a symbolic link that escapes it, or a path
that is not a non-empty string is refused with a ``SerdeError`` (a ``ValueError``) before any
file is opened. Paths Burr 0.43 stored (``base`` joined with the file name) still load while
they point inside ``base``.

Turnout imports this module by itself the first time it meets a pandas value or one of these
keys or tags; importing it yourself does the same. Needs ``pip install "turnout[pandas]"``
(pandas and pyarrow; without pyarrow, the JSON form).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib
import io
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from turnout.integrations._guard import missing_extra

try:
    import numpy as np
    import pandas as pd  # type: ignore[import-untyped]  # no stubs ship with pandas
except ImportError as _error:  # pragma: no cover - exercised in a subprocess
    raise missing_extra(
        "turnout.integrations.serde.pandas", 'pip install "turnout[pandas]"', _error
    ) from _error

from turnout.core.errors import SerdeError
from turnout.core.serde import (
    KEY,
    MissingCodeError,
    deserializer,
    register_plugin_codec,
    serialize,
    serialize_with_option,
)
from turnout.integrations.serde._pandas_json import (
    axis_data,
    axis_from_data,
    column_data,
    column_from_data,
)

__all__ = [
    "DATAFRAME_TAG",
    "KEY_DATAFRAME",
    "SERIES_TAG",
    "deserialize_pandas_df",
    "frame_data",
    "frame_from_data",
    "serialize_pandas_df",
    "series_data",
    "series_from_data",
]

DATAFRAME_TAG = "pandas:DataFrame"
"""turnout's tag of a frame stored inline."""

SERIES_TAG = "pandas:Series"
"""turnout's tag of a series stored inline."""

KEY_DATAFRAME = "pandas.DataFrame"
"""The ``"__burr_serde__"`` key of a stored DataFrame (Burr's)."""

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[\\/]{2}")


def _options(pandas_kwargs: Any, *, saving: bool) -> tuple[str | os.PathLike[str], dict[str, Any]]:
    """The base directory and the remaining options, or an error naming the fix."""
    if not isinstance(pandas_kwargs, dict) or "path" not in pandas_kwargs:
        verb, call = (
            ("Serializing", 'state.serialize(pandas_kwargs={"path": "/some/dir"})')
            if saving
            else ("Deserializing", 'State.deserialize(data, pandas_kwargs={"path": "/some/dir"})')
        )
        raise SerdeError(
            "",
            None,
            f"{verb} a pandas DataFrame needs a `path` entry in `pandas_kwargs`: the directory "
            f"its parquet files live in. Pass it with the call, e.g. `{call}`, or to the "
            f"persister or tracker: "
            f'serde_kwargs={{"pandas_kwargs": {{"path": "/some/dir"}}}}. '
            f"Got pandas_kwargs={pandas_kwargs!r}.",
        )
    options = dict(pandas_kwargs)
    base = options.pop("path")
    if not isinstance(base, (str, os.PathLike)) or not os.fspath(base):
        raise SerdeError(
            "", None, f"pandas_kwargs['path'] must name a directory (a str or a Path), got "
            f"{base!r}",
        )  # fmt: skip
    return base, options


@serialize_with_option("pandas_kwargs")  # persisters: only when serde_kwargs ask for files
@serialize.register(pd.DataFrame)
def serialize_pandas_df(
    value: pd.DataFrame, pandas_kwargs: dict[str, Any] | None = None, **kwargs: Any
) -> dict[str, Any]:
    """Write ``value`` to ``<pandas_kwargs["path"]>/df_<sha256 of the file>.parquet``; the other
    ``pandas_kwargs`` go to ``DataFrame.to_parquet``. Returns the stored reference."""
    base, options = _options(pandas_kwargs, saving=True)
    buffer = io.BytesIO()
    value.to_parquet(buffer, **options)
    content = buffer.getvalue()
    name = f"df_{hashlib.sha256(content).hexdigest()}.parquet"
    directory = Path(base)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / name
    if not target.is_file():  # same name, same content: written already
        _write_whole(directory, target, content)
    return {KEY: KEY_DATAFRAME, "path": name}


def _write_whole(directory: Path, target: Path, content: bytes) -> None:
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".df_", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(content)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@deserializer.register(KEY_DATAFRAME)
def deserialize_pandas_df(
    value: dict[str, Any], pandas_kwargs: dict[str, Any] | None = None, **kwargs: Any
) -> pd.DataFrame:
    """Read the DataFrame ``value`` refers to, from inside ``pandas_kwargs["path"]`` only; the
    other ``pandas_kwargs`` go to ``pandas.read_parquet`` (e.g. ``columns=[...]``)."""
    base, options = _options(pandas_kwargs, saving=False)
    file = _inside(base, value.get("path") if isinstance(value, dict) else None)
    with open(file, "rb") as handle:
        return pd.read_parquet(handle, **options)


def _inside(base: str | os.PathLike[str], stored: Any) -> str:
    """The real path of the file ``stored`` names, checked to lie inside ``base``."""
    if not isinstance(stored, str) or not stored or "\0" in stored:
        raise SerdeError(
            "", None, f"a stored DataFrame's 'path' must be a non-empty string (a file name "
            f"inside the configured directory), got {_short(stored)}",
        )  # fmt: skip
    if _URL.match(stored):
        raise SerdeError(
            "", None, f"a stored DataFrame's 'path' must be a file inside the configured "
            f"directory, not a URL: {_short(stored)}. Stored data is untrusted, so turnout "
            f"never fetches what it names",
        )  # fmt: skip
    root = os.path.realpath(base)
    real = os.path.realpath(os.path.join(root, stored))  # an absolute `stored` replaces root
    if real == root:
        raise SerdeError(
            "", None, f"a stored DataFrame's path {_short(stored)} names the configured "
            f"directory {root!r} itself, not a file in it: the data is damaged or was crafted",
        )  # fmt: skip
    if os.path.commonpath([root, real]) != root:
        raise SerdeError(
            "", None, f"a stored DataFrame's path {_short(stored)} resolves outside the "
            f"configured directory {root!r} (pandas_kwargs['path']); turnout reads DataFrames "
            f"from inside it only. Move the file there, or load with the directory it is in",
        )  # fmt: skip
    return real


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else f"{text[:100]}...{text[-15:]}"


# -- turnout's inline form -------------------------------------------------------------------------

# The first pyarrow that no longer unpickles "arrow.py_extension_type" data (CVE-2023-47248).
_SAFE_PYARROW = (14, 0, 1)


def _pyarrow_ready() -> bool:
    """Whether a pyarrow safe to read untrusted parquet with is importable."""
    try:
        pyarrow = importlib.import_module("pyarrow")
    except ImportError:
        return False
    parts = re.findall(r"\d+", str(getattr(pyarrow, "__version__", "")))[:3]
    return tuple(int(p) for p in parts) >= _SAFE_PYARROW


def _has_objects(frame: Any) -> bool:
    """Whether a column or an index level holds arbitrary Python objects, which Arrow would
    convert (a list comes back a numpy array): those frames take the JSON form, which keeps them."""
    levels = [frame.index.get_level_values(i).dtype for i in range(frame.index.nlevels)]
    return any(isinstance(d, np.dtype) and d.kind == "O" for d in [*frame.dtypes, *levels])


def _parquet(frame: Any) -> str | None:
    """``frame`` as base64 parquet, or ``None`` when the JSON form is to be used."""
    if _has_objects(frame) or not _pyarrow_ready():
        return None
    buffer = io.BytesIO()
    try:
        frame.to_parquet(buffer, engine="pyarrow")
    except Exception:  # what parquet cannot hold (labels that are not text, ...): the JSON form
        return None
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _read_parquet(data: dict[str, Any]) -> Any:
    if not _pyarrow_ready():
        raise MissingCodeError(
            "", "this pandas value was stored as parquet, and reading it needs pyarrow "
            f"{'.'.join(map(str, _SAFE_PYARROW))} or later: pip install pyarrow",
        )  # fmt: skip
    text = data.get("data")
    if type(text) is not str:
        raise SerdeError("", None, "a stored parquet pandas value's data must be base64 text")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SerdeError(
            "", None, f"a stored pandas value's parquet is not base64 ({exc})"
        ) from None
    return pd.read_parquet(io.BytesIO(raw), engine="pyarrow")


def _format(data: Any) -> str:
    if type(data) is not dict or data.get("format") not in ("parquet", "json"):
        raise SerdeError(
            "",
            None,
            "a stored pandas value must be a dict whose 'format' is "
            "'parquet' or 'json': the data is damaged or was not written by turnout",
        )
    return str(data["format"])


def frame_data(frame: Any) -> dict[str, Any]:
    """The stored form of a ``DataFrame`` (parquet if it can, else JSON; see the docstring)."""
    blob = _parquet(frame)
    if blob is not None:
        return {"format": "parquet", "data": blob}
    return {
        "format": "json",
        "index": axis_data(frame.index),
        "columns": axis_data(frame.columns),
        "data": [column_data(frame.iloc[:, i], frame.columns[i]) for i in range(frame.shape[1])],
    }


def frame_from_data(data: Any) -> Any:
    """The ``DataFrame`` ``frame_data`` stored."""
    if _format(data) == "parquet":
        return _read_parquet(data)
    index, columns = axis_from_data(data.get("index")), axis_from_data(data.get("columns"))
    stored = data.get("data")
    if type(stored) is not list or len(stored) != len(columns):
        raise SerdeError("", None, f"a stored DataFrame needs one column of data per label "
                         f"({len(columns)})")  # fmt: skip
    arrays = [column_from_data(column) for column in stored]
    # Built on positions, then labelled: no alignment, so repeated labels are kept as they were.
    series = {i: pd.Series(a, dtype=a.dtype, copy=False) for i, a in enumerate(arrays)}
    frame = pd.DataFrame(series) if series else pd.DataFrame(index=range(len(index)))
    if len(frame) != len(index):
        raise SerdeError("", None, f"a stored DataFrame's columns hold {len(frame)} rows but its "
                         f"index {len(index)}")  # fmt: skip
    frame.index = index
    frame.columns = columns
    return frame


def series_data(series: Any) -> dict[str, Any]:
    """The stored form of a ``Series``: its values as one column, its index, its name."""
    blob = None if series.dtype == object else _parquet(series.to_frame(name="values"))
    if blob is not None:
        return {"format": "parquet", "data": blob, "name": series.name}
    return {
        "format": "json",
        "name": series.name,
        "index": axis_data(series.index),
        "column": column_data(series, series.name),
    }


def series_from_data(data: Any) -> Any:
    """The ``Series`` ``series_data`` stored."""
    if _format(data) == "parquet":
        series = _read_parquet(data).iloc[:, 0]
    else:
        values = column_from_data(data.get("column"))
        series = pd.Series(values, dtype=values.dtype, copy=False)
        index = axis_from_data(data.get("index"))
        if len(index) != len(series):
            raise SerdeError("", None, f"a stored Series holds {len(series)} values but its "
                             f"index {len(index)}")  # fmt: skip
        series.index = index
    series.name = data.get("name")
    return series


register_plugin_codec(pd.DataFrame, name=DATAFRAME_TAG, encode=frame_data, decode=frame_from_data)
register_plugin_codec(pd.Series, name=SERIES_TAG, encode=series_data, decode=series_from_data)
