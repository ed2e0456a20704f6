"""PostgreSQL as the store, on a real server: the shared migrations, passing conditions as the learner's
'try again', a server restart, and a turn acknowledged before the process was killed. (The stores' behaviour is
tested on both databases by the parametrised store tests.)"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.core.ports import (
    LearnerSettings,
    LessonResult,
    Position,
    QuestionRecord,
    QuizAttempt,
    ReviewCard,
    StoreBusy,
    StoreUnavailable,
)
from bot.store.copy import TargetNotEmpty, copy_database
from bot.store.copy import tables as bot_tables
from bot.store.database import Database, DatabaseTooNew
from bot.store.migrations import LATEST_VERSION
from bot.store.postgres import PostgresDatabase
from bot.store.progress import SqlProgressStore
from bot.store.question_log import SqlQuestionLog
from bot.store.sql import SqlDatabase
from bot.store.track_versions import LiveVersion, SqlTrackVersions
from tests.postgres_server import PostgresServer

REPO = Path(__file__).resolve().parents[2]


def schema_version(url: str) -> int:
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT version FROM tutorbot_schema").fetchone()
        assert row is not None
        return int(row[0])


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {name for (name,) in rows}


def test_a_new_database_gets_every_migration_once_even_when_processes_start_together(postgres_url: str) -> None:
    opened: list[PostgresDatabase] = []
    failures: list[BaseException] = []

    def start() -> None:
        try:
            opened.append(PostgresDatabase(postgres_url, pool_size=1))
        except BaseException as error:  # a second process running the same CREATE TABLE would fail here
            failures.append(error)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert schema_version(postgres_url) == LATEST_VERSION
    assert {"learners", "questions", "track_versions", "deliveries", "tutorbot_schema"} <= tables(postgres_url)
    for database in opened:
        database.close()


def test_reopening_keeps_the_data_and_applies_nothing_again(postgres_url: str) -> None:
    database = PostgresDatabase(postgres_url)
    SqlProgressStore(database).save("ada", Position(version=1), at=1.0)
    database.close()
    again = PostgresDatabase(postgres_url)
    assert SqlProgressStore(again).position("ada") == Position(version=1)
    assert again.version == LATEST_VERSION
    again.close()


def test_a_database_from_a_newer_release_is_refused_and_left_untouched(postgres_url: str) -> None:
    PostgresDatabase(postgres_url).close()
    with psycopg.connect(postgres_url) as connection:
        connection.execute("UPDATE tutorbot_schema SET version = %s", (LATEST_VERSION + 3,))
    with pytest.raises(DatabaseTooNew, match="upgrade tutorbot"):
        PostgresDatabase(postgres_url)
    assert schema_version(postgres_url) == LATEST_VERSION + 3


def test_a_failing_migration_leaves_the_database_at_the_previous_version(postgres_url: str) -> None:
    migrations = ["CREATE TABLE first (x INTEGER);", "CREATE TABLE second (x INTEGER); CREATE TABLE first (x INTEGER);"]
    with pytest.raises(psycopg.errors.DuplicateTable):
        PostgresDatabase(postgres_url, migrations)
    assert schema_version(postgres_url) == 1
    assert tables(postgres_url) == {"first", "tutorbot_schema"}  # "second" was rolled back with its migration


def test_a_row_locked_past_the_busy_timeout_is_store_busy_and_reads_go_on(postgres_url: str) -> None:
    database = PostgresDatabase(postgres_url, busy_timeout_ms=200)
    store = SqlProgressStore(database)
    store.save("ada", Position(version=1), at=1.0)
    with psycopg.connect(postgres_url) as other, other.transaction():
        other.execute("SELECT * FROM learners WHERE learner = 'ada' FOR UPDATE")  # another process's turn
        with pytest.raises(StoreBusy):
            store.save("ada", Position(version=2), at=2.0, expected=1)
        assert store.position("ada") == Position(version=1)
    store.save("ada", Position(version=2), at=2.0, expected=1)
    assert store.position("ada") == Position(version=2)
    database.close()


def test_an_unreachable_server_is_store_unavailable_and_the_log_has_no_password(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.store.postgres.CONNECT_SECONDS", 1.0)
    with caplog.at_level(logging.WARNING), pytest.raises(StoreUnavailable):
        PostgresDatabase("postgresql://bot:hunter2-secret@127.0.0.1:9/tutor")  # port 9: nothing listens
    assert "could not connect" in caplog.text and "hunter2-secret" not in caplog.text


def test_after_a_server_restart_the_next_turn_is_saved() -> None:
    with PostgresServer(durable=True) as server:  # a crash of a fast (fsync off) server may lose commits
        database = PostgresDatabase(server.create_database("restarted"))
        store = SqlProgressStore(database)
        store.save("ada", Position(version=1), at=1.0)
        server.crash()
        with pytest.raises(StoreUnavailable):  # while it is down, the learner is asked to try again
            store.save("ada", Position(version=2), at=2.0, expected=1)
        server.start()
        store.save("ada", Position(version=2), at=2.0, expected=1)  # the pool replaced its dead connections
        assert store.position("ada") == Position(version=2)
        database.close()


def test_a_turn_acknowledged_before_the_process_was_killed_is_kept(postgres_url: str) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from bot.core.ports import Position
        from bot.store.postgres import PostgresDatabase
        from bot.store.progress import SqlProgressStore
        store = SqlProgressStore(PostgresDatabase({postgres_url!r}))
        store.save("ada", Position(step="premise", version=1), at=1.0)
        print("saved", flush=True)
        time.sleep(60)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "saved"
    finally:
        child.kill()  # SIGKILL: no clean-up runs
        child.wait()
    database = PostgresDatabase(postgres_url)
    assert SqlProgressStore(database).position("ada") == Position(step="premise", version=1)
    database.close()


# ---------------------------------------------------------------- moving from the SQLite file


def seeded_sqlite(path: Path) -> Database:
    """A SQLite database with rows in the tables a bot writes as learners and moderators use it."""
    database = Database(path)
    store, questions = SqlProgressStore(database), SqlQuestionLog(database)
    store.save("ada", Position(track="t", lesson="l", step="quiz", version=3), at=1.5,
               attempt=QuizAttempt("t", "l", 1, 0, 2, False, 1.5), result=LessonResult("t", "l", 1, 2, 1.5),
               card=ReviewCard("t", "l", 0, '{"s": 1}', 9.25), started=("t", "l"), delivery="telegram:77")  # fmt: skip
    store.save_learner_settings("ada", LearnerSettings(timezone="Europe/Berlin", remind=True, display_name="Ada"))
    store.note_member("discord:1", "ada", 2.0)
    store.set_track_enabled("discord:1", "t", False, "mod", 3.0)
    store.set_leaderboard_enabled("discord:1", False, "mod", 3.5)
    questions.record(QuestionRecord("what is x?", "t", "l", True, "no_passage", ("t/l#s",), "ada", {"total": 1.0}))
    SqlTrackVersions(database).add(LiveVersion("t@c", 1, "discord:1", "t"), "T", "mod", 4.0,
                                   {"track.toml": b'id = "t"\n', "01.md": b"\x00binary\xff"})  # fmt: skip
    return database


def all_rows(database: SqlDatabase) -> dict[str, list[tuple]]:
    return {table: sorted(tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
                          for row in database.fetch_all(f"SELECT * FROM {table}")) for table in bot_tables(database)}  # fmt: skip


def test_a_sqlite_database_copies_into_postgresql_whole(tmp_path: Path, postgres_url: str) -> None:
    source = seeded_sqlite(tmp_path / "bot.sqlite3")
    target = PostgresDatabase(postgres_url)
    counts = copy_database(source, target)
    assert counts["learners"] == 1 and counts["library_files"] == 2 and counts["deliveries"] == 1
    assert set(counts) == set(bot_tables(target)) >= {"learners", "questions", "telegram_updates"}  # every table
    assert all_rows(target) == all_rows(source)
    SqlQuestionLog(target).record(QuestionRecord("and y?", "t", "l", False, "answered"))  # the next id is free
    assert [q.question for q in SqlQuestionLog(target).recent()] == ["and y?", "what is x?"]
    with pytest.raises(TargetNotEmpty, match="already holds rows"):
        copy_database(source, target)
    source.close()
    target.close()


def test_the_copy_command_moves_a_data_dir_to_postgresql(tmp_path: Path, postgres_url: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    seeded_sqlite(tmp_path / "data" / "tutorbot.sqlite3").close()
    monkeypatch.setenv("TUTORBOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TUTORBOT_DATABASE_URL", postgres_url)
    done = CliRunner().invoke(app, ["copy-database", "--to", "env"])
    assert done.exit_code == 0, done.output
    assert "copied" in done.output and "learners 1" in done.output
    again = CliRunner().invoke(app, ["copy-database", "--to", "env"])
    assert again.exit_code == 1 and "already holds rows" in again.output
    refused = CliRunner().invoke(app, ["copy-database", "--to", "mysql://x"])
    assert refused.exit_code == 1 and "PostgreSQL URL" in refused.output
