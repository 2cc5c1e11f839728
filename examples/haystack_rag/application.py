"""A question-answering chatbot whose answers come from a Haystack RAG pipeline.

A Haystack ``Pipeline`` (BM25 retrieval over an ``InMemoryDocumentStore``, a ``PromptBuilder``
and a generator) is one action of a turnout state machine: ``ask`` takes the user's question,
``rag`` runs the pipeline (its documents and replies go into state), ``respond`` keeps the
conversation. The pipeline's spans (the run and each component) nest under the ``rag`` step.

Everything runs offline and gives the same answers every time: the generator is
``ExtractiveGenerator``, a component written here that answers with the first sentence of the
best document in its prompt, and reports token usage as an LLM would::

    pip install "turnout[haystack]"
    python examples/haystack_rag/application.py
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from typing import Any

# An example runs offline: no usage telemetry from Haystack unless asked for.
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

# The adapter first: without its library it raises MissingExtraError naming the extra.
import turnout.integrations.haystack  # noqa: F401

# isort: split
from haystack import Document, Pipeline, component
from haystack.components.builders import PromptBuilder
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.document_stores.in_memory import InMemoryDocumentStore

from turnout import Application, ApplicationBuilder, State, action
from turnout.integrations.haystack import HaystackAction, from_value

DOCUMENTS = [
    "Cats are small domestic felines. Cats purr and sleep most of the day.",
    "Volcanoes are openings in the crust of the earth. Lava, ash and gas erupt from them.",
    "Bread is baked from flour, water, salt and yeast. The dough rises before baking.",
    "Trains run on rails. They carry passengers and freight between stations.",
]
QUESTIONS = ("What erupts from volcanoes?", "How is bread baked?", "Do cats sleep a lot?")
TEMPLATE = """Answer the question from the documents.
Documents:
{% for doc in documents %}- {{ doc.content }}
{% endfor %}
Question: {{ question }}
Answer:"""


@component
class ExtractiveGenerator:
    """A stand-in for an LLM generator: replies with the sentence of the documents listed in
    the prompt that shares the most words with the question (``replies``, and ``meta`` with the
    model name and word counts as token usage, as Haystack's generators report them)."""

    @component.output_types(replies=list[str], meta=list[dict[str, Any]])
    def run(self, prompt: str) -> dict[str, Any]:
        question = set(_words(prompt.rpartition("Question:")[2]))
        listed = re.findall(r"^- (.+)$", prompt, flags=re.MULTILINE)
        sentences = [s.strip() for doc in listed for s in re.split(r"(?<=\.) ", doc)]
        best = max(sentences, key=lambda s: len(question & set(_words(s))), default="")
        reply = best or "I do not know."
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(reply.split())}
        return {"replies": [reply], "meta": [{"model": "extractive-1", "usage": usage}]}


def _words(text: str) -> list[str]:
    return [w.rstrip("s") for w in re.findall(r"[a-z]+", text.lower())]


def rag_pipeline(documents: Sequence[str] = DOCUMENTS) -> Pipeline:
    """Retriever -> prompt builder -> generator, over an in-memory store of ``documents``."""
    store = InMemoryDocumentStore()
    store.write_documents([Document(content=text) for text in documents])
    pipeline = Pipeline()
    pipeline.add_component("retriever", InMemoryBM25Retriever(document_store=store))
    pipeline.add_component(
        "prompt_builder", PromptBuilder(template=TEMPLATE, required_variables=["question"])
    )
    pipeline.add_component("llm", ExtractiveGenerator())
    pipeline.connect("retriever.documents", "prompt_builder.documents")
    pipeline.connect("prompt_builder.prompt", "llm.prompt")
    return pipeline


@action(reads=[], writes=["question"])
def ask(state: State, question: str) -> State:
    return state.update(question=question)


@action(reads=["question", "replies"], writes=["answer", "chat_history"])
def respond(state: State) -> State:
    answer = state["replies"][0]
    turn = [
        {"role": "user", "content": state["question"]},
        {"role": "assistant", "content": answer},
    ]
    return state.update(answer=answer).extend(chat_history=turn)


def application(pipeline: Pipeline | None = None, *, use_async: bool = False) -> Application:
    """The chatbot: ``ask`` -> ``rag`` -> ``respond`` -> ``ask``."""
    rag = HaystackAction(
        pipeline or rag_pipeline(),
        # the question feeds the retriever's query and the prompt's question; top_k is fixed
        input={"retriever.query": "question", "question": "question", "top_k": from_value(2)},
        # the generator's replies, and the retriever's documents (which feed the prompt builder)
        output={"replies": "replies", "retriever.documents": "documents"},
        is_async=use_async,
    )
    return (
        ApplicationBuilder()
        .with_actions(ask=ask, rag=rag, respond=respond)
        .with_transitions(("ask", "rag"), ("rag", "respond"), ("respond", "ask"))
        .with_state(chat_history=[])
        .with_entrypoint("ask")
        .build()
    )


def chat(app: Application, question: str) -> str:
    """One turn: the answer to ``question``."""
    _, _, state = app.run(halt_after=["respond"], inputs={"question": question})
    return str(state["answer"])


def main(argv: Sequence[str] | None = None) -> list[str]:
    questions = list(argv if argv is not None else sys.argv[1:]) or list(QUESTIONS)
    app = application()
    answers = []
    for question in questions:
        answer = chat(app, question)
        sources = [doc.content for doc in app.state["documents"]]
        print(f"Q: {question}\nA: {answer}\n   (documents retrieved: {len(sources)})")
        answers.append(answer)
    return answers


if __name__ == "__main__":
    main()
