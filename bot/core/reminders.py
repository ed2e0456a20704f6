"""Reminders: when a learner who opted in gets a direct message, and the one scheduler that sends them.

A reminder may go once per local day, from the learner's chosen time (``remind at 19:00``, default 19:00)
until their quiet hours begin (default 22:00-08:00 local), and only when there is a reason: reviews are due,
or the streak ends tonight. Local time comes from the learner's IANA timezone (``zoneinfo``), so DST changes
need nothing special: a time skipped by a spring-forward fires at the first check after it, and a repeated
hour cannot fire twice because the day is claimed in the store before the message goes out (atomically, so a
restart or a second process never sends a second one; a message that fails for a passing reason releases
the claim and is tried again at the next check). When a platform says the learner cannot be messaged
(blocked, DMs closed), reminders turn off by themselves.

Adapters give the scheduler one ``Sender`` per platform; nothing here knows a platform.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from bot.core.messages import Reply
from bot.core.ports import LearnerSettings

if TYPE_CHECKING:
    from bot.core.comeback import Comeback

log = logging.getLogger(__name__)

DEFAULT_QUIET = (22 * 60, 8 * 60)  # 22:00-08:00 local
_CLOCK = re.compile(r"^(?P<hour>\d{1,2})(?:[:.h](?P<minute>\d{2}))?\s*(?P<half>am|pm|a\.m\.|p\.m\.)?$", re.IGNORECASE)


class Delivery(enum.Enum):
    """What became of one reminder message."""

    SENT = "sent"
    UNREACHABLE = "unreachable"  # the platform says the learner cannot be messaged: stop reminding them
    FAILED = "failed"  # a passing failure (network, rate limit): try again at the next check


Sender = Callable[[str, Reply], Awaitable[Delivery]]  # (the learner's user id on its platform, the message)


# ---------------------------------------------------------------- times and zones


def parse_clock(text: str) -> int | None:
    """Minutes after midnight of "19:00", "7pm", "7:30 am", "19h30" or "19"; None for anything else."""
    found = _CLOCK.match(text.strip())
    if not found:
        return None
    hour, minute = int(found.group("hour")), int(found.group("minute") or 0)
    half = (found.group("half") or "").casefold().replace(".", "")
    if half:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if half == "pm" else 0)
    if hour > 23 or minute > 59:
        return None
    return hour * 60 + minute


def clock_text(minutes: int) -> str:
    """``HH:MM`` of minutes after midnight."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_quiet_hours(text: str) -> tuple[int, int] | None:
    """``(start, end)`` of "22:00-08:00" (also "22-8" or "22:00 to 08:00"); None for anything else."""
    parts = re.split(r"\s*(?:-|–|to)\s*", text.strip(), maxsplit=1)
    if len(parts) != 2:
        return None
    start, end = parse_clock(parts[0]), parse_clock(parts[1])
    return None if start is None or end is None else (start, end)


def is_quiet(minute: int, quiet: tuple[int, int]) -> bool:
    """Whether ``minute`` (after local midnight) falls in quiet hours that may wrap midnight; equal ends: never."""
    start, end = quiet
    if start == end:
        return False
    return start <= minute < end if start < end else minute >= start or minute < end


@cache
def _zones_by_key() -> dict[str, str]:
    """IANA zone names by what a learner might type: the name itself, and its city ("new york")."""
    keys: dict[str, str] = {}
    for name in sorted(available_timezones()):
        keys.setdefault(name.casefold(), name)
    for name in sorted(available_timezones()):
        if "/" in name and not name.startswith(("Etc/", "SystemV/", "US/")):
            keys.setdefault(name.rsplit("/", 1)[1].replace("_", " ").casefold(), name)
    return keys


def find_timezone(text: str) -> str | None:
    """The IANA zone a learner means by "Europe/Berlin", "europe/berlin", "Berlin", "New York" or "UTC"."""
    typed = " ".join(text.strip().replace("_", " ").split()).casefold()
    name = _zones_by_key().get(typed) or _zones_by_key().get(typed.replace(" ", "_"))
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return name


def local_time(now: float, timezone: str) -> datetime:
    """``now`` (seconds since the epoch) on the learner's wall clock."""
    return datetime.fromtimestamp(now, ZoneInfo(timezone))


def reminder_day(settings: LearnerSettings, now: float, default_quiet: tuple[int, int] = DEFAULT_QUIET) -> str | None:
    """The learner's local day (``YYYY-MM-DD``) when a reminder may go out now, else None.

    Reminders must be on, the timezone known, the local time at or after ``remind_at`` and outside quiet hours,
    and no reminder sent yet on this local day.
    """
    if not settings.remind or settings.timezone is None:
        return None
    try:
        local = local_time(now, settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    minute = local.hour * 60 + local.minute
    day = local.date().isoformat()
    if minute < settings.remind_at or is_quiet(minute, settings.quiet or default_quiet):
        return None
    return None if settings.reminded_on == day else day


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

    async def tick(self) -> list[str]:
        """Send every reminder due now; return the learners it was sent to."""
        now = self.clock()
        store = self.comeback.store
        sent: list[str] = []
        for learner, settings in store.reminding():
            platform, _, user = learner.partition(":")
            sender = self.senders.get(platform)
            day = reminder_day(settings, now, self.default_quiet) if sender else None
            if sender is None or day is None:
                continue
            reply = self.comeback.reminder(learner, now)
            if reply is None or not store.claim_reminder(learner, day):
                continue  # nothing to remind of, or another process sent today's
            try:
                delivery = await sender(user, reply)
            except Exception:  # noqa: BLE001 - one learner's failure must not stop the others' reminders
                log.exception("sending a reminder to a %s learner failed", platform)
                delivery = Delivery.FAILED
            if delivery is Delivery.SENT:
                sent.append(learner)
            elif delivery is Delivery.UNREACHABLE:
                log.info("a %s learner can't be messaged; their reminders are off now", platform)
                self.comeback.stop_reminders(learner, f"{platform.title()} didn't let me message you")
            else:
                store.release_reminder(learner, day, settings.reminded_on)
        return sent

    async def run(self, stop: asyncio.Event) -> None:
        """Check at once, then every ``every`` seconds, until ``stop`` is set."""
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:  # noqa: BLE001 - a broken check is logged; the next one may work
                log.exception("checking for reminders failed")
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.every)
            except TimeoutError:
                pass
