"""One learner, one turn at a time, across processes: two engines (as two bot processes would have) share one
database file, and the position's version is a compare-and-set, so no move is lost or applied twice."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.core.engine import Engine
from bot.core.messages import Incoming, Reply
from bot.core.ports import Position, TurnConflict
from bot.knowledge.reader import read_track
from bot.store.progress import SqlProgressStore
from bot.store.sql import SqlDatabase
from tests.databases import DIALECTS, open_database
from tests.engine_driver import Learner
from tests.helpers import write_track


@pytest.fixture(params=DIALECTS)
def engines(request: pytest.FixtureRequest, tmp_path: Path) -> list[Engine]:
    track = read_track(write_track(tmp_path / "track", "demo", lessons=1)).track
    assert track is not None
    # one connection (or pool) each to the same database, like two processes
    databases = [open_database(request, tmp_path, request.param) for _ in range(2)]
    yield [Engine({track.id: track}, SqlProgressStore(db)) for db in databases]
    for db in databases:
        db.close()


def test_a_save_over_a_position_that_moved_on_stores_nothing(sql_database: SqlDatabase) -> None:
    store = SqlProgressStore(sql_database)
    store.save("ada", Position(step="premise", version=1), at=1.0, expected=0)
    with pytest.raises(TurnConflict):
        store.save("ada", Position(step="section", version=1), at=2.0, expected=0)  # read before the first save
    assert store.position("ada") == Position(step="premise", version=1)
    store.save("ada", Position(step="section", version=2), at=3.0, expected=1)
    assert store.position("ada").step == "section"
    store.close()


class BothReadFirst(SqlProgressStore):
    """A store whose next position read waits until the other process has read too (the race, made certain)."""

    barrier: threading.Barrier | None = None

    def position(self, learner: str) -> Position:
        found = super().position(learner)
        barrier, self.barrier = self.barrier, None
        if barrier is not None:
            barrier.wait(timeout=10)
        return found


def test_a_button_pressed_on_two_processes_at_once_is_applied_once(engines: list[Engine]) -> None:
    for engine in engines:
        engine.store.__class__ = BothReadFirst
    first, second = (Learner(engine, "ada", "dm-ada") for engine in engines)
    first.say("lesson lesson-1")
    first.say("quiz")
    answer = first.button("B")
    barrier = threading.Barrier(2)
    for engine in engines:
        engine.store.barrier = barrier  # type: ignore[attr-defined]
    texts: list[str] = []

    def press(learner: Learner) -> None:
        texts.append("\n".join(reply.text for reply in learner.act(answer)))

    threads = [threading.Thread(target=press, args=(learner,)) for learner in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store = engines[0].store
    position = store.position("test:ada")
    assert len(store.attempts("test:ada", "demo", "lesson-1", position.quiz_run)) == 1
    assert sum("from an earlier message" in text for text in texts) == 1


class CountingSaves(SqlProgressStore):
    """A store that counts the saves that went through (a save that lost the race raises and is not counted)."""

    saved = 0
    lock = threading.Lock()

    def save(self, *args: Any, **kwargs: Any) -> None:
        super().save(*args, **kwargs)
        with CountingSaves.lock:
            CountingSaves.saved += 1


def test_moves_from_two_processes_are_all_kept(engines: list[Engine]) -> None:
    learners = [Learner(engine, "ada", "dm-ada") for engine in engines]
    learners[0].say("lesson lesson-1")
    start = engines[0].store.position("test:ada").version
    for engine in engines:
        engine.store.__class__ = CountingSaves
    CountingSaves.saved = 0

    def go(learner: Learner) -> None:
        for word in ["next", "back"] * 10:
            asyncio.run(learner.say_async(word))

    threads = [threading.Thread(target=go, args=(learner,)) for learner in learners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # every save that went through bumped the version once: none was lost under another, none applied twice
    assert CountingSaves.saved > 0
    assert engines[0].store.position("test:ada").version == start + CountingSaves.saved


def delivered_again(learner: Learner, text: str, delivery: str) -> Incoming:
    """The turn ``text`` as a platform update with an id, which a webhook may deliver more than once."""
    return replace(learner.incoming(text), delivery=delivery)


def test_an_update_delivered_twice_moves_the_learner_once(engines: list[Engine]) -> None:
    ada = Learner(engines[0], "ada", "dm-ada")
    ada.say("lesson lesson-1")
    before = engines[0].store.position("test:ada")
    update = delivered_again(ada, "next", "test:41")
    assert ada.run(update)  # the first delivery is a turn with replies
    assert ada.run(update) == []  # the second is recognised and skipped: no reply, no move
    assert Learner(engines[1], "ada", "dm-ada").run(update) == []  # and so on another process
    assert engines[0].store.position("test:ada").version == before.version + 1


def test_an_update_that_stores_nothing_is_answered_once(engines: list[Engine]) -> None:
    ada = Learner(engines[0], "ada", "dm-ada")
    update = delivered_again(ada, "help", "test:7")
    assert ada.run(update)
    assert Learner(engines[1], "ada", "dm-ada").run(update) == []


def test_one_update_handled_by_two_processes_at_once_is_applied_once(engines: list[Engine]) -> None:
    for engine in engines:
        engine.store.__class__ = BothReadFirst
    learners = [Learner(engine, "ada", "dm-ada") for engine in engines]
    learners[0].say("lesson lesson-1")
    before = engines[0].store.position("test:ada")
    barrier = threading.Barrier(2)
    for engine in engines:
        engine.store.barrier = barrier  # type: ignore[attr-defined]
    replies: list[list[Reply]] = []
    threads = [threading.Thread(target=lambda lr=lr: replies.append(lr.run(delivered_again(lr, "next", "test:9"))))
               for lr in learners]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(len(r) > 0 for r in replies) == [False, True]  # one process answered it, the other skipped it
    assert engines[0].store.position("test:ada").version == before.version + 1
