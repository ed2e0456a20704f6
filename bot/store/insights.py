"""The SQL that computes moderators' insights (``bot.core.insights``) from the bot's database.

Every figure is computed by the database over indexed columns (migration 5) and only small aggregates come back to
Python. The queries run in one read-only snapshot (``SqlDatabase.snapshot``): they see one consistent state while
learners' turns are written, and on SQLite the stores' shared connection, which every turn waits for, is never
held for the length of a report. The few expressions SQLite and PostgreSQL write differently are in ``_SQL``.
"""

from __future__ import annotations

import datetime as dt
import logging
import statistics
from collections import defaultdict
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
from bot.store.migrations import Dialect
from bot.store.sql import Connection, SqlDatabase

log = logging.getLogger(__name__)

_WEEK_SECONDS = 7 * 86400


# What SQLite and PostgreSQL write differently: a refused question's closest section (the first its log entry
# names), the sections it names, a JSON check, a join that the planner must walk members-first, the track condition,
# and the week (0 = the first Monday) of a day or of a time.
_SQL: dict[Dialect, dict[str, str]] = {
    "sqlite": {
        "first_section": "json_extract(q.sections, '$[0]')",
        "each_section": "json_each(q.sections) s",
        "valid": "json_valid(q.sections)",
        # CROSS JOIN makes SQLite walk the community's members first and read each one's rows by learner (every
        # table has an index that starts with it), rather than scan the track's rows and check each membership.
        "members_join": "CROSS JOIN",
        # ``+t.track`` keeps SQLite reading each member's rows by learner, never the track's whole index per member.
        "member_track": "+t.track = :track",
        "week_of_day": "CAST((julianday(t.day) - julianday(:monday)) / 7 AS INTEGER)",
        "week_of_time": "CAST((t.answered_at - :since) / :week AS INTEGER)",
    },
    "postgresql": {
        "first_section": "(q.sections::jsonb ->> 0)",
        "each_section": "jsonb_array_elements_text(q.sections::jsonb) AS s(value)",
        "valid": "TRUE",  # written by json.dumps only; PostgreSQL 15 has no cheap check and would fail the cast
        "members_join": "JOIN",
        "member_track": "t.track = :track",
        "week_of_day": "((CAST(t.day AS date) - CAST(:monday AS date)) / 7)",
        "week_of_time": "CAST(floor((t.answered_at - :since) / :week) AS INTEGER)",
    },
}

# The closest section a refused question's log entry names (its first), when it is in the track.
_REFUSED_IN_TRACK = """
WITH refused AS (
    SELECT q.id, q.asked_at, q.learner, q.question,
           CASE WHEN substr({first_section}, 1, length(:prefix)) = :prefix
                THEN {first_section} END AS closest
    FROM questions q
    WHERE q.refused = 1 {members} AND {valid}
      AND (q.track = :track
           OR EXISTS (SELECT 1 FROM {each_section} WHERE substr(s.value, 1, length(:prefix)) = :prefix))
)
"""

# The question log has no index by learner: its refused rows are read once, each checked for membership.
_ASKED_BY_MEMBER = "AND q.learner IN (SELECT learner FROM community_members WHERE community = :community)"


class _Query:
    """The dialect's pieces of the insights' SQL, for every learner or for one community's members."""

    def __init__(self, dialect: Dialect, community: str | None) -> None:
        self.sql = _SQL[dialect]
        self.community = community

    def rows(self, table: str) -> str:
        """What to select ``FROM``: the table's rows (as ``t``) of every learner, or of the community's members."""
        if self.community is None:
            return f"{table} AS t"
        return (f"community_members AS m {self.sql['members_join']} {table} AS t"
                " ON t.learner = m.learner AND m.community = :community")  # fmt: skip

    def in_track(self) -> str:
        """The condition on the track."""
        return "t.track = :track" if self.community is None else self.sql["member_track"]

    def refused(self) -> str:
        """The ``refused`` common table: refused questions in the track's scope, with their closest section."""
        members = "" if self.community is None else _ASKED_BY_MEMBER
        return _REFUSED_IN_TRACK.format(members=members, **self.sql)


class SqlInsights:
    """Computes ``Insights`` from the bot's database: give it the database (so its migrations have run)."""

    def __init__(self, database: SqlDatabase) -> None:
        self._db = database

    def insights(self, track: Track, community: str | None, now: float) -> Insights:
        """The track's insights for a community's members (None: every learner), activity up to ``now``."""
        params = {"track": track.id, "community": community, "prefix": f"{track.id}/"}
        query = _Query(self._db.dialect, community)
        with self._db.snapshot() as db:
            learners, funnel = _funnel(db, track, query, params)
            return Insights(
                track=track.id,
                track_title=track.title,
                community=community,
                learners=learners,
                funnel=funnel,
                scores=_scores(db, track, query, params),
                hardest=_hardest(db, track, query, params),
                gaps=_gaps(db, track, query, params),
                activity=_activity(db, query, params, now),
            )


def _funnel(db: Connection, track: Track, query: _Query,
            params: dict[str, Any]) -> tuple[int, tuple[FunnelStep, ...]]:  # fmt: skip
    """Learners who touched the track, and per lesson who started (opened or finished) and who finished it."""
    rows = db.execute(
        f"""
        WITH touched AS (
            SELECT t.learner, t.lesson FROM {query.rows("lesson_starts")} WHERE {query.in_track()}
            UNION
            SELECT t.learner, t.lesson FROM {query.rows("lesson_results")} WHERE {query.in_track()}
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
        f"SELECT t.lesson, COUNT(DISTINCT t.learner) FROM {query.rows('lesson_results')}"
        f" WHERE {query.in_track()} GROUP BY t.lesson",
        params,
    ).fetchall())  # fmt: skip
    steps = tuple(FunnelStep(lesson.id, lesson.title, started.get(lesson.id, 0), finished.get(lesson.id, 0))
                  for lesson in track.lessons)  # fmt: skip
    return learners, steps


def _scores(db: Connection, track: Track, query: _Query,
            params: dict[str, Any]) -> tuple[QuizScores, ...]:  # fmt: skip
    """Mean and median over every finished run of each quiz, a run's score being score/total in percent."""
    rows = db.execute(
        f"SELECT t.lesson, t.score, t.total, COUNT(*) FROM {query.rows('lesson_results')}"
        f" WHERE {query.in_track()} AND t.total > 0 GROUP BY t.lesson, t.score, t.total",
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


def _hardest(db: Connection, track: Track, query: _Query,
             params: dict[str, Any]) -> tuple[HardQuestion, ...]:  # fmt: skip
    """Questions with at least ``MIN_ATTEMPTS`` answers, the lowest share of right answers first."""
    rows = db.execute(
        f"SELECT t.lesson, t.question, t.chosen, t.correct, COUNT(*) FROM {query.rows('quiz_attempts')}"
        f" WHERE {query.in_track()} GROUP BY t.lesson, t.question, t.chosen, t.correct",
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


def _gaps(db: Connection, track: Track, query: _Query,
          params: dict[str, Any]) -> tuple[ContentGap, ...]:  # fmt: skip
    """Refused questions in the track's scope, grouped by closest section, with the newest as examples."""
    refused = query.refused()
    groups = db.execute(
        f"{refused} SELECT closest, COUNT(*), COUNT(DISTINCT learner) FROM refused GROUP BY closest", params
    ).fetchall()
    newest: dict[str | None, list[str]] = defaultdict(list)
    for closest, question in db.execute(
        f"""{refused}
        SELECT closest, question FROM (
            SELECT closest, question, ROW_NUMBER() OVER (PARTITION BY closest ORDER BY asked_at DESC, id DESC) AS n
            FROM refused
        ) AS ranked WHERE n <= :examples ORDER BY closest, n
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


def _activity(db: Connection, query: _Query, params: dict[str, Any], now: float) -> tuple[WeekActivity, ...]:
    """Per ISO week of the last ``WEEKS``: learners active on any day of it, and quiz answers in the track."""
    mondays = week_starts(now)
    first, after = mondays[0], mondays[-1] + dt.timedelta(weeks=1)
    since = dt.datetime.combine(first, dt.time(), dt.UTC).timestamp()
    # :monday is :first for the week arithmetic: a parameter of its own, as PostgreSQL gives one parameter one type
    window = {**params, "first": first.isoformat(), "monday": first.isoformat(), "after": after.isoformat(), "since": since,
              "until": since + len(mondays) * _WEEK_SECONDS, "week": _WEEK_SECONDS}  # fmt: skip
    # Weeks are counted from the first Monday by arithmetic (cheaper than date() on every row): n is mondays[n].
    active = dict(db.execute(
        f"SELECT {query.sql['week_of_day']} AS n, COUNT(DISTINCT t.learner)"
        f" FROM {query.rows('activity')} WHERE t.day >= :first AND t.day < :after GROUP BY n",
        window,
    ).fetchall())  # fmt: skip
    answers = dict(db.execute(
        f"SELECT {query.sql['week_of_time']} AS n, COUNT(*)"
        f" FROM {query.rows('quiz_attempts')} WHERE {query.in_track()} AND t.answered_at >= :since AND t.answered_at < :until GROUP BY n",
        window,
    ).fetchall())  # fmt: skip
    return tuple(WeekActivity(week_label(monday), monday.isoformat(), active.get(n, 0), answers.get(n, 0))
                 for n, monday in enumerate(mondays))  # fmt: skip
