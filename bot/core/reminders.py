"""Reminders: the one scheduler that sends learners who opted in a direct message through their platform.

A reminder may go once per local day in the learner's window (``bot.core.localtime.reminder_day``), and only
when there is a reason: reviews are due, or the streak ends tonight. The day is claimed in the store just
before the message goes out (atomically, so a restart or a second process never sends a second one; a
message that fails for a passing reason releases the claim and is tried again at the next check). When a platform says the learner cannot be messaged
(blocked, DMs closed), reminders turn off by themselves.

Adapters give the scheduler one ``Sender`` per platform; nothing here knows a platform.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.core.comeback import Comeback
from bot.core.localtime import DEFAULT_QUIET, reminder_day
from bot.core.messages import Reply

log = logging.getLogger(__name__)


class Delivery(enum.Enum):
    """What became of one reminder message."""

    SENT = "sent"
    UNREACHABLE = "unreachable"  # the platform says the learner cannot be messaged: stop reminding them
    FAILED = "failed"  # a passing failure (network, rate limit): try again at the next check


Sender = Callable[[str, Reply], Awaitable[Delivery]]  # (the learner's user id on its platform, the message)


# ---------------------------------------------------------------- the scheduler


@dataclass
class ReminderScheduler:
    """Checks every ``every`` seconds who is due a reminder and sends it through their platform's ``Sender``."""

    comeback: Comeback
    default_quiet: tuple[int, int] = DEFAULT_QUIET
    every: float = 60.0
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.senders: dict[str, Sender] = {}

    def add_sender(self, platform: str, sender: Sender) -> None:
        """Deliver reminders of ``platform``'s learners (``telegram``, ``discord``) with ``sender``."""
        self.senders[platform] = sender
        self.comeback.reminder_platforms.add(platform)

    async def tick(self, stop: asyncio.Event | None = None) -> list[str]:
        """Send every reminder due now; return the learners it was sent to. Stops early when ``stop`` is set.

        Finding who is due (a read of every learner with reminders on) runs on a worker thread, so a check over
        many learners never holds up the event loop. Just before each message, the learner is checked again
        (sends take time: quiet hours may have begun, or they may have studied) and their day claimed, so a
        check cut short leaves the others to the next check.
        """
        due = await asyncio.to_thread(self._due, self.clock())
        sent: list[str] = []
        for learner, day, previous in due:
            if stop is not None and stop.is_set():
                break
            reply = await asyncio.to_thread(self._claim, learner, day)
            if reply is None:
                continue
            platform, _, user = learner.partition(":")
            try:
                delivery = await self.senders[platform](user, reply)
            except Exception:  # noqa: BLE001 - one learner's failure must not stop the others' reminders
                log.exception("sending a reminder to a %s learner failed", platform)
                delivery = Delivery.FAILED
            if delivery is Delivery.SENT:
                sent.append(learner)
            elif delivery is Delivery.UNREACHABLE:
                log.info("a %s learner can't be messaged; their reminders are off now", platform)
                why = f"{platform.title()} didn't let me message you"
                await asyncio.to_thread(self.comeback.stop_reminders, learner, why)
            else:
                await asyncio.to_thread(self.comeback.store.release_reminder, learner, day, previous)
        return sent

    def _due(self, now: float) -> list[tuple[str, str, str | None]]:
        """(learner, local day, the day reminded before) of each learner a reminder may go to now."""
        found = []
        for learner, settings in self.comeback.store.reminding():
            platform = learner.partition(":")[0]
            day = reminder_day(settings, now, self.default_quiet) if platform in self.senders else None
            if day is not None and self.comeback.reminder(learner, now, settings.timezone) is not None:
                found.append((learner, day, settings.reminded_on))
        return found

    def _claim(self, learner: str, day: str) -> Reply | None:
        """The reminder for ``learner`` if it is still due now (same day, window, reason) and its day was claimed."""
        now = self.clock()
        settings = self.comeback.store.learner_settings(learner)
        if reminder_day(settings, now, self.default_quiet) != day:
            return None
        reply = self.comeback.reminder(learner, now, settings.timezone)
        if reply is None or not self.comeback.store.claim_reminder(learner, day):
            return None  # nothing to say any more, or another process sent today's
        return reply

    async def run(self, stop: asyncio.Event) -> None:
        """Check at once, then every ``every`` seconds, until ``stop`` is set."""
        while not stop.is_set():
            try:
                await self.tick(stop)
            except Exception:  # noqa: BLE001 - a broken check is logged; the next one may work
                log.exception("checking for reminders failed")
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.every)
            except TimeoutError:
                pass
