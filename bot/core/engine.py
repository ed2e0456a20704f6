"""The dialogue engine: one learner's turn in, replies out, progress stored before anything is shown.

``Engine.handle(Incoming)`` is the only entry point adapters use. A turn is either navigation (tracks,
lessons, sections, quiz answers, progress, help, reset, moderator settings), which reads and writes the
progress store and never waits for the model, or a question, which goes to the grounded answerer and
streams. Turns of one learner run one at a time (a per-learner lock); different learners never wait for
each other. Every turn that moves the learner is saved in one transaction *before* its replies are
yielded, so what a learner has seen is what a restart resumes from.

The engine decides; ``bot.core.views`` renders what it decided, and ``bot.core.commands`` reads typed text.
Key terms on demand come from ``bot.core.terms``; the learner's own settings (reminders, timezone, quiet hours,
leaderboards) are handled by ``bot.core.comeback``.
Buttons carry short action ids (see ``_on_action``); those that act on a position carry its version, so a
button from an older message is recognised as stale instead of acting on the wrong question.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

from bot.core import progress, views
from bot.core.actions import SCREENS, VERSIONED, Action, action_number, parse_action
from bot.core.answering import Answer, AnswerDelta, Answerer
from bot.core.authoring import Authoring
from bot.core.comeback import Comeback
from bot.core.commands import MAX_MESSAGE_CHARS, NO, YES, clean_text, parse_command, question_in, short_hash
from bot.core.lessons import Lesson, Track, draft_track_id, track_name
from bot.core.limits import QuestionLimit, too_many_questions
from bot.core.localtime import DEFAULT_QUIET
from bot.core.markup import escape
from bot.core.messages import Button, Incoming, Reply, rows
from bot.core.outcome import Outcome
from bot.core.outcome import note as _note
from bot.core.ports import (
    InsightsSource,
    LessonResult,
    ModelBusy,
    ModelFailed,
    Position,
    ProgressStore,
    QuizAttempt,
    ReviewCard,
    StoreBusy,
    StoreUnavailable,
    TrackLibrary,
    TurnConflict,
)
from bot.core.quiz import ReviewScheduler, option_label, typed_option
from bot.core.shelf import Shelf
from bot.core.terms import TermMatch, asked_term

log = logging.getLogger(__name__)

# The text helpers live in bot.core.commands; they stay importable from here.
__all__ = ["MAX_MESSAGE_CHARS", "NO", "YES", "Engine", "Outcome", "clean_text", "parse_command", "short_hash"]


MAX_NAME_CHARS = 64  # Telegram's longest first name; Discord's display names are shorter


def _moved(position: Position, **changes: Any) -> Position:
    """``position`` with ``changes``; every move drops a pending confirmation and bumps the version."""
    return replace(position, **changes, pending=None, version=position.version + 1)


class _LearnerLocks:
    """One asyncio lock per learner, kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        lock = lock or asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


# One question per learner at a time: the model's queue is shared fairly, not filled by one person.
_ONE_AT_A_TIME = Reply("I'm still answering your last question; ask this one again when that answer is done.",
                       personal=True)  # fmt: skip


@dataclass(frozen=True)
class Admission:
    """What the engine says of a turn before it runs: a question for the model or not, and a note to show instead."""

    question: bool
    refusal: Reply | None = None


@dataclass
class _Turn:
    """What a turn's non-model part decided: replies to show, and the question for the model, if any."""

    replies: list[Reply]
    position: Position
    question: str | None
    cut: bool


TURN_ATTEMPTS = 3  # a turn that keeps meeting another process's moves gives up with "please try again"


class Engine:
    """Walks learners through tracks, lessons and quizzes, answers their questions, keeps their progress."""

    def __init__(
        self,
        tracks: Mapping[str, Track],
        store: ProgressStore,
        answerer: Answerer | None = None,
        *,
        reviews: ReviewScheduler | None = None,
        clock: Callable[[], float] = time.time,
        default_quiet: tuple[int, int] = DEFAULT_QUIET,
        owners: Mapping[str, str] | None = None,
        library: TrackLibrary | None = None,
        insights: InsightsSource | None = None,
    ):
        self._shelf = Shelf.of(tracks.values(), owners)
        self.store = store
        self.answerer = answerer
        self.reviews = reviews or ReviewScheduler()
        self.clock = clock
        self._locks = _LearnerLocks()
        self._asking: set[str] = set()  # learners whose question is with the model right now
        self._question_limits: dict[str, QuestionLimit] = {}  # by platform (the console has none)
        self.comeback = Comeback(self._shelf.tracks, store, clock, default_quiet)
        self.authoring = Authoring(self, library, insights)

    # ------------------------------------------------------------ the tracks served

    @property
    def tracks(self) -> Mapping[str, Track]:
        """Every track served, by id (drafts in preview included; ``offered`` says which a turn may list)."""
        return self._shelf.tracks

    @property
    def shelf(self) -> Shelf:
        """The tracks served now, with their owners and drafts."""
        return self._shelf

    def use_shelf(self, shelf: Shelf) -> None:
        """Serve ``shelf`` from the next turn on (one assignment: a turn sees the old tracks or the new)."""
        self._shelf = shelf
        self.comeback.tracks = shelf.tracks
        if self.answerer is not None:
            self.answerer.use_tracks(shelf.tracks)

    def show_draft(self, draft: Track, community: str) -> Track:
        """Put a community's draft on the shelf, for its moderators to preview."""
        self.use_shelf(self._shelf.with_tracks([draft], {draft.id: community}, [draft.id]))
        return draft

    def show_published(self, track: Track, community: str | None) -> None:
        """Serve a newly published version of an uploaded track (its draft's preview goes)."""
        shelf = self._shelf.without([draft_track_id(track.id)])
        self.use_shelf(shelf.with_tracks([track], {track.id: community} if community else {}, []))

    def track_screen(self, incoming: Incoming, track: Track, intro: Reply) -> Outcome:
        """``intro``, then the lessons of ``track`` (a draft's preview opens with it)."""
        return Outcome([intro, views.lessons(track, self._best_scores(incoming.learner))])

    # ------------------------------------------------------------ the turn

    async def handle(self, incoming: Incoming) -> AsyncGenerator[Reply, None]:
        """Handle one turn; yield its replies (iterate to the end: the learner's lock is held until then).

        The turn's reading and writing of the store runs on a worker thread: a database that waits for a lock, or
        a slow disk, holds up this learner only, never the event loop that serves everyone else.
        """
        # A name is shown in replies and stored (leaderboards): cleaned like text, as a lone surrogate from a
        # platform's JSON could be sent nowhere and stored nowhere.
        incoming = replace(incoming, display_name=clean_text(incoming.display_name, MAX_NAME_CHARS)[0])
        if incoming.learner in self._asking and await self.is_question(incoming):
            yield _ONE_AT_A_TIME
            return
        async with self._locks.hold(incoming.learner):
            if incoming.upload is not None:
                yield await self.authoring.upload(incoming)
                return
            try:
                turn = await asyncio.to_thread(self._turn_again_on_conflict, incoming)
            except StoreUnavailable as error:  # nothing of this turn is shown: the learner is where they were
                yield Reply(str(error), personal=True)
                return
            for reply in turn.replies:
                yield reply
            if turn.question is not None:
                self._asking.add(incoming.learner)
                try:
                    async for reply in self._answer(incoming, turn.position, turn.question, turn.cut):
                        yield reply
                finally:
                    self._asking.discard(incoming.learner)

    def _turn_again_on_conflict(self, incoming: Incoming) -> _Turn:
        """``_turn``, run again from the new position when another process moved the learner meanwhile (a
        double-tapped button: the second press then finds its button stale, as in one process)."""
        for _ in range(TURN_ATTEMPTS):
            try:
                return self._turn(incoming)
            except TurnConflict:
                continue
        raise StoreBusy()

    def _turn(self, incoming: Incoming) -> _Turn:
        """The non-model part of a turn, stored: its replies, and the question for the model if it asks one."""
        self.authoring.refresh()
        stored = self.store.position(incoming.learner)
        if incoming.delivery is not None and self.store.delivered(incoming.delivery):
            log.info("skipped update %s: a turn handled it already (it was delivered again)", incoming.delivery)
            return _Turn([], stored, None, False)
        self.comeback.note_member(incoming)
        position, note = self._check(stored)
        question: str | None = None
        cut = False
        outcome: Outcome | None
        if incoming.action is not None:
            outcome = self._on_action(incoming, position, incoming.action)
        else:
            text, cut = clean_text(incoming.text or "")
            outcome = self._on_text(incoming, position, text)
            if outcome is None:
                question = question_in(text)
        if note:  # shown, not stored: if the lesson comes back, so does the learner's place in it
            outcome = outcome or Outcome()
            outcome.replies.insert(0, Reply(note, personal=True))
        saved = outcome is not None and self._store(incoming.learner, outcome, stored, incoming.delivery)
        if (
            incoming.delivery is not None
            and not saved
            and not self.store.note_delivery(incoming.delivery, self.clock())
        ):
            return _Turn([], stored, None, False)  # another process handled the same update meanwhile
        return _Turn(outcome.replies if outcome else [], position, question, cut)

    def limit_questions(self, platform: str, per_minute: int) -> None:
        """Let each learner on ``platform`` ask the model at most ``per_minute`` questions a minute."""
        self._question_limits[platform] = QuestionLimit(per_minute)

    def is_asking(self, learner: str) -> bool:
        """Whether the learner's last question is with the model right now."""
        return learner in self._asking

    async def admit(self, incoming: Incoming) -> Admission:
        """Before a turn: whether it is a question for the model, and the note to show instead when it may not be
        asked now (one question at a time; the platform's per-minute limit, which this counts against)."""
        if not await self.is_question(incoming):
            return Admission(False)
        if incoming.learner in self._asking:
            return Admission(True, _ONE_AT_A_TIME)
        limit = self._question_limits.get(incoming.platform)
        wait = limit.wait(incoming.learner) if limit is not None else 0.0
        if limit is not None and wait > 0:
            return Admission(True, Reply(too_many_questions(limit.per_minute, wait), personal=True))
        return Admission(True)

    async def is_question(self, incoming: Incoming) -> bool:
        """Whether typed text would go to the model (not a command, nor a quiz answer, nor a confirmation)."""
        if incoming.action is not None or incoming.upload is not None or not (incoming.text or "").strip():
            return False
        return await asyncio.to_thread(self._is_question, incoming)

    def _is_question(self, incoming: Incoming) -> bool:
        text, _cut = clean_text(incoming.text or "")
        position, _note = self._checked_position(incoming.learner)
        if not text:
            return False
        command = parse_command(text, self._names)
        if command is not None:
            return command[0] == "ask" and bool(command[1])
        if position.pending == "reset" and text.casefold() in YES | NO:
            return False
        if position.step == "quiz" and typed_option(self._lesson(position).quiz[position.question], text) is not None:
            return False
        return not self.comeback.awaits_timezone(position, text) and self._term_asked(incoming, position, text) is None

    async def replies(self, incoming: Incoming) -> list[Reply]:
        """Handle one turn and return every reply (for callers that do not stream)."""
        return [reply async for reply in self.handle(incoming)]

    def status(self, learner: str) -> str:
        """A one-line summary of where the learner is (for a console status line)."""
        position, _note = self._checked_position(learner)
        if position.step == "home":
            return "no lesson open · type 'start'"
        return self._where(position) or ""

    def _store(self, learner: str, outcome: Outcome, before: Position, delivery: str | None) -> bool:
        """Save what the turn produced, if the learner is still where the turn found them (``before``, as stored);
        False when the turn produced nothing to save."""
        if outcome.position is None and outcome.attempt is None and outcome.card is None:
            return False
        position = outcome.position or before
        at = self.clock()
        started: tuple[str, str] | None = None
        if position.track and position.lesson and (position.track, position.lesson) != (before.track, before.lesson):
            started = (position.track, position.lesson)  # the turn opened a lesson (the insights' funnel)
        self.store.save(learner, position, at=at, attempt=outcome.attempt, result=outcome.result, card=outcome.card,
                        day=self.comeback.local_day(learner, at), started=started, expected=before.version,
                        reset=outcome.reset, delivery=delivery)  # fmt: skip
        return True

    def _checked_position(self, learner: str) -> tuple[Position, str | None]:
        """The stored position, made valid for the tracks as they are now (lessons may have been edited)."""
        return self._check(self.store.position(learner))

    def _check(self, position: Position) -> tuple[Position, str | None]:
        """``position`` made valid for the tracks as they are now, and a note saying what moved, if anything."""
        if position.step == "home":
            return position, None
        track = self.tracks.get(position.track or "")
        lesson = track.lesson(position.lesson or "") if track else None
        if lesson is None:
            moved = replace(position, track=None, lesson=None, step="home")
            return moved, "The lesson you were in isn't available right now, so here is the start."
        if position.step == "section" and position.section >= len(lesson.sections) and lesson.sections:
            fixed = replace(position, section=len(lesson.sections) - 1)  # the part nearest the one that was removed
            return fixed, "This lesson changed since your last visit; here is the nearest part that is still in it."
        if position.section >= len(lesson.sections) or (
            position.step == "quiz" and position.question >= len(lesson.quiz)
        ):
            fixed = replace(position, step="premise", section=0, question=0)
            return fixed, "This lesson changed since your last visit, so here is its start."
        return position, None

    # ------------------------------------------------------------ typed text

    def _on_text(self, incoming: Incoming, position: Position, text: str) -> Outcome | None:
        """The outcome of typed text, or None when the text is a question for the answerer."""
        if not text:
            return _note("I got an empty message. Ask me a question about the lesson, or type 'help'.")
        if position.pending == "reset" and text.casefold() in YES | NO:
            return self._confirm_reset(incoming, position, text.casefold() in YES)
        command = parse_command(text, self._names)
        if command is None:
            if position.step == "quiz":
                chosen = typed_option(self._lesson(position).quiz[position.question], text)
                if chosen is not None:
                    return self._answer_quiz(incoming, position, chosen)
            if self.comeback.awaits_timezone(position, text):
                return self.comeback.set_timezone(incoming, position, text)
            found = self._term_asked(incoming, position, text)
            return Outcome([views.key_term(found, position.step != "home")]) if found else None
        name, argument = command
        if name == "ask":
            return None if argument else _note("Type your question after 'ask'.")
        if name == "term":
            return self._define(incoming, position, argument)
        if name in {"remind", "stop"}:
            return self.comeback.remind(incoming, position, "off" if name == "stop" else argument)
        if name == "tz":
            return self.comeback.set_timezone(incoming, position, argument)
        if name == "quiet":
            return self.comeback.set_quiet_hours(incoming, argument)
        if name == "leaderboard":
            return self.comeback.leaderboard(incoming, argument)
        if name == "tracks" and argument:
            return self._tracks_command(incoming, position, argument)
        if name == "insights":
            return self.authoring.insights(incoming, argument, position.track)
        screens = self._screens()
        if name in screens:
            return screens[name](incoming, position)
        if name == "track":
            return self._open_track_named(incoming, argument)
        if name == "lesson":
            return self._open_lesson_named(incoming, position, argument)
        if name in {"enable", "disable"}:
            return self._set_track(incoming, argument, name == "enable")
        return Outcome([Reply(f"I don't know the command /{escape(argument[:40])}. Type 'help' to see what I understand.",
                              buttons=rows([Button("Help", Action.HELP)]), personal=True)])  # fmt: skip

    # ------------------------------------------------------------ key terms

    def _tracks_command(self, incoming: Incoming, position: Position, argument: str) -> Outcome:
        """``tracks list|enable|disable …`` here; the moderators' authoring subcommands in ``Authoring``."""
        authored = self.authoring.command(incoming, argument)
        if authored is not None:
            return authored
        sub, _, rest = argument.partition(" ")
        if sub.casefold() in {"enable", "disable"} and rest.strip():
            return self._set_track(incoming, rest, sub.casefold() == "enable")
        return self._tracks(incoming, position)

    def _term_asked(self, incoming: Incoming, position: Position, text: str) -> TermMatch | None:
        """The key term typed text asks about ("what is soft targets?", or just the term), if a lesson defines it."""
        asked = asked_term(text)
        offered = [t.id for t in self.offered(incoming)]
        return self._shelf.key_terms.find(
            asked or text, offered, position.track, position.lesson, typos=asked is not None
        )

    def _define(self, incoming: Incoming, position: Position, phrase: str) -> Outcome:
        """``term PHRASE``: the key term's meaning, or what to do when no lesson here defines it."""
        if not phrase:
            return _note("Type the term after 'term', e.g. 'term soft targets'.")
        found = self._shelf.key_terms.find(asked_term(phrase) or phrase, [t.id for t in self.offered(incoming)],
                                     position.track, position.lesson)  # fmt: skip
        if found is not None:
            return Outcome([views.key_term(found, position.step != "home")])
        return Outcome([views.no_key_term(phrase)])

    def _open_section(
        self, incoming: Incoming, position: Position, track: Track, lesson: Lesson, index: int
    ) -> Outcome:
        """Open a lesson at one of its sections (a key term's button)."""
        if not 0 <= index < len(lesson.sections):
            return self._start_lesson(incoming, position, track, lesson)
        blocked = self._not_offered(incoming, track)
        if blocked:
            return blocked
        moved = _moved(position, track=track.id, lesson=lesson.id, step="section", section=index, question=0)
        if self.answerer is not None:
            self.answerer.prefetch(track, lesson)
        return Outcome([self._view(incoming, moved)], moved)

    def _screens(self) -> dict[str, Callable[[Incoming, Position], Outcome]]:
        """What each command word and screen action opens, all called with ``(incoming, position)``."""
        return {"start": self._home, "menu": self._home, "home": self._home, "tracks": self._tracks,
                "lessons": self._lessons_of_current, "next": self._next, "back": self._back, "quiz": self._start_quiz,
                "progress": self._progress, "help": self._help, "reset": self._ask_reset, "review": self._review,
                "resume": self._resume, "continue": self._resume, Action.RESUME: self._resume}  # fmt: skip

    # ------------------------------------------------------------ button actions

    def _on_action(self, incoming: Incoming, position: Position, action: str) -> Outcome:
        """The outcome of a button (see ``bot.core.actions``); versioned actions act only on the current position."""
        parsed = parse_action(action)
        if parsed is None:
            return self._stale(incoming, position)
        verb, args = parsed
        numbers = [action_number(arg) for arg in args]
        if verb in SCREENS and not args:
            return self._screens()[verb](incoming, position)
        if verb is Action.OPEN_TRACK and len(args) == 1 and args[0] in self._shelf.track_ids:
            return self._track_view(incoming, self._shelf.track_ids[args[0]])
        if verb is Action.OPEN_LESSON and len(args) == 2 and (args[0], args[1]) in self._shelf.lesson_ids:
            track, lesson = self._shelf.lesson_ids[(args[0], args[1])]
            return self._start_lesson(incoming, position, track, lesson)
        if (verb is Action.OPEN_SECTION and len(args) == 3 and (args[0], args[1]) in self._shelf.lesson_ids
                and numbers[2] is not None):  # fmt: skip
            track, lesson = self._shelf.lesson_ids[(args[0], args[1])]
            return self._open_section(incoming, position, track, lesson, numbers[2])
        if verb in {Action.ENABLE_TRACK, Action.DISABLE_TRACK} and len(args) == 1 and args[0] in self._shelf.track_ids:
            return self._set_track(incoming, self._shelf.track_ids[args[0]], verb is Action.ENABLE_TRACK)
        if verb is Action.REVIEW_ANSWER and len(args) == 2 and numbers[1] is not None:
            return self._answer_review(incoming, position, args[0], numbers[1])
        if verb in VERSIONED and args and numbers[0] is not None:
            if numbers[0] != position.version:
                return self._stale(incoming, position)
            moves = {Action.NEXT: self._next, Action.BACK: self._back, Action.QUIZ: self._start_quiz,
                     Action.KEEP_GOING: self._keep_going}  # fmt: skip
            if verb in moves:
                return moves[verb](incoming, position)
            if verb in {Action.RESET_YES, Action.RESET_NO}:
                return self._confirm_reset(incoming, position, verb is Action.RESET_YES)
            if verb is Action.QUIZ_ANSWER and len(args) == 2 and numbers[1] is not None and position.step == "quiz":
                return self._answer_quiz(incoming, position, numbers[1])
        return self._stale(incoming, position)

    def _stale(self, incoming: Incoming, position: Position) -> Outcome:
        now = self._resume(incoming, position)
        note = Reply("That button is from an earlier message, so I didn't act on it. Here's where you are now:",
                     personal=True)  # fmt: skip
        return Outcome([note, *now.replies], now.position)

    # ------------------------------------------------------------ what a community offers

    def offered(self, incoming: Incoming) -> list[Track]:
        """The tracks offered where this turn came from: in a DM the host's tracks; in a community the host's
        and its own uploaded ones, minus those its moderators turned off."""
        if incoming.is_direct:
            return self._shelf.offered(None, set())
        return self._shelf.offered(incoming.community, self.store.disabled_tracks(incoming.community))

    def community_tracks(self, incoming: Incoming) -> list[Track]:
        """Every track this community may offer, turned off or not (what its moderators can enable)."""
        return self._shelf.offered(None if incoming.is_direct else incoming.community, set())

    def _not_offered(self, incoming: Incoming, track: Track) -> Outcome | None:
        if any(t.id == track.id for t in self.offered(incoming)):
            return None
        if self._shelf.may_preview(track.id, None if incoming.is_direct else incoming.community, incoming.is_moderator):
            return None
        if track.id in self._shelf.drafts:
            text = f"“{track.title}” is a draft: only the moderators who uploaded it can open it until it's published."
        elif track.id in self._shelf.owners:
            text = f"The track “{track.title}” belongs to the community that uploaded it; it isn't offered here."
        else:
            text = (f"The track “{track.title}” isn't offered here: this community's moderators turned it off. "
                    "Your progress in it is kept; you can continue in a direct message or pick another track.")  # fmt: skip
        return Outcome([Reply(text, buttons=rows([Button("Tracks here", Action.HOME)]), personal=True)])

    def _tracks(self, incoming: Incoming, position: Position) -> Outcome:
        off: list[Track] = []
        if not incoming.is_direct and incoming.is_moderator:
            disabled = self.store.disabled_tracks(incoming.community)
            off = [t for t in self.community_tracks(incoming) if t.id in disabled]
        screen = views.tracks(self.offered(incoming), off, direct=incoming.is_direct, moderator=incoming.is_moderator)
        return Outcome([screen])

    def _set_track(self, incoming: Incoming, named: str | Track, enabled: bool) -> Outcome:
        verb = "enable" if enabled else "disable"
        if incoming.is_direct:
            return _note("Track settings belong to a server or group; in a direct message every track is available.")
        if not incoming.is_moderator:
            return _note(f"Only this community's moderators can {verb} tracks. Ask one of them.")
        wanted = "" if isinstance(named, Track) else named.strip().casefold()
        mine = self.community_tracks(incoming)
        track = (
            named if isinstance(named, Track) else next((t for t in mine if wanted in {t.id, track_name(t.id)}), None)
        )
        if track is None:
            known = ", ".join(sorted(track_name(t.id) for t in mine)) or "none"
            return _note(f"There is no track “{escape(str(named)[:60])}”. Published tracks: {known}.")
        was_enabled = track.id not in self.store.disabled_tracks(incoming.community)
        if was_enabled == enabled:
            state = "already offered" if enabled else "already turned off"
            return Outcome(
                [Reply(f"“{track.title}” is {state} here.", buttons=rows([Button("Tracks", Action.TRACKS)]))]
            )
        self.store.set_track_enabled(incoming.community, track.id, enabled, incoming.learner, self.clock())
        done = "now offered" if enabled else "turned off"
        text = f"“{track.title}” is {done} here (changed by {escape(incoming.display_name or incoming.user_id)})."
        if not enabled:
            text += " Learners keep their progress in it."
        return Outcome([Reply(text, buttons=rows([Button("Tracks", Action.TRACKS)]))])

    # ------------------------------------------------------------ home, tracks, lessons

    def _home(self, incoming: Incoming, position: Position) -> Outcome:
        return Outcome([views.home(incoming.display_name, self._where(position), self.offered(incoming))])

    def _where(self, position: Position) -> str | None:
        if position.step == "home":
            return None
        return views.where_you_are(self.tracks[position.track or ""], self._lesson(position), position)

    def _track_view(self, incoming: Incoming, track: Track) -> Outcome:
        blocked = self._not_offered(incoming, track)
        return blocked or Outcome([views.lessons(track, self._best_scores(incoming.learner))])

    def _names(self, command: str, argument: str) -> bool:
        """Whether typed ``command argument`` names a track or lesson, so it is that command, not a question."""
        wanted = argument.casefold()
        if command in {"enable", "disable"}:
            return any(wanted in {t.id, track_name(t.id)} for t in self.tracks.values())
        if command in {"track", "insights"}:
            return any(wanted in {t.id, track_name(t.id), t.title.casefold()} for t in self.tracks.values())
        return (wanted.isascii() and wanted.isdigit()) or any(
            wanted in {lesson.id, lesson.title.casefold()} for t in self.tracks.values() for lesson in t.lessons
        )

    def _open_track_named(self, incoming: Incoming, named: str) -> Outcome:
        wanted = named.casefold()
        for track in self.offered(incoming):
            if wanted in {track.id, track_name(track.id), track.title.casefold()}:
                return self._track_view(incoming, track)
        return _note(f"There is no track “{escape(named[:60])}” here. Type 'tracks' to see them.")

    def _lessons_of_current(self, incoming: Incoming, position: Position) -> Outcome:
        track = self.tracks.get(position.track or "")
        return self._track_view(incoming, track) if track else self._home(incoming, position)

    def _open_lesson_named(self, incoming: Incoming, position: Position, named: str) -> Outcome:
        wanted = named.casefold()
        offered = self.offered(incoming)
        current = [t for t in offered if t.id == position.track]
        for track in current + [t for t in offered if t.id != position.track]:
            for number, lesson in enumerate(track.lessons, start=1):
                if wanted in {lesson.id, lesson.title.casefold()} or (track in current and wanted == str(number)):
                    return self._start_lesson(incoming, position, track, lesson)
        return _note(f"There is no lesson “{escape(named[:60])}” here. Type 'lessons' to list them.")

    def _start_lesson(self, incoming: Incoming, position: Position, track: Track, lesson: Lesson) -> Outcome:
        blocked = self._not_offered(incoming, track)
        if blocked:
            return blocked
        moved = _moved(position, track=track.id, lesson=lesson.id, step="premise", section=0, question=0)
        if self.answerer is not None:
            self.answerer.prefetch(track, lesson)  # while the learner reads, the model reads the lesson too
        return Outcome([self._view(incoming, moved)], moved)

    # ------------------------------------------------------------ reading

    def _lesson(self, position: Position) -> Lesson:
        lesson = self.tracks[position.track or ""].lesson(position.lesson or "")
        assert lesson is not None  # _checked_position made sure of it
        return lesson

    def _view(self, incoming: Incoming, position: Position) -> Reply:
        """The message that shows a position: the premise, a section, the key terms, a quiz question, the result."""
        track, lesson = self.tracks[position.track or ""], self._lesson(position)
        if position.step == "quiz":
            return views.question(lesson, position)
        if position.step == "result":
            score = self._score(incoming.learner, track, lesson, position)
            return self._summary(incoming, track, lesson, position, score)
        related = self._related(incoming, track, lesson) if position.step == "wrapup" else []
        return views.reading(track, lesson, position, related)

    def _related(self, incoming: Incoming, track: Track, lesson: Lesson) -> list[tuple[Track, Lesson]]:
        """The lessons ``lesson`` lists as related that are offered here, in the author's order."""
        offered = {t.id: t for t in self.offered(incoming)}
        found = [(offered[t], offered[t].lesson(les)) for t, les in track.related_refs(lesson) if t in offered]
        return [(t, les) for t, les in found if les is not None]

    def _summary(self, incoming: Incoming, track: Track, lesson: Lesson, position: Position, score: int,
                 new_card: ReviewCard | None = None) -> Reply:  # fmt: skip
        """The end of a lesson: the score, its questions waiting for review and when, related lessons, what is next."""
        cards = {c.key: c for c in self.store.cards(incoming.learner) if c.track == track.id and c.lesson == lesson.id}
        if new_card is not None:
            cards[new_card.key] = new_card
        soonest = min((c.due for c in cards.values()), default=None)
        review = views.ReviewPlan(len(cards), None if soonest is None else soonest - self.clock())
        return views.result(track, lesson, position, score, review, self._related(incoming, track, lesson))

    def _needs_lesson(self, incoming: Incoming, position: Position) -> Outcome | None:
        if position.step == "home":
            home = self._home(incoming, position)
            return _note("Pick a track and a lesson first.", *home.replies)
        return self._not_offered(incoming, self.tracks[position.track or ""])

    def _resume(self, incoming: Incoming, position: Position) -> Outcome:
        blocked = self._needs_lesson(incoming, position)
        return blocked or Outcome([self._view(incoming, position)])

    def _next(self, incoming: Incoming, position: Position) -> Outcome:
        blocked = self._needs_lesson(incoming, position)
        if blocked:
            return blocked
        lesson = self._lesson(position)
        step, section = position.step, position.section
        if step == "premise":
            step, section = ("section", 0) if lesson.sections else ("wrapup", 0)
        elif step == "section":
            step, section = ("section", section + 1) if section + 1 < len(lesson.sections) else ("wrapup", section)
        elif step == "wrapup":
            return (
                self._start_quiz(incoming, position) if lesson.quiz else self._finish_without_quiz(incoming, position)
            )
        elif step == "quiz":
            return _note("You're in the quiz: pick an answer first.", self._view(incoming, position))
        elif step == "result":
            return self._keep_going(incoming, position)
        moved = _moved(position, step=step, section=section)
        return Outcome([self._view(incoming, moved)], moved)

    def _back(self, incoming: Incoming, position: Position) -> Outcome:
        blocked = self._needs_lesson(incoming, position)
        if blocked:
            return blocked
        lesson = self._lesson(position)
        step, section = position.step, position.section
        if step == "section":
            step, section = ("section", section - 1) if section > 0 else ("premise", 0)
        elif step in {"wrapup", "result"}:
            step, section = ("section", len(lesson.sections) - 1) if lesson.sections else ("premise", 0)
        elif step == "quiz":
            return _note("You're in the quiz: pick an answer first.", self._view(incoming, position))
        else:
            return _note("This is the start of the lesson.", self._view(incoming, position))
        moved = _moved(position, step=step, section=section)
        return Outcome([self._view(incoming, moved)], moved)

    # ------------------------------------------------------------ the quiz

    def _score(self, learner: str, track: Track, lesson: Lesson, position: Position) -> int:
        """Right answers in the position's quiz run (0 for a lesson without a quiz)."""
        if not lesson.quiz:
            return 0
        attempts = self.store.attempts(learner, track.id, lesson.id, position.quiz_run)
        return sum(a.correct for a in attempts)

    def _start_quiz(self, incoming: Incoming, position: Position) -> Outcome:
        blocked = self._needs_lesson(incoming, position)
        if blocked:
            return blocked
        lesson = self._lesson(position)
        if not lesson.quiz:
            return _note("This lesson has no quiz.", self._view(incoming, position))
        if position.step == "quiz":
            return Outcome([self._view(incoming, position)])
        moved = _moved(position, step="quiz", question=0, quiz_run=position.quiz_run + 1)
        return Outcome([self._view(incoming, moved)], moved)

    def _answer_quiz(self, incoming: Incoming, position: Position, chosen: int) -> Outcome:
        blocked = self._needs_lesson(incoming, position)
        if blocked:
            return blocked
        lesson = self._lesson(position)
        question = lesson.quiz[position.question]
        if not 0 <= chosen < len(question.options):
            letters = f"{option_label(0)}–{option_label(len(question.options) - 1)}"
            return _note(f"Pick one of {letters}.", self._view(incoming, position))
        now = self.clock()
        correct = chosen == question.correct_index
        attempt = QuizAttempt(
            position.track or "", lesson.id, position.quiz_run, position.question, chosen, correct, now
        )
        card = None
        if not correct:
            existing = self._card(incoming.learner, f"{position.track}/{lesson.id}/{position.question}")
            card = self.reviews.missed(position.track or "", lesson.id, position.question, now, existing)
        feedback = Reply(views.feedback(lesson, question, chosen), personal=True)
        if position.question + 1 < len(lesson.quiz):
            moved = _moved(position, question=position.question + 1)
            return Outcome([feedback, self._view(incoming, moved)], moved, attempt, card=card)
        earlier = self.store.attempts(incoming.learner, attempt.track, lesson.id, position.quiz_run)
        right = sum(a.correct for a in earlier if a.question != attempt.question) + correct
        result = LessonResult(attempt.track, lesson.id, right, len(lesson.quiz), now)
        moved = _moved(position, step="result")
        summary = self._summary(incoming, self.tracks[attempt.track], lesson, moved, right, card)
        return Outcome([feedback, summary], moved, attempt, result, card)

    def _finish_without_quiz(self, incoming: Incoming, position: Position) -> Outcome:
        lesson = self._lesson(position)
        moved = _moved(position, step="result")
        result = LessonResult(position.track or "", lesson.id, 0, 0, self.clock())
        return Outcome([self._view(incoming, moved)], moved, result=result)

    def _keep_going(self, incoming: Incoming, position: Position) -> Outcome:
        blocked = self._needs_lesson(incoming, position)
        if blocked:
            return blocked
        track = self.tracks[position.track or ""]
        following = track.after(self._lesson(position))
        if following is None:
            home = self._home(incoming, position)
            return Outcome([Reply(f"You've reached the end of “{track.title}”. Pick another track:"), *home.replies])
        return self._start_lesson(incoming, position, track, following)

    # ------------------------------------------------------------ review

    def _card(self, learner: str, key: str) -> ReviewCard | None:
        return next((card for card in self.store.cards(learner) if card.key == key), None)

    def _due(self, learner: str) -> list[ReviewCard]:
        return progress.due(self.tracks, self.store.cards(learner), self.clock())

    def _review(self, incoming: Incoming, position: Position) -> Outcome:
        due = self._due(incoming.learner)
        if not due:
            cards = [c for c in self.store.cards(incoming.learner) if progress.question_of(self.tracks, c)]
            return Outcome([views.nothing_to_review(cards[0].due - self.clock() if cards else None)])
        return Outcome([self._review_view(due[0], len(due))])

    def _review_view(self, card: ReviewCard, due: int) -> Reply:
        found = progress.question_of(self.tracks, card)
        assert found is not None
        return views.review_card(card, *found, due)

    def _answer_review(self, incoming: Incoming, position: Position, card_hash: str, chosen: int) -> Outcome:
        due = self._due(incoming.learner)
        card = next((c for c in due if short_hash(c.key) == card_hash), None)
        if card is None:
            return _note("You've already reviewed that question.", *self._review(incoming, position).replies)
        found = progress.question_of(self.tracks, card)
        assert found is not None
        lesson, question = found
        if not 0 <= chosen < len(question.options):
            return _note("That answer isn't one of the options.", self._review_view(card, len(due)))
        reviewed = self.reviews.reviewed(card, chosen == question.correct_index, self.clock())
        replies = [Reply(views.feedback(lesson, question, chosen), personal=True)]
        rest = [c for c in due if c.key != card.key]
        if rest:
            replies.append(self._review_view(rest[0], len(rest)))
        else:
            replies.append(
                Reply(
                    "Review done for now. 🎉",
                    buttons=rows([Button("Resume lesson", Action.RESUME), Button("Home", Action.HOME)]),
                )
            )
        return Outcome(replies, position, card=reviewed)

    # ------------------------------------------------------------ progress, help, reset

    def _best_scores(self, learner: str) -> progress.BestScores:
        return progress.best_scores(self.store.results(learner))

    def _progress(self, incoming: Incoming, position: Position) -> Outcome:
        best = self._best_scores(incoming.learner)
        up_next = progress.up_next(self.offered(incoming), position, best)
        today = self.comeback.today(incoming.learner, self.clock())
        streak = progress.streak(self.store.active_days(incoming.learner), today)
        due = len(self._due(incoming.learner))
        screen = views.progress(self.tracks.values(), best, position, self._where(position), up_next, streak, due)
        return Outcome([screen])

    def _help(self, incoming: Incoming, position: Position) -> Outcome:
        return Outcome([views.help_screen(incoming.is_direct)])

    def _ask_reset(self, incoming: Incoming, position: Position) -> Outcome:
        moved = replace(position, pending="reset", version=position.version + 1)
        return Outcome([views.reset_confirmation(moved.version)], moved)

    def _confirm_reset(self, incoming: Incoming, position: Position, confirmed: bool) -> Outcome:
        if position.pending != "reset":
            return self._stale(incoming, position)
        if not confirmed:
            kept = _moved(position)
            return Outcome(
                [Reply("Kept: nothing was erased.", buttons=rows([Button("Resume ▸", Action.RESUME)]), personal=True)],
                kept,
            )
        fresh = Position(version=position.version + 1)  # keep counting so old buttons stay stale
        home = self._home(incoming, fresh)
        return Outcome([Reply("Done: your progress is erased. Start again whenever you like.", personal=True),
                        *home.replies], fresh, reset=True)  # fmt: skip

    # ------------------------------------------------------------ questions

    @staticmethod
    def _answer_track(offered: list[Track], position: Position) -> str | None:
        if position.track and any(t.id == position.track for t in offered):
            return position.track
        return offered[0].id if len(offered) == 1 else None

    async def _answer(self, incoming: Incoming, position: Position, question: str, cut: bool) -> AsyncIterator[Reply]:
        if position.track in self._shelf.drafts:
            yield Reply("This is a draft in preview: questions are answered from a track once it is published. "
                        "Try the quiz meanwhile, or publish it.", personal=True)  # fmt: skip
            return
        if self.answerer is None:
            yield Reply("Questions can't be answered right now (no model is configured).", personal=True)
            return
        offered = await asyncio.to_thread(self.offered, incoming)
        if not incoming.is_direct and not offered:
            yield Reply("No tracks are offered here, so there are no lessons to answer from.", personal=True)
            return
        track = self._answer_track(offered, position)
        lesson = position.lesson if track and track == position.track else None
        scope = [t.id for t in offered]
        shown = ""
        final: Answer | None = None
        try:
            async for event in self.answerer.ask(question, track, lesson, learner=incoming.learner, scope=scope):
                if isinstance(event, AnswerDelta):
                    shown += event.text
                    yield Reply(shown, partial=True)
                else:
                    final = event
        except ModelBusy as busy:
            yield Reply(str(busy), personal=True)
            return
        except ModelFailed:
            yield Reply("Sorry, I couldn't write an answer just now. Please try again in a moment.", personal=True)
            return
        assert final is not None
        read_only = self.answerer.settings.max_question_chars if cut or final.truncated_question else None
        yield views.answer(final, read_only, in_lesson=position.step != "home")
