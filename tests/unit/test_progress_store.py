"""The progress store on SQLite and PostgreSQL, and the SQLite file under it: round trips, isolation, atomicity, migrations, durability."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

import bot.store.progress as progress_module
from bot.core.ports import (
    LearnerSettings,
    LessonResult,
    Position,
    QuestionRecord,
    QuizAttempt,
    ReviewCard,
    StoreBusy,
    TrackChange,  # fmt: skip
)
from bot.store.database import Database, DatabaseTooNew
from bot.store.migrations import LATEST_VERSION
from bot.store.progress import SqlProgressStore
from bot.store.question_log import SqlQuestionLog
from bot.store.sql import SqlDatabase

REPO = Path(__file__).resolve().parents[2]
MARCH_1 = 1709251200.0  # 2024-03-01 00:00:00 UTC
DAY = 86400.0

# The questions table exactly as the first release (no schema version) created it.
FIRST_RELEASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS questions (
    id INTEGER PRIMARY KEY,
    asked_at REAL NOT NULL,
    learner TEXT,
    track TEXT,
    lesson TEXT,
    question TEXT NOT NULL,
    refused INTEGER NOT NULL,
    reason TEXT NOT NULL,
    sections TEXT NOT NULL,
    timings TEXT NOT NULL
)
"""


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "tutorbot.sqlite3"


@pytest.fixture
def store(sql_database: SqlDatabase) -> SqlProgressStore:
    """The store on a fresh database, SQLite then PostgreSQL."""
    return SqlProgressStore(sql_database)


def attempt(question: int, chosen: int = 0, correct: bool = True, run: int = 1, lesson: str = "intro") -> QuizAttempt:
    return QuizAttempt("python", lesson, run, question, chosen, correct, MARCH_1 + question)


def card(question: int, due: float, state: str = '{"step": 1}', lesson: str = "intro") -> ReviewCard:
    return ReviewCard("python", lesson, question, state, due)


def query(path: Path, sql: str) -> list[tuple]:
    """Rows of a query on a plain connection of our own, closed afterwards."""
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute(sql).fetchall()


def user_version(path: Path) -> int:
    return query(path, "PRAGMA user_version")[0][0]


# ---------------------------------------------------------------- the store


def test_a_new_learner_is_at_home(store: SqlProgressStore) -> None:
    assert store.position("nobody") == Position()
    assert store.attempts("nobody", "python", "intro", 1) == []
    assert store.results("nobody") == [] and store.cards("nobody") == [] and store.active_days("nobody") == []


def test_position_round_trips_and_survives_reopening(db_path: Path) -> None:
    position = Position(track="python", lesson="intro", step="quiz", section=2, question=1, quiz_run=3, pending="reset",
                        version=7)  # fmt: skip
    store = SqlProgressStore(db_path)
    store.save("ada", Position(track="python", version=1), at=MARCH_1)
    store.save("ada", position, at=MARCH_1 + 1)
    assert store.position("ada") == position
    store.close()

    reopened = SqlProgressStore(db_path)
    assert reopened.position("ada") == position
    reopened.close()


def test_a_stored_position_with_unknown_or_missing_fields_loads(store: SqlProgressStore,
                                                                 sql_database: SqlDatabase) -> None:  # fmt: skip
    with sql_database.transaction() as connection:  # as a newer release might write it
        connection.execute(
            "INSERT INTO learners (learner, position, updated_at) VALUES (?, ?, ?)",
            ("ada", '{"track": "python", "step": "premise", "mood": "happy", "version": 3}', MARCH_1),
        )
    assert store.position("ada") == Position(track="python", step="premise", version=3)


def test_concurrent_saves_from_many_threads_all_land(store: SqlProgressStore) -> None:
    def play(learner: str) -> None:
        for version in range(1, 51):
            store.save(learner, Position(version=version), at=MARCH_1 + version, attempt=attempt(version))
            assert store.position(learner) == Position(version=version)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(play, ["ada", "bob", "cy", "dee"]))
    for learner in ("ada", "bob", "cy", "dee"):
        assert store.position(learner) == Position(version=50)
        assert len(store.attempts(learner, "python", "intro", 1)) == 50


def test_save_with_attempt_result_and_card(store: SqlProgressStore) -> None:
    store.save("ada", Position(step="quiz", quiz_run=1, question=1), at=MARCH_1, attempt=attempt(0, chosen=2))
    store.save("ada", Position(step="quiz", quiz_run=1, question=2), at=MARCH_1, attempt=attempt(1, correct=False),
               card=card(1, due=MARCH_1 + 3 * DAY))  # fmt: skip
    store.save("ada", Position(step="quiz", quiz_run=2), at=MARCH_1, attempt=attempt(0, chosen=1, run=2))
    store.save("ada", Position(step="quiz", quiz_run=1), at=MARCH_1, attempt=attempt(0, lesson="loops"))
    store.save("ada", Position(step="result"), at=MARCH_1, result=LessonResult("python", "intro", 1, 2, MARCH_1 + 10),
               card=card(0, due=MARCH_1 + DAY, lesson="loops"))  # fmt: skip

    assert store.attempts("ada", "python", "intro", 1) == [attempt(0, chosen=2), attempt(1, correct=False)]
    assert store.attempts("ada", "python", "intro", 2) == [attempt(0, chosen=1, run=2)]
    assert store.attempts("ada", "python", "loops", 1) == [attempt(0, lesson="loops")]
    assert store.results("ada") == [LessonResult("python", "intro", 1, 2, MARCH_1 + 10)]
    assert store.cards("ada") == [card(0, due=MARCH_1 + DAY, lesson="loops"), card(1, due=MARCH_1 + 3 * DAY)]
    assert store.position("ada") == Position(step="result")


def test_results_oldest_first_and_a_lesson_finished_twice_appears_twice(store: SqlProgressStore) -> None:
    second = LessonResult("python", "intro", 2, 2, MARCH_1 + DAY)
    first = LessonResult("python", "intro", 1, 2, MARCH_1)
    other = LessonResult("python", "loops", 0, 0, MARCH_1 + 2 * DAY)
    for result in (second, other, first):
        store.save("ada", Position(), at=MARCH_1, result=result)
    assert store.results("ada") == [first, second, other]


def test_saving_a_card_again_replaces_it(store: SqlProgressStore) -> None:
    store.save("ada", Position(), at=MARCH_1, card=card(0, due=MARCH_1 + DAY, state='{"step": 1}'))
    store.save("ada", Position(), at=MARCH_1, card=card(1, due=MARCH_1 + 2 * DAY))
    store.save("ada", Position(), at=MARCH_1, card=card(0, due=MARCH_1 + 5 * DAY, state='{"step": 2}'))
    assert store.cards("ada") == [card(1, due=MARCH_1 + 2 * DAY), card(0, due=MARCH_1 + 5 * DAY, state='{"step": 2}')]


def test_active_days_are_utc_days_newest_first_once_each(store: SqlProgressStore) -> None:
    for at in (MARCH_1 - 1, MARCH_1, MARCH_1 + 3600, MARCH_1 + DAY - 1, MARCH_1 + 2 * DAY + 5, MARCH_1 + 10):
        store.save("ada", Position(), at=at)
    assert store.active_days("ada") == ["2024-03-03", "2024-03-01", "2024-02-29"]


def test_reset_forgets_only_that_learner(store: SqlProgressStore) -> None:
    for learner in ("ada", "bob"):
        store.save(learner, Position(track="python", step="quiz", version=3), at=MARCH_1, attempt=attempt(0),
                   result=LessonResult("python", "intro", 1, 1, MARCH_1), card=card(0, due=MARCH_1 + DAY))  # fmt: skip
    store.set_track_enabled("guild", "rust", False, by="mod", at=MARCH_1)

    store.reset("ada")

    assert store.position("ada") == Position()
    assert store.attempts("ada", "python", "intro", 1) == []
    assert store.results("ada") == [] and store.cards("ada") == [] and store.active_days("ada") == []
    assert store.position("bob") == Position(track="python", step="quiz", version=3)
    assert store.attempts("bob", "python", "intro", 1) == [attempt(0)]
    assert store.results("bob") == [LessonResult("python", "intro", 1, 1, MARCH_1)]
    assert store.cards("bob") == [card(0, due=MARCH_1 + DAY)] and store.active_days("bob") == ["2024-03-01"]
    assert store.disabled_tracks("guild") == {"rust"}
    assert len(store.track_changes("guild")) == 1


def test_learners_never_see_each_others_rows(store: SqlProgressStore) -> None:
    store.save("ada", Position(lesson="intro", version=1), at=MARCH_1, attempt=attempt(0, chosen=1),
               result=LessonResult("python", "intro", 1, 1, MARCH_1), card=card(0, due=MARCH_1))  # fmt: skip
    store.save("bob", Position(lesson="loops", version=9), at=MARCH_1 + DAY, attempt=attempt(0, chosen=2),
               card=card(0, due=MARCH_1 + DAY, state='{"bob": true}'))  # fmt: skip

    assert store.position("ada") == Position(lesson="intro", version=1)
    assert store.position("bob") == Position(lesson="loops", version=9)
    assert store.attempts("ada", "python", "intro", 1) == [attempt(0, chosen=1)]
    assert store.attempts("bob", "python", "intro", 1) == [attempt(0, chosen=2)]
    assert store.results("bob") == []
    assert store.cards("ada") == [card(0, due=MARCH_1)]
    assert store.cards("bob") == [card(0, due=MARCH_1 + DAY, state='{"bob": true}')]
    assert store.active_days("ada") == ["2024-03-01"] and store.active_days("bob") == ["2024-03-02"]


def test_community_tracks_can_be_disabled_and_enabled_with_an_audit_trail(store: SqlProgressStore) -> None:
    assert store.disabled_tracks("guild") == set() and store.track_changes("guild") == []

    store.set_track_enabled("guild", "rust", False, by="mod-a", at=MARCH_1)
    store.set_track_enabled("guild", "go", False, by="mod-b", at=MARCH_1 + 1)
    store.set_track_enabled("other", "python", False, by="mod-c", at=MARCH_1 + 2)
    assert store.disabled_tracks("guild") == {"rust", "go"}
    assert store.disabled_tracks("other") == {"python"}

    store.set_track_enabled("guild", "rust", True, by="mod-b", at=MARCH_1 + 3)
    assert store.disabled_tracks("guild") == {"go"}
    assert store.track_changes("guild") == [
        TrackChange("guild", "rust", False, "mod-a", MARCH_1),
        TrackChange("guild", "go", False, "mod-b", MARCH_1 + 1),
        TrackChange("guild", "rust", True, "mod-b", MARCH_1 + 3),
    ]
    assert store.track_changes("other") == [TrackChange("other", "python", False, "mod-c", MARCH_1 + 2)]


def test_a_save_that_fails_midway_stores_nothing(store: SqlProgressStore, monkeypatch: pytest.MonkeyPatch) -> None:
    before = Position(track="python", lesson="intro", step="quiz", version=4)
    store.save("ada", before, at=MARCH_1, attempt=attempt(0), card=card(0, due=MARCH_1 + DAY))

    def fail(at: float) -> str:  # runs after the position, attempt, result and card are written
        raise RuntimeError("boom")

    monkeypatch.setattr(progress_module, "utc_day", fail)
    with pytest.raises(RuntimeError, match="boom"):
        store.save("ada", Position(step="result", version=5), at=MARCH_1 + DAY, attempt=attempt(1),
                   result=LessonResult("python", "intro", 2, 2, MARCH_1 + DAY),
                   card=card(0, due=MARCH_1 + 9 * DAY, state="{}"))  # fmt: skip
    monkeypatch.undo()

    assert store.position("ada") == before
    assert store.attempts("ada", "python", "intro", 1) == [attempt(0)]
    assert store.results("ada") == [] and store.cards("ada") == [card(0, due=MARCH_1 + DAY)]
    assert store.active_days("ada") == ["2024-03-01"]
    store.save("ada", Position(version=6), at=MARCH_1)  # the store is still usable
    assert store.position("ada") == Position(version=6)


def test_a_save_violating_a_constraint_stores_nothing(store: SqlProgressStore) -> None:
    before = Position(track="python", version=1)
    store.save("ada", before, at=MARCH_1)
    broken = QuizAttempt(None, "intro", 1, 0, 0, True, MARCH_1)  # type: ignore[arg-type]
    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):
        store.save("ada", Position(track="python", version=2), at=MARCH_1 + DAY, attempt=broken)
    assert store.position("ada") == before
    assert store.active_days("ada") == ["2024-03-01"]


def test_the_question_log_and_the_progress_store_share_one_database(sql_database: SqlDatabase) -> None:
    database = sql_database
    log, store = SqlQuestionLog(database), SqlProgressStore(database)
    question = QuestionRecord("What is a list", "python", "intro", False, "answered", ("lists",), "ada", {"total": 1.5})
    log.record(question)
    store.save("ada", Position(version=1), at=MARCH_1)
    log.close()
    store.close()  # neither closes a database it was given
    assert log.recent() == [question]
    assert store.position("ada") == Position(version=1)


def test_a_locked_database_raises_store_busy_and_the_question_log_leaves_the_entry_out(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = Database(db_path, busy_timeout_ms=50)
    store, log = SqlProgressStore(database), SqlQuestionLog(database)
    store.save("ada", Position(version=1), at=MARCH_1)
    with closing(sqlite3.connect(db_path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")  # another process's write transaction
        with pytest.raises(StoreBusy):
            store.save("ada", Position(version=2), at=MARCH_1)
        log.record(QuestionRecord("What is a list", "python", "intro", False, "answered"))  # no exception
        assert "left out of the question log" in caplog.text
        assert store.position("ada") == Position(version=1)  # reading goes on meanwhile
        other.execute("ROLLBACK")
    store.save("ada", Position(version=2), at=MARCH_1)
    assert store.position("ada") == Position(version=2)
    assert log.recent() == []
    database.close()


def test_an_sql_mistake_is_raised_as_it_is_not_as_a_passing_condition(store: SqlProgressStore) -> None:
    with pytest.raises((sqlite3.OperationalError, psycopg.errors.UndefinedTable), match="no such table|does not exist"):
        store._db.fetch_all("SELECT * FROM no_such_table")


# ---------------------------------------------------------------- migrations


def test_a_new_database_ends_at_the_latest_version(db_path: Path) -> None:
    SqlProgressStore(db_path).close()
    assert user_version(db_path) == LATEST_VERSION == 8
    assert query(db_path, "PRAGMA journal_mode") == [("wal",)]


def test_a_database_of_the_first_release_upgrades_and_keeps_its_questions(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    with closing(sqlite3.connect(db_path, isolation_level=None)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(FIRST_RELEASE_SCHEMA)
        connection.execute(
            "INSERT INTO questions (asked_at, learner, track, lesson, question, refused, reason, sections, timings)"
            " VALUES (1.0, 'ada', 'python', 'intro', 'Why?', 1, 'off topic', '[]', '{}')"
        )
    assert user_version(db_path) == 0

    log = SqlQuestionLog(db_path)
    assert log.recent() == [QuestionRecord("Why?", "python", "intro", True, "off topic", (), "ada", {})]
    log.close()
    assert user_version(db_path) == LATEST_VERSION

    store = SqlProgressStore(db_path)
    store.save("ada", Position(version=1), at=MARCH_1)
    assert store.position("ada") == Position(version=1)
    store.close()


def test_reopening_is_idempotent(db_path: Path) -> None:
    store = SqlProgressStore(db_path)
    store.save("ada", Position(version=1), at=MARCH_1)
    store.close()
    schema = query(db_path, "SELECT type, name, sql FROM sqlite_master ORDER BY name")

    for _ in range(2):
        Database(db_path).close()

    assert user_version(db_path) == LATEST_VERSION
    assert query(db_path, "SELECT type, name, sql FROM sqlite_master ORDER BY name") == schema
    reopened = SqlProgressStore(db_path)
    assert reopened.position("ada") == Position(version=1)
    reopened.close()


def test_a_database_from_a_newer_release_is_refused_and_left_untouched(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    with closing(sqlite3.connect(db_path, isolation_level=None)) as connection:
        connection.execute("CREATE TABLE future (x)")
        connection.execute(f"PRAGMA user_version = {LATEST_VERSION + 5}")
    original = db_path.read_bytes()

    with pytest.raises(DatabaseTooNew) as refused:
        SqlProgressStore(db_path)
    message = str(refused.value)
    assert str(LATEST_VERSION + 5) in message and str(LATEST_VERSION) in message and "upgrade tutorbot" in message
    with pytest.raises(DatabaseTooNew):
        SqlQuestionLog(db_path)

    assert db_path.read_bytes() == original
    assert user_version(db_path) == LATEST_VERSION + 5


def test_a_failing_migration_leaves_the_database_at_the_previous_version(db_path: Path) -> None:
    migrations = ["CREATE TABLE first (x);", "CREATE TABLE second (x); CREATE TABLE first (x);"]
    with pytest.raises(sqlite3.OperationalError):
        Database(db_path, migrations)
    assert user_version(db_path) == 1
    assert query(db_path, "SELECT name FROM sqlite_master WHERE type = 'table'") == [("first",)]


# ---------------------------------------------------------------- durability


def test_a_saved_turn_survives_the_process_being_killed(db_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from bot.core.ports import Position
        from bot.store.progress import SqlProgressStore

        store = SqlProgressStore(Path({str(db_path)!r}))
        store.save("ada", Position(track="python", lesson="intro", step="section", section=2, version=5), at=1.0)
        print("saved", flush=True)
        time.sleep(60)
        """
    )
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=REPO, env=environment)  # fmt: skip
    try:
        line = child.stdout.readline() if child.stdout else ""
        assert line.strip() == "saved", child.stderr.read() if child.stderr else ""
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL

    store = SqlProgressStore(db_path)
    assert store.position("ada") == Position(track="python", lesson="intro", step="section", section=2, version=5)
    assert store.active_days("ada") == ["1970-01-01"]
    store.close()


def test_commits_never_checkpoint_and_the_checkpointer_thread_does(tmp_path: Path) -> None:
    """A checkpoint (an fsync) never runs inside a learner's commit; a thread of its own copies the log."""
    from bot.core.ports import Position
    from bot.store.database import Database
    from bot.store.progress import SqlProgressStore

    def saves(database: Database, count: int) -> None:
        store = SqlProgressStore(database)
        for n in range(count):
            store.save(f"learner-{n}", Position(step="premise", track="t", lesson=f"l{n}"), at=1_800_000_000.0)

    idle = Database(tmp_path / "idle.sqlite3", checkpoint_seconds=3600)
    before = (tmp_path / "idle.sqlite3").stat().st_size
    saves(idle, 1500)  # thousands of log frames: SQLite's own auto-checkpoint would have run several times
    assert (tmp_path / "idle.sqlite3").stat().st_size == before
    assert (tmp_path / "idle.sqlite3-wal").stat().st_size > 1_000_000
    idle.close()

    busy = Database(tmp_path / "busy.sqlite3", checkpoint_seconds=0.05)
    before = (tmp_path / "busy.sqlite3").stat().st_size
    saves(busy, 300)
    deadline = time.monotonic() + 5
    while (tmp_path / "busy.sqlite3").stat().st_size == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (tmp_path / "busy.sqlite3").stat().st_size > before  # the checkpointer copied the log into the file
    busy.close()
    assert SqlProgressStore(tmp_path / "busy.sqlite3").position("learner-299").lesson == "l299"


# ---------------------------------------------------------------- settings, reminders, leaderboards (migration 3)


def test_a_version_2_database_upgrades_and_keeps_its_progress(db_path: Path) -> None:
    from bot.store.migrations import MIGRATIONS

    old = SqlProgressStore(Database(db_path, MIGRATIONS[:2]))
    old.save("ada", Position(track="t", lesson="l", step="section"), at=MARCH_1)
    old._db.close()
    store = SqlProgressStore(db_path)
    assert user_version(db_path) == LATEST_VERSION
    assert store.position("ada").lesson == "l"
    assert store.learner_settings("ada") == LearnerSettings()


def test_learner_settings_round_trip_and_reminding_lists_those_with_reminders_on(store: SqlProgressStore) -> None:
    on = LearnerSettings(timezone="Europe/Berlin", remind=True, remind_at=7 * 60 + 30, quiet=(23 * 60, 6 * 60), leaderboard=True,
                         display_name="Ada")  # fmt: skip
    store.save_learner_settings("ada", on)
    store.save_learner_settings("bob", LearnerSettings(timezone="Asia/Tokyo"))
    assert store.learner_settings("ada") == on
    assert store.reminding() == [("ada", on)]


def test_a_reminder_day_is_claimed_once_and_can_be_released(store: SqlProgressStore) -> None:
    store.save_learner_settings("ada", LearnerSettings(timezone="UTC", remind=True))
    assert store.claim_reminder("ada", "2024-03-01") is True
    assert store.claim_reminder("ada", "2024-03-01") is False  # a second scheduler (or a restart) loses the race
    store.release_reminder("ada", "2024-03-01", None)
    assert store.claim_reminder("ada", "2024-03-01") is True
    stale = store.learner_settings("ada")
    store.save_learner_settings("ada", replace(stale, reminded_on=None, leaderboard=True))  # a turn racing the claim
    assert store.learner_settings("ada").reminded_on == "2024-03-01"
    assert store.claim_reminder("ada", "2024-03-01") is False
    assert store.claim_reminder("ada", "2024-03-02") is True
    store.save_learner_settings("bob", LearnerSettings(timezone="UTC", remind=False))
    assert store.claim_reminder("bob", "2024-03-01") is False  # reminders off: nothing to claim


def test_leaderboard_rows_count_distinct_lessons_since_a_time_for_opted_in_members_only(
    store: SqlProgressStore,
) -> None:
    for learner, opted in (("ada", True), ("bob", False), ("cy", True)):
        store.note_member("g1", learner, MARCH_1)
        store.save_learner_settings(learner, LearnerSettings(leaderboard=opted, display_name=learner.title()))
    store.note_member("g2", "dee", MARCH_1)
    store.save_learner_settings("dee", LearnerSettings(leaderboard=True, display_name="Dee"))
    for at, lesson in ((MARCH_1 - DAY, "old"), (MARCH_1 + 1, "a"), (MARCH_1 + 2, "a"), (MARCH_1 + DAY, "b")):
        store.save("ada", Position(), at=at, result=LessonResult("t", lesson, 1, 1, at))
    rows = {row.learner: row for row in store.leaderboard_rows("g1", MARCH_1, "2024-02-28")}
    assert set(rows) == {"ada"}  # not bob (not opted in), dee (another community) or cy (never active)
    assert (rows["ada"].display_name, rows["ada"].lessons, rows["ada"].days) == ("Ada", 2, ("2024-03-02", "2024-03-01",
                                                                                           "2024-02-29"))  # fmt: skip
    assert set(row.learner for row in store.leaderboard_rows("g1", MARCH_1, "2024-03-03")) == set()


def test_the_leaderboard_switch_is_per_community_and_on_by_default(store: SqlProgressStore) -> None:
    assert store.leaderboard_enabled("g1") and store.leaderboard_enabled("g2")
    store.set_leaderboard_enabled("g1", False, "mod", MARCH_1)
    assert not store.leaderboard_enabled("g1") and store.leaderboard_enabled("g2")
    store.set_leaderboard_enabled("g1", True, "mod", MARCH_1 + 1)
    assert store.leaderboard_enabled("g1")
