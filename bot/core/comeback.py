"""What brings learners back, outside the lesson walk: reminders, timezones, quiet hours and leaderboards.

``Comeback`` handles the learner's own settings (``remind``, ``tz``, ``quiet``, ``leaderboard``) for the
engine, says what a reminder would say now, and keeps track of who belongs to which community. Like the
engine it reads the store and the clock and renders with ``bot.core.views``; ``bot.core.reminders`` decides
when a reminder may go and sends it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfoNotFoundError

from bot.core import progress, views
from bot.core.lessons import Track
from bot.core.localtime import (
    DEFAULT_QUIET,
    clock_text,
    find_timezone,
    is_quiet,
    local_time,
    parse_clock,
    parse_quiet_hours,  # fmt: skip
)
from bot.core.markup import escape
from bot.core.messages import Incoming, Reply
from bot.core.outcome import Outcome, note
from bot.core.ports import Position, ProgressStore

log = logging.getLogger(__name__)

MEMBERS_REMEMBERED = 10_000  # community memberships already written, so a busy group does not write every turn
LEADERBOARD_SIZE = 10
REMINDER_WINDOW_MINUTES = 15  # a reminder time leaves at least this long before quiet hours, for the checks to land


class Comeback:
    """Reminders, timezones, quiet hours and leaderboards, for the engine's learners."""

    def __init__(self, tracks: Mapping[str, Track], store: ProgressStore, clock: Callable[[], float],
                 default_quiet: tuple[int, int] = DEFAULT_QUIET) -> None:  # fmt: skip
        self.tracks = tracks
        self.store = store
        self.clock = clock
        self.default_quiet = default_quiet
        self.reminder_platforms: set[str] = set()  # platforms a reminder can reach (ReminderScheduler adds them)
        self._members: OrderedDict[tuple[str, str], None] = OrderedDict()  # (community, learner) noted lately
        self._members_lock = threading.Lock()  # turns run on worker threads

    # ------------------------------------------------------------ the learner's own day

    def today(self, learner: str, now: float, zone_name: str | None = None) -> date:
        """The learner's date at ``now``: in their timezone when they gave one, else UTC (streaks count these).

        Read from the store each time (a key lookup), so a change made in another process counts at once;
        ``zone_name`` skips the read when the caller has the learner's settings already.
        """
        return _date_for(zone_name or self.store.learner_settings(learner).timezone, now)

    def local_day(self, learner: str, at: float) -> str:
        """``YYYY-MM-DD`` of the learner's day at ``at`` (what a turn's activity is stored under)."""
        return self.today(learner, at).isoformat()

    # ------------------------------------------------------------ reminders

    def awaits_timezone(self, position: Position, text: str) -> bool:
        """Whether typed text (neither a command nor a quiz answer) answers "which timezone are you in?": a short
        reply while that question is open. It is asked once: a reply naming no zone gets "I don't know the
        timezone …" and closes it."""
        return position.pending == "tz" and len(text) <= 40 and len(text.split()) <= 3 and "?" not in text

    def _reasons_to_come_back(self, learner: str, now: float, zone_name: str | None = None) -> tuple[int, int]:
        """(reviews due, the streak that ends today unless the learner studies) at ``now``."""
        due = len(progress.due(self.tracks, self.store.cards(learner), now))
        days = self.store.active_days(learner)
        today = self.today(learner, now, zone_name)  # the streak ends at the learner's own midnight: "tonight"
        at_risk = progress.streak(days, today) if days and days[0] < today.isoformat() else 0
        return due, at_risk

    def reminder(self, learner: str, now: float | None = None, zone_name: str | None = None) -> Reply | None:
        """The reminder the learner would get now: reviews due and a streak that ends today; None when neither."""
        due, at_risk = self._reasons_to_come_back(learner, self.clock() if now is None else now, zone_name)
        if not due and not at_risk:
            return None
        position = self.store.position(learner)
        return views.reminder(due, at_risk, in_lesson=position.step not in {"home", "result"})

    def welcome_back(self, learner: str) -> str | None:
        """A line for the start of a session (the console shows it): reviews due, a streak ending today."""
        due, at_risk = self._reasons_to_come_back(learner, self.clock())
        return views.welcome_back(due, at_risk)

    def stop_reminders(self, learner: str, reason: str | None = None) -> None:
        """Turn the learner's reminders off (``reason``: why, when it was not the learner's choice)."""
        settings = self.store.learner_settings(learner)
        self.store.save_learner_settings(learner, replace(settings, remind=False, stopped=reason))

    def remind(self, incoming: Incoming, position: Position, argument: str) -> Outcome:
        """``remind``, ``remind on|off``, ``remind at 19:00`` (``stop`` is ``remind off``)."""
        settings = self.store.learner_settings(incoming.learner)
        words = argument.casefold().split()
        if incoming.platform not in self.reminder_platforms and words != ["off"]:
            return note("I can't send reminders from this chat: they come as direct messages on the chat platforms "
                        "this tutor runs on. Here, what is due shows when you start a session ('review' "
                        "starts it).")  # fmt: skip
        if not words:
            return Outcome([views.reminder_status(settings, self.default_quiet)])
        if words == ["off"]:
            self.store.save_learner_settings(incoming.learner, replace(settings, remind=False, stopped=None))
            closed = replace(position, pending=None) if position.pending == "tz" else None
            return Outcome([Reply("Reminders are off. Type 'remind on' whenever you want them back.", personal=True)],
                           closed)  # fmt: skip
        at = parse_clock(" ".join(words[1:] if words[0] == "at" else words))
        if words != ["on"] and at is None:
            return note("Type 'remind on', 'remind off' or 'remind at 19:00' (a time of day, 24-hour or 7pm).")
        quiet = settings.quiet or self.default_quiet
        at = settings.remind_at if at is None else at
        if is_quiet(at, quiet) or is_quiet((at + REMINDER_WINDOW_MINUTES) % 1440, quiet):
            return note(f"{clock_text(at)} is in or just before your quiet hours ({clock_text(quiet[0])}–"
                        f"{clock_text(quiet[1])}), when I never send reminders. Pick a time at least "
                        f"{REMINDER_WINDOW_MINUTES} minutes before them, or change them with 'quiet 23:00-07:00'.")  # fmt: skip
        settings = replace(settings, remind=True, stopped=None, remind_at=at)
        self.store.save_learner_settings(incoming.learner, settings)
        privately = [] if incoming.is_direct else [Reply(
            "Reminders come as direct messages, so I must be able to message you privately: open a direct chat "
            "with me (and press Start if your app asks), or allow direct messages from this community's members.",
            personal=True)]  # fmt: skip
        if settings.timezone is None:
            asking = replace(position, pending="tz")  # no new version: the learner's buttons stay valid
            return Outcome([*privately, views.ask_timezone()], asking)
        return Outcome([views.reminder_status(settings, self.default_quiet), *privately])

    def set_timezone(self, incoming: Incoming, position: Position, argument: str) -> Outcome:
        """``tz Europe/Berlin`` (or a city), or the answer to "which timezone are you in?"."""
        settings = self.store.learner_settings(incoming.learner)
        if not argument:
            if settings.timezone is None:
                return Outcome([views.ask_timezone()])
            return note(
                f"Your timezone is {settings.timezone}. Change it with 'tz' and a zone or city, e.g. 'tz Tokyo'."
            )
        zone = find_timezone(argument)
        closed = replace(position, pending=None) if position.pending == "tz" else None  # asked once
        if zone is None:
            return Outcome([Reply(f"I don't know the timezone “{escape(argument[:40])}”. Type a zone like 'tz Europe/Berlin' or "
                        "'tz America/New_York', or a big city near you: 'tz Lisbon'. (Abbreviations like PST "
                        "and offsets like UTC+2 change with daylight saving, so I need the zone's name.)",
                                  personal=True)], closed)  # fmt: skip
        now_at = self.clock()
        if (
            settings.reminded_on is not None
            and settings.reminded_on == _date_for(settings.timezone, now_at).isoformat()
        ):
            # Reminded today in the old zone: today in the new one counts as reminded too (never twice a day).
            self.store.claim_reminder(incoming.learner, _date_for(zone, now_at).isoformat())
        settings = replace(settings, timezone=zone)
        self.store.save_learner_settings(incoming.learner, settings)
        last = self.store.last_turn_at(incoming.learner)
        if last is not None:  # the last turn's day as the new zone counts it, so today's study keeps the streak
            self.store.add_active_day(incoming.learner, _date_for(zone, last).isoformat())
        now = local_time(self.clock(), zone)
        text = f"Your timezone is {zone} (it's {now:%H:%M} there now)."
        if settings.remind:
            text += f" Reminders come {views.reminder_summary(settings, self.default_quiet)}."
        return Outcome([Reply(text, personal=True)], closed)

    def set_quiet_hours(self, incoming: Incoming, argument: str) -> Outcome:
        """``quiet 22:00-08:00``: when reminders never come."""
        settings = self.store.learner_settings(incoming.learner)
        quiet = parse_quiet_hours(argument) if argument else None
        if quiet is None:
            now = settings.quiet or self.default_quiet
            return note(f"Your quiet hours are {clock_text(now[0])}–{clock_text(now[1])}: no reminders then. Change "
                        "them with e.g. 'quiet 23:00-07:00'.")  # fmt: skip
        settings = replace(settings, quiet=quiet)
        self.store.save_learner_settings(incoming.learner, settings)
        text = f"Quiet hours set: {clock_text(quiet[0])}–{clock_text(quiet[1])}, no reminders then."
        if is_quiet(settings.remind_at, quiet):
            text += (f" Your reminder time {clock_text(settings.remind_at)} is inside them now, so no reminder would "
                     "come: pick another with 'remind at'.")  # fmt: skip
            if settings.remind:
                settings = replace(settings, remind=False)
                self.store.save_learner_settings(incoming.learner, settings)
                text += " Reminders are off until you do."
        return note(text)

    # ------------------------------------------------------------ leaderboards

    def note_member(self, incoming: Incoming) -> None:
        """Remember who takes turns in which community (written once per learner and community lately seen)."""
        if incoming.is_direct:
            return
        key = (incoming.community, incoming.learner)
        with self._members_lock:
            if key in self._members:
                self._members.move_to_end(key)
                return
        self.store.note_member(incoming.community, incoming.learner, self.clock())
        with self._members_lock:
            self._members[key] = None
            if len(self._members) > MEMBERS_REMEMBERED:
                self._members.popitem(last=False)

    def leaderboard(self, incoming: Incoming, argument: str) -> Outcome:
        """``leaderboard``: the week's board here; ``on|off``: appear or not; moderators: ``enable|disable``."""
        word = argument.casefold().strip()
        settings = self.store.learner_settings(incoming.learner)
        if word in {"on", "off"}:
            name = incoming.display_name or settings.display_name or incoming.user_id
            self.store.save_learner_settings(incoming.learner, replace(settings, leaderboard=word == "on",
                                                                       display_name=name[:40]))  # fmt: skip
            if word == "off":
                return note("You're off the leaderboards now.")
            return note(f"You're on the leaderboards of your communities now, as “{escape(name[:40])}”. "
                        "'leaderboard off' takes you off.")  # fmt: skip
        if word in {"enable", "disable"}:
            return self._switch_leaderboard(incoming, word == "enable")
        if word:
            return note("Type 'leaderboard' to see it, 'leaderboard on' or 'leaderboard off' to appear on it or not.")
        if incoming.is_direct:
            return note("Leaderboards belong to a server or group: type 'leaderboard' there. "
                        f"You are {'on' if settings.leaderboard else 'not on'} them ('leaderboard on|off').")  # fmt: skip
        if not self.store.leaderboard_enabled(incoming.community):
            return note("This community's moderators turned the leaderboard off.")
        now = self.clock()
        today = datetime.fromtimestamp(now, UTC).date()
        monday = datetime.combine(today - timedelta(days=today.weekday()), datetime.min.time(), UTC)
        # Only who was active since Monday (lessons this week) or yesterday (a streak) can be on the board
        # (a day's margin: learners' days are their own, up to a day from UTC's).
        active_since = min(monday.date(), today - timedelta(days=1)) - timedelta(days=1)
        found = self.store.leaderboard_rows(incoming.community, monday.timestamp(), active_since.isoformat())
        rows = [(row.display_name, row.lessons, progress.streak(list(row.days), _date_for(row.timezone, now)))
                for row in found]  # fmt: skip
        top = sorted((r for r in rows if r[1] or r[2]), key=lambda r: (-r[1], -r[2], r[0].casefold()))
        return Outcome([views.leaderboard(top[:LEADERBOARD_SIZE], settings.leaderboard, incoming.is_moderator)])

    def _switch_leaderboard(self, incoming: Incoming, enabled: bool) -> Outcome:
        if incoming.is_direct:
            return note("The leaderboard switch belongs to a server or group's moderators.")
        if not incoming.is_moderator:
            return note("Only this community's moderators can turn the leaderboard on or off.")
        self.store.set_leaderboard_enabled(incoming.community, enabled, incoming.learner, self.clock())
        state = "on" if enabled else "off"
        return Outcome(
            [
                Reply(
                    f"The leaderboard is {state} here now (changed by {escape(incoming.display_name or incoming.user_id)})."
                )
            ]
        )


def _date_for(zone_name: str | None, now: float) -> date:
    """The date at ``now`` in a zone (UTC for None, or for a zone this host's tz database no longer has)."""
    if zone_name:
        try:
            return local_time(now, zone_name).date()
        except (ZoneInfoNotFoundError, ValueError):
            log.warning("the timezone %r is not in this host's tz database; using UTC", zone_name)
    return datetime.fromtimestamp(now, UTC).date()
