"""numpy arrays and scalars in state, stored inline by turnout's serde (persisters, trackers).

An array is stored as ``{"dtype": "<i8", "shape": [2, 3], "data": <base64 of its bytes in C
order>}``: exact, including NaN, infinities and byte order. Dtypes whose bytes *are* the values
are stored: bool, signed and unsigned ints, floats, complex, ``datetime64``, ``timedelta64``,
fixed-width bytes (``S``) and text (``U``). An ``object`` array holds references to Python
objects, not values, and a structured dtype may hide one: both are refused with a ``SerdeError``
naming the fix (``arr.tolist()``, or ``arr.astype(...)`` to one of the dtypes above). A numpy
scalar that is not already a Python number (``np.int64``, ``np.float32``, ``np.bool_``...) is
stored the same way, as a zero-dimensional array, and loads as that scalar type.

**Stored data is untrusted.** The stored dtype text is checked against the forms above before
``numpy.dtype`` reads it, the byte count against the shape, and the array is built with
``numpy.frombuffer``: no pickle, nothing the payload names is called.

turnout imports this module by itself the first time its ``Serde`` meets a numpy value or one
of its tags. Needs ``pip install "turnout[numpy]"``.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from typing import Any

from turnout.integrations._guard import missing_extra

try:
    import numpy as np
except ImportError as _error:  # pragma: no cover - exercised in a subprocess
    raise missing_extra(
        "turnout.integrations.serde.numpy", 'pip install "turnout[numpy]"', _error
    ) from _error

from turnout.core.errors import SerdeError
from turnout.core.serde import register_plugin_codec

__all__ = ["ARRAY_TAG", "MAX_ITEMS", "SCALAR_TAG", "array_data", "array_from_data"]

ARRAY_TAG = "numpy:ndarray"
SCALAR_TAG = "numpy:scalar"

MAX_ITEMS = 2**40
"""The most items a stored array may claim; a larger shape is refused as damaged or crafted."""

_KINDS = "biufcmMSU"
# What numpy writes as ``dtype.str`` for those kinds: byte order, kind, item size, and a unit
# for datetime64/timedelta64 (``<M8[ns]``, ``<m8[25us]``).
_DTYPE = re.compile(r"[<>|=]?[biufcmMSU]\d{1,6}(\[\d{0,6}(?:Y|M|W|D|h|m|s|ms|us|ns|ps|fs|as)\])?")


def _check_dtype(dtype: Any, what: str) -> None:
    if dtype.kind not in _KINDS or dtype.hasobject or dtype.fields is not None:
        raise SerdeError(
            "", None, f"{what} has dtype {dtype}, which holds references to Python objects (or "
            f"may), not values: turnout stores arrays of bool, int, float, complex, datetime64, "
            f"timedelta64, bytes (S) or text (U). Convert it first, e.g. arr.astype(float) or "
            f"arr.astype(str), or keep a list in the state (arr.tolist())",
        )  # fmt: skip


def array_data(array: Any) -> dict[str, Any]:
    """The stored form of ``array`` (a ``numpy.ndarray``); ``SerdeError`` for object dtypes."""
    _check_dtype(array.dtype, "this numpy array")
    return {
        "dtype": array.dtype.str,
        "shape": list(array.shape),
        "data": base64.b64encode(array.tobytes(order="C")).decode("ascii"),
    }


def array_from_data(data: Any) -> Any:
    """The ``numpy.ndarray`` ``array_data`` stored, checked before anything is built."""
    if type(data) is not dict:
        raise SerdeError("", None, f"a stored numpy array must be a dict, not {type(data)}")
    text, shape, blob = data.get("dtype"), data.get("shape"), data.get("data")
    if type(text) is not str or not _DTYPE.fullmatch(text):
        raise SerdeError(
            "", None, f"a stored numpy array's dtype must be one turnout writes (such as "
            f"'<i8' or '<M8[ns]'), not {text!r:.80}: the data is damaged or was crafted",
        )  # fmt: skip
    if type(shape) is not list or any(type(n) is not int or n < 0 for n in shape):
        raise SerdeError("", None, f"a stored numpy array's shape must be a list of sizes, "
                         f"not {shape!r:.80}")  # fmt: skip
    if len(shape) > 64 or math.prod(shape) > MAX_ITEMS:
        raise SerdeError("", None, f"a stored numpy array's shape {shape!r:.80} is too large")
    dtype = np.dtype(text)
    _check_dtype(dtype, "a stored numpy array")
    if type(blob) is not str:
        raise SerdeError("", None, "a stored numpy array's data must be base64 text")
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SerdeError("", None, f"a stored numpy array's data is not base64 ({exc})") from None
    if len(raw) != math.prod(shape) * dtype.itemsize:
        raise SerdeError(
            "", None, f"a stored numpy array's data holds {len(raw)} bytes, but shape {shape} of "
            f"{dtype} needs {math.prod(shape) * dtype.itemsize}: the data is damaged",
        )  # fmt: skip
    # frombuffer's array is read-only and shares the bytes: copy, as the saved array was its own.
    return np.frombuffer(raw, dtype=dtype).reshape(tuple(shape)).copy()


def _scalar_from_data(data: Any) -> Any:
    array = array_from_data(data)
    if array.shape != ():
        raise SerdeError("", None, f"a stored numpy scalar must have shape [], not {array.shape}")
    return array[()]


register_plugin_codec(np.ndarray, name=ARRAY_TAG, encode=array_data, decode=array_from_data)
# Scalars a Python type does not already hold: np.float64 is a float and np.complex128 a complex,
# and those keep turnout's built-in forms whether or not this module is imported.
_SCALARS = sorted(
    {
        kind
        for kind in np.sctypeDict.values()
        if issubclass(kind, (np.bool_, np.number, np.datetime64, np.timedelta64))
        and not issubclass(kind, (int, float, complex))
    },
    key=lambda kind: kind.__name__,
)
for _scalar in _SCALARS:
    register_plugin_codec(
        _scalar,
        name=SCALAR_TAG,
        encode=lambda v: array_data(np.asarray(v)),
        decode=_scalar_from_data,
    )
