"""`turnout export-otel`: tracked applications replayed to a real OTLP/HTTP collector."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.exporter.otlp.proto.http")

from tests.integrations.otlp_sink import OTLPSink
from turnout import ApplicationBuilder, RetryPolicy, State, TracerFactory, action
from turnout.cli import main
from turnout.core.tracking import LocalTracker, TrackingWarning, read_log
from turnout.core.tracklog import READS_UP_TO, FormatRecord, dump_line
from turnout.integrations.opentelemetry import export_tracked


@pytest.fixture
def sink() -> Iterator[OTLPSink]:
    with OTLPSink() as running:
        yield running


FAILS = {"left": 1}


@action(reads=["question"], writes=["answer"], retry=RetryPolicy(max_attempts=2, initial_delay=0))
def answer(state: State, __tracer: TracerFactory) -> State:
    with __tracer("retrieve") as span:
        span.log_attributes(documents=2, meta={"source": "wiki"})
        with __tracer("rank", span_dependencies=["index"]):
            pass
    if FAILS["left"]:
        FAILS["left"] -= 1
        raise ConnectionError("model busy")
    __tracer.log_attributes(**{"gen_ai.request.model": "stand-in", "gen_ai.usage.input_tokens": 4})
    return state.update(answer="otters hold hands")


@action(reads=["answer"], writes=["done"])
def finish(state: State) -> State:
    return state.update(done=True)


def track(storage: Path, app_id: str) -> LocalTracker:
    FAILS["left"] = 1
    tracker = LocalTracker("qa", storage)
    app = (
        ApplicationBuilder()
        .with_actions(answer, finish)
        .with_transitions(("answer", "finish"))
        .with_state(question="otters?")
        .with_entrypoint("answer")
        .with_identifiers(app_id=app_id, partition_key="user-1")
        .with_tracker(tracker)
        .build()
    )
    app.run(halt_after=["finish"])
    tracker.close()
    return tracker


def test_export_otel_replays_the_tracked_tree_with_its_times(
    sink: OTLPSink, tmp_path: Path, capsys: Any
) -> None:
    tracker = track(tmp_path, "app-1")
    code = main(
        ["export-otel", "--dir", str(tmp_path), "--project", "qa", "--endpoint", sink.endpoint]
    )
    assert code == 0
    assert "exported 8 spans of 1 application(s) to http://127.0.0.1" in capsys.readouterr().out
    spans = sink.spans
    root = next(s for s in spans if s.name == "turnout.application")
    attempts = sorted(sink.by_name("answer"), key=lambda s: s.attributes["turnout.attempt"])
    (last,) = sink.by_name("finish")
    assert root.parent_span_id == ""
    assert {s.trace_id for s in spans} == {root.trace_id}
    assert [s.parent_span_id for s in [*attempts, last]] == [root.span_id] * 3
    # Attempt 1 failed and was retried; attempt 2 succeeded.
    assert attempts[0].status_code == 2
    assert attempts[0].status_message == "ConnectionError: model busy"
    assert attempts[0].attributes["turnout.will_retry"] is True
    assert [name for name, _ in attempts[0].events] == ["exception"]
    assert attempts[0].events[0][1]["exception.type"] == "ConnectionError"
    assert attempts[1].status_code == 0
    assert [a.attributes["turnout.status"] for a in attempts] == ["retrying", "completed"]
    assert attempts[1].attributes["turnout.sequence_id"] == 0
    assert attempts[1].attributes["turnout.reads"] == ("question",)
    assert attempts[1].attributes["session.id"] == "app-1"
    assert attempts[1].attributes["turnout.partition_key"] == "user-1"
    assert attempts[1].attributes["gen_ai.request.model"] == "stand-in"
    assert attempts[1].attributes["openinference.span.kind"] == "LLM"
    assert last.attributes["turnout.sequence_id"] == 1
    retrieves = sink.by_name("retrieve")
    assert sorted(s.parent_span_id for s in retrieves) == sorted(a.span_id for a in attempts)
    for retrieve in retrieves:
        (rank,) = [s for s in sink.by_name("rank") if s.parent_span_id == retrieve.span_id]
        assert rank.attributes["turnout.span_dependencies"] == ("index",)
        assert retrieve.attributes["documents"] == 2
        assert retrieve.attributes["meta"] == '{"source": "wiki"}'
    assert root.resource["service.name"] == "turnout"
    assert root.resource["openinference.project.name"] == "qa"
    # The original times, to the nanosecond a float second allows.
    records = list(read_log(tracker.log_path("app-1")))
    begins = [r["time"] for r in records if r["t"] == "begin" and r["seq"] == 0]
    ends = [r["time"] for r in records if r["t"] == "end" and r["seq"] == 0]
    assert [a.start_ns for a in attempts] == [int(t * 1e9) for t in begins]
    assert [a.end_ns for a in attempts] == [int(t * 1e9) for t in ends]
    app_line = next(r for r in records if r["t"] == "app")
    assert root.start_ns == int(app_line["time"] * 1e9)


def test_export_otel_exports_every_app_or_the_chosen_ones_with_headers(
    sink: OTLPSink, tmp_path: Path
) -> None:
    track(tmp_path, "app-1")
    track(tmp_path, "app-2")
    summary = export_tracked(
        "qa", storage_dir=tmp_path, endpoint=sink.endpoint, compression="gzip",
        headers={"Authorization": "Bearer t0ken"},
    )  # fmt: skip
    assert sorted(summary.apps) == ["app-1", "app-2"]
    roots = sink.by_name("turnout.application")
    assert sorted(r.attributes["turnout.app_id"] for r in roots) == ["app-1", "app-2"]
    assert len({r.trace_id for r in roots}) == 2
    assert sink.requests[0][0] == "gzip"
    assert sink.headers[0]["authorization"] == "Bearer t0ken"
    sink.spans.clear()
    argv = ["export-otel", "--dir", str(tmp_path), "--project", "qa", "--app-id", "app-2"]
    assert main([*argv, "--endpoint", sink.endpoint, "--header", "x-team=ml"]) == 0
    roots = sink.by_name("turnout.application")
    assert [r.attributes["turnout.app_id"] for r in roots] == ["app-2"]
    assert sink.headers[-1]["x-team"] == "ml"


def test_export_otel_uses_the_standard_environment_variable(
    sink: OTLPSink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    track(tmp_path, "app-1")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", sink.endpoint)
    assert main(["export-otel", "--dir", str(tmp_path), "--project", "qa"]) == 0
    assert len(sink.by_name("turnout.application")) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--project", "nope"], "no tracking project 'nope'"),
        (["--project", "qa", "--app-id", "ghost"], "no tracked application 'ghost'"),
        (["--project", "qa", "--header", "novalue"], "is not KEY=VALUE"),
    ],
    ids=["project", "app", "header"],
)
def test_export_otel_names_what_is_wrong(
    tmp_path: Path, capsys: Any, argv: list[str], message: str
) -> None:
    track(tmp_path, "app-1")
    assert main(["export-otel", "--dir", str(tmp_path), *argv]) != 0
    assert message in capsys.readouterr().err


def test_export_otel_fails_loudly_when_the_collector_refuses(
    sink: OTLPSink, tmp_path: Path, capsys: Any
) -> None:
    track(tmp_path, "app-1")
    sink.status = 400  # not retryable: the exporter gives up at once
    argv = ["export-otel", "--dir", str(tmp_path), "--project", "qa", "--endpoint", sink.endpoint]
    assert main(argv) == 1
    assert f"the OTLP endpoint {sink.endpoint} did not accept the spans" in capsys.readouterr().err


def test_a_spawned_child_application_nests_under_its_parents_step(
    sink: OTLPSink, tmp_path: Path
) -> None:
    track(tmp_path, "parent")
    tracker = LocalTracker("qa", tmp_path)
    child = (
        ApplicationBuilder()
        .with_actions(finish)
        .with_transitions()
        .with_state(answer="from the parent")
        .with_entrypoint("finish")
        .with_identifiers(app_id="child")
        .with_spawning_parent("parent", 1)
        .with_tracker(tracker)
        .build()
    )
    child.run()
    tracker.close()
    # The child is newer, so listed first: the replay still starts with its parent.
    export_tracked("qa", ["child", "parent"], storage_dir=tmp_path, endpoint=sink.endpoint)
    roots = {r.attributes["turnout.app_id"]: r for r in sink.by_name("turnout.application")}
    parent_step = next(
        s for s in sink.by_name("finish") if s.attributes["turnout.app_id"] == "parent"
    )
    assert roots["parent"].parent_span_id == ""
    assert roots["child"].parent_span_id == parent_step.span_id
    assert roots["child"].trace_id == roots["parent"].trace_id


def test_one_app_id_given_as_a_string_is_one_application(sink: OTLPSink, tmp_path: Path) -> None:
    track(tmp_path, "app-1")
    track(tmp_path, "app-2")
    summary = export_tracked("qa", "app-1", storage_dir=tmp_path, endpoint=sink.endpoint)
    assert summary.apps == ("app-1",)
    roots = sink.by_name("turnout.application")
    assert [r.attributes["turnout.app_id"] for r in roots] == ["app-1"]


def test_an_endpoint_without_a_path_gets_the_traces_path(
    sink: OTLPSink, tmp_path: Path, capsys: Any
) -> None:
    track(tmp_path, "app-1")
    base = sink.endpoint.removesuffix("/v1/traces")
    argv = ["export-otel", "--dir", str(tmp_path), "--project", "qa", "--endpoint", base]
    assert main(argv) == 0
    assert len(sink.by_name("turnout.application")) == 1
    assert f"to {base}/v1/traces" in capsys.readouterr().out


def test_exporting_twice_sends_the_same_trace_and_span_ids(sink: OTLPSink, tmp_path: Path) -> None:
    """A vendor keying spans by id keeps one copy of a re-exported application."""
    track(tmp_path, "app-1")
    export_tracked("qa", storage_dir=tmp_path, endpoint=sink.endpoint)
    first = sorted((s.name, s.trace_id, s.span_id, s.parent_span_id) for s in sink.spans)
    sink.spans.clear()
    export_tracked("qa", storage_dir=tmp_path, endpoint=sink.endpoint)
    second = sorted((s.name, s.trace_id, s.span_id, s.parent_span_id) for s in sink.spans)
    assert first == second
    assert len({span_id for _n, _t, span_id, _p in first}) == len(first)  # no two spans alike
    track(tmp_path, "app-2")
    sink.spans.clear()
    export_tracked("qa", "app-2", storage_dir=tmp_path, endpoint=sink.endpoint)
    assert {s.trace_id for s in sink.spans}.isdisjoint({t for _n, t, _s, _p in first})


# -- damaged logs and unusual ids (issue 12) -----------------------------------------------------


def test_export_otel_skips_malformed_lines_and_ends_the_damaged_step_unfinished(
    sink: OTLPSink, tmp_path: Path
) -> None:
    tracker = track(tmp_path, "damaged")
    path = tracker.log_path("damaged")
    lines = path.read_bytes().splitlines(keepends=True)
    last_end = max(i for i, line in enumerate(lines) if b'"t":"end"' in line)
    lines[last_end] = lines[last_end].replace(b'"status":"completed"', b'"status":"complete"')
    path.write_bytes(b"garbage\n".join(lines))  # garbage between every two lines too
    summary = export_tracked("qa", "damaged", storage_dir=tmp_path, endpoint=sink.endpoint)
    assert summary.spans == 8
    (finish_span,) = sink.by_name("finish")
    assert finish_span.attributes["turnout.unfinished"] is True  # its end line failed its crc


def test_export_otel_of_an_app_id_that_is_no_directory_name(sink: OTLPSink, tmp_path: Path) -> None:
    track(tmp_path, "it's/odd")
    summary = export_tracked("qa", "it's/odd", storage_dir=tmp_path, endpoint=sink.endpoint)
    assert summary.apps == ("it's/odd",)
    root = next(s for s in sink.spans if s.name == "turnout.application")
    assert root.attributes["turnout.app_id"] == "it's/odd"


def test_test_case_refuses_a_step_whose_history_is_damaged(tmp_path: Path) -> None:
    tracker = track(tmp_path, "holed")
    path = tracker.log_path("holed")
    lines = path.read_bytes().splitlines(keepends=True)
    first_final = next(i for i, line in enumerate(lines) if b'"status":"completed"' in line)
    del lines[first_final]  # step 0's end line: step 1 began, so step 0 ended
    path.write_bytes(b"".join(lines))
    with pytest.raises(SystemExit) as info:
        main(["test-case", "--dir", str(tmp_path), "--project", "qa", "--app-id", "holed",
              "--sequence-id", "1", "--out", str(tmp_path / "cases.json")])  # fmt: skip
    assert "sequence ids 0" in str(info.value)
    assert "no earlier step is whole" in str(info.value)
    assert not (tmp_path / "cases.json").exists()


def test_export_otel_warns_about_a_log_from_a_newer_format(sink: OTLPSink, tmp_path: Path) -> None:
    tracker = track(tmp_path, "newer")
    path = tracker.log_path("newer")
    lines = path.read_bytes().splitlines(keepends=True)
    lines[0] = dump_line(FormatRecord(version=READS_UP_TO + 1).to_json())
    path.write_bytes(b"".join(lines))
    with pytest.warns(TrackingWarning, match=rf"format version {READS_UP_TO + 1}.*upgrade"):
        summary = export_tracked("qa", "newer", storage_dir=tmp_path, endpoint=sink.endpoint)
    assert summary.spans == 8
