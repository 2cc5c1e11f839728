"""The examples gallery: the applications turnout is known for, run by ``turnout demo``.

Each ``Example`` names a directory of ``examples/`` and says how to run it tracked: its
``run`` gets the example's ``application`` module and a ``GalleryRun`` (the tracker, the app id,
and whether the real model provider may be used). Adding an example to the gallery is one entry
in ``EXAMPLES`` (and its screenshot in ``docs/img/gallery/``, which the gallery's browser test
takes).

Where the examples come from: a wheel carries ``examples/`` as the package ``turnout._examples``
(``pyproject.toml`` force-includes it), so ``turnout demo`` and the ``turnout ui`` demo project
work from ``pip install turnout``; in a source checkout they are the ``examples`` package next to
``turnout/``. Neither there: ``GalleryError`` says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import importlib
import importlib.util
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from turnout.core.errors import GalleryError, MissingExtraError

__all__ = [
    "EXAMPLES",
    "Example",
    "GalleryRun",
    "examples_location",
    "find",
    "load",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class GalleryRun:
    """What an example's runner gets: the tracker to record into, the app id to record as, and
    ``live``: whether it may use the real model provider (``OPENAI_API_KEY``) and its best
    local models, rather than the fastest offline stand-ins (the demo project's runs)."""

    tracker: Any
    app_id: str
    live: bool = False
    say: Callable[[str], None] = lambda _text: None
    """Where a runner shows what the example says (streamed tokens, a conversation)."""


Runner = Callable[[ModuleType, GalleryRun], None]


@dataclass(frozen=True, kw_only=True, slots=True)
class Example:
    """One application of the gallery.

    Attributes:
        name: what ``turnout demo NAME`` takes.
        directory: its directory under ``examples/``.
        title: a few words; ``summary``: one line of what it shows.
        extra: the ``turnout[...]`` extra it needs; ``needs``: the modules that extra brings,
            probed (not imported) to tell whether it is installed.
        steps: actions its tracked run shows (the browser test checks its app page for them).
        live: whether it talks to the real provider when ``OPENAI_API_KEY`` is set.
        run: runs it once, tracked (see ``GalleryRun``).
    """

    name: str
    directory: str
    title: str
    summary: str
    extra: str
    needs: tuple[str, ...]
    steps: tuple[str, ...]
    live: bool
    run: Runner

    @property
    def install(self) -> str:
        """The command that installs what it needs."""
        return f'pip install "turnout[{self.extra}]"'

    def missing(self) -> list[str]:
        """The modules it needs that are not installed."""
        return [name for name in self.needs if importlib.util.find_spec(name) is None]

    def installed(self) -> bool:
        return not self.missing()


# -- the runners -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _openai(responder: Any, fake_model: str, run: GalleryRun) -> Iterator[tuple[Any, str]]:
    from turnout.testing import openai_client

    with openai_client(responder, fake_model=fake_model, allow_real=run.live) as made:
        yield made


def _chatbot(module: ModuleType, run: GalleryRun) -> None:
    with _openai(module.offline_reply, "fake-chat", run) as (client, model):
        app = module.application(client, model, tracker=run.tracker, app_id=run.app_id)
        for prompt in ("hello", "what can you do?", "tell me about state machines"):
            run.say(f"\nuser: {prompt}\nbot:  ")
            module.stream_chat(app, prompt, run.say)


# Each finds its document by its words too, as the fast stand-in embedding of the demo needs.
_RAG_QUESTIONS = ("what do cats do all day?", "what comes out of a volcano?", "how is bread made?")


def _rag_chatbot(module: ModuleType, run: GalleryRun) -> None:
    from turnout.core.sqlite import SQLitePersister

    embedding = module.embedding(quiet=True) if run.live else module.HashingEmbedding()
    with (
        module.chat_llm(live=run.live) as llm,
        tempfile.TemporaryDirectory() as tmp,
        SQLitePersister(Path(tmp) / "chat.db") as db,
    ):
        engine = module.chat_engine(embedding, llm)
        echoing = isinstance(llm, module.MockLLM)  # the offline stand-in echoes its prompt
        app = module.application(db, app_id=run.app_id, engine=engine, tracker=run.tracker)
        for message in _RAG_QUESTIONS:
            answer, sources = module.chat(app, message)
            topic = sources[0]["metadata"]["topic"] if sources else "nothing"
            said = f"echoed a {len(answer)}-char prompt" if echoing else answer
            run.say(f"user: {message}\n  retrieved {topic}\n  bot: {said}\n")


def _adventure_game(module: ModuleType, run: GalleryRun) -> None:
    with _openai(module.offline_model, "fake-adventure", run) as (client, model):
        app = module.application(client, model, tracker=run.tracker, app_id=run.app_id)
        for words in module.WALKTHROUGH:
            run.say(f"\n> {words}\n")
            module.play_turn(app, words, run.say)
            if app.state["won"]:
                break


def _email_assistant(module: ModuleType, run: GalleryRun) -> None:
    with module.drafting_model(live=run.live) as model:
        _converse(module, model, run)


def _converse(module: ModuleType, model: Any, run: GalleryRun) -> None:
    app = module.application(model, tracker=run.tracker, app_id=run.app_id)
    replies = {"clarifications": ["Thursday", "casual"], "approval": ["mention the agenda", "yes"]}

    def ask(channel: str, question: str) -> str:
        reply = replies[channel].pop(0)
        run.say(f"{question} {reply}\n")
        return reply

    run.say(f"you: {module.DEFAULT_REQUEST}\n")
    asyncio.run(module.converse(app, module.DEFAULT_REQUEST, ask=ask, say=run.say))


def _multi_agent(module: ModuleType, run: GalleryRun) -> None:
    with _openai(module.agents.scripted_model, "fake-team", run) as (client, model):
        team = module.Team(client=client, model=model)
        app = module.application(team, tracker=run.tracker, app_id=run.app_id)
        run.say(f"Q: {module.DEFAULT_QUESTION}\n")
        run.say(f"A: {module.solve(app, module.DEFAULT_QUESTION)}\n")


def _forecast_simulation(module: ModuleType, run: GalleryRun) -> None:
    with tempfile.TemporaryDirectory() as charts:
        app = module.application(
            module.Output(Path(charts)), tracker=run.tracker, app_id=run.app_id
        )
        for _ in range(2):
            done = module.forecast_round(app)
            run.say(f"round {done['round']}: forecast from day {done['origin']}\n")


def _hyperparameter_tuning(module: ModuleType, run: GalleryRun) -> None:
    from turnout.core.sqlite import SQLitePersister

    search = module.Search(seed=0, per_round=4, max_rounds=3, patience=2)
    with (
        tempfile.TemporaryDirectory() as tmp,
        SQLitePersister(Path(tmp) / "tuning.db") as db,
        # Threads: a process pool's workers re-import the caller's main module, which
        # `turnout demo` controls but a host process (a test runner, a notebook) may not.
        module.executor_factory("thread", workers=2) as pool,
    ):
        app = module.application(search, db, app_id=run.app_id, executor=pool, tracker=run.tracker)
        for step, _result, state in app.iterate(halt_after=["report"]):
            if step.name == "decide":
                run.say(f"round {state['round']}: best so far {state['best']}\n")


EXAMPLES: tuple[Example, ...] = (
    Example(
        name="chatbot",
        directory="openai_chatbot",
        title="Chatbot",
        summary="a GPT-like chatbot: streamed answers, token usage per call",
        extra="openai",
        needs=("openai",),
        steps=("user_input", "respond"),
        live=True,
        run=_chatbot,
    ),
    Example(
        name="rag_chatbot",
        directory="llamaindex_rag",
        title="RAG chatbot",
        summary="a LlamaIndex chat engine answering from documents; the memory lives in state",
        extra="llamaindex",
        needs=("llama_index",),
        steps=("user_input", "answer"),
        live=True,
        run=_rag_chatbot,
    ),
    Example(
        name="adventure_game",
        directory="adventure_game",
        title="Adventure game",
        summary="a text adventure: the model reads commands as tool calls, the map rules judge",
        extra="openai",
        needs=("openai",),
        steps=("command", "interpret", "narrate"),
        live=True,
        run=_adventure_game,
    ),
    Example(
        name="email_assistant",
        directory="email_assistant_served",
        title="Email assistant",
        summary="drafts an email, suspends for clarifying answers and for approval",
        extra="serve",
        needs=("fastapi", "uvicorn", "sse_starlette"),
        steps=("receive", "draft", "clarify", "review", "send"),
        live=True,
        run=_email_assistant,
    ),
    Example(
        name="multi_agent",
        directory="multi_agent",
        title="Multi-agent team",
        summary="a planner, researchers with tools and a writer, each a child application",
        extra="openai",
        needs=("openai",),
        steps=("receive", "plan", "research", "write", "deliver"),
        live=True,
        run=_multi_agent,
    ),
    Example(
        name="forecast_simulation",
        directory="forecast_simulation",
        title="Forecast simulation",
        summary="a market stepped day by day, forecast scenarios fanned out as child applications",
        extra="plots",
        needs=("matplotlib", "numpy"),
        steps=("market_day", "fit", "simulate", "summarize", "plot"),
        live=False,
        run=_forecast_simulation,
    ),
    Example(
        name="hyperparameter_tuning",
        directory="hyperparameter_tuning",
        title="Hyperparameter tuning",
        summary="a scikit-learn model tuned in rounds, each candidate a child on a process pool",
        extra="sklearn",
        needs=("sklearn",),
        steps=("propose", "train", "decide", "report"),
        live=False,
        run=_hyperparameter_tuning,
    ),
)


# -- finding and loading ---------------------------------------------------------------------------


def find(name: str) -> Example:
    """The example called ``name`` (or living in ``examples/<name>``); ``GalleryError`` with
    the closest names otherwise."""
    for example in EXAMPLES:
        if name in (example.name, example.directory):
            return example
    names = [e.name for e in EXAMPLES]
    close = difflib.get_close_matches(name, names + [e.directory for e in EXAMPLES], n=3)
    close = [find(c).name for c in close]
    hint = f"did you mean {' or '.join(dict.fromkeys(close))}? " if close else ""
    raise GalleryError(
        f"no gallery example is called {name!r}; {hint}`turnout demo` lists them: "
        f"{', '.join(names)}"
    )


def examples_location() -> tuple[Path, str]:
    """``(directory, package)`` of the examples: ``turnout._examples`` in a wheel, else the
    ``examples`` package of the source checkout ``turnout`` was imported from."""
    here = Path(__file__).resolve().parent
    if (here / "_examples" / "__init__.py").is_file():
        return here / "_examples", "turnout._examples"
    checkout = here.parent / "examples"
    if (checkout / "__init__.py").is_file():
        spec = importlib.util.find_spec("examples")
        origin = Path(spec.origin).resolve().parent if spec and spec.origin else None
        if origin == checkout:
            return checkout, "examples"
        raise GalleryError(
            f"the examples are in {checkout}, but `import examples` finds "
            f"{origin or 'nothing'}: run turnout from the checkout's root ({here.parent}) or "
            f"put it first on PYTHONPATH"
        )
    raise GalleryError(
        f"the gallery's examples are not installed next to turnout ({here}): install turnout "
        f"from a wheel (pip install turnout), which carries them, or run from a source "
        f"checkout, where they are the examples/ directory"
    )


def load(example: Example) -> ModuleType:
    """Import ``example``'s ``application`` module. Raises ``MissingExtraError`` naming the
    install command when its extra is missing, ``GalleryError`` when the examples are absent."""
    missing = example.missing()
    if missing:
        raise MissingExtraError(
            f"the {example.name} example needs {', '.join(repr(m) for m in missing)}, which "
            f"is not installed: {example.install}"
        )
    _directory, package = examples_location()
    return importlib.import_module(f"{package}.{example.directory}.application")
