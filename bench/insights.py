"""How long computing moderators' insights takes at community scale (the goal: at most 1 s).

Seeds a throw-away SQLite database (deterministic random) with N learners on a 12-lesson track (and a second
track whose rows every query must skip): lesson openings, finished lessons, about 10 quiz answers per learner,
questions (a third refused), 12 weeks of active days, and communities (one of a fifth of the learners). Then
times ``SqlInsights.insights`` for every learner (the host's report) and for the big community, several runs
each, on a copy of the database without migration 5 (no indexes for insights) and one with it; plus the charts.

    python bench/insights.py                      # 10,000 learners, ~100,000 quiz answers
    python bench/insights.py --learners 50000 --runs 9
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.core.lessons import Lesson, Question, Section, Track  # noqa: E402
from bot.insights.charts import chart_attachments  # noqa: E402
from bot.store.database import Database  # noqa: E402
from bot.store.insights import SqlInsights  # noqa: E402
from bot.store.migrations import MIGRATIONS  # noqa: E402

NOW = 1_767_225_600.0  # 2026-01-01 00:00 UTC: a fixed "now" keeps every run the same
DAY = 86_400.0
WEEKS = 12
BIG = "discord:1"  # the community of a fifth of the learners


def bench_track(track_id: str = "bench", lessons: int = 12, questions: int = 6) -> Track:
    """A synthetic track: ``lessons`` lessons of three sections and ``questions`` four-option questions."""
    return Track(track_id, "Bench track", "", tuple(
        Lesson(f"l{n}", f"Lesson {n}: a title long enough to be cut in a chart label", 10, "premise",
               tuple(Section(f"s{k}", f"Section {k}", "text") for k in range(3)),
               quiz=tuple(Question(f"Question {q} of lesson {n}?", ("a", "b", "c", "d"), q % 4)
                          for q in range(questions)))
        for n in range(lessons)))  # fmt: skip


def seed(db: Database, track: Track, learners: int, rng: random.Random) -> dict[str, int]:
    """Fill the database like a busy host; returns the row count of each table."""
    rows: dict[str, list[tuple]] = {name: [] for name in
                                    ("starts", "results", "attempts", "questions", "activity", "members")}  # fmt: skip
    start = NOW - WEEKS * 7 * DAY
    for n in range(learners):
        learner = f"{'discord' if n % 2 else 'telegram'}:{n}"
        community = BIG if n % 5 == 0 else f"discord:{2 + n % 40}"
        rows["members"].append((community, learner, NOW))
        if n % 17 == 0:  # some learners are in two communities
            rows["members"].append((f"telegram:-{n % 7}", learner, NOW))
        track_id = track.id if rng.random() < 0.8 else "other"
        at = start + rng.random() * WEEKS * 7 * DAY * 0.8
        depth = min(len(track.lessons), 1 + int(rng.expovariate(0.8)))
        run = 0
        for lesson in track.lessons[:depth]:
            rows["starts"].append((learner, track_id, lesson.id, at))
            finished = rng.random() < 0.75
            for _ in range(1 + (rng.random() < 0.15) if finished else 1):
                run += 1
                answered = len(lesson.quiz) if finished else rng.randrange(len(lesson.quiz))
                right = 0
                for q in range(answered):
                    at += rng.random() * 600
                    correct = rng.random() < 0.35 + 0.1 * (q % 6)
                    right += correct
                    chosen = lesson.quiz[q].correct_index if correct else (lesson.quiz[q].correct_index + 1 + rng.randrange(3)) % 4  # fmt: skip
                    rows["attempts"].append((learner, track_id, lesson.id, run, q, chosen, int(correct), at))
                if finished:
                    rows["results"].append((learner, track_id, lesson.id, right, len(lesson.quiz), at))
            at += rng.random() * 3 * DAY
        for _ in range(rng.randrange(4)):
            lesson = rng.choice(track.lessons)
            refused = rng.random() < 0.33
            section = f"{track_id}/{lesson.id}#s{rng.randrange(3)}" if not refused or rng.random() < 0.8 else None
            rows["questions"].append((start + rng.random() * WEEKS * 7 * DAY, learner, track_id, lesson.id,
                                      f"what about topic {rng.randrange(10_000)}?", int(refused), "bench",
                                      json.dumps([section] if section else []), "{}"))  # fmt: skip
        for day in rng.sample(range(WEEKS * 7), rng.randrange(1, 16)):
            rows["activity"].append((learner, time.strftime("%Y-%m-%d", time.gmtime(start + day * DAY))))
    inserts = {
        "starts": "INSERT OR IGNORE INTO lesson_starts VALUES (?, ?, ?, ?)",
        "results": "INSERT INTO lesson_results (learner, track, lesson, score, total, completed_at) VALUES (?, ?, ?, ?, ?, ?)",
        "attempts": "INSERT INTO quiz_attempts (learner, track, lesson, quiz_run, question, chosen, correct, answered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        "questions": "INSERT INTO questions (asked_at, learner, track, lesson, question, refused, reason, sections, timings) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        "activity": "INSERT OR IGNORE INTO activity VALUES (?, ?)",
        "members": "INSERT OR IGNORE INTO community_members VALUES (?, ?, ?)",
    }  # fmt: skip
    with db.transaction() as connection:
        for name, sql in inserts.items():
            connection.executemany(sql, rows[name])
    return {name: len(found) for name, found in rows.items()}


def timed(work: dict[str, Callable[[], object]], runs: int) -> dict[str, tuple[float, float]]:
    """Median and max seconds of each piece of work over ``runs`` rounds (after a warm-up round).

    The pieces take turns within each round, so a busy moment of a shared machine slows them alike.
    """
    seconds: dict[str, list[float]] = {name: [] for name in work}
    for round_ in range(runs + 1):
        for name, call in work.items():
            began = time.perf_counter()
            call()
            if round_:
                seconds[name].append(time.perf_counter() - began)
    return {name: (statistics.median(found), max(found)) for name, found in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--learners", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    track = bench_track()
    with tempfile.TemporaryDirectory() as folder:
        before, after = Path(folder) / "before.sqlite3", Path(folder) / "after.sqlite3"
        db = Database(before, migrations=MIGRATIONS[:4])  # the schema before the insights' indexes
        counts = seed(db, track, args.learners, random.Random(5))
        db.close()
        shutil.copy(before, after)
        print(f"{args.learners:,} learners: " + ", ".join(f"{n:,} {name}" for name, n in counts.items()))
        databases = {"without migration 5": Database(before, migrations=MIGRATIONS[:4]),
                     "with migration 5": Database(after)}  # fmt: skip
        work: dict[str, Callable[[], object]] = {}
        for label, db in databases.items():
            for scope in (None, BIG):
                work[f"{label:<22} {scope or 'every learner':<14}"] = functools.partial(
                    SqlInsights(db).insights, track, scope, NOW)  # fmt: skip
        insights = SqlInsights(databases["with migration 5"]).insights(track, None, NOW)
        work[f"{'both chart PNGs':<37}"] = functools.partial(chart_attachments, insights)
        for name, (median, worst) in timed(work, args.runs).items():
            print(f"{name} median {median * 1000:7.1f} ms   max {worst * 1000:7.1f} ms")
        print(f"(the track's {insights.learners:,} learners, {sum(w.quiz_attempts for w in insights.activity):,}"
              f" quiz answers in the 12 weeks, {len(insights.hardest)} ranked questions, {len(insights.gaps)} gaps)")  # fmt: skip
        for db in databases.values():
            db.close()


if __name__ == "__main__":
    main()
