"""The end of a lesson: related lessons as buttons (where they are offered) and a summary of what comes next."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.engine import Engine
from bot.knowledge.reader import read_knowledge
from bot.store.progress import SqlProgressStore
from tests.engine_driver import Learner
from tests.helpers import front_matter, write_lesson, write_track


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    knowledge = tmp_path / "knowledge"
    write_track(knowledge / "demo", lessons=2)
    write_track(knowledge / "extra", track_id="extra", lessons=1)
    write_lesson(knowledge / "demo", "01-lesson.md",
                 front_matter("lesson-1", quiz=[], related=["extra/lesson-1", "lesson-2"]))  # fmt: skip
    results = read_knowledge(knowledge)
    assert all(result.ok for result in results)
    return Engine({r.track.id: r.track for r in results if r.track}, SqlProgressStore(tmp_path / "p.sqlite3"))


def walk_to_the_end(learner: Learner) -> None:
    learner.say("lesson lesson-1")
    learner.press("Start reading")
    while "Wrapping up" not in learner.text:
        learner.press("Next")


def test_the_wrap_up_and_the_summary_offer_the_related_lessons_in_the_authors_order(engine: Engine) -> None:
    ada = Learner(engine)
    walk_to_the_end(ada)
    assert "**Related lessons**\n• Model distillation (Demo)\n• Model distillation" in ada.text
    ada.press("Finish the lesson")
    assert "Lesson finished" in ada.text and "**Related lessons**" in ada.text
    assert "**Next up:** “Model distillation”" in ada.text
    labels = [b.label for reply in ada.last for row in reply.buttons for b in row]
    assert labels.count("↪ Model distillation") == 2 and "Keep going ▸" in labels
    ada.act(ada.button("↪ Model distillation"))  # the first: the other track's lesson
    assert engine.store.position("test:ada").track == "extra"
    assert ada.last[-1].buttons[0][0].label == "Start reading ▸"


def test_a_related_lesson_of_a_track_turned_off_here_is_not_offered(engine: Engine) -> None:
    mod = Learner(engine, user_id="mod", conversation="guild", is_direct=False, is_moderator=True)
    mod.say("disable extra")
    ada = Learner(engine, conversation="guild", is_direct=False)
    walk_to_the_end(ada)
    assert "**Related lessons**\n• Model distillation" in ada.text and "(Demo)" not in ada.text
    labels = [b.label for reply in ada.last for row in reply.buttons for b in row]
    assert labels.count("↪ Model distillation") == 1
    ada.act(ada.button("↪ Model distillation"))
    assert engine.store.position("test:ada").lesson == "lesson-2"
