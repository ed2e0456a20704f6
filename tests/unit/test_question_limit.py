"""The per-learner question limit, one rule for every platform, with memory bounded by who asked lately."""

from __future__ import annotations

import pytest

from bot.core.limits import QuestionLimit, too_many_questions


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_limit_is_per_learner_and_per_minute() -> None:
    clock = Clock()
    limit = QuestionLimit(2, clock)
    assert limit.wait("ada") == 0 and limit.wait("ada") == 0
    clock.now += 10
    assert limit.wait("ada") == pytest.approx(50.0) and limit.wait("bob") == 0
    clock.now += 50.5
    assert limit.wait("ada") == 0
    assert "Please ask again in 30 seconds" in too_many_questions(2, 29.2)
    assert "one question in the last minute" in too_many_questions(1, 0.2) and "in 1 seconds" in too_many_questions(
        1, 0.2
    )


def test_learners_with_no_question_in_the_last_minute_are_forgotten() -> None:
    clock = Clock()
    limit = QuestionLimit(3, clock)
    for n in range(10_000):
        limit.wait(f"learner-{n}")
    assert len(limit) == 10_000
    clock.now += 61
    limit.wait("ada")
    assert len(limit) == 1  # only the learner asking now


def test_a_learner_who_keeps_asking_is_not_forgotten_before_the_idle_ones() -> None:
    clock = Clock()
    limit = QuestionLimit(2, clock)
    limit.wait("ada")
    limit.wait("bob")
    clock.now += 40
    limit.wait("ada")  # ada asked again: bob is now the oldest
    clock.now += 25
    limit.wait("carol")
    assert len(limit) == 2  # bob forgotten, ada (asked 25 s ago) kept
    assert limit.wait("ada") == 0 and limit.wait("ada") > 0
