"""Reminders end to end: the real adapters against the local fake Telegram and Discord servers.

A learner opts in through the chat, a review comes due, the scheduler (on a fake clock) delivers the reminder
as a direct message, and pressing its button starts the review. A learner who blocked the bot (Telegram's 403)
or closed their DMs (Discord's 50007) has their reminders turned off.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.core.ports import LearnerSettings, Position, ReviewCard
from bot.core.reminders import ReminderScheduler
from bot.store.progress import SqlProgressStore
from tests.adapters import test_discord as discord_tests
from tests.adapters.discord_fake import FakeDiscord
from tests.adapters.discord_fake import User as DiscordUser
from tests.adapters.telegram_fake import User as TelegramUser
from tests.adapters.test_telegram import ADA, running
from tests.unit.test_engine import Clock
from tests.unit.test_reminders import at

DISTILLATION = discord_tests.LESSON
FIRST_QUESTION = DISTILLATION.quiz[0].prompt


def review_due(store: SqlProgressStore, learner: str, due: float) -> None:
    store.save(learner, Position(), at=due - 86400 * 3,
               card=ReviewCard("ai-foundations", "distillation", 0, "{}", due))  # fmt: skip


def reminding(store: SqlProgressStore, learner: str) -> None:
    store.save_learner_settings(learner, LearnerSettings(timezone="Europe/Berlin", remind=True))


def test_telegram_delivers_a_reminder_whose_button_starts_the_review_and_a_block_stops_them(tmp_path: Path) -> None:
    clock = Clock(at("2026-01-14 19:00", "Europe/Berlin"))
    blocked = TelegramUser(102, "Bob")

    async def main() -> None:
        scheduler = ReminderScheduler(None, clock=clock)  # type: ignore[arg-type] # running() gives it the engine's
        async with running(tmp_path, reminders=scheduler) as bot:
            [asked] = await bot.say(ADA, "remind on")
            assert "Which timezone are you in?" in asked.plain
            [told] = await bot.say(ADA, "Berlin")
            assert "Your timezone is Europe/Berlin" in told.plain
            review_due(bot.store, f"telegram:{ADA.id}", clock.now - 3600)
            reminding(bot.store, f"telegram:{blocked.id}")
            review_due(bot.store, f"telegram:{blocked.id}", clock.now - 3600)
            bot.fake.blocked.add(blocked.id)
            assert await scheduler.tick() == [f"telegram:{ADA.id}"]
            reminder = bot.fake.shown(ADA.id)[-1]
            assert "1 question is due for review" in reminder.plain and "Reply 'stop'" in reminder.plain
            [review] = await bot.press(ADA, "Start the review")
            assert FIRST_QUESTION in review.plain
            assert await scheduler.tick() == []  # once a day
            stopped = bot.store.learner_settings(f"telegram:{blocked.id}")
            assert (stopped.remind, stopped.stopped) == (False, "Telegram didn't let me message you")

    asyncio.run(main())


def test_discord_delivers_a_reminder_by_dm_whose_button_starts_the_review_and_closed_dms_stop_them(
        tmp_path: Path) -> None:  # fmt: skip
    clock = Clock(at("2026-01-14 19:00", "Europe/Berlin"))
    store = SqlProgressStore(tmp_path / "db.sqlite3")
    engine = discord_tests.build_engine(store)
    scheduler = ReminderScheduler(engine.comeback, clock=clock)
    ada, closed = discord_tests.ADA, DiscordUser("1180000000000000019", "cy")

    async def body(fake: FakeDiscord) -> None:
        async with discord_tests.bot(fake, engine, reminders=scheduler):
            messages = await fake.settled(await fake.slash(ada, "remind", {"setting": "at 19:00"}, dm=True))
            assert "Which timezone are you in?" in messages[0].content
            messages = await fake.settled(await fake.slash(ada, "tz", {"zone": "Europe/Berlin"}, dm=True))
            assert "Your timezone is Europe/Berlin" in messages[0].content
            review_due(store, f"discord:{ada.id}", clock.now - 3600)
            reminding(store, f"discord:{closed.id}")
            review_due(store, f"discord:{closed.id}", clock.now - 3600)
            fake.closed_dms.add(closed.id)
            assert await scheduler.tick() == [f"discord:{ada.id}"]
            [reminder] = fake.channel_messages(fake.dm_channel_id(ada))
            assert "1 question is due for review" in reminder.content
            pressed = await fake.press(ada, reminder, reminder.custom_id("Start the review"), dm=True)
            replies = await fake.settled(pressed)
            assert FIRST_QUESTION in replies[-1].content
        stopped = store.learner_settings(f"discord:{closed.id}")
        assert (stopped.remind, stopped.stopped) == (False, "Discord didn't let me message you")

    discord_tests.run(body)
