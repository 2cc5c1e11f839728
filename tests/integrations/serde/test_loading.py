"""Burr's serde plugins load lazily: importing turnout imports none of them; the first value
or key of a plugin's library imports that plugin (a fixed module name, never one from data)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integrations.missing_extra import import_without
from turnout.core import _serde_plugins

ROOT = Path(__file__).resolve().parents[3]


def _run(code: str) -> dict[str, object]:
    """Runs ``code`` in a fresh interpreter; it must print one JSON object."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=120,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


_PLUGINS = "[m for m in sys.modules if m.startswith('turnout.integrations')]"


def test_the_plugin_map_names_only_turnouts_plugin_modules() -> None:
    modules = {
        *_serde_plugins.PLUGIN_LIBRARIES.values(),
        *_serde_plugins.PLUGIN_KEYS.values(),
        *_serde_plugins.PLUGIN_TAGS.values(),
    }
    assert modules == {
        "turnout.integrations.serde.pandas",
        "turnout.integrations.serde.numpy",
        "turnout.integrations.serde.pydantic",
        "turnout.integrations.serde.langchain",
    }


def test_a_pydantic_value_imports_its_plugin_on_first_serialize() -> None:
    pytest.importorskip("pydantic")
    out = _run(
        "import json, sys, pydantic\n"
        "from turnout import State\n"
        "class M(pydantic.BaseModel):\n    a: int\n"
        f"before = {_PLUGINS}\n"
        "data = State({'m': M(a=1)}).serialize()\n"
        f"print(json.dumps({{'before': before, 'after': {_PLUGINS}, 'data': data}}))\n"
    )
    assert out["before"] == []
    assert "turnout.integrations.serde.pydantic" in out["after"]  # type: ignore[operator]
    assert out["data"] == {
        "m": {"a": 1, "__burr_serde__": "pydantic", "__pydantic_class": "__main__.M"}
    }


def test_a_frame_imports_the_pandas_plugin_on_first_serialize(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    out = _run(
        "import json, sys, pandas\n"
        "from turnout import State\n"
        f"data = State({{'df': pandas.DataFrame({{'a': [1]}})}}).serialize("
        f"pandas_kwargs={{'path': {str(tmp_path)!r}}})\n"
        f"print(json.dumps({{'after': {_PLUGINS}, 'key': data['df']['__burr_serde__']}}))\n"
    )
    assert "turnout.integrations.serde.pandas" in out["after"]  # type: ignore[operator]
    assert out["key"] == "pandas.DataFrame"


def test_a_plugin_key_imports_its_plugin_on_first_deserialize() -> None:
    pytest.importorskip("langchain_core")
    out = _run(
        "import json, sys\n"
        "from turnout import State\n"
        "s = State.deserialize({'d': {'__burr_serde__': 'lc_document_hack', 'value': 'x'}})\n"
        f"print(json.dumps({{'after': {_PLUGINS}, 'type': type(s['d']).__name__}}))\n"
    )
    assert "turnout.integrations.serde.langchain" in out["after"]  # type: ignore[operator]
    assert out["type"] == "Document"


def test_other_values_and_keys_import_nothing() -> None:
    out = _run(
        "import json, sys\n"
        "from turnout import State\n"
        "class Thing: pass\n"
        "State({'t': Thing(), 'n': 1}).serialize()\n"
        "try:\n"
        "    State.deserialize({'x': {'__burr_serde__': 'os.system', 'cmd': 'true'}})\n"
        "except ValueError as e:\n    error = str(e)\n"
        f"print(json.dumps({{'after': {_PLUGINS}, 'error': error}}))\n"
    )
    assert out["after"] == []
    assert "no deserializer is registered for __burr_serde__='os.system'" in str(out["error"])


@pytest.mark.parametrize(
    ("library", "plugin", "extra"),
    [
        ("pandas", "pandas", "pandas"),
        ("pydantic", "pydantic", "pydantic"),
        ("langchain_core", "langchain", "langchain"),
        ("numpy", "numpy", "numpy"),
    ],
    ids=["pandas", "pydantic", "langchain", "numpy"],
)
def test_a_plugin_without_its_library_names_the_extra(
    library: str, plugin: str, extra: str
) -> None:
    out = import_without(library, f"turnout.integrations.serde.{plugin}")
    assert out.startswith("MissingExtraError")
    assert f'pip install "turnout[{extra}]"' in out


def test_a_plugin_key_whose_library_is_missing_names_the_extra() -> None:
    out = _run(
        "import json, sys\n"
        "sys.modules['pandas'] = None\n"
        "from turnout import State\n"
        "try:\n"
        "    State.deserialize({'df': {'__burr_serde__': 'pandas.DataFrame', 'path': 'x'}},"
        " pandas_kwargs={'path': '.'})\n"
        "except ValueError as e:\n    error = str(e)\n"
        "print(json.dumps({'error': error}))\n"
    )
    assert "Failed to deserialize state field 'df'" in str(out["error"])
    assert 'pip install "turnout[pandas]"' in str(out["error"])
