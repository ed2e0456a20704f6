"""Community leaderboards: opt-in learners only, by display name, this week's lessons then streak; a moderator switch."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.core.engine import Engine
from bot.core.ports import LessonResult, Position
from bot.store.progress import SqlProgressStore
from tests.engine_driver import Learner
from tests.unit.test_engine import TRACKS, Clock

WEDNESDAY = datetime(2026, 1, 14, 12, tzinfo=UTC).timestamp()
DAY = 86400.0


@pytest.fixture
def clock() -> Clock:
    return Clock(WEDNESDAY)


@pytest.fixture
def engine(tmp_path: Path, clock: Clock) -> Engine:
    return Engine(TRACKS, SqlProgressStore(tmp_path / "p.sqlite3"), clock=clock)


def member(engine: Engine, name: str, group: str = "g1", moderator: bool = False) -> Learner:
    learner = Learner(engine, user_id=name, conversation=group, is_direct=False, is_moderator=moderator)
    learner.say("start")  # a turn here makes them a member of the community
    return learner


def finish(engine: Engine, name: str, lessons: list[str], at: float) -> None:
    for lesson in lessons:
        engine.store.save(f"test:{name}", Position(), at=at, result=LessonResult("ai-foundations", lesson, 1, 1, at))


def test_only_learners_who_opted_in_appear_ranked_by_this_weeks_lessons_then_streak(engine: Engine) -> None:
    ada, bob, cy, dee = (member(engine, name) for name in ("ada", "bob", "cy", "dee"))
    member(engine, "eve", group="g2").say("leaderboard on")  # another community's learner
    for learner in (ada, bob, cy):
        learner.say("leaderboard on")
    assert "You're on the leaderboards of your communities now, as “Ada”" in ada.text
    finish(engine, "ada", ["distillation"], WEDNESDAY - DAY)
    finish(engine, "bob", ["distillation", "attention"], WEDNESDAY - DAY)
    finish(engine, "bob", ["rlhf-vs-dpo"], WEDNESDAY - 7 * DAY)  # last week: doesn't count
    finish(engine, "cy", ["attention"], WEDNESDAY - 2 * DAY)
    finish(engine, "cy", ["attention"], WEDNESDAY - DAY)  # a lesson finished twice counts once
    finish(engine, "dee", ["distillation", "attention", "tokenization-economics"], WEDNESDAY)
    for days_ago in (2, 3):
        engine.store.save(
            "test:ada", Position(), at=WEDNESDAY - days_ago * DAY
        )  # Ada: three days in a row to yesterday
    dee.say("leaderboard")
    lines = dee.text.splitlines()
    assert lines[1:4] == [
        "1. Bob · 2 lessons · 🔥 1 day",
        "2. Ada · 1 lesson · 🔥 3 days",
        "3. Cy · 1 lesson · 🔥 2 days",
    ]
    assert "Dee" not in dee.text and "Eve" not in dee.text  # not opted in; another community
    assert "'leaderboard on' puts you on it" in dee.text
    bob.say("leaderboard off")
    dee.say("leaderboard")
    assert "Bob" not in dee.text


def test_moderators_turn_the_leaderboard_off_and_on_for_their_community(engine: Engine) -> None:
    ada, mod = member(engine, "ada"), member(engine, "mod", moderator=True)
    ada.say("leaderboard disable")
    assert "Only this community's moderators" in ada.text
    mod.say("leaderboard disable")
    assert "The leaderboard is off here now (changed by Mod)" in mod.text
    ada.say("leaderboard")
    assert "moderators turned the leaderboard off" in ada.text
    other = member(engine, "bo", group="g2")
    other.say("leaderboard")
    assert "This week's leaderboard" in other.text
    mod.say("leaderboard enable")
    ada.say("leaderboard")
    assert "This week's leaderboard" in ada.text and "Nobody is on it yet" in ada.text


def test_in_a_direct_message_the_leaderboard_says_where_it_lives(engine: Engine) -> None:
    ada = Learner(engine)
    ada.say("leaderboard")
    assert "Leaderboards belong to a server or group" in ada.text and "not on them" in ada.text
    ada.say("leaderboard disable")
    assert "belongs to a server or group's moderators" in ada.text
