"""Recording fakes for the core's ports (a scripted chat model, a fixed retriever, an in-memory log)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from bot.core.ports import ChatMessage, Generation, Passage, QuestionRecord


@dataclass
class ScriptedModel:
    """Replays queued replies piece by piece and records every prompt it was given."""

    replies: list[str] = field(default_factory=list)
    history: list[tuple[list[ChatMessage], Generation]] = field(default_factory=list)
    piece_size: int = 7

    def enqueue(self, reply: str | dict) -> None:
        self.replies.append(reply if isinstance(reply, str) else json.dumps(reply))

    warmed: list[list[ChatMessage]] = field(default_factory=list)

    closed: bool = False

    def warm(self, messages: Sequence[ChatMessage]) -> None:
        self.warmed.append(list(messages))

    def close(self) -> None:
        self.closed = True

    def stream(self, messages: Sequence[ChatMessage], generation: Generation) -> AsyncIterator[str]:
        self.history.append((list(messages), generation))
        reply = self.replies.pop(0)
        return self._pieces(reply)

    async def _pieces(self, reply: str) -> AsyncIterator[str]:
        for start in range(0, len(reply), self.piece_size):
            yield reply[start : start + self.piece_size]


@dataclass
class GatedModel(ScriptedModel):
    """A scripted model that starts writing only when its gate opens (a question kept in flight)."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)

    async def _pieces(self, reply: str) -> AsyncIterator[str]:
        await self.gate.wait()
        async for piece in super()._pieces(reply):
            yield piece


@dataclass
class FixedRetriever:
    """Returns the same passages for every question (filtered by lesson when asked)."""

    passages: list[Passage]
    calls: list[tuple[str, str | None, str | None]] = field(default_factory=list)

    def search(self, question: str, k: int, track: str | None = None, lesson: str | None = None) -> list[Passage]:
        self.calls.append((question, track, lesson))
        found = [p for p in self.passages if (track is None or p.track == track) and (lesson is None or p.lesson == lesson)]
        return found[:k]


@dataclass
class MemoryLog:
    """Keeps question records in a list."""

    records: list[QuestionRecord] = field(default_factory=list)

    def record(self, entry: QuestionRecord) -> None:
        self.records.append(entry)
