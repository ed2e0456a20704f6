"""A chat model behind an OpenAI-compatible HTTP server (llama-cpp-python's server, vLLM, Ollama, ...).

Calls stream over server-sent events; each call ends at its time limit, however the server behaves. A
semaphore keeps at most ``concurrency`` calls in flight and at most ``queue_size`` waiting; past that the
caller gets ``ModelBusy`` at once. The API key is a ``SecretStr`` and HTTP client logs are kept at WARNING
so it never reaches a log.

Servers take a JSON schema in one of two shapes: OpenAI's ``{"type": "json_schema", ...}`` or
llama-cpp-python's ``{"type": "json_object", "schema": ...}`` (its server rejects the first with a 500). With
the ``auto`` style the first schema call tries ``json_schema``; a server that rejects it naming
``response_format`` gets the same call once more as ``json_object``, and this client keeps that choice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

import httpx
from pydantic import SecretStr

from bot.core.ports import ChatMessage, Generation, ModelBusy, ModelFailed, ModelTimedOut
from bot.llm.deadline import until

SCHEMA_STYLES = ("auto", "json_schema", "json_object")

log = logging.getLogger(__name__)
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)


class OpenAIChatModel:
    """``ChatModel`` that talks to ``{base_url}/chat/completions``."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: SecretStr | None = None,
        concurrency: int = 1,
        queue_size: int = 8,
        max_seconds: float = 60.0,
        schema_style: str = "auto",
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        if schema_style not in SCHEMA_STYLES:
            raise ValueError(f"schema_style must be one of {', '.join(SCHEMA_STYLES)}, not {schema_style!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_seconds = max_seconds
        self.schema_style = schema_style  # 'auto' until a schema call shows which shape the server takes
        self._api_key = api_key
        self._transport = transport  # None: the network; tests pass an in-memory server
        self._slots = asyncio.Semaphore(concurrency)
        self._queue_size = queue_size
        self._waiting = 0
        self._warned_logprobs = False

    def _headers(self) -> dict[str, str]:
        key = self._api_key.get_secret_value() if self._api_key else ""
        return {"Authorization": f"Bearer {key}"} if key else {}

    @staticmethod
    def _response_format(style: str, schema: dict[str, Any]) -> dict[str, Any]:
        if style == "json_object":  # llama-cpp-python's server: only 'text' or 'json_object', schema beside it
            return {"type": "json_object", "schema": schema}
        return {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema, "strict": True}}

    def _settle(self, style: str, fell_back: bool) -> None:
        """Keep the shape the server took, saying once which it was (only while the style is 'auto')."""
        if self.schema_style != "auto":
            return
        self.schema_style = style
        if fell_back:
            log.warning("the model server at %s rejects response_format 'json_schema'; this client sends the schema "
                        "as 'json_object' from now on (set TUTORBOT_MODEL__SERVER_SCHEMA_STYLE=json_object to skip "
                        "the first try)", self.base_url)  # fmt: skip
        else:
            log.info("the model server at %s takes response_format 'json_schema'", self.base_url)

    def warm(self, messages: Sequence[ChatMessage]) -> None:
        """Nothing to do: a model server manages its own prompt cache."""

    def close(self) -> None:
        """Nothing to release: every call opens and closes its own connection."""

    async def next_word_probabilities(self, messages: Sequence[ChatMessage], words: Sequence[str]) -> dict[str, float]:
        """Next-token probabilities of ``words`` from the server's ``top_logprobs`` (one token generated).

        A server that returns no log-probabilities is said so at WARNING once and at INFO on every such call;
        its one sampled token then counts as certain (1 for the word it wrote, 0 for the others), which makes
        the judge a plain yes/no.
        """
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": 1,
            "temperature": 0,
            "logprobs": True,
            "top_logprobs": 20,
        }
        async with self._turn():
            try:
                async with asyncio.timeout(self.max_seconds):  # the whole call, not each read
                    reply = await self._post_json(body)
            except TimeoutError:
                raise ModelTimedOut(f"the model server said nothing within {self.max_seconds:g} s") from None
        choice = (reply.get("choices") or [{}])[0]
        top = ((choice.get("logprobs") or {}).get("content") or [{}])[0].get("top_logprobs") or []
        mass = {word: 0.0 for word in words}
        if top:
            for entry in top:
                token = str(entry.get("token", "")).strip().lower()
                if token in mass:
                    mass[token] += math.exp(float(entry.get("logprob", -math.inf)))
        else:
            said = str(((choice.get("message") or {}).get("content")) or "").strip().lower()
            if not self._warned_logprobs:
                self._warned_logprobs = True
                log.warning("the model server at %s returns no logprobs: the answer judge falls back to the one word "
                            "the server writes, without a probability; use a server that supports top_logprobs", self.base_url)  # fmt: skip
            log.info("judged without probabilities (no logprobs from the model server): it wrote %r", said[:20])
            for word in words:
                mass[word] = 1.0 if said.startswith(word.lower()) else 0.0
        total = sum(mass.values())
        return {word: (value / total if total else 0.0) for word, value in mass.items()}

    async def _post_json(self, body: dict[str, Any]) -> dict[str, Any]:
        timeout = httpx.Timeout(self.max_seconds, connect=10.0)
        try:
            async with httpx.AsyncClient(timeout=timeout, transport=self._transport) as client:
                response = await client.post(f"{self.base_url}/chat/completions", json=body, headers=self._headers())
        except httpx.HTTPError as error:
            raise ModelFailed(f"could not reach the model server at {self.base_url}: {type(error).__name__}") from None
        if response.status_code >= 400:
            raise ModelFailed(f"the model server answered {response.status_code}: {response.text[:300]}")
        return response.json()

    def stream(self, messages: Sequence[ChatMessage], generation: Generation) -> AsyncIterator[str]:
        """Stream a reply; raises ModelBusy when too many calls are already waiting."""
        return self._call(list(messages), generation)

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """Wait for a free slot (at most ``queue_size`` callers wait; past that, ModelBusy at once)."""
        if self._waiting >= self._queue_size:
            raise ModelBusy()
        self._waiting += 1
        acquired = False
        try:
            async with self._slots:
                self._waiting -= 1
                acquired = True
                yield
        finally:
            if not acquired:
                self._waiting -= 1

    async def _call(self, messages: list[ChatMessage], generation: Generation) -> AsyncIterator[str]:
        async with self._turn():
            # httpx's timeout is per read: a server trickling pieces could go on for ever without this.
            deadline = time.monotonic() + self.max_seconds
            async for piece in until(deadline, self._post(messages, generation), self.max_seconds):
                yield piece

    async def _post(self, messages: list[ChatMessage], generation: Generation) -> AsyncGenerator[str, None]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": generation.max_tokens,
            "temperature": 0,
            "stream": True,
        }
        styles = ["json_schema", "json_object"] if self.schema_style == "auto" else [self.schema_style]
        timeout = httpx.Timeout(self.max_seconds, connect=10.0)
        try:
            async with httpx.AsyncClient(timeout=timeout, transport=self._transport) as client:
                for attempt, style in enumerate(styles):
                    if generation.json_schema is not None:
                        body["response_format"] = self._response_format(style, generation.json_schema)
                    async with client.stream(
                        "POST", f"{self.base_url}/chat/completions", json=body, headers=self._headers()
                    ) as response:
                        if response.status_code >= 400:
                            detail = (await response.aread()).decode("utf-8", "replace")
                            if generation.json_schema is not None and attempt + 1 < len(styles) and _rejects(detail):
                                continue  # nothing was yielded yet: the same call again in the other shape
                            raise ModelFailed(f"the model server answered {response.status_code}: {detail[:300]}")
                        if generation.json_schema is not None:
                            self._settle(style, fell_back=attempt > 0)
                        async for line in response.aiter_lines():
                            if not line.startswith("data:"):
                                continue
                            data = line[5:].strip()
                            if data == "[DONE]":
                                return
                            choices = json.loads(data).get("choices") or [{}]
                            piece = (choices[0].get("delta") or {}).get("content")
                            if piece:
                                yield piece
                        return
        except httpx.HTTPError as error:
            raise ModelFailed(f"could not reach the model server at {self.base_url}: {type(error).__name__}") from None


def _rejects(detail: str) -> bool:
    """Whether an error body says the server refused the ``json_schema`` response format."""
    return "response_format" in detail or "json_schema" in detail
