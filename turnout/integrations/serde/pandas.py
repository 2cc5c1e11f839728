"""Burr's pandas serde plugin: a ``DataFrame`` in state is saved as a parquet file.

``State.serialize(pandas_kwargs={"path": base})`` (or a persister or tracker built with
``serde_kwargs={"pandas_kwargs": {"path": base}}``) writes each DataFrame to
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

Turnout imports this module by itself the first time it meets a DataFrame or this key; importing
it yourself does the same. Needs ``pip install "turnout[pandas]"`` (pandas and pyarrow).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from turnout.integrations._guard import missing_extra

try:
    import pandas as pd  # type: ignore[import-untyped]  # no stubs ship with pandas
except ImportError as _error:  # pragma: no cover - exercised in a subprocess
    raise missing_extra(
        "turnout.integrations.serde.pandas", 'pip install "turnout[pandas]"', _error
    ) from _error

from turnout.core.errors import SerdeError
from turnout.core.serde import KEY, deserializer, serialize

__all__ = ["KEY_DATAFRAME", "deserialize_pandas_df", "serialize_pandas_df"]

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
