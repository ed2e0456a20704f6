"""Quiz grading and review scheduling.

A question a learner misses becomes a review card; cards come back like flashcards, scheduled by FSRS
(the ``fsrs`` package, the algorithm Anki uses): a card answered right comes back later and later, one
answered wrong soon again.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import UTC, datetime, timedelta

from fsrs import Card, Rating, Scheduler

from bot.core.lessons import Question
from bot.core.ports import ReviewCard

LETTERS = "ABCDEFGHIJ"
_OPTION_REF = re.compile(r"^\(?([a-j]|10|[1-9])[).:]?$", re.IGNORECASE)


def option_label(index: int) -> str:
    """``A`` for the first option, ``B`` for the second, …"""
    return LETTERS[index]


def _folded(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split()).strip(" .!?")


def typed_option(question: Question, text: str) -> int | None:
    """The option a typed answer chooses: a letter (``b``), a number (``2``) or the option's exact text."""
    typed = _folded(text)
    match = _OPTION_REF.match(typed)
    if match:
        ref = match.group(1)
        index = int(ref) - 1 if ref.isdigit() else LETTERS.index(ref.upper())
        return index if 0 <= index < len(question.options) else None
    for index, option in enumerate(question.options):
        if _folded(option) == typed:
            return index
    return None


def score(correct: list[bool]) -> tuple[int, int]:
    """Right answers and questions asked."""
    return sum(correct), len(correct)


class ReviewScheduler:
    """Turns missed questions into review cards and reschedules them when reviewed (FSRS)."""

    def __init__(self, first_step: timedelta = timedelta(hours=1), fuzz: bool = False):
        self._scheduler = Scheduler(
            learning_steps=(first_step, first_step * 8), relearning_steps=(first_step,), enable_fuzzing=fuzz
        )

    def missed(self, track: str, lesson: str, question: int, at: float, card: ReviewCard | None = None) -> ReviewCard:
        """The card for a question just answered wrong (a new card, or the existing one rated 'again')."""
        return self.reviewed(card or ReviewCard(track, lesson, question, "", at), False, at)

    def reviewed(self, card: ReviewCard, correct: bool, at: float) -> ReviewCard:
        """The card after a review answered right or wrong."""
        when = datetime.fromtimestamp(at, UTC)
        # An explicit id: without one, fsrs sleeps a millisecond to make ids unique, blocking the event loop.
        card_id = int.from_bytes(hashlib.blake2s(card.key.encode("utf-8"), digest_size=6).digest(), "big")
        state = Card.from_json(card.state) if card.state else Card(card_id=card_id, due=when)
        state, _log = self._scheduler.review_card(state, Rating.Good if correct else Rating.Again, when)
        return ReviewCard(card.track, card.lesson, card.question, state.to_json(), state.due.timestamp())
