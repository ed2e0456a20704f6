"""What a turn produced: the replies to show and what to store before showing them."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.core.messages import Reply
from bot.core.ports import LessonResult, Position, QuizAttempt, ReviewCard


@dataclass
class Outcome:
    """What a navigation turn produced: replies, and what to store before showing them."""

    replies: list[Reply] = field(default_factory=list)
    position: Position | None = None
    attempt: QuizAttempt | None = None
    result: LessonResult | None = None
    card: ReviewCard | None = None
    reset: bool = False  # erase the learner's progress, in the same transaction that stores ``position``


def note(text: str, *then: Reply) -> Outcome:
    """An outcome that tells only this learner ``text``, then shows ``then``."""
    return Outcome([Reply(text, personal=True), *then])
