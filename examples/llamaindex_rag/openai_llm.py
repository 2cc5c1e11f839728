"""The RAG chatbot's LLM on the OpenAI API (``OPENAI_API_KEY`` set), as a LlamaIndex LLM.

``OpenAIChatLLM`` is a LlamaIndex ``CustomLLM`` over the official ``openai`` client: the chat
engine's messages (its system prompt with the retrieved context, the history held in turnout
state, the question) go to a chat completion as they are. It is the example's own few lines
rather than ``llama-index-llms-openai`` so the example needs only ``turnout[llamaindex]`` and
``openai``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from pydantic import PrivateAttr


class OpenAIChatLLM(CustomLLM):
    """Chat completions of ``model`` through ``client`` (an ``openai.OpenAI``)."""

    model: str
    _client: Any = PrivateAttr()

    def __init__(self, client: Any, model: str) -> None:
        super().__init__(model=model)
        self._client = client

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=self.model, is_chat_model=True)

    def _create(self, messages: Sequence[ChatMessage], **options: Any) -> Any:
        plain = [{"role": m.role.value, "content": m.content or ""} for m in messages]
        return self._client.chat.completions.create(model=self.model, messages=plain, **options)

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        text = self._create(messages).choices[0].message.content or ""
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        chunks = self._create(messages, stream=True)

        def gen() -> ChatResponseGen:
            text = ""
            for chunk in chunks:
                delta = (chunk.choices[0].delta.content if chunk.choices else None) or ""
                text += delta
                message = ChatMessage(role=MessageRole.ASSISTANT, content=text)
                yield ChatResponse(message=message, delta=delta)

        return gen()

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        answer = self.chat([ChatMessage(role=MessageRole.USER, content=prompt)])
        return CompletionResponse(text=answer.message.content or "")

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        streamed = self.stream_chat([ChatMessage(role=MessageRole.USER, content=prompt)])

        def gen() -> CompletionResponseGen:
            for part in streamed:
                yield CompletionResponse(text=part.message.content or "", delta=part.delta)

        return gen()
