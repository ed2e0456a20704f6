"""What answering produces: streamed pieces, and the final answer with its quotes."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.core.messages import Citation


@dataclass(frozen=True)
class AnswerDelta:
    """A piece of the answer, shown as soon as it is known to be right (never taken back)."""

    text: str


@dataclass(frozen=True)
class Quote:
    """A lesson unit the answer cites, word for word, and where it stands."""

    unit: str  # the unit's stable id
    text: str
    citation: Citation


@dataclass
class Answer:
    """The outcome of a question: the answer or a refusal, with its quotes, citations and timings."""

    text: str
    refused: bool
    reason: str
    citations: list[Citation] = field(default_factory=list)
    closest: Citation | None = None
    timings: dict[str, float] = field(default_factory=dict)
    truncated_question: bool = False
    quotes: list[Quote] = field(default_factory=list)
    explanation: str = ""  # shown only when it passed the check; "" otherwise
    judged: float | None = None  # the judge's P(yes) for the cited units, when it was asked
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage reached (retrieve, cite, judge)

    def as_dict(self) -> dict:
        """The JSON shape ``tutorbot ask --json`` prints."""
        return {
            "answer": self.text,
            "refused": self.refused,
            "citations": [{"track": c.track, "lesson": c.lesson, "section": c.section} for c in self.citations],
            "quotes": [{"unit": q.unit, "text": q.text} for q in self.quotes],
            "timings": {key: round(value, 3) for key, value in self.timings.items()},
        }
