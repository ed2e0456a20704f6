"""Every question learners ask and what became of it, in the bot's database, for moderators' content-gap reports."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from bot.core.ports import QuestionRecord, StoreUnavailable
from bot.store.database import Database
from bot.store.sql import SqlDatabase

log = logging.getLogger(__name__)


class SqlQuestionLog:
    """``QuestionLog`` in the bot's database (the ``questions`` table of ``bot.store.migrations``).

    Give it a path to open (and own) a SQLite file, or a ``Database`` shared with other stores (then ``close``
    leaves it open for them).
    """

    def __init__(self, database: SqlDatabase | Path | str):
        self._owns_database = isinstance(database, Path | str)
        self._db: SqlDatabase = Database(database) if isinstance(database, Path | str) else database

    def record(self, entry: QuestionRecord) -> None:
        """Store one question's outcome; when the file is busy or full, log that it is left out instead.

        The entry is written after the learner has seen the answer: a moderators' report missing one question
        is better than an answer withdrawn (the database has logged what the host should do).
        """
        try:
            with self._db.transaction() as connection:
                connection.execute(
                    "INSERT INTO questions (asked_at, learner, track, lesson, question, refused, reason, sections,"
                    " timings) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (time.time(), entry.learner, entry.track, entry.lesson, entry.question, int(entry.refused),
                     entry.reason, json.dumps(list(entry.sections)), json.dumps(entry.timings)),
                )  # fmt: skip
        except StoreUnavailable as error:
            log.warning("a question was left out of the question log: %s", type(error).__name__)

    def recent(self, limit: int = 50) -> list[QuestionRecord]:
        """The latest questions, newest first."""
        rows = self._db.fetch_all(
            "SELECT question, track, lesson, refused, reason, sections, learner, timings"
            " FROM questions ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [
            QuestionRecord(q, t, les, bool(r), reason, tuple(json.loads(s)), learner, json.loads(tm))
            for q, t, les, r, reason, s, learner, tm in rows
        ]

    def close(self) -> None:
        """Close the database if this log opened it."""
        if self._owns_database:
            self._db.close()
