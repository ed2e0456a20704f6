"""What the features that bring learners back cost per turn and per check, at community scale.

1. Key terms: every typed message that is not a command is matched against the key terms offered (before
   anything goes to the model), so its cost is paid on every question. Timed over the bundled track's terms
   and over a synthetic 200-lesson set (1,600 random terms), for phrases that match, match with a typo, and
   do not match at all.
2. Reminders: one scheduler check reads every learner with reminders on and decides who is due. Timed with
   N learners opted in across 12 timezones (a real SQLite store in a throw-away folder, a sender that sends
   nothing), for a check where a twelfth of them are due and the next, where nobody is; and how long the
   event loop was held meanwhile (the check runs on a worker thread, the sends on the loop).
3. Leaderboard: the week's board of a community with N members (all opted in, a few lessons each).

    python bench/comeback.py               # N = 10,000
    python bench/comeback.py --learners 50000
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.core.engine import Engine  # noqa: E402
from bot.core.lessons import Lesson, Section, Track  # noqa: E402
from bot.core.localtime import local_time  # noqa: E402
from bot.core.messages import Incoming, Reply  # noqa: E402
from bot.core.reminders import Delivery, ReminderScheduler  # noqa: E402
from bot.core.terms import KeyTerms  # noqa: E402
from bot.knowledge.reader import read_knowledge  # noqa: E402
from bot.store.database import Database  # noqa: E402
from bot.store.progress import SqlProgressStore  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ZONES = ["UTC", "Europe/Berlin", "Europe/London", "America/New_York", "America/Los_Angeles", "America/Sao_Paulo",
         "Asia/Tokyo", "Asia/Kolkata", "Asia/Shanghai", "Australia/Sydney", "Africa/Lagos", "Pacific/Auckland"]  # fmt: skip


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return f"p50 {pick(0.5):8.3f}  p99 {pick(0.99):8.3f}  max {ordered[-1] * 1000:8.3f} ms"


def synthetic_tracks(lessons: int) -> list[Track]:
    """``lessons`` lessons of 8 made-up key terms each: one to three random words of 3-10 letters (seeded)."""
    chance = random.Random(14)

    def word() -> str:
        return "".join(chance.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(chance.randint(3, 10)))

    made = []
    for n in range(lessons):
        terms = tuple(
            (" ".join(word() for _ in range(chance.randint(1, 3))), "A made-up definition.") for _ in range(8)
        )
        made.append(Lesson(f"l{n}", f"Lesson {n}", 5, "", (Section("s", "S", "text"),), key_terms=terms))
    return [Track("synthetic", "Synthetic", "", tuple(made))]


def time_terms() -> None:
    print("1. key terms: one match per typed message")
    bundled = [r.track for r in read_knowledge(REPO / "knowledge") if r.track]
    synthetic = synthetic_tracks(200)
    exact = synthetic[0].lessons[100].key_terms[3][0]  # and the same with two letters swapped
    for name, tracks, phrases in (
        ("bundled (28 terms)", bundled, ["soft targets", "sfot targets", "why is the sky blue today"]),
        ("synthetic (1,600 terms)", synthetic, [exact, exact[:2] + exact[3] + exact[2] + exact[4:],
                                                 "why is the sky blue today"]),
    ):  # fmt: skip
        terms = KeyTerms(tracks)
        offered = [t.id for t in tracks]
        for phrase in phrases:
            samples = []
            for _ in range(300):
                started = time.perf_counter()
                terms.find(phrase, offered)
                samples.append(time.perf_counter() - started)
            print(f"   {name:24s} {phrase!r:30s} {percentiles(samples)}")


async def heartbeat(stalls: list[float], every: float = 0.001) -> None:
    """Wake every ``every`` s and record how late each wake-up was: how long the event loop was held."""
    while True:
        due = time.perf_counter() + every
        await asyncio.sleep(every)
        stalls.append(max(0.0, time.perf_counter() - due))


async def time_reminders(learners: int) -> None:
    print(f"\n2. reminders: one scheduler check, {learners:,} learners opted in across {len(ZONES)} timezones")
    with tempfile.TemporaryDirectory() as folder:
        database = Database(Path(folder) / "p.sqlite3")
        store = SqlProgressStore(database)
        now = 1_800_000_000.0
        tracks = {t.id: t for r in read_knowledge(REPO / "knowledge") if (t := r.track)}
        with database.transaction() as connection:
            for n in range(learners):
                zone = ZONES[n % len(ZONES)]
                at = local_time(now, zone)
                remind_at = (at.hour * 60 + at.minute + 1) % 1440 if n % len(ZONES) else at.hour * 60  # 1 in 12 due
                connection.execute(
                    "INSERT INTO learner_settings (learner, timezone, remind, remind_at, leaderboard, display_name)"
                    " VALUES (?, ?, 1, ?, 0, '')",
                    (f"bench:{n}", zone, remind_at),
                )
                connection.execute(
                    "INSERT INTO review_cards (learner, track, lesson, question, state, due) VALUES (?, ?, ?, 0, '{}', ?)",
                    (f"bench:{n}", "ai-foundations", "distillation", now - 3600))  # fmt: skip
        engine = Engine(tracks, store, clock=lambda: now)

        async def nothing(user: str, reply: Reply) -> Delivery:
            return Delivery.SENT

        scheduler = ReminderScheduler(engine.comeback, default_quiet=(0, 0), clock=lambda: now)
        scheduler.add_sender("bench", nothing)
        for label in ("a check that sends reminders", "the next check (all sent already)"):
            stalls: list[float] = []
            beating = asyncio.create_task(heartbeat(stalls))
            started = time.perf_counter()
            sent = await scheduler.tick()
            took = time.perf_counter() - started
            beating.cancel()
            print(
                f"   {label}: {len(sent):,} sent in {took * 1000:7.1f} ms; "
                f"longest the event loop was held meanwhile: {max(stalls, default=0) * 1000:5.1f} ms"
            )
        database.close()


def time_leaderboard(members: int) -> None:
    print(f"\n3. leaderboard: a community of {members:,} opted-in members")
    with tempfile.TemporaryDirectory() as folder:
        database = Database(Path(folder) / "p.sqlite3")
        store = SqlProgressStore(database)
        now = 1_800_000_000.0
        with database.transaction() as connection:
            for n in range(members):
                learner = f"bench:{n}"
                connection.execute("INSERT INTO community_members VALUES ('bench:g', ?, ?)", (learner, now))
                connection.execute("INSERT INTO learner_settings (learner, remind, remind_at, leaderboard, display_name)"
                                   " VALUES (?, 0, 1140, 1, ?)", (learner, f"Learner {n}"))  # fmt: skip
                for k in range(n % 4):
                    connection.execute("INSERT INTO lesson_results (learner, track, lesson, score, total, completed_at)"
                                       " VALUES (?, 't', ?, 1, 1, ?)", (learner, f"l{k}", now - k * 86400))  # fmt: skip
                    connection.execute("INSERT OR IGNORE INTO activity VALUES (?, date(?, 'unixepoch'))",
                                       (learner, now - k * 86400))  # fmt: skip
        engine = Engine({}, store, clock=lambda: now)
        incoming = Incoming("bench", "0", "g", text="leaderboard", is_direct=False)
        samples = []
        for _ in range(5):
            started = time.perf_counter()
            replies = asyncio.run(engine.replies(incoming))
            samples.append(time.perf_counter() - started)
        print(
            f"   one 'leaderboard' turn: {statistics.median(samples) * 1000:8.1f} ms (median of 5); "
            f"first line: {replies[0].text.splitlines()[1]}"
        )
        database.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--learners", type=int, default=10_000)
    options = parser.parse_args()
    time_terms()
    asyncio.run(time_reminders(options.learners))
    time_leaderboard(options.learners)


if __name__ == "__main__":
    main()
