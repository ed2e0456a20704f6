"""What a learner's stored progress adds up to: best scores, the streak, reviews due, the next lesson.

Plain functions of plain data (results, active days, review cards, tracks): the engine reads the store and
the clock and passes what they returned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta

from bot.core.lessons import Lesson, Question, Track
from bot.core.ports import LessonResult, Position, ReviewCard

BestScores = dict[tuple[str, str], tuple[int, int]]  # (track, lesson) -> (best score, questions)


def best_scores(results: Iterable[LessonResult]) -> BestScores:
    """The best score of each finished lesson, by ``(track, lesson)``; the earliest of equal scores counts."""
    best: BestScores = {}
    for result in results:
        key = (result.track, result.lesson)
        if key not in best or result.score > best[key][0]:
            best[key] = (result.score, result.total)
    return best


def streak(days: list[str], today: date) -> int:
    """Active days in a row (``days`` newest first), up to today or, before today's first turn, yesterday.

    A day after ``today`` counts as today: it was stored before the learner's timezone moved them back a day.
    """
    clamped = list(dict.fromkeys(min(day, today.isoformat()) for day in days))
    expected = today if clamped and clamped[0] == today.isoformat() else today - timedelta(days=1)
    count = 0
    for day in clamped:
        if date.fromisoformat(day) != expected:
            break
        count += 1
        expected -= timedelta(days=1)
    return count


def up_next(offered: list[Track], position: Position, best: BestScores) -> tuple[Track, Lesson] | None:
    """The first lesson not yet finished: in the current track after the current lesson, else anywhere offered."""
    current = [t for t in offered if t.id == position.track]
    for track in current + [t for t in offered if t.id != position.track]:
        start = 0
        if track.id == position.track and position.lesson:
            start = next((n for n, lesson in enumerate(track.lessons) if lesson.id == position.lesson), -1) + 1
        for lesson in track.lessons[start:]:
            if (track.id, lesson.id) not in best:
                return track, lesson
    return None


def question_of(tracks: Mapping[str, Track], card: ReviewCard) -> tuple[Lesson, Question] | None:
    """The lesson and quiz question a review card stands for; None when the lessons no longer have it."""
    track = tracks.get(card.track)
    lesson = track.lesson(card.lesson) if track else None
    if lesson is None or card.question >= len(lesson.quiz):
        return None
    return lesson, lesson.quiz[card.question]


def due(tracks: Mapping[str, Track], cards: list[ReviewCard], now: float) -> list[ReviewCard]:
    """The cards due by ``now`` whose question still exists, in the order given (soonest due first)."""
    return [card for card in cards if card.due <= now and question_of(tracks, card)]
