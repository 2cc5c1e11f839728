"""The JSON form of a pandas ``DataFrame`` or ``Series``: plain values and numpy bytes, no pyarrow.

A frame is ``{"index": <axis>, "columns": <axis>, "data": [<column>, ...]}``; a series is
``{"index": <axis>, "name": ..., "column": <column>}``. An axis is a ``RangeIndex``
(``start``/``stop``/``step``), a ``MultiIndex`` (one column per level, with the names) or an
``Index`` (one column, with its name). A column keeps its dtype:

* bool, int, uint, float, complex, ``datetime64``, ``timedelta64``: numpy bytes (see
  ``turnout.integrations.serde.numpy``), so NaN, NaT and every unit come back exactly;
* tz-aware ``datetime64``: the UTC instants as numpy bytes plus the time zone's name;
* ``category``: the categories (a column) and the integer codes, and whether it is ordered;
* pandas' string dtypes (``str``, ``string``): the texts, ``None`` where missing, and which
  missing-value marker the dtype uses (its storage, pyarrow or python, is pandas' default again);
* nullable ``Int*``/``UInt*``/``Float*``/``boolean``: numpy values plus the mask;
* ``object``: the values themselves, each stored by turnout's serde (so a value turnout cannot
  store is refused with its path, and a ``pandas.Timestamp`` inside comes back a ``datetime``).

Other dtypes (period, interval, sparse, pyarrow-backed ``int64[pyarrow]``...) are refused with
a ``SerdeError`` naming the fix. Names and labels are stored by turnout's serde too.

Loading builds only the dtypes listed above, from fixed tables: a name in the stored data picks
among them, a time zone name is checked against the forms time zones take, and nothing it names
is imported or called.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]  # no stubs ship with pandas

from turnout.core.errors import SerdeError
from turnout.integrations.serde.numpy import array_data, array_from_data

__all__ = ["axis_data", "axis_from_data", "column_data", "column_from_data"]

# Nullable dtypes: their name -> (the array class, the numpy dtype of its values).
_MASKED: dict[str, tuple[Any, str]] = {
    **{
        f"{k}Int{n}": (pd.arrays.IntegerArray, f"{k.lower()}int{n}")
        for k in ("", "U")
        for n in (8, 16, 32, 64)
    },
    "Float32": (pd.arrays.FloatingArray, "float32"),
    "Float64": (pd.arrays.FloatingArray, "float64"),
    "boolean": (pd.arrays.BooleanArray, "bool"),
}

# "UTC", "Europe/Paris", "Etc/GMT+5", "UTC+01:00", "+01:00": names, never paths or prefixes that
# make pandas read a file ("dateutil/...").
_TIME_ZONE = re.compile(r"(?!dateutil/)[A-Za-z][A-Za-z0-9_+\-]{0,40}(/[A-Za-z0-9_+\-]{1,40}){0,3}"
                        r"|(UTC)?[+-]\d\d:\d\d")  # fmt: skip

_NA = {"nan": np.nan, "NA": pd.NA}


def _refuse(what: str) -> SerdeError:
    return SerdeError(
        "", None, f"{what}, which the JSON form of a pandas value does not keep; install pyarrow "
        f"(pip install pyarrow) so turnout stores the value as parquet, or convert it (e.g. "
        f"df[column].astype(object))",
    )  # fmt: skip


def column_data(values: Any, label: Any = None) -> dict[str, Any]:
    """The stored form of one column (a ``Series``, or an ``Index`` as a ``Series``)."""
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return {
            "kind": "category",
            "ordered": bool(dtype.ordered),
            "categories": column_data(pd.Series(dtype.categories), label),
            "codes": array_data(values.cat.codes.to_numpy()),
        }
    if isinstance(dtype, pd.DatetimeTZDtype):
        zone = str(dtype.tz)
        if not _TIME_ZONE.fullmatch(zone):
            raise _refuse(f"column {label!r} has the time zone {zone!r}, not one named by text")
        instants = values.dt.tz_convert("UTC").dt.tz_localize(None)
        return {"kind": "datetimetz", "tz": zone, "array": array_data(instants.to_numpy())}
    if isinstance(dtype, pd.StringDtype):
        missing = values.isna().to_numpy()
        texts = [
            None if gone else str(v)
            for v, gone in zip(values.to_numpy(object), missing, strict=True)
        ]
        return {"kind": "string", "na": "NA" if dtype.na_value is pd.NA else "nan", "values": texts}
    masked = _MASKED.get(str(dtype))
    if masked is not None:
        filler = False if masked[1] == "bool" else 0
        return {
            "kind": "masked",
            "dtype": str(dtype),
            "array": array_data(values.to_numpy(dtype=masked[1], na_value=filler)),
            "mask": array_data(values.isna().to_numpy()),
        }
    if isinstance(dtype, np.dtype) and dtype.kind == "O":
        return {"kind": "object", "values": values.to_list()}
    if isinstance(dtype, np.dtype) and dtype.kind in "biufcmM":
        return {"kind": "numpy", "array": array_data(values.to_numpy())}
    raise _refuse(f"column {label!r} has dtype {dtype}")


def column_from_data(data: Any) -> Any:
    """The array (numpy or pandas) ``column_data`` stored; builds only the kinds it writes."""
    data = _dict(data, "column")
    kind = data.get("kind")
    if kind == "numpy":
        return array_from_data(data.get("array"))
    if kind == "object":
        values = _list(data.get("values"), "an object column's values")
        out = np.empty(len(values), dtype=object)
        for i, value in enumerate(values):  # item by item: a list value stays one item
            out[i] = value
        return out
    if kind == "string":
        texts = _list(data.get("values"), "a string column's values")
        if any(t is not None and type(t) is not str for t in texts):
            raise SerdeError("", None, "a string column's values must be texts or None")
        na = data.get("na")
        if na not in _NA:
            raise SerdeError("", None, f"a string column's 'na' must be 'nan' or 'NA', not {na!r}")
        return pd.array(texts, dtype=pd.StringDtype(na_value=_NA[na]))
    if kind == "masked":
        name = data.get("dtype")
        if not isinstance(name, str) or name not in _MASKED:
            raise SerdeError("", None, f"a nullable column's dtype must be one of "
                             f"{sorted(_MASKED)}, not {name!r:.60}")  # fmt: skip
        build, base = _MASKED[name]
        values = array_from_data(data.get("array")).astype(base)
        mask = array_from_data(data.get("mask"))
        if mask.dtype != np.bool_ or mask.shape != values.shape:
            raise SerdeError("", None, "a nullable column's mask must be bools, one per value")
        return build(values, mask)
    if kind == "category":
        categories = column_from_data(data.get("categories"))
        codes = array_from_data(data.get("codes"))
        if codes.dtype.kind not in "iu" or codes.ndim != 1:
            raise SerdeError("", None, "a category column's codes must be integers")
        return pd.Categorical.from_codes(
            codes,
            categories=pd.Index(categories, dtype=categories.dtype),
            ordered=data.get("ordered") is True,
        )
    if kind == "datetimetz":
        zone = data.get("tz")
        if type(zone) is not str or not _TIME_ZONE.fullmatch(zone):
            raise SerdeError("", None, f"a stored time zone must be a name such as "
                             f"'Europe/Paris', not {zone!r:.60}")  # fmt: skip
        instants = array_from_data(data.get("array"))
        if instants.dtype.kind != "M" or instants.ndim != 1:
            raise SerdeError("", None, "a tz-aware column's instants must be datetime64 values")
        return pd.DatetimeIndex(instants).tz_localize("UTC").tz_convert(zone).array
    raise SerdeError("", None, f"unknown kind of stored pandas column {kind!r:.60}")


def axis_data(index: Any) -> dict[str, Any]:
    """The stored form of an index or of the column labels."""
    if isinstance(index, pd.RangeIndex):
        return {
            "kind": "range",
            "start": int(index.start),
            "stop": int(index.stop),
            "step": int(index.step),
            "name": index.name,
        }
    if isinstance(index, pd.MultiIndex):
        levels = [index.get_level_values(i) for i in range(index.nlevels)]
        return {
            "kind": "multi",
            "names": list(index.names),
            "levels": [column_data(pd.Series(level), level.name) for level in levels],
        }
    return {"kind": "index", "name": index.name, "column": column_data(pd.Series(index), "index")}


def axis_from_data(data: Any) -> Any:
    """The ``Index`` ``axis_data`` stored."""
    data = _dict(data, "index")
    kind = data.get("kind")
    if kind == "range":
        start, stop, step = (data.get(k) for k in ("start", "stop", "step"))
        if any(type(n) is not int for n in (start, stop, step)) or step == 0:
            raise SerdeError("", None, "a RangeIndex needs integer start, stop and non-zero step")
        return pd.RangeIndex(start, stop, step, name=data.get("name"))
    if kind == "multi":
        levels = [column_from_data(level) for level in _list(data.get("levels"), "levels")]
        names = _list(data.get("names"), "a MultiIndex's names")
        arrays = [pd.Index(level, dtype=level.dtype) for level in levels]
        return pd.MultiIndex.from_arrays(arrays, names=names)
    if kind == "index":
        values = column_from_data(data.get("column"))
        return pd.Index(values, dtype=values.dtype, name=data.get("name"))
    raise SerdeError("", None, f"unknown kind of stored pandas index {kind!r:.60}")


def _dict(data: Any, what: str) -> dict[str, Any]:
    if type(data) is not dict:
        raise SerdeError("", None, f"a stored pandas {what} must be a dict, not {type(data)}")
    return data


def _list(data: Any, what: str) -> list[Any]:
    if type(data) is not list:
        raise SerdeError("", None, f"{what} must be stored as a list, not {type(data)}")
    return data
