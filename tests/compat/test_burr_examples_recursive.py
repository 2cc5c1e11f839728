"""The pattern of Burr's ``recursive`` example, and a custom tracker as Burr users write one.

Burr's example ran on turnout with only ``burr`` replaced by ``turnout`` in its imports (Burr
0.43 itself refuses it at import: its ``final_results`` action reads ``poem_types`` without
declaring it). An action spawns sub-applications from its ``__context``: each gets
``__context.tracker.copy()`` and ``with_spawning_parent(...)``, and they run in threads. These
programs of our own keep what it depends on, with the pointers, sequence ids and tracker calls
Burr 0.43 gives for the same programs; the tracking-file checks are turnout's log format.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from turnout.core import ApplicationBuilder, State, action, expr
from turnout.core.action import streaming_action
from turnout.core.application import ApplicationContext
from turnout.core.parallelism import MapStates
from turnout.core.persistence import BaseStatePersister
from turnout.core.tracking import read_log
from turnout.tracking.base import SyncTrackingClient
from turnout.tracking.client import LocalTrackingClient

# -- sub-applications spawned from an action -----------------------------------------------------


@action(reads=["text", "language", "drafts"], writes=["draft", "drafts"])
def draft(state: State) -> tuple[dict[str, Any], State]:
    text = f"{state['language']}({state['text']})#{state['drafts'] + 1}"
    return {"draft": text}, state.update(draft=text).increment(drafts=1)


@action(reads=["draft", "drafts"], writes=["approved"])
def review(state: State) -> tuple[dict[str, Any], State]:
    return {"approved": state["drafts"] >= 2}, state.update(approved=state["drafts"] >= 2)


@action(reads=["draft"], writes=["final"])
def publish(state: State) -> tuple[dict[str, Any], State]:
    return {"final": state["draft"]}, state.update(final=state["draft"])


def _translation(context: ApplicationContext, language: str, text: str) -> Any:
    return (
        ApplicationBuilder()
        .with_actions(draft, review, publish)
        .with_transitions(
            ("draft", "review"),
            ("review", "publish", expr("approved")),
            ("review", "draft"),
        )
        .with_tracker(context.tracker.copy())
        .with_spawning_parent(context.app_id, context.sequence_id, context.partition_key)
        .with_identifiers(app_id=f"translate-{language}", partition_key=context.partition_key)
        .with_state(text=text, language=language, drafts=0)
        .with_entrypoint("draft")
        .build()
    )


SPAWNED: dict[str, Any] = {}


@action(reads=[], writes=["text", "languages"])
def receive(state: State, text: str, languages: list[str]) -> tuple[dict[str, Any], State]:
    return {"text": text}, state.update(text=text, languages=languages)


@action(reads=["text", "languages"], writes=["translations"])
def translate_all(state: State, __context: ApplicationContext) -> tuple[dict[str, Any], State]:
    apps = [_translation(__context, lang, state["text"]) for lang in state["languages"]]
    with ThreadPoolExecutor(max_workers=3) as pool:  # the example runs them with joblib threads
        outcomes = list(pool.map(lambda app: app.run(halt_after=["publish"]), apps))
    SPAWNED.update({app.uid: app for app in apps})
    translations = [child_state["final"] for _, _, child_state in outcomes]
    return {"translations": translations}, state.update(translations=translations)


@action(reads=["translations"], writes=["report"])
def combine(state: State) -> tuple[dict[str, Any], State]:
    return {"report": " | ".join(state["translations"])}, state.update(
        report=" | ".join(state["translations"])
    )


def _office(tracker: Any) -> Any:
    return (
        ApplicationBuilder()
        .with_actions(receive, translate_all, combine)
        .with_transitions(("receive", "translate_all"), ("translate_all", "combine"))
        .with_tracker(tracker)
        .with_identifiers(app_id="office", partition_key="team-a")
        .with_entrypoint("receive")
        .build()
    )


def _pointer(pointer: Any) -> tuple[Any, ...] | None:
    if pointer is None:
        return None
    return pointer.app_id, pointer.sequence_id, pointer.partition_key


def _run_office(tracker: Any) -> Any:
    SPAWNED.clear()
    app = _office(tracker)
    app.run(halt_after=["combine"], inputs={"text": "hi", "languages": ["fr", "de", "es"]})
    return app


def test_sub_applications_spawned_from_an_action_run_with_burrs_pointers(tmp_path: Path) -> None:
    app = _run_office(LocalTrackingClient("recursive", tmp_path))
    assert app.state["report"] == "fr(hi)#2 | de(hi)#2 | es(hi)#2"
    assert app.sequence_id == 2
    assert (app.parent_pointer, app.spawning_parent_pointer) == (None, None)
    children = {uid: SPAWNED[uid] for uid in sorted(SPAWNED)}
    assert list(children) == ["translate-de", "translate-es", "translate-fr"]
    for child in children.values():
        assert child.sequence_id == 4  # draft, review, draft, review, publish
        assert child.parent_pointer is None
        assert _pointer(child.spawning_parent_pointer) == ("office", 1, "team-a")


def test_the_tracker_files_link_the_parent_and_its_spawned_children(tmp_path: Path) -> None:
    tracker = LocalTrackingClient("recursive", tmp_path)
    _run_office(tracker)
    parent_log = list(read_log(tracker.log_path("office")))
    spawned = sorted((r["child_app_id"], r["seq"]) for r in parent_log if r["t"] == "child")
    assert spawned == [("translate-de", 1), ("translate-es", 1), ("translate-fr", 1)]
    for language in ["de", "es", "fr"]:
        records = list(read_log(tracker.log_path(f"translate-{language}")))
        (app_line,) = [r for r in records if r["t"] == "app"]
        assert app_line["spawning_parent"] == {
            "app_id": "office",
            "partition_key": "team-a",
            "sequence_id": 1,
        }
        assert [r["action"] for r in records if r["t"] == "end"] == [
            "draft",
            "review",
            "draft",
            "review",
            "publish",
        ]


def test_a_fork_of_a_spawned_child_points_at_the_step_it_was_forked_from(tmp_path: Path) -> None:
    tracker = LocalTrackingClient("recursive", tmp_path)
    _run_office(tracker)
    fork = (
        ApplicationBuilder()
        .with_actions(draft, review, publish)
        .with_transitions(
            ("draft", "review"), ("review", "publish", expr("approved")), ("review", "draft")
        )
        .with_tracker(tracker)
        .initialize_from(
            tracker,
            resume_at_next_action=True,
            default_state={},
            default_entrypoint="draft",
            fork_from_app_id="translate-fr",
            fork_from_partition_key="team-a",
            fork_from_sequence_id=1,
        )
        .with_identifiers(app_id="translate-fr-again", partition_key="team-a")
        .build()
    )
    assert _pointer(fork.parent_pointer) == ("translate-fr", 1, "team-a")
    assert fork.spawning_parent_pointer is None
    assert (fork.sequence_id, fork.state["drafts"], fork.get_next_action().name) == (
        1,
        1,
        "draft",
    )
    fork.run(halt_after=["publish"])
    assert (fork.state["final"], fork.sequence_id) == ("fr(hi)#2", 4)


# -- a custom tracker, as Burr users write one -------------------------------------------------


class Recorder(SyncTrackingClient):
    """Records what every hook receives; ``copy()`` makes a child recorder sharing the log."""

    def __init__(self, log: list[tuple[Any, ...]], name: str = "root") -> None:
        self.log = log
        self.name = name
        self.copies = 0
        self.lock = threading.Lock()

    def _add(self, *event: Any) -> None:
        with self.lock:
            self.log.append((self.name, *event))

    def copy(self) -> Recorder:
        with self.lock:
            self.copies += 1
            name = f"{self.name}.{self.copies}"
        self._add("copy", name)
        return Recorder(self.log, name)

    def post_application_create(self, **kw: Any) -> None:
        state = sorted(k for k in kw["state"].get_all() if not k.startswith("__"))
        self._add("create", _pointer(kw["spawning_parent_pointer"]), state)

    def pre_run_step(self, **kw: Any) -> None:
        self._add("pre", kw["sequence_id"], kw["action"].name)

    def post_run_step(self, **kw: Any) -> None:
        self._add("post", kw["sequence_id"], kw["action"].name, kw["result"], kw["exception"])

    def pre_start_span(self, **kw: Any) -> None:
        self._add("span", kw["action_sequence_id"], kw["span"].uid, kw["span"].name)

    def post_end_span(self, **kw: Any) -> None:
        self._add("span_end", kw["action_sequence_id"], kw["span"].uid)

    def do_log_attributes(self, **kw: Any) -> None:
        span = kw["span"].uid if kw["span"] is not None else None
        self._add("attributes", kw["action_sequence_id"], span, kw["attributes"])

    def pre_start_stream(self, **kw: Any) -> None:
        self._add("stream", kw["sequence_id"], kw["action"])

    def post_stream_item(self, **kw: Any) -> None:
        self._add("item", kw["sequence_id"], kw["item"])

    def post_end_stream(self, **kw: Any) -> None:
        self._add("stream_end", kw["sequence_id"], kw["action"])


@action(reads=[], writes=["topic"])
def start(state: State, topic: str, __tracer: Any) -> tuple[dict[str, Any], State]:
    with __tracer("clean") as span:
        span.log_attributes(raw=topic)
        with __tracer("lower"):
            topic = topic.lower()
            __tracer.log_attributes(inside="lower")
    __tracer.log_attributes(final=topic)
    return {"topic": topic}, state.update(topic=topic)


@streaming_action(reads=["topic"], writes=["words"])
def split(state: State) -> Any:
    words = state["topic"].split()
    for word in words:
        yield {"word": word}, None
    yield {"words": words}, state.update(words=words)


@streaming_action(reads=["topic"], writes=["words"])
async def asplit(state: State) -> Any:
    words = state["topic"].split()
    for word in words:
        await asyncio.sleep(0)
        yield {"word": word}, None
    yield {"words": words}, state.update(words=words)


@action(reads=["word"], writes=["shout"])
def shout(state: State) -> tuple[dict[str, Any], State]:
    return {"shout": state["word"].upper()}, state.update(shout=state["word"].upper())


@action(reads=["words"], writes=["spawned"])
def spawn(state: State, __context: ApplicationContext) -> tuple[dict[str, Any], State]:
    out = []
    for word in state["words"]:
        child = (
            ApplicationBuilder()
            .with_actions(shout)
            .with_transitions()
            .with_tracker(__context.tracker.copy())
            .with_spawning_parent(__context.app_id, __context.sequence_id)
            .with_state(word=word)
            .with_entrypoint("shout")
            .build()
        )
        out.append(child.run(halt_after=["shout"])[2]["shout"])
    return {"spawned": out}, state.update(spawned=out)


class ShoutAll(MapStates):
    def action(self, state: State, inputs: dict[str, Any]) -> Any:
        return shout

    def states(self, state: State, context: ApplicationContext, inputs: dict[str, Any]) -> Any:
        for word in state["words"]:
            yield state.update(word=word)

    def reduce(self, state: State, states: Any) -> State:
        return state.update(mapped=[s["shout"] for s in states])

    @property
    def reads(self) -> list[str]:
        return ["words"]

    @property
    def writes(self) -> list[str]:
        return ["mapped"]


def _tracked(tracker: Any, persister: Any = None, splitter: Any = split) -> Any:
    builder = (
        ApplicationBuilder()
        .with_actions(start, spawn, split=splitter, map_all=ShoutAll())
        .with_transitions(("start", "split"), ("split", "spawn"), ("spawn", "map_all"))
        .with_tracker(tracker)
        .with_identifiers(app_id="root-app")
        .with_entrypoint("start")
    )
    if persister is not None:
        builder = builder.with_state_persister(persister)
    return builder.build()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_custom_trackers_hooks_are_called_in_burrs_order(mode: str) -> None:
    log: list[tuple[Any, ...]] = []
    if mode == "sync":
        app = _tracked(Recorder(log))
        app.run(halt_after=["start"], inputs={"topic": "Big Red"})
        _, container = app.stream_result(halt_after=["split"])
        assert list(container) == [{"word": "big"}, {"word": "red"}]
    else:
        app = _tracked(Recorder(log), splitter=asplit)

        async def main() -> list[Any]:
            await app.arun(halt_after=["start"], inputs={"topic": "Big Red"})
            _, container = await app.astream_result(halt_after=["split"])
            return [item async for item in container]

        assert asyncio.run(main()) == [{"word": "big"}, {"word": "red"}]
    assert [event[1:] for event in log if event[0] == "root"] == [
        ("create", None, []),
        ("pre", 0, "start"),
        ("span", 0, "0:0", "clean"),
        ("attributes", 0, "0:0", {"raw": "Big Red"}),
        ("span", 0, "0:0.0", "lower"),
        ("attributes", 0, "0:0.0", {"inside": "lower"}),  # the innermost span, as on Burr
        ("span_end", 0, "0:0.0"),
        ("span_end", 0, "0:0"),
        ("attributes", 0, None, {"final": "big red"}),
        # In async mode Burr 0.43 passes result=None (and the state before the step) for a
        # sync action run by astep/arun: a Burr bug turnout does not copy.
        ("post", 0, "start", {"topic": "big red"}, None),
        ("pre", 1, "split"),
        ("stream", 1, "split"),
        ("item", 1, {"word": "big"}),
        ("item", 1, {"word": "red"}),
        ("post", 1, "split", {"words": ["big", "red"]}, None),  # the step ends first,
        ("stream_end", 1, "split"),  # then its stream, as on Burr
    ]


def test_children_get_a_copy_of_the_tracker_each_as_on_burr() -> None:
    log: list[tuple[Any, ...]] = []
    tracker = Recorder(log)
    app = _tracked(tracker)
    app.run(halt_after=["map_all"], inputs={"topic": "Big Red"})
    assert app.state["spawned"] == app.state["mapped"] == ["BIG", "RED"]
    assert tracker.copies == 4  # two spawned by the action, then one per MapStates child
    copies = [event[2] for event in log if event[:2] == ("root", "copy")]
    assert copies == ["root.1", "root.2", "root.3", "root.4"]
    by_tracker: dict[str, list[tuple[Any, ...]]] = {}
    for name, *event in log:
        by_tracker.setdefault(name, []).append(tuple(event))
    assert by_tracker["root.1"] == [
        ("create", ("root-app", 2, None), ["word"]),
        ("pre", 0, "shout"),
        ("post", 0, "shout", {"shout": "BIG"}, None),
    ]
    assert by_tracker["root.2"][0] == ("create", ("root-app", 2, None), ["word"])
    mapped = sorted(by_tracker["root.3"] + by_tracker["root.4"], key=repr)
    assert [event[0] for event in mapped] == ["create", "create", "post", "post", "pre", "pre"]
    for name in ["root.3", "root.4"]:  # a child of the map step sees the parent's state keys
        assert by_tracker[name][0] == (
            "create",
            ("root-app", 3, None),
            ["spawned", "topic", "word", "words"],
        )


class CopiedPersister(BaseStatePersister):
    """A persister written for Burr: ``load``, ``save``, ``list_app_ids``, and ``copy()`` for a
    connection that must not be shared between threads."""

    def __init__(self, copies: list[CopiedPersister]) -> None:
        self.copies = copies
        self.saved: list[tuple[str, int, str]] = []

    def copy(self) -> CopiedPersister:
        clone = CopiedPersister(self.copies)
        self.copies.append(clone)
        return clone

    def load(
        self, partition_key: str, app_id: str | None, sequence_id: int | None = None, **kw: Any
    ) -> None:
        return None

    def save(
        self, partition_key: str | None, app_id: str, sequence_id: int, position: str,
        state: State, status: str, **kwargs: Any,
    ) -> None:  # fmt: skip
        self.saved.append((app_id, sequence_id, position))

    def list_app_ids(self, partition_key: str, **kwargs: Any) -> list[str]:
        return []


def test_children_of_a_map_step_get_a_copy_of_the_persister_each_as_on_burr() -> None:
    copies: list[CopiedPersister] = []
    persister = CopiedPersister(copies)
    app = _tracked(Recorder([]), persister)
    app.run(halt_after=["map_all"], inputs={"topic": "Big Red"})
    assert len(copies) == 2
    assert [position for _, _, position in persister.saved] == [
        "start",
        "split",
        "spawn",
        "map_all",
    ]
    assert [[(seq, pos) for _, seq, pos in c.saved] for c in copies] == [[(0, "shout")]] * 2
