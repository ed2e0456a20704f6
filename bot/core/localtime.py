"""Local time for reminders: times of day, quiet hours, IANA timezones, and when a reminder may go out.

A reminder may go once per local day, from the learner's chosen time (default 19:00) until their quiet hours
begin (default 22:00-08:00 local). Local time comes from the learner's IANA timezone (``zoneinfo``), so DST
changes need nothing special: a time skipped by a spring-forward passes at the first check after it, and a
repeated hour cannot fire twice because the day is recorded (see ``bot.core.reminders``).
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache, lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from bot.core.ports import LearnerSettings

DEFAULT_QUIET = (22 * 60, 8 * 60)  # 22:00-08:00 local
NOT_ZONES = {"localtime", "Factory", "posixrules"}  # names in the tz database that are not a learner's zone
_CLOCK = re.compile(r"^(?P<hour>\d{1,2})(?:[:.h](?P<minute>\d{2}))?\s*(?P<half>am|pm|a\.m\.|p\.m\.)?$", re.IGNORECASE)


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
    names = sorted(available_timezones() - NOT_ZONES)
    for name in names:
        keys.setdefault(name.casefold(), name)
    for name in names:
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
        zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return name


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """The zone called ``name``, loaded once (``ZoneInfo`` keeps only a few strongly, and reads the file again)."""
    return ZoneInfo(name)


def local_time(now: float, timezone: str) -> datetime:
    """``now`` (seconds since the epoch) on the learner's wall clock."""
    return datetime.fromtimestamp(now, zone(timezone))


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
