"""The RAG chatbot with ``OPENAI_API_KEY`` set: its LlamaIndex chat engine answers through
``openai_llm.OpenAIChatLLM`` on the provider the openai client is configured for (a local
server standing in for the API, by ``OPENAI_BASE_URL``), with the retrieved document and the
conversation held in turnout state in the messages it sends; without a key, LlamaIndex's
offline ``MockLLM``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("llama_index.core")
pytest.importorskip("openai")

from llama_index.core.llms import MockLLM

from examples.llamaindex_rag import application as rag
from turnout.core.sqlite import SQLitePersister
from turnout.testing import FakeOpenAIServer


def test_with_a_key_the_answers_come_from_the_provider_with_context_and_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[list[dict[str, Any]]] = []

    def provider(request: Any) -> str:
        sent.append(request.conversation())
        return f"answer {len(sent)} from {request.model}"

    with FakeOpenAIServer(provider) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_MODEL", "provider-model")
        with rag.chat_llm() as llm, SQLitePersister(tmp_path / "chat.db") as db:
            assert not isinstance(llm, MockLLM)
            engine = rag.chat_engine(rag.HashingEmbedding(), llm)
            app = rag.application(db, app_id="live", engine=engine)
            first, sources = rag.chat(app, "what do cats do all day?")
            second, _ = rag.chat(app, "how is bread made?")
    assert (first, second) == ("answer 1 from provider-model", "answer 2 from provider-model")
    assert sources[0]["metadata"]["topic"] == "cats"
    text = " ".join(str(m.get("content")) for m in sent[0])
    assert rag.DOCUMENTS["cats"] in text  # the retrieved context reached the model
    assert sent[0][-1] == {"role": "user", "content": "what do cats do all day?"}
    later = [(m["role"], m["content"]) for m in sent[1]]
    assert ("assistant", "answer 1 from provider-model") in later  # the history from state
    assert [m.content for m in app.state["chat_history"] if m.role.value == "assistant"] == [
        "answer 1 from provider-model", "answer 2 from provider-model",
    ]  # fmt: skip


def test_without_a_key_or_offline_the_mock_llm_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with rag.chat_llm() as llm:
        assert isinstance(llm, MockLLM)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-used")
    with rag.chat_llm(live=False) as llm:
        assert isinstance(llm, MockLLM)
