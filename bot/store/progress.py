"""Learner progress, community settings and handled updates in the bot's database (SQLite or PostgreSQL)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from bot.core.ports import (
    LeaderboardRow,
    LearnerSettings,
    LessonResult,
    Position,
    QuizAttempt,
    ReviewCard,
    TrackChange,
    TurnConflict,
)
from bot.store.database import Database
from bot.store.sql import Connection, SqlDatabase

_POSITION_FIELDS = frozenset(field.name for field in dataclasses.fields(Position))

# The learner's own rows, deleted by ``reset`` (community settings belong to the community and stay).
_LEARNER_TABLES = ("learners", "quiz_attempts", "lesson_results", "review_cards", "activity", "lesson_starts")


def position_to_json(position: Position) -> str:
    """A position as JSON of its fields."""
    return json.dumps(dataclasses.asdict(position), sort_keys=True)


def position_from_json(text: str) -> Position:
    """A position from JSON: unknown keys (from a newer release) are ignored, missing ones take their defaults."""
    data: dict[str, Any] = json.loads(text)
    return Position(**{key: value for key, value in data.items() if key in _POSITION_FIELDS})


# The position's version inside its JSON, for the compare-and-set of a turn's save.
_POSITION_VERSION = {
    "sqlite": "coalesce(json_extract(position, '$.version'), 0)",
    "postgresql": "coalesce((position::jsonb ->> 'version')::integer, 0)",
}
# The learner's latest active days, newest first, joined by commas.
_DAYS_JOINED = {"sqlite": "group_concat(day, ',')", "postgresql": "string_agg(day, ',' ORDER BY day DESC)"}

_SETTINGS_COLUMNS = ("timezone, remind, remind_at, reminded_on, stopped, quiet_start, quiet_end, leaderboard, "
                     "display_name")  # fmt: skip


def _settings(row: tuple) -> LearnerSettings:
    timezone, remind, remind_at, reminded_on, stopped, quiet_start, quiet_end, leaderboard, display_name = row
    quiet = None if quiet_start is None or quiet_end is None else (quiet_start, quiet_end)
    return LearnerSettings(timezone, bool(remind), remind_at, reminded_on, stopped, quiet, bool(leaderboard),
                           display_name)  # fmt: skip


def utc_day(at: float) -> str:
    """The UTC day (``YYYY-MM-DD``) of a time in seconds since the epoch."""
    return time.strftime("%Y-%m-%d", time.gmtime(at))


class SqlProgressStore:
    """``ProgressStore`` in SQL: every ``save`` is one transaction, and every query filters by learner.

    Give it a path to open (and own) a SQLite file, or a database shared with other stores (then ``close``
    leaves it open for them).
    """

    def __init__(self, database: SqlDatabase | Path | str):
        self._owns_database = isinstance(database, Path | str)
        self._db: SqlDatabase = Database(database) if isinstance(database, Path | str) else database

    def position(self, learner: str) -> Position:
        """The learner's position (a fresh ``Position()`` for a new learner)."""
        row = self._db.fetch_one("SELECT position FROM learners WHERE learner = ?", (learner,))
        return Position() if row is None else position_from_json(row[0])

    def save(self, learner: str, position: Position, *, at: float, attempt: QuizAttempt | None = None,
             result: LessonResult | None = None, card: ReviewCard | None = None, day: str | None = None,
             started: tuple[str, str] | None = None, expected: int | None = None, reset: bool = False,
             delivery: str | None = None) -> None:  # fmt: skip
        """Store a turn's outcome at once: the new position, whatever the turn produced, and its day (the
        learner's own ``day``, else the UTC day of ``at``); ``started`` is a lesson the turn opened.

        With ``expected`` (the position version the turn read) the position is written only if it is still that
        version: a compare-and-set, so two processes serving one learner never lose or double-apply a move.
        """
        with self._db.transaction() as connection:
            if delivery is not None and not self._note_delivery(connection, delivery, at):
                raise TurnConflict(f"update {delivery} was handled already")
            if expected is None:
                connection.execute(
                    "INSERT INTO learners (learner, position, updated_at) VALUES (?, ?, ?) ON CONFLICT (learner)"
                    " DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
                    (learner, position_to_json(position), at),
                )
            else:
                self._compare_and_set(connection, learner, position, at, expected)
            if reset:  # the position was just written: erase the rest of the learner's progress with it
                for table in _LEARNER_TABLES[1:]:
                    connection.execute(f"DELETE FROM {table} WHERE learner = ?", (learner,))
            if attempt is not None:
                connection.execute(
                    "INSERT INTO quiz_attempts"
                    " (learner, track, lesson, quiz_run, question, chosen, correct, answered_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (learner, attempt.track, attempt.lesson, attempt.quiz_run, attempt.question, attempt.chosen,
                     int(attempt.correct), attempt.answered_at),
                )  # fmt: skip
            if result is not None:
                connection.execute(
                    "INSERT INTO lesson_results (learner, track, lesson, score, total, completed_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (learner, result.track, result.lesson, result.score, result.total, result.completed_at),
                )
            if card is not None:
                connection.execute(
                    "INSERT INTO review_cards (learner, track, lesson, question, state, due) VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (learner, track, lesson, question)"
                    " DO UPDATE SET state = excluded.state, due = excluded.due",
                    (learner, card.track, card.lesson, card.question, card.state, card.due),
                )
            if started is not None:
                connection.execute("INSERT INTO lesson_starts (learner, track, lesson, started_at)"
                                   " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", (learner, *started, at))  # fmt: skip
            connection.execute("INSERT INTO activity (learner, day) VALUES (?, ?) ON CONFLICT DO NOTHING",
                               (learner, day or utc_day(at)))  # fmt: skip

    def _compare_and_set(self, connection: Connection, learner: str, position: Position, at: float,
                         expected: int) -> None:  # fmt: skip
        """Write the position only over version ``expected`` (or where there is none yet, for a version 0)."""
        changed = connection.execute(
            "UPDATE learners SET position = ?, updated_at = ? WHERE learner = ?"
            f" AND {_POSITION_VERSION[self._db.dialect]} = ?",
            (position_to_json(position), at, learner, expected),
        ).rowcount
        if not changed and expected == 0:
            changed = connection.execute(
                "INSERT INTO learners (learner, position, updated_at) VALUES (?, ?, ?) ON CONFLICT (learner) DO NOTHING",
                (learner, position_to_json(position), at),
            ).rowcount
        if not changed:
            raise TurnConflict(f"the position of {learner} moved on during the turn")

    def delivered(self, delivery: str) -> bool:
        """Whether a turn already handled this platform update."""
        return self._db.fetch_one("SELECT 1 FROM deliveries WHERE delivery = ?", (delivery,)) is not None

    def note_delivery(self, delivery: str, at: float) -> bool:
        """Record a platform update as handled; False if it already was."""
        with self._db.transaction() as connection:
            return self._note_delivery(connection, delivery, at)

    @staticmethod
    def _note_delivery(connection: Connection, delivery: str, at: float) -> bool:
        return bool(connection.execute("INSERT INTO deliveries (delivery, handled_at) VALUES (?, ?)"
                                       " ON CONFLICT (delivery) DO NOTHING", (delivery, at)).rowcount)  # fmt: skip

    def attempts(self, learner: str, track: str, lesson: str, quiz_run: int) -> list[QuizAttempt]:
        """The answers of one quiz run, in the order given."""
        rows = self._db.fetch_all(
            "SELECT track, lesson, quiz_run, question, chosen, correct, answered_at FROM quiz_attempts"
            " WHERE learner = ? AND track = ? AND lesson = ? AND quiz_run = ? ORDER BY id",
            (learner, track, lesson, quiz_run),
        )
        return [QuizAttempt(t, les, run, q, chosen, bool(correct), at) for t, les, run, q, chosen, correct, at in rows]

    def results(self, learner: str) -> list[LessonResult]:
        """Every finished lesson, oldest first (a lesson finished twice appears twice)."""
        rows = self._db.fetch_all(
            "SELECT track, lesson, score, total, completed_at FROM lesson_results"
            " WHERE learner = ? ORDER BY completed_at, id",
            (learner,),
        )
        return [LessonResult(*row) for row in rows]

    def cards(self, learner: str) -> list[ReviewCard]:
        """The learner's review cards, soonest due first."""
        rows = self._db.fetch_all(
            "SELECT track, lesson, question, state, due FROM review_cards"
            " WHERE learner = ? ORDER BY due, track, lesson, question",
            (learner,),
        )
        return [ReviewCard(*row) for row in rows]

    def last_turn_at(self, learner: str) -> float | None:
        """When the learner's last stored turn was (None for a new learner)."""
        row = self._db.fetch_one("SELECT updated_at FROM learners WHERE learner = ?", (learner,))
        return None if row is None else float(row[0])

    def add_active_day(self, learner: str, day: str) -> None:
        """Count ``day`` as a day the learner studied (once)."""
        with self._db.transaction() as connection:
            connection.execute(
                "INSERT INTO activity (learner, day) VALUES (?, ?) ON CONFLICT DO NOTHING", (learner, day)
            )

    def active_days(self, learner: str) -> list[str]:
        """The days (``YYYY-MM-DD``, the learner's own as ``save`` was given them) with a turn, newest first."""
        rows = self._db.fetch_all("SELECT day FROM activity WHERE learner = ? ORDER BY day DESC", (learner,))
        return [day for (day,) in rows]

    def reset(self, learner: str) -> None:
        """Forget the learner's position, attempts, results, cards and activity."""
        with self._db.transaction() as connection:
            for table in _LEARNER_TABLES:
                connection.execute(f"DELETE FROM {table} WHERE learner = ?", (learner,))

    def disabled_tracks(self, community: str) -> set[str]:
        """Tracks a community's moderators turned off (every other published track is offered)."""
        rows = self._db.fetch_all(
            "SELECT track FROM community_tracks WHERE community = ? AND enabled = 0", (community,)
        )
        return {track for (track,) in rows}

    def set_track_enabled(self, community: str, track: str, enabled: bool, by: str, at: float) -> None:
        """Turn a track on or off for a community, and record who did it and when."""
        with self._db.transaction() as connection:
            connection.execute(
                "INSERT INTO community_tracks (community, track, enabled, changed_by, changed_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (community, track) DO UPDATE SET"
                " enabled = excluded.enabled, changed_by = excluded.changed_by, changed_at = excluded.changed_at",
                (community, track, int(enabled), by, at),
            )
            connection.execute(
                "INSERT INTO community_track_changes (community, track, enabled, changed_by, changed_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (community, track, int(enabled), by, at),
            )

    def track_changes(self, community: str) -> list[TrackChange]:
        """Every change of a community's tracks, oldest first."""
        rows = self._db.fetch_all(
            "SELECT community, track, enabled, changed_by, changed_at FROM community_track_changes"
            " WHERE community = ? ORDER BY changed_at, id",
            (community,),
        )
        return [TrackChange(c, t, bool(enabled), by, at) for c, t, enabled, by, at in rows]

    # ------------------------------------------------------------ settings, reminders, leaderboards

    def learner_settings(self, learner: str) -> LearnerSettings:
        """The learner's settings (defaults for a learner who never changed one)."""
        row = self._db.fetch_one(f"SELECT {_SETTINGS_COLUMNS} FROM learner_settings WHERE learner = ?", (learner,))
        return LearnerSettings() if row is None else _settings(row)

    def save_learner_settings(self, learner: str, settings: LearnerSettings) -> None:
        """Store the learner's settings, all but ``reminded_on``: only ``claim_reminder`` and ``release_reminder``
        write that, so a settings change racing a reminder check can never undo its claim."""
        with self._db.transaction() as connection:
            connection.execute(
                "INSERT INTO learner_settings (learner, timezone, remind, remind_at, stopped, quiet_start, quiet_end,"
                " leaderboard, display_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (learner) DO UPDATE SET"
                " timezone = excluded.timezone, remind = excluded.remind, remind_at = excluded.remind_at,"
                " stopped = excluded.stopped, quiet_start = excluded.quiet_start, quiet_end = excluded.quiet_end,"
                " leaderboard = excluded.leaderboard, display_name = excluded.display_name",
                (learner, settings.timezone, int(settings.remind), settings.remind_at, settings.stopped,
                 *(settings.quiet or (None, None)), int(settings.leaderboard), settings.display_name),
            )  # fmt: skip

    def reminding(self) -> list[tuple[str, LearnerSettings]]:
        """Every learner with reminders on, with their settings."""
        rows = self._db.fetch_all(f"SELECT learner, {_SETTINGS_COLUMNS} FROM learner_settings WHERE remind = 1")
        return [(row[0], _settings(row[1:])) for row in rows]

    def claim_reminder(self, learner: str, day: str) -> bool:
        """Mark ``day`` as reminded; False when it already was or reminders are off (atomic)."""
        with self._db.transaction() as connection:
            cursor = connection.execute(
                "UPDATE learner_settings SET reminded_on = ? WHERE learner = ? AND remind = 1"
                " AND (reminded_on IS NULL OR reminded_on <> ?)",
                (day, learner, day),
            )
            return cursor.rowcount == 1

    def release_reminder(self, learner: str, day: str, previous: str | None) -> None:
        """Undo ``claim_reminder`` for ``day`` (nothing was delivered)."""
        with self._db.transaction() as connection:
            connection.execute("UPDATE learner_settings SET reminded_on = ? WHERE learner = ? AND reminded_on = ?",
                               (previous, learner, day))  # fmt: skip

    def note_member(self, community: str, learner: str, at: float) -> None:
        """Remember that the learner takes turns in the community."""
        with self._db.transaction() as connection:
            connection.execute(
                "INSERT INTO community_members (community, learner, last_seen) VALUES (?, ?, ?)"
                " ON CONFLICT (community, learner) DO UPDATE SET last_seen = excluded.last_seen",
                (community, learner, at),
            )

    def leaderboard_rows(self, community: str, since: float, active_since: str) -> list[LeaderboardRow]:
        """The community's opted-in members active on or after ``active_since``, with the distinct lessons they
        finished since ``since`` and their active days (members idle since then are not read at all)."""
        rows = self._db.fetch_all(
            "SELECT m.learner, s.display_name, s.timezone,"
            " (SELECT COUNT(DISTINCT r.track || '/' || r.lesson) FROM lesson_results r"
            "   WHERE r.learner = m.learner AND r.completed_at >= ?),"
            f" (SELECT {_DAYS_JOINED[self._db.dialect]} FROM (SELECT day FROM activity a"
            "   WHERE a.learner = m.learner ORDER BY day DESC LIMIT 400) AS recent)"
            " FROM community_members m JOIN learner_settings s ON s.learner = m.learner"
            " WHERE m.community = ? AND s.leaderboard = 1"
            " AND EXISTS (SELECT 1 FROM activity a WHERE a.learner = m.learner AND a.day >= ?)",
            (since, community, active_since),
        )
        return [LeaderboardRow(learner, name, lessons, tuple(days.split(",")) if days else (), zone)
                for learner, name, zone, lessons, days in rows]  # fmt: skip

    def leaderboard_enabled(self, community: str) -> bool:
        """Whether the community shows a leaderboard (on unless its moderators turned it off)."""
        row = self._db.fetch_one("SELECT leaderboard FROM community_settings WHERE community = ?", (community,))
        return row is None or bool(row[0])

    def set_leaderboard_enabled(self, community: str, enabled: bool, by: str, at: float) -> None:
        """Turn the community's leaderboard on or off, recording who did it and when."""
        with self._db.transaction() as connection:
            connection.execute(
                "INSERT INTO community_settings (community, leaderboard, changed_by, changed_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (community) DO UPDATE SET leaderboard = excluded.leaderboard,"
                " changed_by = excluded.changed_by, changed_at = excluded.changed_at",
                (community, int(enabled), by, at),
            )

    def close(self) -> None:
        """Close the database if this store opened it."""
        if self._owns_database:
            self._db.close()
