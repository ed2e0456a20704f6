"""One learner's slow turn never holds up another's: the store and the embedder are called off the event loop."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from bot.core.answering import Answerer
from bot.core.engine import Engine
from bot.core.ports import Passage
from bot.core.prompts import PromptLibrary
from bot.knowledge.reader import read_knowledge
from bot.store.progress import SqlProgressStore
from tests.engine_driver import Learner
from tests.fakes import FixedRetriever, ScriptedModel

REPO = Path(__file__).resolve().parents[2]
TRACKS = {r.track.id: r.track for r in read_knowledge(REPO / "knowledge") if r.track}
HELD_AT_MOST = 10.0  # a slow call gives up after this, so a blocked event loop fails the test instead of hanging it


class SlowForOneLearner(SqlProgressStore):
    """A real store whose reads for one learner wait (a database lock, a slow disk) until the test lets go."""

    def __init__(self, path: Path, slow: str):
        super().__init__(path)
        self.slow, self.entered, self.release = slow, threading.Event(), threading.Event()

    def position(self, learner: str):
        if learner == self.slow and not self.release.is_set():
            self.entered.set()
            self.release.wait(HELD_AT_MOST)
        return super().position(learner)


class SlowEmbedding(FixedRetriever):
    """A retriever whose embedding of a question takes as long as the test wants."""

    def __init__(self, passages: list[Passage]):
        super().__init__(passages)
        self.entered, self.release = threading.Event(), threading.Event()

    def search(self, question, k, track=None, lesson=None):
        self.entered.set()
        self.release.wait(HELD_AT_MOST)
        return super().search(question, k, track, lesson)


async def _until(event: threading.Event) -> None:
    await asyncio.to_thread(event.wait, HELD_AT_MOST)


def test_a_slow_database_call_for_one_learner_does_not_delay_anothers_navigation(tmp_path: Path) -> None:
    store = SlowForOneLearner(tmp_path / "progress.sqlite3", slow="test:slow")
    engine = Engine(TRACKS, store)
    slow, fast = Learner(engine, user_id="slow"), Learner(engine, user_id="fast")

    async def scenario() -> None:
        waiting = asyncio.create_task(slow.say_async("progress"))
        await _until(store.entered)
        replies = await fast.say_async("lesson distillation")  # opens a lesson: reads and writes the store
        assert "Model distillation" in replies[0].text
        assert not waiting.done()  # the slow learner's turn is still waiting for its database call
        store.release.set()
        await waiting

    asyncio.run(scenario())
    assert store.position("test:fast").lesson == "distillation"


def test_a_long_embedding_for_one_question_does_not_delay_another_learners_turn(tmp_path: Path) -> None:
    passage = Passage("ai-foundations", "distillation", "teacher-and-student", "Teacher and student",
                      "Model distillation", "The student learns from the teacher.", 0.7, 0.7)  # fmt: skip
    retriever = SlowEmbedding([passage])
    model = ScriptedModel(replies=['{"units": ["1"]}', "The student copies the teacher."], verdicts=[0.9])
    answerer = Answerer(retriever, model, PromptLibrary(REPO / "prompts"))
    engine = Engine(TRACKS, SqlProgressStore(tmp_path / "progress.sqlite3"), answerer)
    asker, reader = Learner(engine, user_id="asker"), Learner(engine, user_id="reader")

    async def scenario() -> None:
        asking = asyncio.create_task(asker.say_async("why does the student learn from the teacher?"))
        await _until(retriever.entered)
        replies = await reader.say_async("lesson attention")
        assert "Attention as lookup" in replies[0].text
        assert not asking.done()
        retriever.release.set()
        await asking

    asyncio.run(scenario())
