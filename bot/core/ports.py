"""The small interfaces the core depends on, and the plain data that crosses them.

Implementations live outside the core (``bot.llm``, ``bot.knowledge``, ``bot.store``); tests use fakes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class ModelBusy(RuntimeError):
    """The model's queue is full; the learner should try again shortly."""

    def __init__(self, message: str = "The tutor is busy answering other questions; please try again in a moment.") -> None:
        super().__init__(message)


class ModelFailed(RuntimeError):
    """The model could not produce an answer (it crashed, timed out before a word, or is unreachable)."""


@dataclass(frozen=True)
class ChatMessage:
    """One message of a chat prompt."""

    role: str  # "system", "user" or "assistant"
    content: str


@dataclass(frozen=True)
class Generation:
    """Settings of one model call."""

    max_tokens: int = 256
    json_schema: dict[str, Any] | None = None  # constrain the output to JSON matching this schema


class ChatModel(Protocol):
    """A chat model that streams text; calls are queued and run one at a time."""

    def stream(self, messages: Sequence[ChatMessage], generation: Generation) -> AsyncIterator[str]:
        """Yield the reply as it is written, piece by piece; raise ModelBusy when the queue is full."""
        ...


@dataclass(frozen=True)
class Passage:
    """A piece of lesson text found for a question."""

    track: str
    lesson: str
    section: str
    heading: str
    lesson_title: str
    text: str
    score: float = 0.0
    similarity: float = 0.0


class Retriever(Protocol):
    """Finds the lesson text that best answers a question."""

    def search(self, question: str, k: int, track: str | None = None, lesson: str | None = None) -> list[Passage]:
        """The best passage of each of the ``k`` best sections, best first."""
        ...


@dataclass(frozen=True)
class QuestionRecord:
    """What moderators see about one question: was it answered, from where, how fast."""

    question: str
    track: str | None
    lesson: str | None
    refused: bool
    reason: str
    sections: tuple[str, ...] = ()
    learner: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


class QuestionLog(Protocol):
    """Keeps every question and its outcome (for moderators' content-gap reports)."""

    def record(self, entry: QuestionRecord) -> None:
        """Store one question's outcome."""
        ...
