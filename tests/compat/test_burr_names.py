"""Every public name of Burr (apache-burr 0.43) resolves under the same path in turnout.

The table is written from Burr's documentation and module listings: one entry per
``burr.<path>`` and name. A name is either provided as is (same object role, same meaning), an
alias (Burr's spelling for a turnout object: the test checks it *is* that object), or listed in
``LATER`` with the reason it does not resolve yet (left to another part of issue 13 or a later
issue) or in ``DIFFERENT`` with the reason turnout deliberately differs.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest

BURR_NAMES: dict[str, list[str]] = {
    "burr.core": [
        "Action", "Application", "ApplicationBuilder", "ApplicationContext", "ApplicationGraph",
        "Condition", "Graph", "GraphBuilder", "Result", "State", "action", "default", "expr",
        "safe_expr", "type_eraser", "when",
    ],
    "burr.core.action": [
        "Action", "AsyncStreamingAction", "AsyncStreamingResultContainer", "Condition",
        "DEFAULT_SCHEMA", "DefaultSchema", "Function", "FunctionBasedAction",
        "FunctionBasedStreamingAction",
        "FunctionRepresentingAction", "Input", "Reducer", "Result", "SingleStepAction",
        "SingleStepStreamingAction", "StreamingAction", "StreamingResultContainer", "action",
        "bind", "copy_func", "create_action", "default", "derive_inputs_from_fn", "expr", "lmda",
        "safe_expr", "streaming_action", "type_eraser", "when",
    ],
    "burr.core.application": [
        "Application", "ApplicationBuilder", "ApplicationContext", "ApplicationGraph",
        "ApplicationIdentifiers", "PRIOR_STEP", "SEQUENCE_ID", "TracerFactoryContextHook",
    ],
    "burr.core.state": [
        "AppendFields", "DeleteField", "ExtendFields", "IncrementFields", "SetFields", "State",
        "StateDelta", "register_field_serde",
    ],
    "burr.core.graph": ["Graph", "GraphBuilder", "Transition"],
    "burr.core.persistence": [
        "AsyncBaseStateLoader", "AsyncBaseStatePersister", "AsyncBaseStateSaver",
        "AsyncDevNullPersister", "AsyncInMemoryPersister", "BaseStateLoader",
        "BaseStatePersister", "BaseStateSaver", "DevNullPersister", "InMemoryPersister",
        "PersistedStateData", "PersisterHook", "PersisterHookAsync", "SQLLitePersister",
        "SQLitePersister",
    ],
    "burr.core.serde": [
        "StringDispatch", "deserialize", "serialize", "serialize_dict", "serialize_list",
        "serialize_primitive",
    ],
    "burr.core.typing": ["ActionSchema", "DictBasedTypingSystem", "TypingSystem"],
    "burr.core.parallelism": [
        "MapActions", "MapActionsAndStates", "MapStates", "PassThroughMapActionsAndStates",
        "RunnableGraph", "SubGraphTask", "TaskBasedParallelAction", "map_reduce_action",
    ],
    "burr.core.implementations": ["Placeholder"],
    "burr.core.validation": ["assert_set"],
    "burr.lifecycle": [
        "LifecycleAdapter", "PostApplicationCreateHook", "PostApplicationExecuteCallHook",
        "PostApplicationExecuteCallHookAsync", "PostEndSpanHook", "PostRunStepHook",
        "PostRunStepHookAsync", "PreApplicationExecuteCallHook",
        "PreApplicationExecuteCallHookAsync", "PreRunStepHook", "PreRunStepHookAsync",
        "PreStartSpanHook", "StateAndResultsFullLogger",
    ],
    "burr.lifecycle.base": [
        "DoLogAttributeHook", "DoLogAttributeHookAsync", "ExecuteMethod", "LifecycleAdapter",
        "PostApplicationCreateHook", "PostApplicationExecuteCallHook",
        "PostApplicationExecuteCallHookAsync", "PostEndSpanHook", "PostEndSpanHookAsync",
        "PostEndStreamHook", "PostEndStreamHookAsync", "PostRunStepHook", "PostRunStepHookAsync",
        "PostStreamItemHook", "PostStreamItemHookAsync", "PreApplicationExecuteCallHook",
        "PreApplicationExecuteCallHookAsync", "PreRunStepHook", "PreRunStepHookAsync",
        "PreStartSpanHook", "PreStartSpanHookAsync", "PreStartStreamHook",
        "PreStartStreamHookAsync",
    ],
    "burr.lifecycle.default": ["SlowDownHook", "StateAndResultsFullLogger", "safe_json"],
    "burr.lifecycle.internal": ["LifecycleAdapterSet"],
    "burr.tracking": ["LocalTrackingClient"],
    "burr.tracking.client": ["LocalTrackingClient", "StreamState", "SyncTrackingClient"],
    "burr.tracking.base": ["SyncTrackingClient", "TrackingClient"],
    "burr.visibility": ["ActionSpan", "ActionSpanTracer", "TracerFactory", "trace"],
    "burr.visibility.tracing": [
        "ActionSpan", "ActionSpanTracer", "TracerFactory", "create_span_id", "trace",
    ],
}  # fmt: skip

# Burr's adapters: (library the test needs, names).
INTEGRATION_NAMES: dict[str, tuple[str, list[str]]] = {
    "burr.integrations.hamilton": (
        "hamilton",
        ["Hamilton", "append_state", "from_state", "from_value", "update_state"],
    ),
    "burr.integrations.opentelemetry": (
        "opentelemetry.sdk",
        [
            "BurrTrackingSpanProcessor",
            "OpenTelemetryBridge",
            "OpenTelemetryTracker",
            "init_instruments",
        ],
    ),
    "burr.integrations.ray": ("ray", ["RayExecutor"]),
    "burr.integrations.persisters.b_redis": (
        "redis",
        [
            "AsyncRedisBasePersister",
            "RedisBasePersister",
            "RedisPersister",
            "add_namespace_to_partition_key",
        ],
    ),
    "burr.integrations.persisters.postgresql": ("psycopg", ["PostgreSQLPersister"]),
    "burr.integrations.persisters.b_psycopg2": ("psycopg", ["PostgreSQLPersister"]),
    "burr.integrations.persisters.b_asyncpg": ("psycopg", ["AsyncPostgreSQLPersister"]),
    "burr.integrations.persisters.b_aiosqlite": ("sqlite3", ["AsyncSQLitePersister"]),
    "burr.integrations.serde.pandas": (
        "pandas",
        ["deserialize_pandas_df", "serialize_pandas_df"],
    ),
    "burr.integrations.pydantic": (
        "pydantic",
        [
            "PydanticActionFunction",
            "PydanticActionSchema",
            "PydanticTypingSystem",
            "merge_to_state",
            "model_from_state",
            "model_to_dict",
            "pydantic_action",
            "pydantic_streaming_action",
            "subset_model",
        ],
    ),
    "burr.integrations.serde.pydantic": (
        "pydantic",
        ["SecurityWarning", "deserialize_pydantic", "serialize_pydantic", "set_allowlist"],
    ),
    "burr.integrations.serde.langchain": (
        "langchain_core",
        [
            "deserialize_lc_document",
            "deserialize_lc_document_hack",
            "deserialize_lc_document_with_state",
            "deserialize_lc_message",
            "deserialize_lc_message_hack",
            "serialize_lc_docs",
            "serialize_lc_messages",
        ],
    ),
    "burr.integrations.streamlit": (
        "streamlit",
        [
            "AppState",
            "Record",
            "get_state",
            "load_state_from_log_file",
            "render_action",
            "render_explorer",
            "render_state_machine",
            "render_state_results",
            "set_slider_to_current",
            "update_state",
        ],
    ),
    "burr.integrations.serde.pickle": ("pickle", ["register_type_to_pickle"]),
}

_HAMILTON_RECORD = "the record types behind from_state/from_value/update_state, not Burr's API"

# Burr's adapter names that do not resolve (yet), and why.
INTEGRATION_GAPS: dict[tuple[str, str], str] = {
    ("burr.integrations.hamilton", "StateSource"): _HAMILTON_RECORD,
    ("burr.integrations.hamilton", "LiteralSource"): _HAMILTON_RECORD,
    ("burr.integrations.hamilton", "Output"): _HAMILTON_RECORD,
}

# Burr's spelling -> the turnout object it must be (``module:attribute.path``).
ALIASES: dict[tuple[str, str], str] = {
    ("burr.core.action", "AsyncStreamingAction"): "turnout.core.streaming:StreamingAction",
    ("burr.core.action", "StreamingAction"): "turnout.core.streaming:StreamingAction",
    ("burr.core.action", "create_action"): "turnout.core.action:to_action",
    ("burr.core.action", "lmda"): "turnout.core.condition:Condition.lmda",
    ("burr.core.persistence", "SQLLitePersister"): "turnout.core.sqlite:SQLitePersister",
    ("burr.core.persistence", "SQLitePersister"): "turnout.core.sqlite:SQLitePersister",
    ("burr.core.persistence", "InMemoryPersister"): "turnout.core.memory:InMemoryPersister",
    ("burr.core.application", "ApplicationBuilder"): "turnout.core.builder:ApplicationBuilder",
    ("burr.tracking", "LocalTrackingClient"): "turnout.core.tracking:LocalTracker",
    ("burr.tracking.client", "LocalTrackingClient"): "turnout.core.tracking:LocalTracker",
    ("burr.tracking.base", "TrackingClient"): "turnout.tracking.base:SyncTrackingClient",
    ("burr.visibility", "ActionSpanTracer"): "turnout.core.tracing:SpanContext",
    ("burr.visibility.tracing", "ActionSpanTracer"): "turnout.core.tracing:SpanContext",
}

_INTERNAL = "a Burr-internal helper, not in Burr's documented API"
_DELTA = "Burr's delta records; turnout's step delta is turnout.core.state.Change (documented)"

# Names left to another part of issue 13 or a later issue, and why.
LATER: dict[tuple[str, str], str] = {}

# Names turnout deliberately does not provide, and why.
DIFFERENT: dict[tuple[str, str], str] = {
    ("burr.core.action", "FunctionRepresentingAction"): _INTERNAL,
    ("burr.core.action", "bind"): _INTERNAL + " (the function behind fn.bind(), which works)",
    ("burr.core.action", "copy_func"): _INTERNAL,
    ("burr.core.application", "ApplicationIdentifiers"): _INTERNAL,
    ("burr.core.application", "TracerFactoryContextHook"): _INTERNAL,
    ("burr.core.state", "AppendFields"): _DELTA,
    ("burr.core.state", "DeleteField"): _DELTA,
    ("burr.core.state", "ExtendFields"): _DELTA,
    ("burr.core.state", "IncrementFields"): _DELTA,
    ("burr.core.state", "SetFields"): _DELTA,
    ("burr.core.state", "StateDelta"): _DELTA,
    ("burr.tracking.client", "StreamState"): _INTERNAL,
    ("burr.visibility.tracing", "create_span_id"): _INTERNAL + "; span ids are turnout's format",
}

ENTRIES = [(module, name) for module, names in BURR_NAMES.items() for name in names]


def _turnout_path(burr_module: str) -> str:
    return "turnout" + burr_module.removeprefix("burr")


def _resolve(module: str, path: str) -> Any:
    found: Any = importlib.import_module(module)
    for part in path.split("."):
        found = getattr(found, part)
    return found


RESOLVING = [e for e in ENTRIES if e not in LATER and e not in DIFFERENT]


@pytest.mark.parametrize(("module", "name"), RESOLVING, ids=[f"{m}.{n}" for m, n in RESOLVING])
def test_burr_name_resolves_under_the_same_path(module: str, name: str) -> None:
    target = _resolve(_turnout_path(module), name)
    assert target is not None
    if (module, name) in ALIASES:
        where, path = ALIASES[module, name].split(":")
        assert target is _resolve(where, path)


@pytest.mark.parametrize("module", sorted(BURR_NAMES), ids=str)
def test_every_burr_module_path_imports(module: str) -> None:
    assert importlib.import_module(_turnout_path(module)).__name__ == _turnout_path(module)


def test_every_exception_in_the_table_names_a_burr_name_and_a_reason() -> None:
    for key in (*LATER, *DIFFERENT, *ALIASES):
        assert key in ENTRIES, f"{key} is not one of Burr's names in BURR_NAMES"
    assert not set(LATER) & set(DIFFERENT)
    assert not set(ALIASES) & (set(LATER) | set(DIFFERENT))
    assert all(reason.strip() for reason in (*LATER.values(), *DIFFERENT.values()))


INTEGRATION_ENTRIES = [
    (module, library, name)
    for module, (library, names) in INTEGRATION_NAMES.items()
    for name in names
]


@pytest.mark.parametrize(
    ("module", "library", "name"),
    INTEGRATION_ENTRIES,
    ids=[f"{m}.{n}" for m, _, n in INTEGRATION_ENTRIES],
)
def test_burr_adapter_name_resolves_under_the_same_path(
    module: str, library: str, name: str
) -> None:
    pytest.importorskip(library)
    assert _resolve(_turnout_path(module), name) is not None


def test_every_adapter_gap_has_a_reason() -> None:
    assert all(reason.strip() for reason in INTEGRATION_GAPS.values())
    assert not set(INTEGRATION_GAPS) & {(m, n) for m, _, n in INTEGRATION_ENTRIES}


def test_the_migration_guide_maps_every_burr_module_and_names_every_gap() -> None:
    """docs/migrating-from-burr.md's import map is written from these tables: every module path
    is a row, and every name left for later or deliberately different is on the page."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "migrating-from-burr.md").read_text()
    for module in BURR_NAMES:
        assert f"| `{module}` | `{_turnout_path(module)}` |" in page, module
    for module, name in (*LATER, *DIFFERENT, *INTEGRATION_GAPS):
        assert f"`{name}`" in page or f"{module}.*" in page, (module, name)
