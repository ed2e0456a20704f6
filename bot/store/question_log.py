"""Every question learners ask and what became of it, in SQLite, for moderators' content-gap reports."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

from bot.core.ports import QuestionRecord

SCHEMA = """
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


class SqliteQuestionLog:
    """``QuestionLog`` in a SQLite file (WAL mode; one writer at a time)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(SCHEMA)
        self._lock = threading.Lock()

    def record(self, entry: QuestionRecord) -> None:
        """Store one question's outcome."""
        with self._lock:
            self._db.execute(
                "INSERT INTO questions (asked_at, learner, track, lesson, question, refused, reason, sections, timings)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (time.time(), entry.learner, entry.track, entry.lesson, entry.question, int(entry.refused),
                 entry.reason, json.dumps(list(entry.sections)), json.dumps(entry.timings)),
            )  # fmt: skip

    def recent(self, limit: int = 50) -> list[QuestionRecord]:
        """The latest questions, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT question, track, lesson, refused, reason, sections, learner, timings"
                " FROM questions ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            QuestionRecord(q, t, les, bool(r), reason, tuple(json.loads(s)), learner, json.loads(tm))
            for q, t, les, r, reason, s, learner, tm in rows
        ]

    def close(self) -> None:
        """Close the database."""
        self._db.close()
