"""What answering produces: streamed pieces, the final answer with its quotes, and the knobs that shape it."""

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


@dataclass(frozen=True)
class AnswerSettings:
    """Knobs of the answering flow. Three thresholds decide; the rest are budgets (bench/answer_eval.py)."""

    min_similarity: float = 0.25  # threshold: below this, no lesson text is close enough to ask the model
    point_similarity: float = 0.15  # threshold: a refusal names the closest section only above this
    judge_threshold: float = 0.45  # threshold: the judge's P(yes) the cited units need to be shown
    lesson_bonus: float = 0.05  # how much the learner's open lesson is preferred in retrieval
    max_question_chars: int = 500
    page_tokens: int = 1000  # a read-ahead prompt: the whole lesson, or consecutive sections, up to this
    context_tokens: int = 700  # a prompt of retrieved sections (nothing read ahead), up to this
    max_units: int = 3
    explain: bool = True  # write a short explanation after the quotes (shown only when it passes the check)
    explanation_tokens: int = 90
