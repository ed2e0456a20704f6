"""The SQL that computes moderators' insights (``bot.core.insights``) from the bot's SQLite file.

Every figure is computed by SQLite over indexed columns (migration 5) and only small aggregates come back to
Python. The queries run on a read-only connection of their own, in one read transaction: they see one
consistent snapshot (WAL lets them read while learners' turns are written), and the stores' shared connection,
which every learner's turn waits for, is never held for the length of a report.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import statistics
from collections import defaultdict
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from bot.core.insights import (
    EXAMPLES,
    MIN_ATTEMPTS,
    ContentGap,
    FunnelStep,
    HardQuestion,
    Insights,
    QuizScores,
    WeekActivity,
    gap,
    week_label,
    week_starts,  # fmt: skip
)
from bot.core.lessons import Track
from bot.core.ports import StoreBusy, StoreUnavailable
from bot.store.database import Database

log = logging.getLogger(__name__)

_WEEK_SECONDS = 7 * 86400


# The closest section a refused question's log entry names (its first), when it is in the track.
_REFUSED_IN_TRACK = """
WITH refused AS (
    SELECT q.id, q.asked_at, q.learner, q.question,
           CASE WHEN substr(json_extract(q.sections, '$[0]'), 1, length(:prefix)) = :prefix
                THEN json_extract(q.sections, '$[0]') END AS closest
    FROM questions q
    WHERE q.refused = 1 {members} AND json_valid(q.sections)
      AND (q.track = :track
           OR EXISTS (SELECT 1 FROM json_each(q.sections) s WHERE substr(s.value, 1, length(:prefix)) = :prefix))
)
"""

# The question log has no index by learner: its refused rows are read once, each checked for membership.
_ASKED_BY_MEMBER = "AND q.learner IN (SELECT learner FROM community_members WHERE community = :community)"


def _rows(table: str, community: str | None) -> str:
    """What to select ``FROM``: the table's rows (as ``t``) of every learner, or of one community's members."""
    if community is None:
        return f"{table} AS t"
    # CROSS JOIN makes SQLite walk the community's members first and read each one's rows by learner (every table
    # has an index that starts with it), rather than scan the track's rows and check each learner's membership.
    return f"community_members AS m CROSS JOIN {table} AS t ON t.learner = m.learner AND m.community = :community"


def _in_track(community: str | None) -> str:
    """The condition on the track: for a community, written ``+t.track`` so that SQLite reads each member's rows
    by learner and never scans the track's whole index once per member (the unary + keeps it off that index)."""
    return "t.track = :track" if community is None else "+t.track = :track"


class SqliteInsights:
    """Computes ``Insights`` from the bot's database: give it the ``Database`` (so its migrations have run)."""

    def __init__(self, database: Database) -> None:
        self._path: Path = database.path
        self._busy_timeout_ms = database.busy_timeout_ms

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection inside one read transaction; a busy or unreadable file is ``StoreUnavailable``."""
        try:
            with closing(sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)) as connection:
                connection.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
                connection.execute("PRAGMA query_only = 1")
                connection.execute("BEGIN")
                try:
                    yield connection
                finally:
                    connection.execute("COMMIT")
        except sqlite3.OperationalError as error:
            primary = (getattr(error, "sqlite_errorcode", None) or 0) & 0xFF
            if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                log.warning("insights: %s stayed locked past the busy timeout (%s)", self._path, error)
                raise StoreBusy() from error
            if primary in (sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN):
                log.error("insights: %s could not be read (%s); check the disk and the file", self._path, error)
                raise StoreUnavailable() from error
            raise

    def insights(self, track: Track, community: str | None, now: float) -> Insights:
        """The track's insights for a community's members (None: every learner), activity up to ``now``."""
        params = {"track": track.id, "community": community, "prefix": f"{track.id}/"}
        with self._snapshot() as db:
            learners, funnel = _funnel(db, track, community, params)
            return Insights(
                track=track.id,
                track_title=track.title,
                community=community,
                learners=learners,
                funnel=funnel,
                scores=_scores(db, track, community, params),
                hardest=_hardest(db, track, community, params),
                gaps=_gaps(db, track, community, params),
                activity=_activity(db, track, community, params, now),
            )


def _funnel(db: sqlite3.Connection, track: Track, community: str | None,
            params: dict[str, Any]) -> tuple[int, tuple[FunnelStep, ...]]:  # fmt: skip
    """Learners who touched the track, and per lesson who started (opened or finished) and who finished it."""
    rows = db.execute(
        f"""
        WITH touched AS (
            SELECT t.learner, t.lesson FROM {_rows("lesson_starts", community)} WHERE {_in_track(community)}
            UNION
            SELECT t.learner, t.lesson FROM {_rows("lesson_results", community)} WHERE {_in_track(community)}
        )
        SELECT lesson, COUNT(*) FROM touched GROUP BY lesson
        UNION ALL
        SELECT NULL, COUNT(DISTINCT learner) FROM touched
        """,
        params,
    ).fetchall()
    started = {lesson: count for lesson, count in rows if lesson is not None}
    learners = next(count for lesson, count in rows if lesson is None)
    finished = dict(db.execute(
        f"SELECT t.lesson, COUNT(DISTINCT t.learner) FROM {_rows('lesson_results', community)}"
        f" WHERE {_in_track(community)} GROUP BY t.lesson",
        params,
    ).fetchall())  # fmt: skip
    steps = tuple(FunnelStep(lesson.id, lesson.title, started.get(lesson.id, 0), finished.get(lesson.id, 0))
                  for lesson in track.lessons)  # fmt: skip
    return learners, steps


def _scores(db: sqlite3.Connection, track: Track, community: str | None,
            params: dict[str, Any]) -> tuple[QuizScores, ...]:  # fmt: skip
    """Mean and median over every finished run of each quiz, a run's score being score/total in percent."""
    rows = db.execute(
        f"SELECT t.lesson, t.score, t.total, COUNT(*) FROM {_rows('lesson_results', community)}"
        f" WHERE {_in_track(community)} AND t.total > 0 GROUP BY t.lesson, t.score, t.total",
        params,
    ).fetchall()
    runs: dict[str, list[float]] = defaultdict(list)
    for lesson, score, total, count in rows:  # a few distinct scores per lesson: expanding them is cheap
        runs[lesson].extend([100.0 * score / total] * count)
    scores = []
    for lesson in track.lessons:
        if not lesson.quiz:
            continue
        found = runs.get(lesson.id, [])
        mean, median = (statistics.fmean(found), statistics.median(found)) if found else (None, None)
        scores.append(QuizScores(lesson.id, lesson.title, len(found), mean, median))
    return tuple(scores)


def _hardest(db: sqlite3.Connection, track: Track, community: str | None,
             params: dict[str, Any]) -> tuple[HardQuestion, ...]:  # fmt: skip
    """Questions with at least ``MIN_ATTEMPTS`` answers, the lowest share of right answers first."""
    rows = db.execute(
        f"SELECT t.lesson, t.question, t.chosen, t.correct, COUNT(*) FROM {_rows('quiz_attempts', community)}"
        f" WHERE {_in_track(community)} GROUP BY t.lesson, t.question, t.chosen, t.correct",
        params,
    ).fetchall()
    tallies: dict[tuple[str, int], list[tuple[int, int, int]]] = defaultdict(list)
    for lesson, question, chosen, correct, count in rows:
        tallies[(lesson, question)].append((chosen, correct, count))
    ranked = []
    for (lesson_id, number), picks in tallies.items():
        lesson = track.lesson(lesson_id)
        attempts = sum(count for _, _, count in picks)
        if lesson is None or not 0 <= number < len(lesson.quiz) or attempts < MIN_ATTEMPTS:
            continue  # a lesson or question the track no longer has, or too few answers to say anything
        question = lesson.quiz[number]
        wrong = {chosen: count for chosen, correct, count in picks if not correct}
        # the most picked wrong option; of equals, the first (a chosen index the quiz no longer has is no text)
        option = min(wrong, key=lambda chosen: (-wrong[chosen], chosen)) if wrong else None
        text = question.options[option] if option is not None and 0 <= option < len(question.options) else None
        right = sum(count for _, correct, count in picks if correct)
        ranked.append(HardQuestion(lesson.id, lesson.title, number + 1, question.prompt, attempts, right, text,
                                   wrong[option] if option is not None else 0))  # fmt: skip
    order = {lesson.id: n for n, lesson in enumerate(track.lessons)}
    ranked.sort(key=lambda q: (q.correct / q.attempts, -q.attempts, order[q.lesson], q.number))
    return tuple(ranked)


def _gaps(db: sqlite3.Connection, track: Track, community: str | None,
          params: dict[str, Any]) -> tuple[ContentGap, ...]:  # fmt: skip
    """Refused questions in the track's scope, grouped by closest section, with the newest as examples."""
    refused = _REFUSED_IN_TRACK.format(members="" if community is None else _ASKED_BY_MEMBER)
    groups = db.execute(
        f"{refused} SELECT closest, COUNT(*), COUNT(DISTINCT learner) FROM refused GROUP BY closest", params
    ).fetchall()
    newest: dict[str | None, list[str]] = defaultdict(list)
    for closest, question in db.execute(
        f"""{refused}
        SELECT closest, question FROM (
            SELECT closest, question, ROW_NUMBER() OVER (PARTITION BY closest ORDER BY asked_at DESC, id DESC) AS n
            FROM refused
        ) WHERE n <= :examples ORDER BY closest, n
        """,
        {**params, "examples": EXAMPLES},
    ):
        newest[closest].append(question)
    gaps = [gap(closest, *_section_names(track, closest), count, askers, newest[closest])
            for closest, count, askers in groups]  # fmt: skip
    gaps.sort(key=lambda g: (-g.questions, g.section is None, g.section or ""))
    return tuple(gaps)


def _section_names(track: Track, ref: str | None) -> tuple[str, str]:
    """(heading, lesson title) of ``track/lesson#section``; its ids when the track no longer has it."""
    if ref is None:
        return "No close section", ""
    lesson_id, _, section_id = ref.removeprefix(f"{track.id}/").partition("#")
    lesson = track.lesson(lesson_id)
    section = lesson.section(section_id) if lesson else None
    return (section.heading if section else section_id), (lesson.title if lesson else lesson_id)


def _activity(db: sqlite3.Connection, track: Track, community: str | None, params: dict[str, Any],
              now: float) -> tuple[WeekActivity, ...]:  # fmt: skip
    """Per ISO week of the last ``WEEKS``: learners active on any day of it, and quiz answers in the track."""
    mondays = week_starts(now)
    first, after = mondays[0], mondays[-1] + dt.timedelta(weeks=1)
    since = dt.datetime.combine(first, dt.time(), dt.UTC).timestamp()
    window = {**params, "first": first.isoformat(), "after": after.isoformat(), "since": since,
              "until": since + len(mondays) * _WEEK_SECONDS, "week": _WEEK_SECONDS}  # fmt: skip
    # Weeks are counted from the first Monday by arithmetic (cheaper than date() on every row): n is mondays[n].
    active = dict(db.execute(
        "SELECT CAST((julianday(t.day) - julianday(:first)) / 7 AS INTEGER) AS n, COUNT(DISTINCT t.learner)"
        f" FROM {_rows('activity', community)} WHERE t.day >= :first AND t.day < :after GROUP BY n",
        window,
    ).fetchall())  # fmt: skip
    answers = dict(db.execute(
        "SELECT CAST((t.answered_at - :since) / :week AS INTEGER) AS n, COUNT(*)"
        f" FROM {_rows('quiz_attempts', community)} WHERE {_in_track(community)} AND t.answered_at >= :since AND t.answered_at < :until GROUP BY n",
        window,
    ).fetchall())  # fmt: skip
    return tuple(WeekActivity(week_label(monday), monday.isoformat(), active.get(n, 0), answers.get(n, 0))
                 for n, monday in enumerate(mondays))  # fmt: skip
