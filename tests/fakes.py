"""Recording fakes for the core's ports (scripted chat models, a fixed retriever, an in-memory log)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from bot.core.answering import AnswerSettings
from bot.core.ports import ChatMessage, Generation, Passage, QuestionRecord


@dataclass
class ScriptedModel:
    """Replays queued replies piece by piece and queued judge verdicts, and records every prompt it was given."""

    replies: list[str] = field(default_factory=list)
    history: list[tuple[list[ChatMessage], Generation]] = field(default_factory=list)
    piece_size: int = 7
    verdicts: list[float] = field(default_factory=list)  # P(yes) the judge of citations will read, in order
    checks: list[float] = field(default_factory=list)  # P(yes) of the explanation checks; 0.9 when none is queued
    probes: list[list[ChatMessage]] = field(default_factory=list)

    def enqueue(self, reply: str | dict) -> None:
        self.replies.append(reply if isinstance(reply, str) else json.dumps(reply))

    def enqueue_answer(self, units: list[str], yes: float = 0.9, explanation: str = "") -> None:
        """Script one grounded answer: the units cited, the judge's P(yes) and (if it is asked for) the explanation."""
        self.enqueue({"units": units})
        self.verdicts.append(yes)
        if yes >= AnswerSettings().judge_threshold:  # an explanation is asked for ("" is one that never came)
            self.enqueue(explanation)

    @property
    def questions(self) -> list[tuple[list[ChatMessage], Generation]]:
        """The citing calls (one per question that reached the model); explanations are the other calls."""
        return [call for call in self.history if call[1].json_schema is not None]

    async def next_word_probabilities(self, messages: Sequence[ChatMessage], words: Sequence[str]) -> dict[str, float]:
        self.probes.append(list(messages))
        explanation_check = messages[0].content.startswith("You check a tutor's explanation")
        yes = (self.checks.pop(0) if self.checks else 0.9) if explanation_check else self.verdicts.pop(0)
        return {word: (yes if word == "yes" else 1 - yes) for word in words}

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
class EndlessModel:
    """Answers every question the same grounded way (cites unit 1, judged yes, one explanation) and keeps counts,
    not prompts, so a long run's memory stays flat: the scripted model of load tests."""

    explanation: str = "This is what the lesson says about it."
    piece_size: int = 12
    calls: int = 0
    probes: int = 0
    warmed: int = 0
    warmed_prompts: set[int] = field(default_factory=set)  # distinct prompts read ahead (a real model keeps them)

    def stream(self, messages: Sequence[ChatMessage], generation: Generation) -> AsyncIterator[str]:
        self.calls += 1
        return self._pieces(json.dumps({"units": ["1"]}) if generation.json_schema is not None else self.explanation)

    async def next_word_probabilities(self, messages: Sequence[ChatMessage], words: Sequence[str]) -> dict[str, float]:
        self.probes += 1
        return {word: (0.9 if word == "yes" else 0.1) for word in words}

    def warm(self, messages: Sequence[ChatMessage]) -> None:
        self.warmed += 1
        self.warmed_prompts.add(hash(tuple((m.role, m.content) for m in messages)))

    def close(self) -> None:
        """Nothing to release."""

    async def _pieces(self, reply: str) -> AsyncIterator[str]:
        for start in range(0, len(reply), self.piece_size):
            await asyncio.sleep(0)  # a real model's pieces arrive between other learners' turns
            yield reply[start : start + self.piece_size]


@dataclass
class FixedRetriever:
    """Returns the same passages for every question (filtered by lesson when asked)."""

    passages: list[Passage]
    calls: list[tuple[str, str | Sequence[str] | None, str | None]] = field(default_factory=list)

    def search(self, question: str, k: int, track: str | Sequence[str] | None = None,
               lesson: str | None = None) -> list[Passage]:  # fmt: skip
        self.calls.append((question, track, lesson))
        tracks = None if track is None else {track} if isinstance(track, str) else set(track)
        found = [
            p for p in self.passages if (tracks is None or p.track in tracks) and (lesson is None or p.lesson == lesson)
        ]
        return found[:k]


@dataclass
class MemoryLog:
    """Keeps question records in a list."""

    records: list[QuestionRecord] = field(default_factory=list)

    def record(self, entry: QuestionRecord) -> None:
        self.records.append(entry)


@dataclass
class TirelessModel(ScriptedModel):
    """A scripted model that never runs out (for property tests that ask any number of questions): with nothing
    queued it cites unit 1, its judge says yes, and it explains with ``explanation``."""

    explanation: str = "The lesson says so."

    def stream(self, messages: Sequence[ChatMessage], generation: Generation) -> AsyncIterator[str]:
        if not self.replies:
            self.enqueue({"units": ["1"]} if generation.json_schema is not None else self.explanation)
        return super().stream(messages, generation)

    async def next_word_probabilities(self, messages: Sequence[ChatMessage], words: Sequence[str]) -> dict[str, float]:
        if not self.verdicts:
            self.verdicts.append(0.9)
        return await super().next_word_probabilities(messages, words)
