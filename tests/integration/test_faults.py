"""The tutor survives faults: processes killed mid-answer and mid-ingest, a database locked by other writers,
a full disk, and a damaged search index. Real SQLite, real Chroma, the real embedder and chat model."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.adapters.console import STATUS_MARK
from bot.app import build_engine
from bot.config import Settings
from bot.core.engine import Engine
from bot.core.lessons import Track
from bot.core.ports import StoreBusy, StoreFull
from bot.knowledge.index import LessonIndex
from bot.knowledge.ingest import ingest_knowledge
from bot.knowledge.published import PublishedTracks, PublishFailed
from bot.knowledge.reader import read_knowledge
from bot.knowledge.recovery import forget_store, open_index
from bot.store.database import Database
from bot.store.progress import SqlProgressStore
from tests.engine_driver import Learner
from tests.fakes import ScriptedModel
from tests.helpers import front_matter, write_lesson, write_track

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BUSY = StoreBusy().args[0]
FULL = StoreFull().args[0]

# Version 2 of lesson 2: one section reworded, one gone (its chunks must leave the index), three new.
BODY_V2 = """# Model distillation

## Teacher and student

A large teacher model writes soft labels. A small student model is trained on those labels instead of raw data.

## Why it is cheaper

The student has fewer layers, so each answer costs less compute and memory.

## Temperature

Dividing the teacher's logits by a temperature above one spreads its probabilities over more classes.

## Dark knowledge

The small probabilities a teacher gives wrong classes say which classes look alike.
"""


# ---------------------------------------------------------------- child processes


class Child:
    """A child process; its output is collected on a thread so a test can wait for a mark in it."""

    def __init__(self, arguments: list[str], env: dict[str, str], cwd: Path, stdin: bool = False) -> None:
        self.process = subprocess.Popen(arguments, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL)  # fmt: skip
        self.output = ""
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        descriptor = self.process.stdout.fileno()
        while chunk := os.read(descriptor, 4096):
            with self._changed:
                self.output += chunk.decode("utf-8", "replace")
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, seen: Callable[[str], bool], timeout: float = 180) -> None:
        """Wait until ``seen(output so far)``; fail if the process ends first or the time runs out."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not seen(self.output):
                if self.process.poll() is not None and not self._changed.wait(0.5) and not seen(self.output):
                    raise AssertionError(f"the child exited ({self.process.returncode}) first:\n{self.output[-3000:]}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"timed out waiting; output so far:\n{self.output[-3000:]}")
                self._changed.wait(0.5)

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((line + "\n").encode())
        self.process.stdin.flush()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        assert self.process.returncode == -signal.SIGKILL

    def finish(self, timeout: float = 120) -> int:
        self.process.wait(timeout=timeout)
        return self.process.returncode


def child_env(settings: Settings, **extra: str) -> dict[str, str]:
    """This process's environment without host settings, and the test's settings as TUTORBOT_ variables."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TUTORBOT_")}
    env.update(PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", COLUMNS="200", TUTORBOT_DATA_DIR=str(settings.data_dir),
               TUTORBOT_KNOWLEDGE_DIR=str(settings.knowledge_dir),
               TUTORBOT_MODEL__MODELS_DIR=str(settings.models_dir), **extra)  # fmt: skip
    return env


def kill_ingest_at(settings: Settings, stop: str) -> None:
    """Run ``tutorbot ingest`` in a child with small batches and SIGKILL it where ``stop`` says (fault_child)."""
    env = child_env(settings, TUTORBOT_RETRIEVAL__EMBED_BATCH_SIZE="2")
    child = Child([sys.executable, "-m", "tests.fault_child", "ingest", stop], env, settings.data_dir.parent)
    child.wait_for(lambda out: "STOPPED" in out)
    child.kill()


# ---------------------------------------------------------------- what consistent means


def published_copies(settings: Settings) -> dict[str, Track]:
    """The published tracks, after checking that every copy in the folder is whole JSON that loads."""
    files = sorted(p for p in settings.published_dir.glob("*.json") if not p.name.startswith(("_", ".")))
    for path in files:
        json.loads(path.read_text(encoding="utf-8"))  # a half-written copy fails here
    copies = {track_id: track for track_id, (_folder, track) in PublishedTracks(settings.published_dir).load().items()}
    assert sorted(copies) == [path.stem for path in files]
    return copies


@contextlib.contextmanager
def raw_index(settings: Settings) -> Iterator[LessonIndex]:
    """The index as it is on disk (nothing repaired), let go of afterwards so a child process may use the store."""
    index = LessonIndex.from_settings(settings)
    try:
        yield index
    finally:
        index.close()
        forget_store(settings)


def chunk_ids(settings: Settings) -> dict[str, set[str]]:
    """The ids of the chunks in the index, by track."""
    with raw_index(settings) as index:
        stored = index.collection.get(include=["metadatas"])
    found: dict[str, set[str]] = defaultdict(set)
    for chunk_id, meta in zip(stored["ids"], stored["metadatas"] or [], strict=True):
        found[meta["track"]].add(chunk_id)
    return dict(found)


def assert_index_holds_the_published_tracks(settings: Settings) -> dict[str, Track]:
    """Every published chunk is in the index and searchable, nothing else is, and no ingest is left half done."""
    copies = published_copies(settings)
    with raw_index(settings) as index:
        expected = {track_id: set(index.chunks_for(track)) for track_id, track in copies.items()}
        stored = index.collection.get(include=["embeddings"])
        if stored["ids"]:
            # Each chunk's own vector finds it (or a twin with the same text) at distance 0, and one search
            # reaches every chunk: the vectors are in the segment Chroma searches, not only listed in its file.
            own = index.collection.query(query_embeddings=stored["embeddings"], n_results=1, include=["distances"])
            assert max(distances[0] for distances in own["distances"]) < 1e-3
            every = index.collection.query(query_embeddings=stored["embeddings"][:1], n_results=len(stored["ids"]),
                                           include=[])  # fmt: skip
            assert len(every["ids"][0]) == len(stored["ids"])
    assert chunk_ids(settings) == {track_id: ids for track_id, ids in expected.items() if ids}
    assert not PublishedTracks(settings.published_dir).interrupted()
    return copies


def start_ingest(settings: Settings) -> bool:
    """The next start: what ``tutorbot ingest`` and the engine's start run (open the index, ingest every track)."""
    index = open_index(settings)
    try:
        return ingest_knowledge(settings, index)
    finally:
        index.close()
        forget_store(settings)


def demo_track(settings: Settings) -> Track:
    """The demo track as it is on disk now."""
    return next(r.track for r in read_knowledge(settings.knowledge_dir) if r.track and r.track.id == "demo")


def break_lesson_2(folder: Path) -> None:
    """An author's bad edit: lesson 2 loses its required fields and text."""
    write_lesson(folder, "02-lesson.md", {"id": "lesson-2", "title": "Broken"}, body="")


# ---------------------------------------------------------------- 1. killed mid-ingest, killed mid-answer


def test_a_first_ingest_killed_mid_embedding_publishes_nothing_and_a_restart_removes_its_part_then_completes_it(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    write_track(settings.knowledge_dir / "demo", "demo", lessons=3)
    kill_ingest_at(settings, "embed:2")
    assert published_copies(settings) == {}  # nothing half-written
    with raw_index(settings) as index:
        whole = len(index.chunks_for(demo_track(settings)))
    assert 0 < len(chunk_ids(settings)["demo"]) < whole  # the kill left part of the track in the index
    with caplog.at_level(logging.WARNING):
        open_index(settings).close()  # a start that only opens the index ('tutorbot ask', the engine)
    forget_store(settings)
    assert "first ingest of track demo was cut short" in caplog.text
    assert chunk_ids(settings) == {}  # nothing of a track that was never published
    assert start_ingest(settings)
    assert assert_index_holds_the_published_tracks(settings) == {"demo": demo_track(settings)}


def test_an_ingest_killed_at_any_point_keeps_the_published_version_and_the_next_start_repairs_the_index(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    folder = write_track(settings.knowledge_dir / "demo", "demo", lessons=3)
    assert start_ingest(settings)
    v1 = demo_track(settings)
    v1_chunks = chunk_ids(settings)["demo"]
    write_lesson(folder, "02-lesson.md", front_matter("lesson-2"), BODY_V2)
    v2 = demo_track(settings)

    # Killed mid-embedding of version 2, and the author breaks the lesson before the next start: version 1 it is.
    kill_ingest_at(settings, "embed:1")
    assert published_copies(settings) == {"demo": v1}
    assert chunk_ids(settings)["demo"] - v1_chunks  # chunks of the unpublished version 2 are in the index
    break_lesson_2(folder)
    with caplog.at_level(logging.WARNING):
        assert not start_ingest(settings)  # the broken track is skipped
    assert "ingest of track demo was cut short" in caplog.text
    assert assert_index_holds_the_published_tracks(settings) == {"demo": v1}

    # Version 2 fixed; killed after the index took it, before its copy was published. The next start only
    # opens the index (as 'tutorbot ask' and the engine do), which puts it back to the published version 1.
    write_lesson(folder, "02-lesson.md", front_matter("lesson-2"), BODY_V2)
    kill_ingest_at(settings, "publish")
    assert published_copies(settings) == {"demo": v1}
    index = open_index(settings)
    assert index.search("Why is the student cheaper?", k=4, track="demo")
    index.close()
    forget_store(settings)
    assert assert_index_holds_the_published_tracks(settings) == {"demo": v1}

    # Killed inside the write of version 2's copy: the whole temporary file is left beside version 1, which
    # still loads; the next ingest publishes version 2.
    kill_ingest_at(settings, "replace")
    assert list(settings.published_dir.glob(".demo.json.*.tmp"))
    assert published_copies(settings) == {"demo": v1}
    assert start_ingest(settings)
    assert assert_index_holds_the_published_tracks(settings) == {"demo": v2}


KILL_ATTEMPTS = 5


def test_killed_while_answering_a_question_the_tutor_restarts_where_it_was_with_nothing_to_repair(
    settings: Settings, small_chat_model_path: Path
) -> None:
    write_track(settings.knowledge_dir / "demo", "demo", lessons=2)
    # The small model on one thread, short prompts, and a judge that lets every cited unit through: the lesson's
    # words stream soon, and the model still has the explanation to write when the kill comes (with two threads
    # on a busy machine the answer could finish between the quote and the kill).
    env = child_env(settings, TUTORBOT_MODEL__CHAT="qwen2.5-coder-0.5b", TUTORBOT_MODEL__N_THREADS="1",
                    TUTORBOT_MODEL__CACHE_MB="0", TUTORBOT_ANSWERING__JUDGE_THRESHOLD="0",
                    TUTORBOT_ANSWERING__CONTEXT_TOKENS="200", TUTORBOT_ANSWERING__PAGE_TOKENS="200")  # fmt: skip
    command = [sys.executable, "-m", "bot.cli", "chat", "--name", "kim"]

    def statuses(output: str) -> list[str]:
        return [line.split(STATUS_MARK, 1)[1].strip() for line in output.splitlines() if STATUS_MARK in line]

    chat = Child(command, env, settings.data_dir.parent, stdin=True)
    for number, line in enumerate(["lesson lesson-1", "next"], start=2):
        chat.wait_for(lambda out, n=number - 1: len(statuses(out)) >= n)
        chat.send(line)
    chat.wait_for(lambda out: len(statuses(out)) >= 3)
    where = statuses(chat.output)[-1]
    for _attempt in range(KILL_ATTEMPTS):
        asked_at = len(chat.output)
        chat.send("What does the small student model learn to copy?")
        chat.wait_for(lambda out, at=asked_at: "“" in out[at:])  # the lesson's quoted words are streaming
        chat.kill()
        if STATUS_MARK not in chat.output[asked_at:]:
            break  # killed mid-answer: the turn never finished
        # On a busy machine the answer can finish between the quote and the kill: ask again in a new process.
        chat = Child(command, env, settings.data_dir.parent, stdin=True)
        chat.wait_for(lambda out: len(statuses(out)) >= 1)
    assert STATUS_MARK not in chat.output[asked_at:], f"the answer finished before the kill {KILL_ATTEMPTS} times"

    assert_index_holds_the_published_tracks(settings)
    database = settings.database_path
    with contextlib.closing(sqlite3.connect(database)) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    again = Child(command, env, settings.data_dir.parent, stdin=True)
    again.wait_for(lambda out: len(statuses(out)) >= 1)
    assert statuses(again.output)[0] == where
    again.send("quit")
    assert again.finish() == 0
    assert "cut short" not in again.output and "damaged" not in again.output  # nothing needed repair
    assert_index_holds_the_published_tracks(settings)


# ---------------------------------------------------------------- 4. a damaged or deleted index


def delete_folder(chroma: Path) -> None:
    shutil.rmtree(chroma)


def overwrite_sqlite_file(chroma: Path) -> None:
    (chroma / "chroma.sqlite3").write_bytes(os.urandom(64 * 1024))


def delete_segment_folder(chroma: Path) -> None:
    segments = [path for path in chroma.iterdir() if path.is_dir()]
    assert segments
    for path in segments:
        shutil.rmtree(path)


@pytest.mark.parametrize("damage", [delete_folder, overwrite_sqlite_file, delete_segment_folder])
def test_a_damaged_index_is_rebuilt_from_the_published_tracks_at_start(
    settings: Settings, caplog: pytest.LogCaptureFixture, damage: Callable[[Path], None]
) -> None:
    folder = write_track(settings.knowledge_dir / "demo", "demo", lessons=3)
    if damage is delete_segment_folder:
        # Chroma rebuilds a lost segment from its own log while the log still holds every vector; with the
        # default settings it trims the log after 1000 chunks. Make it write the segment and trim the log after
        # a few, so a small track shows what a lost segment does to a big one.
        from bot.knowledge.embedder import OfflineMiniLM
        from bot.knowledge.index import make_client
        from bot.models.catalog import embedder_dir

        make_client(settings).create_collection(
            "lessons", embedding_function=OfflineMiniLM(embedder_dir(settings.models_dir)),
            metadata={"hnsw:space": "cosine", "hnsw:sync_threshold": 4, "hnsw:batch_size": 2},
        )  # fmt: skip
        forget_store(settings)
    assert start_ingest(settings)
    break_lesson_2(folder)  # only the published copy can rebuild the track now
    damage(settings.chroma_dir)

    with caplog.at_level(logging.WARNING):
        engine = build_engine(settings, model=ScriptedModel())  # the start: the app opens the index
    assert "rebuilt them from its published copy" in caplog.text
    if damage is not delete_folder:
        assert "is damaged" in caplog.text  # and moved aside, not opened as if whole
    assert engine.answerer is not None
    index = engine.answerer.retriever
    assert isinstance(index, LessonIndex)
    hits = index.search("What does the student learn to copy?", k=1, track="demo", lesson="lesson-2")
    assert hits and hits[0].section == "teacher-and-student"
    index.close()
    forget_store(settings)
    assert assert_index_holds_the_published_tracks(settings)["demo"].lesson("lesson-2") is not None


# ---------------------------------------------------------------- 2. a database locked by other writers


def bundled_tracks() -> dict[str, Track]:
    return {r.track.id: r.track for r in read_knowledge(REPO / "knowledge") if r.track}


def said(learner: Learner, text: str) -> list[str]:
    """What the learner sees after typing ``text``."""
    return [reply.text for reply in learner.say(text) if not reply.partial]


def test_processes_and_threads_writing_at_once_lose_no_turn_while_another_holds_long_write_transactions(
    tmp_path: Path,
) -> None:
    database = tmp_path / "tutorbot.sqlite3"
    SqlProgressStore(database).close()  # the schema, before the writers race
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    moves = 30

    def child(*arguments: str) -> Child:
        return Child([sys.executable, "-m", "tests.fault_child", *arguments], env, tmp_path)

    processes = [child("turns", str(database), f"process-{n}", str(moves)) for n in range(3)]
    holder = child("hold", str(database), "1.0", "5")  # five write transactions of a second each
    holder.wait_for(lambda out: "HOLDING" in out)
    seen: dict[str, list[str]] = {}

    def thread_learner(name: str) -> None:
        learner = Learner(Engine(bundled_tracks(), SqlProgressStore(database)), name, f"dm-{name}")
        seen[name] = said(learner, "lesson distillation")
        for n in range(moves):
            seen[name] += said(learner, "next" if n % 2 == 0 else "back")

    threads = [threading.Thread(target=thread_learner, args=(f"thread-{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for process in [*processes, holder]:
        assert process.finish() == 0, process.output
        assert "DONE" in process.output and "REPLY" not in process.output and "Error" not in process.output
    assert not [text for texts in seen.values() for text in texts if "try that again" in text]

    store = SqlProgressStore(database)
    names = [f"process-{n}" for n in range(3)] + [f"thread-{n}" for n in range(2)]
    for name in names:  # the lesson opened, then every move: none lost
        assert store.position(f"test:{name}").version == 1 + moves, name
    assert store.active_days("holder")  # the holder's own writes landed too


def test_a_write_blocked_past_the_busy_timeout_asks_the_learner_to_try_again_and_loses_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tutorbot.sqlite3"
    engine = Engine(bundled_tracks(), SqlProgressStore(Database(path, busy_timeout_ms=200)))
    kim = Learner(engine, "kim")
    said(kim, "lesson distillation")
    said(kim, "next")
    before = engine.status("test:kim")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's write transaction that does not end in time
    with caplog.at_level(logging.WARNING):
        assert said(kim, "next") == [BUSY]
    assert "stayed locked by another writer" in caplog.text
    assert engine.status("test:kim") == before  # the turn was not taken; reading still works meanwhile
    other.execute("ROLLBACK")
    other.close()
    said(kim, "next")  # trying again works
    after = engine.status("test:kim")
    assert after != before
    assert SqlProgressStore(path).position("test:kim") == engine.store.position("test:kim")


# ---------------------------------------------------------------- 3. a data dir that runs out of space


def new_learners_until_full(engine: Engine, limit: int) -> tuple[list[str], Learner]:
    """Learners arrive and open a lesson until one's turn cannot be saved; the ones saved, and that one."""
    saved: list[str] = []
    for n in range(limit):
        learner = Learner(engine, f"learner-{n}")
        texts = said(learner, "lesson distillation")
        if texts == [FULL]:
            return saved, learner
        assert FULL not in texts
        saved.append(f"test:learner-{n}")
    raise AssertionError(f"{limit} learners were saved on a full disk")


def assert_full_disk_is_explained_and_nothing_saved_is_lost(engine: Engine, path: Path, saved: list[str],
                                                            refused: Learner, caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    assert "is full" in caplog.text and "Free space there" in caplog.text  # the host's line says what to do
    assert engine.store.position(f"test:{refused.user_id}").step == "home"  # not moved: nothing was shown
    fresh = SqlProgressStore(path)  # what a restart reads
    assert saved and all(fresh.position(learner).step == "premise" for learner in saved)
    fresh.close()


def test_a_full_database_tells_the_learner_and_the_host_and_keeps_what_was_saved(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tutorbot.sqlite3"
    database = Database(path)
    engine = Engine(bundled_tracks(), SqlProgressStore(database))
    said(Learner(engine, "learner-first"), "lesson distillation")
    pages = database.fetch_one("PRAGMA page_count")
    assert pages is not None
    # SQLite's own "database or disk is full", as on a full disk: the file may not grow past its pages now.
    database._connection.execute(f"PRAGMA max_page_count = {pages[0] + 1}")
    with caplog.at_level(logging.WARNING):
        saved, refused = new_learners_until_full(engine, limit=2000)
    assert_full_disk_is_explained_and_nothing_saved_is_lost(engine, path, ["test:learner-first", *saved], refused,
                                                            caplog)  # fmt: skip
    database._connection.execute("PRAGMA max_page_count = 1073741823")  # space again
    assert said(refused, "lesson distillation") != [FULL]
    assert SqlProgressStore(path).position(f"test:{refused.user_id}").step == "premise"


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs: a disk that really fills up. Mounting one needs root, so elsewhere this is skipped; the same
    paths are covered without it by SQLite's own full-database error (``max_page_count``, above) and by
    ``tests/unit/test_published.py`` (ENOSPC while publishing)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (the full-disk paths are also tested without it)")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if mounted.returncode != 0:
        why = mounted.stderr.decode().strip()
        pytest.skip(f"cannot mount a tmpfs here ({why}); the full-disk paths are also tested without it")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the disk is full; return it."""
    filler = disk / "filler"
    # unbuffered: a write that failed leaves nothing behind for close() to flush (and fail on) again
    with filler.open("wb", buffering=0) as file:
        try:
            while True:
                file.write(b"\0" * 65536)
        except OSError as error:
            assert error.errno == errno.ENOSPC
    return filler


def test_a_data_dir_that_runs_out_of_space_keeps_what_was_saved_and_says_what_to_do(
    tiny_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(_env_file=None, data_dir=tiny_disk / "data", knowledge_dir=REPO / "knowledge")
    engine = build_engine(settings, answers=False)
    published = PublishedTracks(settings.published_dir)
    track = bundled_tracks()["ai-foundations"]
    published.save(track, REPO / "knowledge" / "ai-foundations")
    said(Learner(engine, "learner-first"), "lesson distillation")
    filler = fill(tiny_disk)

    with caplog.at_level(logging.WARNING):
        saved, refused = new_learners_until_full(engine, limit=5000)
        with pytest.raises(PublishFailed, match="disk is full"):
            published.save(track, REPO / "knowledge" / "ai-foundations")
    assert_full_disk_is_explained_and_nothing_saved_is_lost(engine, settings.database_path,
                                                            ["test:learner-first", *saved], refused, caplog)  # fmt: skip
    assert published_copies(settings) == {"ai-foundations": track}  # the copy before is whole
    assert not list(settings.published_dir.glob(".*.tmp"))

    filler.unlink()  # the host frees space: the learner's next try is saved
    assert said(refused, "lesson distillation") != [FULL]
    assert SqlProgressStore(settings.database_path).position(f"test:{refused.user_id}").step == "premise"
