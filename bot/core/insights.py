"""What moderators learn about a class on one track: plain data, its rules, and the short chat summary.

The numbers are computed by a store (``bot.store.insights``) and drawn by ``bot.insights`` (charts, report);
this module holds what they mean. No learner's id or name is ever part of them: only counts, the track's own
text, and example questions (learner text, shown only when enough different people asked in that group).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

from bot.core.lessons import Track
from bot.core.markup import escape

MIN_ATTEMPTS = 5  # a question is ranked among the hardest only with this many answers (fewer say little)
MIN_ASKERS_FOR_EXAMPLES = 3  # a gap's example questions are shown only when this many people asked in it
EXAMPLES = 3  # example questions kept per gap, newest first
WEEKS = 12  # weeks of activity, the current one last
SUMMARY_LINES = 6  # lines per part of the chat summary; the chart and the report have the rest


@dataclass(frozen=True)
class FunnelStep:
    """One lesson: learners who opened it (or finished it without a recorded opening) and who finished it."""

    lesson: str
    title: str
    started: int
    finished: int


@dataclass(frozen=True)
class QuizScores:
    """A lesson's quiz: every finished run's score as a percentage, averaged over runs (a retake counts again)."""

    lesson: str
    title: str
    runs: int
    mean: float | None  # percent; None without runs
    median: float | None


@dataclass(frozen=True)
class HardQuestion:
    """A quiz question with the share of all its answers that were right, and the wrong option picked most."""

    lesson: str
    lesson_title: str
    number: int  # 1-based, as learners see it
    prompt: str
    attempts: int
    correct: int
    wrong_option: str | None  # None when nobody answered it wrong
    wrong_picks: int

    @property
    def percent_correct(self) -> float:
        """The share of answers that were right, in percent."""
        return 100.0 * self.correct / self.attempts if self.attempts else 0.0


@dataclass(frozen=True)
class ContentGap:
    """Refused questions whose closest section is one place of the track (``section`` None: nothing was close)."""

    section: str | None  # "track/lesson#section"
    heading: str
    lesson_title: str
    questions: int
    examples: tuple[str, ...]  # newest first; empty when too few people asked (``examples_hidden``)
    examples_hidden: bool = False


@dataclass(frozen=True)
class WeekActivity:
    """One ISO week: learners active on any day of it (any track) and quiz answers given in this track."""

    week: str  # "2024-W09"
    start: str  # its Monday, YYYY-MM-DD
    active_learners: int
    quiz_attempts: int


@dataclass(frozen=True)
class Insights:
    """Everything moderators see about one track, for one community (``community`` None: every learner)."""

    track: str
    track_title: str
    community: str | None
    learners: int  # learners who started or finished a lesson of the track
    funnel: tuple[FunnelStep, ...]
    scores: tuple[QuizScores, ...]
    hardest: tuple[HardQuestion, ...]  # every question with at least MIN_ATTEMPTS answers, hardest first
    gaps: tuple[ContentGap, ...]  # largest first
    activity: tuple[WeekActivity, ...]  # oldest first

    @property
    def empty(self) -> bool:
        """True when nothing at all has happened on the track here yet."""
        return not (self.learners or self.gaps or any(w.quiz_attempts for w in self.activity))


class TrackNotFound(LookupError):
    """Insights were asked for a track id that is not published."""

    def __init__(self, track: str, known: Iterable[str]) -> None:
        ids = ", ".join(sorted(known)) or "none (publish a track first)"
        super().__init__(f"there is no track '{track}'; the known tracks are: {ids}")
        self.track = track


def find_track(tracks: dict[str, Track], track_id: str) -> Track:
    """The track with this id among ``tracks`` (published ones by id); raises ``TrackNotFound`` listing the ids."""
    found = tracks.get(track_id)
    if found is None:
        raise TrackNotFound(track_id, tracks)
    return found


def gap(section: str | None, heading: str, lesson_title: str, questions: int, askers: int,
        newest: Iterable[str]) -> ContentGap:  # fmt: skip
    """A content gap, with its example questions only when at least ``MIN_ASKERS_FOR_EXAMPLES`` people asked.

    A class of two must not be able to tell who asked what from a verbatim question; counts are safe.
    """
    hidden = askers < MIN_ASKERS_FOR_EXAMPLES
    return ContentGap(section, heading, lesson_title, questions, () if hidden else tuple(newest)[:EXAMPLES], hidden)


def week_starts(now: float, weeks: int = WEEKS) -> list[dt.date]:
    """The Mondays (UTC) of the last ``weeks`` ISO weeks, oldest first, the week of ``now`` last."""
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    monday = today - dt.timedelta(days=today.weekday())
    return [monday - dt.timedelta(weeks=back) for back in range(weeks - 1, -1, -1)]


def week_label(monday: dt.date) -> str:
    """The ISO week of a day, as ``2024-W09``."""
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


def shorten(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _quoted(text: str, limit: int) -> str:
    # cut first, then escape: an escape sequence is never cut in two
    return f"“{escape(shorten(text, limit))}”"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}%"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _capped(lines: list[str], what: str) -> list[str]:
    """The first ``SUMMARY_LINES`` lines, and how many more there are."""
    more = len(lines) - SUMMARY_LINES
    return lines[:SUMMARY_LINES] + ([f"…and {more} more {what} (see the chart and the report)."] if more > 0 else [])


def _funnel_lines(insights: Insights) -> list[str]:
    return _capped([f"{n}. {shorten(s.title, 40)}: {s.started} → {s.finished}"
                    for n, s in enumerate(insights.funnel, 1)], "lessons")  # fmt: skip


def _score_lines(insights: Insights) -> list[str]:
    lines = [f"• {shorten(s.title, 40)}: mean {_percent(s.mean)} · median {_percent(s.median)} "
             f"({_plural(s.runs, 'run')})" for s in insights.scores if s.runs]  # fmt: skip
    return _capped(lines, "quizzes") or ["No quiz finished yet."]


def _hardest_lines(insights: Insights) -> list[str]:
    lines = []
    for n, q in enumerate(insights.hardest[:3], 1):
        line = (f"{n}. {_quoted(q.prompt, 80)} ({shorten(q.lesson_title, 40)}): "
                f"{q.percent_correct:.0f}% of {q.attempts} answers right")  # fmt: skip
        if q.wrong_option:
            line += f"; most picked wrong: {_quoted(q.wrong_option, 50)} ({q.wrong_picks}×)"
        lines.append(line)
    return lines or [f"No question has {MIN_ATTEMPTS} answers yet."]


def _gap_lines(insights: Insights) -> list[str]:
    lines = []
    for n, found in enumerate(insights.gaps[:3], 1):
        where = f"{shorten(found.heading, 40)} · {shorten(found.lesson_title, 40)}" if found.section else found.heading
        example = f", e.g. {_quoted(found.examples[0], 80)}" if found.examples else ""
        lines.append(f"{n}. {where}: {found.questions} refused{example}")
    return lines or ["No question was refused."]


def summary_text(insights: Insights) -> str:
    """The insights as a short Markdown message: a few lines per part, the top 3 hardest questions and gaps."""
    head = f"📊 **Insights · {insights.track_title}** ({'this community' if insights.community else 'all learners'})"
    if insights.empty:
        return f"{head}\n\nNo learner here has opened a lesson of this track or asked about it yet."
    parts = {
        f"{head}\n{_plural(insights.learners, 'learner')} started this track.": [],
        "**Lessons** (learners who started → finished)": _funnel_lines(insights),
        "**Quiz scores** (each finished quiz as a percentage; mean and median over runs)": _score_lines(insights),
        f"**Hardest questions** (share of all answers that were right; {MIN_ATTEMPTS}+ answers)":
            _hardest_lines(insights),
        "**Content gaps** (questions the tutor couldn't answer, by closest section)": _gap_lines(insights),
        "**Activity** (learners active on any track · quiz answers in this track)": [
            f"• {w.week}: {w.active_learners} active · {w.quiz_attempts} quiz answers" for w in insights.activity[-4:]
        ],
    }  # fmt: skip
    return "\n\n".join("\n".join([title, *lines]) for title, lines in parts.items())
