"""Reminders: opt-in commands, a fake clock across timezones and DST changes, quiet hours, once a day, restarts,
and stopping when a platform refuses."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.core.engine import Engine
from bot.core.localtime import find_timezone, is_quiet, parse_clock, parse_quiet_hours, reminder_day
from bot.core.messages import Reply
from bot.core.ports import LearnerSettings, Position, ReviewCard
from bot.core.reminders import Delivery, ReminderScheduler
from bot.store.progress import SqlProgressStore
from tests.engine_driver import Learner
from tests.unit.test_engine import TRACKS, Clock

QUARTER = 15 * 60


def at(when: str, zone: str) -> float:
    """Seconds since the epoch of a local wall-clock time, e.g. ``at("2026-03-29 03:00", "Europe/Berlin")``."""
    return datetime.fromisoformat(when).replace(tzinfo=ZoneInfo(zone)).timestamp()


class Outbox:
    """A platform's sender that records what it was asked to send and answers as told."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Reply, float]] = []
        self.answer = Delivery.SENT
        self.clock: Clock | None = None

    async def __call__(self, user: str, reply: Reply) -> Delivery:
        if self.answer is Delivery.SENT:
            self.sent.append((user, reply, self.clock.now if self.clock else 0.0))
        return self.answer


@pytest.fixture
def clock() -> Clock:
    return Clock(at("2026-01-14 12:00", "UTC"))


@pytest.fixture
def store(tmp_path: Path) -> SqlProgressStore:
    return SqlProgressStore(tmp_path / "p.sqlite3")


@pytest.fixture
def engine(store: SqlProgressStore, clock: Clock) -> Engine:
    engine = Engine(TRACKS, store, clock=clock)
    engine.comeback.reminder_platforms.add("test")  # as a scheduler with a sender for the test platform would
    return engine


def scheduler_for(engine: Engine, clock: Clock) -> tuple[ReminderScheduler, Outbox]:
    outbox = Outbox()
    outbox.clock = clock
    scheduler = ReminderScheduler(engine.comeback, clock=clock)
    scheduler.add_sender("test", outbox)
    return scheduler, outbox


def due_card(store: SqlProgressStore, learner: str, due: float) -> None:
    store.save(learner, Position(), at=due - 86400 * 3, card=ReviewCard("ai-foundations", "distillation", 0, "{}", due))


def opt_in(store: SqlProgressStore, learner: str, zone: str, remind_at: str = "19:00", **more: object) -> None:
    minutes = parse_clock(remind_at)
    assert minutes is not None
    store.save_learner_settings(learner, LearnerSettings(timezone=zone, remind=True, remind_at=minutes, **more))  # type: ignore[arg-type]


def run_ticks(scheduler: ReminderScheduler, clock: Clock, until: float, step: float = QUARTER) -> None:
    async def ticks() -> None:
        while clock.now <= until:
            await scheduler.tick()
            clock.now += step

    asyncio.run(ticks())


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize(("text", "minutes"), [("19:00", 1140), ("7pm", 1140), ("7:30 am", 450), ("19h30", 1170),
                                               ("0:05", 5), ("12am", 0), ("12 pm", 720), ("24:00", None),
                                               ("13pm", None), ("soon", None)])  # fmt: skip
def test_times_of_day(text: str, minutes: int | None) -> None:
    assert parse_clock(text) == minutes


@pytest.mark.parametrize(("text", "zone"), [("Europe/Berlin", "Europe/Berlin"), ("europe/berlin", "Europe/Berlin"),
                                            ("Berlin", "Europe/Berlin"), ("new york", "America/New_York"),
                                            ("UTC", "UTC"), ("Atlantis", None), ("", None), ("localtime", None),
                                            ("Factory", None)])  # fmt: skip
def test_timezones_by_name_or_city(text: str, zone: str | None) -> None:
    assert find_timezone(text) == zone


def test_quiet_hours_may_wrap_midnight() -> None:
    assert parse_quiet_hours("22:00-08:00") == (1320, 480) == parse_quiet_hours("22 to 8")
    assert [is_quiet(m, (1320, 480)) for m in (1319, 1320, 0, 479, 480)] == [False, True, True, True, False]
    assert [is_quiet(m, (60, 300)) for m in (59, 60, 299, 300)] == [False, True, True, False]
    assert not any(is_quiet(m, (0, 0)) for m in range(0, 1440, 7))  # equal ends: no quiet hours


# ---------------------------------------------------------------- the learner's commands


def test_remind_on_asks_for_the_timezone_first_and_a_city_answers(engine: Engine, store: SqlProgressStore) -> None:
    ada = Learner(engine)
    ada.say("remind on")
    assert "Which timezone are you in?" in ada.text
    ada.say("Berlin")
    assert "Your timezone is Europe/Berlin" in ada.text and "Reminders come at 19:00 your time" in ada.text
    settings = store.learner_settings("test:ada")
    assert (settings.remind, settings.timezone, settings.remind_at) == (True, "Europe/Berlin", 19 * 60)
    assert store.position("test:ada").pending is None
    ada.say("Berlin")  # no longer awaited: an ordinary question (no model here)
    assert "Your timezone" not in ada.text


def test_a_chat_reminders_cannot_reach_says_so_and_stores_nothing(store: SqlProgressStore, clock: Clock) -> None:
    engine = Engine(TRACKS, store, clock=clock)
    scheduler, _outbox = scheduler_for(engine, clock)  # its sender is for the "test" platform only
    kim = Learner(engine, platform="console")
    kim.say("remind on")
    assert "I can't send reminders from this chat" in kim.text and "Which timezone" not in kim.text
    assert store.learner_settings("console:ada") == LearnerSettings()
    ada = Learner(engine)
    ada.say("remind on")
    assert "Which timezone are you in?" in ada.text


def test_turning_reminders_on_in_a_group_says_they_come_privately(engine: Engine) -> None:
    bo = Learner(engine, user_id="bo", conversation="group", is_direct=False)
    bo.say("remind on")
    assert "I must be able to message you privately" in bo.text and "Which timezone are you in?" in bo.text
    assert all(reply.personal for reply in bo.last)


def test_remind_at_sets_the_time_but_not_in_quiet_hours(engine: Engine, store: SqlProgressStore) -> None:
    ada = Learner(engine)
    ada.say("tz Asia/Tokyo")
    ada.say("remind at 7:30pm")
    assert "Reminders are on" in ada.text and "19:30" in ada.text
    ada.say("remind at 23:00")
    assert "is in or just before your quiet hours (22:00–08:00)" in ada.text
    ada.say("remind at 21:50")  # too close: the window before quiet hours must leave the checks time to land
    assert "at least 15 minutes before them" in ada.text
    ada.say("quiet 23:30-06:00")
    ada.say("remind at 23:00")
    assert store.learner_settings("test:ada").remind_at == 23 * 60
    ada.say("stop")
    assert "Reminders are off" in ada.text and store.learner_settings("test:ada").remind is False
    ada.say("/remind sometimes")
    assert "Type 'remind on', 'remind off' or 'remind at 19:00'" in ada.text
    for question in ("remind me of softmax", "remind me what DPO is", "quiet layers?", "leaderboard of models?"):
        assert asyncio.run(engine.is_question(ada.incoming(text=question))), question
    ada.say("tz Atlantis")
    assert "I don't know the timezone “Atlantis”" in ada.text


# ---------------------------------------------------------------- when reminders go


def test_each_learner_is_reminded_once_at_their_own_local_time(engine: Engine, store: SqlProgressStore,
                                                              clock: Clock) -> None:  # fmt: skip
    for learner, zone in (("ber", "Europe/Berlin"), ("nyc", "America/New_York"), ("tok", "Asia/Tokyo")):
        opt_in(store, f"test:{learner}", zone)
        due_card(store, f"test:{learner}", at("2026-01-14 00:00", "UTC"))
    scheduler, outbox = scheduler_for(engine, clock)
    clock.now = at("2026-01-14 00:00", "UTC")
    run_ticks(scheduler, clock, until=at("2026-01-15 12:00", "UTC"))
    sent = {
        (user, datetime.fromtimestamp(when, ZoneInfo("UTC")).strftime("%d %H:%M")) for user, _r, when in outbox.sent
    }
    # Tokyo's 19:00 is 10:00 UTC; Berlin's 18:00 UTC; New York's 00:00 UTC of the next day (so its 13 January
    # reminder goes at the first check); each once per local day.
    assert sent == {("nyc", "14 00:00"), ("tok", "14 10:00"), ("ber", "14 18:00"), ("nyc", "15 00:00"),
                    ("tok", "15 10:00")}  # fmt: skip
    assert len(outbox.sent) == len(sent)
    reply = outbox.sent[0][1]
    assert "1 question is due for review" in reply.text and reply.actions[0] == "review"


def test_a_time_skipped_by_spring_forward_fires_at_the_first_check_after_it(engine: Engine, store: SqlProgressStore,
                                                                            clock: Clock) -> None:  # fmt: skip
    opt_in(store, "test:ada", "Europe/Berlin", "02:30", quiet=(0, 0))  # 2026-03-29: clocks jump 02:00 -> 03:00
    due_card(store, "test:ada", at("2026-03-28 00:00", "UTC"))
    scheduler, outbox = scheduler_for(engine, clock)
    clock.now = at("2026-03-29 00:00", "Europe/Berlin")
    run_ticks(scheduler, clock, until=at("2026-03-29 23:00", "Europe/Berlin"))
    assert [datetime.fromtimestamp(w, ZoneInfo("Europe/Berlin")).strftime("%H:%M") for _u, _r, w in outbox.sent] == [
        "03:00"
    ]


def test_a_time_repeated_by_fall_back_fires_once(engine: Engine, store: SqlProgressStore, clock: Clock) -> None:
    opt_in(store, "test:ada", "Europe/Berlin", "02:30", quiet=(0, 0))  # 2026-10-25: 02:00-03:00 happens twice
    due_card(store, "test:ada", at("2026-10-24 00:00", "UTC"))
    scheduler, outbox = scheduler_for(engine, clock)
    clock.now = at("2026-10-25 00:00", "Europe/Berlin")
    run_ticks(scheduler, clock, until=at("2026-10-25 23:00", "Europe/Berlin"))
    assert [datetime.fromtimestamp(w, ZoneInfo("UTC")).strftime("%H:%M") for _u, _r, w in outbox.sent] == ["00:30"]


def test_never_in_quiet_hours_even_when_the_bot_was_down_at_the_time(engine: Engine, store: SqlProgressStore,
                                                                     clock: Clock) -> None:  # fmt: skip
    opt_in(store, "test:ada", "Europe/Berlin")
    due_card(store, "test:ada", at("2026-01-10 00:00", "UTC"))
    scheduler, outbox = scheduler_for(engine, clock)
    clock.now = at("2026-01-14 22:05", "Europe/Berlin")  # started after 19:00, in quiet hours
    run_ticks(scheduler, clock, until=at("2026-01-15 18:50", "Europe/Berlin"))
    assert outbox.sent == []
    run_ticks(scheduler, clock, until=at("2026-01-15 21:59", "Europe/Berlin"))
    assert len(outbox.sent) == 1
    assert reminder_day(store.learner_settings("test:ada"), at("2026-01-15 21:00", "Europe/Berlin")) is None


def test_no_second_reminder_after_a_restart(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "p.sqlite3"
    first = Engine(TRACKS, SqlProgressStore(path), clock=clock)
    opt_in(first.store, "test:ada", "UTC")  # type: ignore[arg-type]
    due_card(first.store, "test:ada", at("2026-01-10 00:00", "UTC"))  # type: ignore[arg-type]
    clock.now = at("2026-01-14 19:00", "UTC")
    scheduler, outbox = scheduler_for(first, clock)
    asyncio.run(scheduler.tick())
    assert len(outbox.sent) == 1
    again = Engine(TRACKS, SqlProgressStore(path), clock=clock)  # a new process on the same database
    scheduler, outbox = scheduler_for(again, clock)
    run_ticks(scheduler, clock, until=at("2026-01-14 21:45", "UTC"))
    assert outbox.sent == []


def test_a_streak_that_ends_tonight_is_a_reason_and_nothing_to_say_is_no_message(engine: Engine,
                                                                                 store: SqlProgressStore,
                                                                                 clock: Clock) -> None:  # fmt: skip
    opt_in(store, "test:ada", "UTC")
    scheduler, outbox = scheduler_for(engine, clock)
    clock.now = at("2026-01-14 19:00", "UTC")
    asyncio.run(scheduler.tick())
    assert outbox.sent == [] and store.learner_settings("test:ada").reminded_on is None  # nothing claimed
    for day in ("2026-01-11", "2026-01-12", "2026-01-13"):
        store.save("test:ada", Position(), at=at(f"{day} 10:00", "UTC"))
    clock.now += QUARTER
    asyncio.run(scheduler.tick())
    [(_user, reply, _when)] = outbox.sent
    assert "Your 3-day streak ends tonight" in reply.text and "review" not in reply.actions


def test_a_platform_that_refuses_stops_the_reminders_and_a_passing_failure_retries(engine: Engine,
                                                                                  store: SqlProgressStore,
                                                                                  clock: Clock) -> None:  # fmt: skip
    opt_in(store, "test:ada", "UTC")
    due_card(store, "test:ada", at("2026-01-10 00:00", "UTC"))
    scheduler, outbox = scheduler_for(engine, clock)
    clock.now = at("2026-01-14 19:00", "UTC")
    outbox.answer = Delivery.FAILED
    asyncio.run(scheduler.tick())
    assert store.learner_settings("test:ada").reminded_on is None  # released: the next check tries again
    outbox.answer = Delivery.UNREACHABLE
    asyncio.run(scheduler.tick())
    settings = store.learner_settings("test:ada")
    assert settings.remind is False and settings.stopped == "Test didn't let me message you"
    ada = Learner(engine)
    ada.say("remind")
    assert "They stopped by themselves: Test didn't let me message you" in ada.text
    outbox.answer = Delivery.SENT
    clock.now += 86400
    asyncio.run(scheduler.tick())
    assert outbox.sent == []


def test_a_learner_of_a_platform_without_a_sender_here_is_left_for_another_process(engine: Engine,
                                                                                   store: SqlProgressStore,
                                                                                   clock: Clock) -> None:  # fmt: skip
    opt_in(store, "discord:42", "UTC")
    due_card(store, "discord:42", at("2026-01-10 00:00", "UTC"))
    scheduler, _outbox = scheduler_for(engine, clock)
    clock.now = at("2026-01-14 19:00", "UTC")
    asyncio.run(scheduler.tick())
    assert store.learner_settings("discord:42").reminded_on is None


def test_a_check_cut_short_leaves_the_learners_not_yet_sent_to_the_next_check(engine: Engine, store: SqlProgressStore,
                                                                              clock: Clock) -> None:  # fmt: skip
    for n in range(5):
        opt_in(store, f"test:u{n}", "UTC")
        due_card(store, f"test:u{n}", at("2026-01-10 00:00", "UTC"))
    clock.now = at("2026-01-14 19:00", "UTC")
    scheduler = ReminderScheduler(engine.comeback, clock=clock)
    delivered: list[str] = []

    async def slow(user: str, reply: Reply) -> Delivery:
        await asyncio.sleep(0.2)
        delivered.append(user)
        return Delivery.SENT

    scheduler.add_sender("test", slow)

    async def cut_short() -> None:
        task = asyncio.create_task(scheduler.tick())
        await asyncio.sleep(0.5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(cut_short())
    assert 1 <= len(delivered) < 5
    claimed = [n for n in range(5) if store.learner_settings(f"test:u{n}").reminded_on]
    assert len(claimed) == len(delivered) + 1  # the one being sent when the check stopped counts as sent
    asyncio.run(scheduler.tick())  # a restarted check sends the rest, and nobody twice
    assert sorted(delivered) == sorted(set(delivered)) and len(delivered) == 4


def test_while_the_timezone_is_asked_commands_and_quiz_answers_still_work_and_buttons_stay_valid(
        engine: Engine, store: SqlProgressStore) -> None:  # fmt: skip
    ada = Learner(engine)
    ada.say("lesson distillation")
    ada.say("quiz")
    answer = ada.button("B")
    ada.say("remind on")
    assert "Which timezone are you in?" in ada.text
    assert (
        asyncio.run(engine.is_question(ada.incoming(text="Munich"))) is False
    )  # the answer, not a question for the model
    ada.say("Munich")
    assert "I don't know the timezone “Munich”" in ada.text and "UTC+2" in ada.text
    ada.act(answer)  # the quiz button from before 'remind on' still answers
    assert "Question 2 of" in ada.text
    ada.say("b")  # a typed quiz answer is a quiz answer, not a timezone
    assert "Question 3 of" in ada.text
    ada.say("remind")
    assert "They start once I know your timezone" in ada.text
    ada.say("progress")  # a command is a command
    assert "Your progress" in ada.text
    assert store.position("test:ada").pending is None  # the quiz moves closed the question, as any move does
    ada.say("tz Lisbon")
    assert "Your timezone is Europe/Lisbon" in ada.text


def test_reminders_never_turn_on_at_a_time_inside_quiet_hours(engine: Engine, store: SqlProgressStore) -> None:
    ada = Learner(engine)
    ada.say("tz UTC")
    ada.say("quiet 18:00-09:00")
    assert "Your reminder time 19:00 is inside them now" in ada.text
    ada.say("remind on")  # the stored time, 19:00, is in the quiet hours
    assert "19:00 is in or just before your quiet hours (18:00–09:00)" in ada.text
    assert store.learner_settings("test:ada").remind is False
    ada.say("remind at 10:00")
    ada.say("quiet 09:00-11:00")
    assert "Reminders are off until you do" in ada.text and store.learner_settings("test:ada").remind is False


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Tokyo", "Europe/Berlin"])
def test_a_streak_is_counted_in_the_learners_own_days_so_tonight_means_their_night(engine: Engine,
                                                                                   store: SqlProgressStore,
                                                                                   clock: Clock, zone: str) -> None:  # fmt: skip
    opt_in(store, "test:ada", zone)
    ada = Learner(engine)
    for day, hour in (("2026-01-11", "08:00"), ("2026-01-12", "18:00"), ("2026-01-13", "23:30")):
        clock.now = at(f"{day} {hour}", zone)  # early, late: on different UTC days than the local ones
        ada.say("lesson distillation")
    clock.now = at("2026-01-13 23:45", zone)
    assert engine.comeback.reminder("test:ada", clock.now) is None  # studied today (their today): nothing to say
    reply = engine.comeback.reminder("test:ada", at("2026-01-14 19:00", zone))
    assert reply is not None and "Your 3-day streak ends tonight" in reply.text
    assert engine.comeback.reminder("test:ada", at("2026-01-15 19:00", zone)) is None  # broken already: no reason


def test_the_timezone_is_asked_once_then_messages_go_where_they_would(engine: Engine, store: SqlProgressStore) -> None:
    ada = Learner(engine)
    ada.say("remind on")
    ada.say("softmax")
    assert "I don't know the timezone “softmax”" in ada.text
    ada.say("softmax")  # the question is closed: the key term now
    assert ada.text.startswith("**Softmax**:")
    ada.say("remind on")
    ada.say("remind off")
    assert store.position("test:ada").pending is None


def test_setting_a_timezone_after_studying_keeps_that_day_in_the_streak(engine: Engine, store: SqlProgressStore,
                                                                        clock: Clock) -> None:  # fmt: skip
    ada = Learner(engine)
    for day in ("2026-01-12", "2026-01-13", "2026-01-14"):
        clock.now = at(f"{day} 08:00", "Asia/Tokyo")  # 23:00 UTC the day before
        ada.say("lesson distillation")
    clock.now = at("2026-01-14 08:10", "Asia/Tokyo")
    ada.say("tz Tokyo")
    ada.say("remind on")
    assert engine.comeback.reminder("test:ada", at("2026-01-14 19:00", "Asia/Tokyo")) is None  # studied today
    ada.say("progress")
    # Days before the timezone are UTC days (11th-13th), the switch adds Tokyo's 14th: one day longer, never broken.
    assert "Streak: 4 days" in ada.text
    late = Learner(engine, user_id="bo")
    clock.now = at("2026-01-14 21:00", "America/New_York")  # 02:00 UTC on the 15th
    late.say("lesson distillation")
    late.say("tz New York")
    late.say("progress")
    assert "Streak: 1 day " in late.text  # the UTC day ahead of theirs counts as today, not as a break


def test_a_learner_is_checked_again_just_before_their_message(engine: Engine, store: SqlProgressStore,
                                                              clock: Clock) -> None:  # fmt: skip
    for name in ("first", "second", "third"):
        opt_in(store, f"test:{name}", "Europe/Berlin", "21:50")
        due_card(store, f"test:{name}", at("2026-01-10 00:00", "UTC"))
    clock.now = at("2026-01-14 21:55", "Europe/Berlin")
    scheduler = ReminderScheduler(engine.comeback, clock=clock)
    stop = asyncio.Event()
    delivered: list[str] = []

    async def slow(user: str, reply: Reply) -> Delivery:
        delivered.append(user)
        clock.now += 6 * 60  # each send takes a while: the second one would land in quiet hours (22:00)
        return Delivery.SENT

    scheduler.add_sender("test", slow)
    asyncio.run(scheduler.tick(stop))
    assert len(delivered) == 1 and all(store.learner_settings(f"test:{n}").reminded_on is None
                                       for n in ("first", "second", "third") if n not in delivered)  # fmt: skip
    for name in ("first", "second", "third"):
        store.save_learner_settings(f"test:{name}", replace(store.learner_settings(f"test:{name}"), quiet=(0, 0)))
    stop.set()
    clock.now = at("2026-01-14 23:00", "Europe/Berlin")
    assert asyncio.run(scheduler.tick(stop)) == []  # a stopping process sends nothing more


def test_a_timezone_the_host_no_longer_knows_falls_back_to_utc(engine: Engine, store: SqlProgressStore) -> None:
    store.save_learner_settings("test:ada", LearnerSettings(timezone="Mars/Olympus_Mons", leaderboard=True))
    ada = Learner(engine)
    ada.say("lesson distillation")
    ada.say("progress")
    assert "Streak: 1 day" in ada.text


def test_changing_timezone_after_todays_reminder_does_not_allow_a_second(engine: Engine, store: SqlProgressStore,
                                                                         clock: Clock) -> None:  # fmt: skip
    opt_in(store, "test:ada", "America/Los_Angeles")
    due_card(store, "test:ada", at("2026-01-10 00:00", "UTC"))
    scheduler, outbox = scheduler_for(engine, clock)
    clock.now = at("2026-01-14 19:00", "America/Los_Angeles")  # 12:00 on the 15th in Tokyo
    asyncio.run(scheduler.tick())
    Learner(engine).say("tz Asia/Tokyo")  # Tokyo's 15th, 19:00 still to come, but this day had its reminder
    run_ticks(scheduler, clock, until=at("2026-01-15 21:45", "Asia/Tokyo"))
    assert len(outbox.sent) == 1
    run_ticks(scheduler, clock, until=at("2026-01-16 19:30", "Asia/Tokyo"))
    assert len(outbox.sent) == 2  # the next day there, as usual
