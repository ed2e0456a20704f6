"""Moderators' insights: the numbers from a hand-seeded database, community filtering, and that no learner shows."""

from __future__ import annotations

import csv
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import bot.cli
import bot.store.database
from bot.core.engine import Engine
from bot.core.insights import (
    MIN_ASKERS_FOR_EXAMPLES,
    ContentGap,
    FunnelStep,
    HardQuestion,
    Insights,
    QuizScores,
    TrackNotFound,
    WeekActivity,
    find_track,
    summary_text,
)
from bot.core.lessons import Lesson, Question, Section, Track
from bot.core.ports import LearnerSettings, LessonResult, Position, QuestionRecord, QuizAttempt
from bot.insights.chat import ChatInsights
from bot.insights.report import write_report
from bot.store.database import Database
from bot.store.insights import SqlInsights
from bot.store.progress import SqlProgressStore
from bot.store.question_log import SqlQuestionLog
from bot.store.sql import SqlDatabase
from tests.engine_driver import Learner

REPO = Path(__file__).resolve().parents[2]
DAY = 86400.0
W10 = 1709510400.0  # Monday 2024-03-04 00:00 UTC: ISO week 2024-W10
W11 = W10 + 7 * DAY  # Monday 2024-03-11: 2024-W11
NOW = W11 + 2.5 * DAY  # Wednesday 2024-03-13 12:00 UTC
CLASS = "discord:500"  # the community the tests look at
OTHER = "discord:600"

# Learner keys and display names: none of them may appear in anything insights produce.
A, B, C, F, G = (f"telegram:9000{n}" for n in range(1, 6))
D = "discord:80001"  # a member of the other community only
NAMES = {A: "Alice Quuxley", B: "Bob Zorblatt", C: "Carol Vexworth", D: "Dave Nonmember", F: "Fay Plumtree",
         G: "Gus Wobbleton"}  # fmt: skip

TRACK = Track("t", "Test track", "", (
    Lesson("intro", "Intro lesson", 5, "p", (Section("basics", "The basics", "text"),), quiz=(
        Question("Which is right?", ("right", "wrong one", "wrong two"), 0),
        Question("And this one?", ("no", "nope", "yes"), 2),
    )),
    Lesson("middle", "Middle lesson", 5, "p", (Section("deep", "Deep dive", "text"),), quiz=(
        Question("Middle question?", ("a", "b"), 0),
    )),
    Lesson("end", "Last lesson", 5, "p", (Section("wrap", "Wrap up", "text"),)),
))  # fmt: skip


def _run(store: SqlProgressStore, learner: str, lesson: str, run: int, chosen: list[int], at: float,
         finish: bool = True) -> None:  # fmt: skip
    """A quiz run through the store's API, answer by answer, finished with its result."""
    quiz = TRACK.lesson(lesson).quiz  # type: ignore[union-attr]
    for number, pick in enumerate(chosen):
        attempt = QuizAttempt("t", lesson, run, number, pick, pick == quiz[number].correct_index, at + number)
        last = finish and number == len(chosen) - 1
        right = sum(p == q.correct_index for p, q in zip(chosen, quiz, strict=False))
        result = LessonResult("t", lesson, right, len(quiz), at + number) if last else None
        store.save(learner, Position(), at=at + number, attempt=attempt, result=result)


@pytest.fixture
def database(sql_database: SqlDatabase) -> SqlDatabase:
    """A database of each kind with known rows: every figure below is worked out by hand from them."""
    return seeded(sql_database)


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Iterator[Database]:
    """The same rows in a SQLite file, whose query plans can be read."""
    db = Database(tmp_path / "tutorbot.sqlite3")
    seeded(db)
    yield db
    db.close()


def seeded(db: SqlDatabase) -> SqlDatabase:
    """``db`` with the known rows."""
    store, log = SqlProgressStore(db), SqlQuestionLog(db)
    for learner in (A, B, C, F, G):
        store.note_member(CLASS, learner, W11)
    store.note_member(OTHER, D, W11)
    for learner, name in NAMES.items():
        store.save_learner_settings(learner, LearnerSettings(display_name=name, leaderboard=True))
    # openings (the funnel's first step); C finished lessons without a recorded opening
    for learner in (A, B, F, G, D):
        store.save(learner, Position(), at=W11 + DAY, started=("t", "intro"))
    store.save(A, Position(), at=W11 + DAY, started=("t", "middle"))
    # intro quiz runs: intro q1's right answer is 0, q2's is 2
    _run(store, A, "intro", 1, [1, 2], W11 + DAY)  # 1/2 = 50%
    _run(store, B, "intro", 1, [1, 0], W11 + DAY)  # 0/2 = 0%
    _run(store, B, "intro", 2, [0, 2], W11 + 2 * DAY)  # 2/2 = 100%
    _run(store, C, "intro", 1, [0, 2], W10 + DAY)  # 2/2 = 100%, in the week before
    _run(store, F, "intro", 1, [2, 2], W11 + DAY)  # 1/2 = 50%
    _run(store, D, "intro", 1, [2, 0], W11 + DAY)  # not a member: 0/2
    _run(store, D, "intro", 2, [2, 2], W11 + DAY)  # 1/2
    _run(store, A, "middle", 1, [1], W11 + DAY, finish=False)  # one answer: too few to rank
    store.save(C, Position(), at=W11 + DAY, result=LessonResult("t", "end", 0, 0, W11 + DAY))  # no quiz
    store.save(B, Position(), at=W11, result=LessonResult("other", "x", 1, 1, W11))  # another track
    for learner, day in (
        (A, "2024-03-04"),
        (A, "2024-03-06"),
        (B, "2024-03-05"),
        (D, "2024-03-04"),
        (A, "2023-12-01"),
    ):  # the last one is older than the 12 weeks
        store.add_active_day(learner, day)
    asked = [  # oldest first
        (A, "t", ("t/intro#basics",), True, "what is foo?"),
        (B, "t", ("t/intro#basics",), True, "<b>bold</b> & co?"),
        (F, None, ("t/middle#deep",), True, "how deep is deep?"),
        (G, "t", (), True, "off topic?"),
        (A, "other", ("other/x#y",), True, "another track's question?"),
        (B, "t", ("t/intro#basics",), False, "an answered question?"),
        (G, "t", ("other/x#y",), True, "closest elsewhere?"),
        (C, "t", ("t/intro#basics",), True, "and *baz*?"),
        (D, "t", ("t/intro#basics",), True, "a non-member's question?"),
    ]  # fmt: skip
    for learner, track, sections, refused, text in asked:
        log.record(QuestionRecord(text, track, None, refused, "test", sections, learner))
    return db


def _insights(database: SqlDatabase, community: str | None) -> Insights:
    return SqlInsights(database).insights(TRACK, community, NOW)


def test_funnel_counts_openings_and_results_per_lesson_in_track_order(database: SqlDatabase) -> None:
    insights = _insights(database, CLASS)
    # intro: opened by A, B, F, G and finished by C without an opening; finished by A, B, C, F
    assert insights.funnel == (FunnelStep("intro", "Intro lesson", 5, 4), FunnelStep("middle", "Middle lesson", 1, 0),
                               FunnelStep("end", "Last lesson", 1, 1))  # fmt: skip
    assert insights.learners == 5


def test_quiz_scores_are_mean_and_median_over_finished_runs(database: SqlDatabase) -> None:
    insights = _insights(database, CLASS)
    # intro runs: 50, 0, 100, 100, 50 -> mean 60, median 50; the middle quiz was never finished; "end" has none
    assert insights.scores == (QuizScores("intro", "Intro lesson", 5, 60.0, 50.0),
                               QuizScores("middle", "Middle lesson", 0, None, None))  # fmt: skip


def test_hardest_question_comes_first_with_its_most_picked_wrong_option(database: SqlDatabase) -> None:
    insights = _insights(database, CLASS)
    # intro q1: 5 answers, 2 right (B's second run, C); "wrong one" picked by A and B, "wrong two" by F
    # intro q2: 5 answers, 4 right; the middle question has 1 answer, below the minimum
    assert insights.hardest == (
        HardQuestion("intro", "Intro lesson", 1, "Which is right?", 5, 2, "wrong one", 2),
        HardQuestion("intro", "Intro lesson", 2, "And this one?", 5, 4, "no", 1),
    )
    assert insights.hardest[0].percent_correct == 40.0


def test_content_gaps_group_refusals_by_closest_section_newest_examples_first(database: SqlDatabase) -> None:
    insights = _insights(database, CLASS)
    assert insights.gaps == (
        ContentGap("t/intro#basics", "The basics", "Intro lesson", 3,
                   ("and *baz*?", "<b>bold</b> & co?", "what is foo?")),
        # nothing close, or the closest section is in another track; all asked by G: no example shown
        ContentGap(None, "No close section", "", 2, (), examples_hidden=True),
        # asked in no track, but its closest section is in this one
        ContentGap("t/middle#deep", "Deep dive", "Middle lesson", 1, (), examples_hidden=True),
    )  # fmt: skip
    assert MIN_ASKERS_FOR_EXAMPLES == 3  # the basics group has exactly three askers


def test_activity_counts_active_learners_and_quiz_answers_per_iso_week(database: SqlDatabase) -> None:
    insights = _insights(database, CLASS)
    assert len(insights.activity) == 12
    assert insights.activity[0].week == "2023-W52" and insights.activity[-1] == WeekActivity("2024-W11", "2024-03-11",
                                                                                           5, 9)  # fmt: skip
    # W10: A and B's extra days, C's quiz run; A's answers W11: 2 + 1, B's 4, F's 2; C's 2 answers are in W10
    assert insights.activity[-2] == WeekActivity("2024-W10", "2024-03-04", 3, 2)
    assert all(week.active_learners == 0 and week.quiz_attempts == 0 for week in insights.activity[:-2])


def test_a_non_member_counts_only_for_every_learner(database: SqlDatabase) -> None:
    everyone = _insights(database, None)
    assert everyone.funnel[0] == FunnelStep("intro", "Intro lesson", 6, 5)
    assert everyone.learners == 6
    assert everyone.scores[0].runs == 7  # D's two runs: 0% and 50%
    assert everyone.hardest[0].attempts == 7 and everyone.hardest[0].wrong_option == "wrong two"  # D picked it twice
    assert everyone.gaps[0].questions == 4 and everyone.gaps[0].examples[0] == "a non-member's question?"
    assert everyone.activity[-1].active_learners == 6 and everyone.activity[-1].quiz_attempts == 13
    other = _insights(database, OTHER)
    assert other.learners == 1 and other.funnel[0] == FunnelStep("intro", "Intro lesson", 1, 1)
    assert _insights(database, "discord:nobody").empty


def _query_plans(database: Database, community: str | None, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The plan SQLite chose for each query the insights ran (from the statements as run, values filled in)."""
    statements: list[str] = []
    real_connect = sqlite3.connect

    def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection = real_connect(*args, **kwargs)
        connection.set_trace_callback(statements.append)
        return connection

    monkeypatch.setattr(bot.store.database.sqlite3, "connect", traced)
    _insights(database, community)
    monkeypatch.undo()
    queries = [sql for sql in statements if sql.lstrip().upper().startswith(("SELECT", "WITH"))]
    with closing(sqlite3.connect(database.path)) as connection:
        return [" | ".join(row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {sql}")) for sql in queries]


def test_queries_read_through_indexes_and_a_community_by_its_members(sqlite_database: Database,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    database = sqlite_database  # SQLite's plans: PostgreSQL chooses its own by the tables' statistics
    # the host's queries search the track's rows through migration 5's indexes, never a whole table
    host = _query_plans(database, None, monkeypatch)
    assert len(host) == 8 and not [plan for plan in host if re.search(r"SCAN t\b", plan)]
    assert any("quiz_attempts_by_question (track=?)" in plan for plan in host)
    # a community's: its members first, then each member's rows by learner; searching the whole track once per
    # member (an index on track alone) took minutes for 2,000 members
    community = _query_plans(database, CLASS, monkeypatch)
    joined = [plan for plan in community if "SEARCH m " in plan]
    assert len(joined) == 6 and all(re.search(r"SEARCH t .*\(learner=\?", plan) for plan in joined), joined
    assert not [plan for plan in community if re.search(r"SEARCH t .*\(track=\?\)", plan)]


def test_summary_is_short_markdown_with_learner_text_escaped(database: SqlDatabase) -> None:
    text = summary_text(_insights(database, CLASS))
    assert "1. Intro lesson: 5 → 4" in text
    assert "mean 60% · median 50% (5 runs)" in text
    assert "“Which is right?” (Intro lesson): 40% of 5 answers right; most picked wrong: “wrong one” (2×)" in text
    assert r"The basics · Intro lesson: 3 refused, e.g. “and \*baz\*?”" in text
    assert "No close section: 2 refused" in text
    assert "• 2024-W11: 5 active · 9 quiz answers" in text


def test_an_empty_class_gets_a_friendly_summary(database: SqlDatabase) -> None:
    text = summary_text(_insights(database, "discord:nobody"))
    assert "No learner here has opened a lesson of this track or asked about it yet." in text


def test_no_learner_id_or_name_appears_in_summary_csv_or_html(database: SqlDatabase, tmp_path: Path) -> None:
    outputs = []
    for community in (CLASS, None):
        insights = _insights(database, community)
        outputs.append(summary_text(insights))
        for path in write_report(insights, tmp_path / str(community), NOW):
            # the charts are checked as pictures elsewhere; their base64 could hold any digits by chance
            outputs.append(re.sub(r"data:image/png;base64,[^\"]+", "", path.read_text(encoding="utf-8")))
    everything = "\n".join(outputs)
    assert "what is foo?" in everything  # the learners' text is there, so the check below looks at real output
    for learner, name in NAMES.items():
        for word in (learner, learner.split(":")[1], name, name.split()[0], name.split()[1]):
            assert word not in everything, word


def test_report_writes_the_same_numbers_as_csv_and_escaped_html(database: SqlDatabase, tmp_path: Path) -> None:
    written = write_report(_insights(database, CLASS), tmp_path / "out", NOW)
    assert sorted(p.name for p in written) == ["activity.csv", "content_gaps.csv", "funnel.csv",
                                               "hardest_questions.csv", "index.html", "quiz_scores.csv"]  # fmt: skip
    with (tmp_path / "out" / "funnel.csv").open(newline="", encoding="utf-8") as file:
        assert list(csv.reader(file))[1] == ["1", "intro", "Intro lesson", "5", "4"]
    with (tmp_path / "out" / "content_gaps.csv").open(newline="", encoding="utf-8") as file:
        gaps = list(csv.DictReader(file))
    assert gaps[0]["refused_questions"] == "3" and gaps[0]["example_2"] == "<b>bold</b> & co?"
    page = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co?" in page and "<b>bold</b>" not in page
    assert page.count('src="data:image/png;base64,') == 2


def test_csv_text_a_spreadsheet_would_run_is_kept_as_text(tmp_path: Path) -> None:
    formula = '=HYPERLINK("http://example.invalid","x")'
    gap = ContentGap("t/intro#basics", "The basics", "Intro lesson", 3, (formula, "-1 or +1?", "fine?"))
    insights = Insights("t", "Test track", None, 0, (), (), (), (gap,), ())
    write_report(insights, tmp_path, NOW)
    with (tmp_path / "content_gaps.csv").open(newline="", encoding="utf-8") as file:
        row = list(csv.DictReader(file))[0]
    assert (row["example_1"], row["example_2"], row["example_3"]) == ("'" + formula, "'-1 or +1?", "fine?")


def test_a_moderator_gets_the_summary_and_both_charts_through_the_engine(database: SqlDatabase) -> None:
    engine = Engine({TRACK.id: TRACK}, SqlProgressStore(database),
                    insights=ChatInsights(SqlInsights(database), clock=lambda: NOW))  # fmt: skip
    moderator = Learner(engine, "77", CLASS.split(":")[1], is_direct=False, is_moderator=True, platform="discord")
    [reply] = moderator.say("insights t")
    assert (
        reply.text.startswith("📊 **Insights · Test track** (this community)")
        and "1. Intro lesson: 5 → 4" in reply.text
    )
    assert [(f.filename, f.image, f.data[:8]) for f in reply.files] == [
        ("funnel.png", True, b"\x89PNG\r\n\x1a\n"), ("hardest.png", True, b"\x89PNG\r\n\x1a\n")]  # fmt: skip
    # where nothing happened yet, the text says so and no empty pictures follow it
    elsewhere = Learner(engine, "78", "999", is_direct=False, is_moderator=True, platform="discord")
    [reply] = elsewhere.say("insights t")
    assert "No learner here has opened a lesson" in reply.text and reply.files == ()


def test_find_track_names_the_known_tracks_when_the_id_is_unknown() -> None:
    tracks = {"b-track": TRACK, "a-track": TRACK}
    assert find_track(tracks, "a-track") is TRACK
    with pytest.raises(TrackNotFound, match="there is no track 'nope'; the known tracks are: a-track, b-track"):
        find_track(tracks, "nope")


def test_report_command_writes_the_page_and_csv_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUTORBOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TUTORBOT_KNOWLEDGE_DIR", str(REPO / "knowledge"))
    result = CliRunner().invoke(bot.cli.app, ["report", "--track", "ai-foundations", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "r").iterdir()} == {"index.html", "funnel.csv", "quiz_scores.csv",
                                                           "hardest_questions.csv", "content_gaps.csv", "activity.csv"}  # fmt: skip
    with (tmp_path / "r" / "funnel.csv").open(newline="", encoding="utf-8") as file:
        assert len(list(csv.reader(file))) == 1 + 4  # the bundled track's four lessons, nobody started yet


def test_report_command_lists_the_known_tracks_for_an_unknown_one(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("TUTORBOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TUTORBOT_KNOWLEDGE_DIR", str(REPO / "knowledge"))
    result = CliRunner().invoke(bot.cli.app, ["report", "--track", "nope", "--out", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert "there is no track 'nope'; the known tracks are: ai-foundations" in result.output
    assert not (tmp_path / "r").exists()


def test_report_command_finds_a_track_a_community_uploaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.knowledge.library import LibraryFiles
    from bot.store.track_versions import SqlTrackVersions
    from tests.helpers import write_track

    monkeypatch.setenv("TUTORBOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TUTORBOT_KNOWLEDGE_DIR", str(REPO / "knowledge"))
    database = Database(tmp_path / "data" / "tutorbot.sqlite3")
    library = LibraryFiles(tmp_path / "data" / "library", SqlTrackVersions(database))
    published = library.publish_path(
        "discord:42", "ml-basics", write_track(tmp_path / "src", "ml-basics", lessons=3), "mod"
    )
    database.close()
    assert isinstance(published, tuple)
    out = tmp_path / "r"
    args = ["report", "--track", "ml-basics", "--community", "discord:42", "--out", str(out)]
    result = CliRunner().invoke(bot.cli.app, args)
    assert result.exit_code == 0, result.output
    with (out / "funnel.csv").open(newline="", encoding="utf-8") as file:
        assert len(list(csv.reader(file))) == 1 + 3
