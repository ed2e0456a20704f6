"""The dialogue engine: one learner's turn in, replies out, progress stored before anything is shown.

``Engine.handle(Incoming)`` is the only entry point adapters use. A turn is either navigation (tracks,
lessons, sections, quiz answers, progress, help, reset, moderator settings), which reads and writes the
progress store and never waits for the model, or a question, which goes to the grounded answerer and
streams. Turns of one learner run one at a time (a per-learner lock); different learners never wait for
each other. Every turn that moves the learner is saved in one transaction *before* its replies are
yielded, so what a learner has seen is what a restart resumes from.

Buttons carry short action ids (see ``Actions``); those that act on a position carry its version, so a
button from an older message is recognised as stale instead of acting on the wrong question.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import unicodedata
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone

from bot.core.answering import Answer, AnswerDelta, Answerer
from bot.core.lessons import Lesson, Question, Track
from bot.core.messages import Button, Incoming, QuizCard, Reply, rows
from bot.core.ports import LessonResult, ModelBusy, ModelFailed, Position, ProgressStore, QuizAttempt, ReviewCard
from bot.core.quiz import ReviewScheduler, option_label, typed_option

MAX_MESSAGE_CHARS = 4000  # longer messages are cut before anything reads them (answers read even less)
_DROPPED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn"}  # control, format (zero-width, bidi), surrogates, unassigned
_WORD_COMMANDS = {"start", "menu", "home", "tracks", "next", "back", "quiz", "progress", "help", "reset",
                  "review", "resume", "continue", "lessons"}  # fmt: skip
_ARG_COMMANDS = {"track", "lesson", "enable", "disable", "ask"}
YES = {"yes", "y", "yes, erase"}
NO = {"no", "n", "cancel"}


def short_hash(text: str) -> str:
    """Eight hex digits naming a track, lesson or card inside action ids (ids themselves may be long)."""
    return hashlib.blake2s(text.encode("utf-8"), digest_size=4).hexdigest()


def clean_text(text: str, limit: int = MAX_MESSAGE_CHARS) -> tuple[str, bool]:
    """Text safe to read: cut to ``limit``, NFKC-normalised, without control/format/surrogate characters."""
    cut = len(text) > limit
    text = unicodedata.normalize("NFKC", text[:limit])
    kept = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in _DROPPED_CATEGORIES)
    return kept.strip(), cut


def parse_command(text: str) -> tuple[str, str] | None:
    """``(command, argument)`` for ``/next``, ``next``, ``lesson attention``…; None for anything else.

    A slash command that is not known comes back as ``("?", name)``.
    """
    if text.startswith("/"):
        word, _, rest = text[1:].partition(" ")
        word = word.split("@", 1)[0].casefold()
        if word in {"lesson", "track"} and not rest.strip():
            return word + "s", ""
        known = word in _WORD_COMMANDS or word in _ARG_COMMANDS
        return (word, rest.strip()) if known else ("?", word)
    word, _, rest = text.partition(" ")
    word = word.casefold()
    if word in _WORD_COMMANDS and not rest.strip():
        return word, ""
    if word == "ask":
        return word, rest.strip()  # a question of any length; alone, a hint
    if word in _ARG_COMMANDS and rest.strip() and len(rest.split()) <= 3:
        return word, rest.strip()
    if word in {"lesson", "track"} and not rest.strip():
        return word + "s", ""  # "lesson" alone lists the lessons, "track" alone the tracks
    return None


def _question_in(text: str) -> str:
    """The question of typed text: the argument of ``ask QUESTION`` / ``/ask QUESTION``, else the text itself."""
    command = parse_command(text)
    return command[1] if command and command[0] == "ask" else text


@dataclass
class Outcome:
    """What a navigation turn produced: replies, and what to store before showing them."""

    replies: list[Reply] = field(default_factory=list)
    position: Position | None = None
    attempt: QuizAttempt | None = None
    result: LessonResult | None = None
    card: ReviewCard | None = None


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
    ):
        self.tracks = dict(tracks)
        self.store = store
        self.answerer = answerer
        self.reviews = reviews or ReviewScheduler()
        self.clock = clock
        self._locks = _LearnerLocks()
        self._asking: set[str] = set()  # learners whose question is with the model right now
        self._track_ids = {short_hash(t.id): t for t in self.tracks.values()}
        self._lesson_ids = {(short_hash(t.id), short_hash(lesson.id)): (t, lesson)
                            for t in self.tracks.values() for lesson in t.lessons}  # fmt: skip

    # ------------------------------------------------------------ the turn

    async def handle(self, incoming: Incoming) -> AsyncIterator[Reply]:
        """Handle one turn; yield its replies (iterate to the end: the learner's lock is held until then)."""
        if incoming.learner in self._asking and self.is_question(incoming):
            # One question per learner at a time: the model's queue is shared fairly, not filled by one person.
            yield Reply("I'm still answering your last question; ask this one again when that answer is done.",
                        personal=True)  # fmt: skip
            return
        async with self._locks.hold(incoming.learner):
            position, note = self._checked_position(incoming.learner)
            question: str | None = None
            cut = False
            if incoming.action is not None:
                outcome = self._on_action(incoming, position, incoming.action)
            else:
                text, cut = clean_text(incoming.text or "")
                outcome = self._on_text(incoming, position, text)
                if outcome is None:
                    question = _question_in(text)
            if note:  # shown, not stored: if the lesson comes back, so does the learner's place in it
                outcome = outcome or Outcome()
                outcome.replies.insert(0, Reply(note, personal=True))
            if outcome is not None:
                self._store(incoming.learner, outcome)
                for reply in outcome.replies:
                    yield reply
            if question is not None:
                self._asking.add(incoming.learner)
                try:
                    async for reply in self._answer(incoming, position, question, cut):
                        yield reply
                finally:
                    self._asking.discard(incoming.learner)

    def is_question(self, incoming: Incoming) -> bool:
        """Whether typed text would go to the model (not a command, nor a quiz answer, nor a confirmation)."""
        if incoming.action is not None:
            return False
        text, _cut = clean_text(incoming.text or "")
        position, _note = self._checked_position(incoming.learner)
        if not text:
            return False
        command = parse_command(text)
        if command is not None:
            return command[0] == "ask" and bool(command[1])
        if position.pending == "reset" and text.casefold() in YES | NO:
            return False
        return not (position.step == "quiz" and typed_option(self._lesson(position).quiz[position.question], text) is not None)

    async def replies(self, incoming: Incoming) -> list[Reply]:
        """Handle one turn and return every reply (for callers that do not stream)."""
        return [reply async for reply in self.handle(incoming)]

    def _store(self, learner: str, outcome: Outcome) -> None:
        if outcome.position is None and outcome.attempt is None and outcome.card is None:
            return
        position = outcome.position or self.store.position(learner)
        self.store.save(learner, position, at=self.clock(), attempt=outcome.attempt, result=outcome.result,
                        card=outcome.card)  # fmt: skip

    def _checked_position(self, learner: str) -> tuple[Position, str | None]:
        """The stored position, made valid for the tracks as they are now (lessons may have been edited)."""
        position = self.store.position(learner)
        if position.step == "home":
            return position, None
        track = self.tracks.get(position.track or "")
        lesson = track.lesson(position.lesson or "") if track else None
        if lesson is None:
            moved = replace(position, track=None, lesson=None, step="home")
            return moved, "The lesson you were in isn't available right now, so here is the start."
        if position.section >= len(lesson.sections) or (position.step == "quiz" and position.question >= len(lesson.quiz)):
            fixed = replace(position, step="premise", section=0, question=0)
            return fixed, "This lesson changed since your last visit, so here is its start."
        return position, None

    # ------------------------------------------------------------ typed text

    def _on_text(self, incoming: Incoming, position: Position, text: str) -> Outcome | None:
        """The outcome of typed text, or None when the text is a question for the answerer."""
        if not text:
            return Outcome([Reply("I got an empty message. Ask me a question about the lesson, or type 'help'.",
                                  personal=True)])  # fmt: skip
        if position.pending == "reset" and text.casefold() in YES | NO:
            return self._confirm_reset(incoming, position, text.casefold() in YES)
        command = parse_command(text)
        if command is None:
            if position.step == "quiz":
                question = self._lesson(position).quiz[position.question]
                chosen = typed_option(question, text)
                if chosen is not None:
                    return self._answer_quiz(incoming, position, chosen)
            return None
        name, argument = command
        if name == "ask":
            return None if argument else Outcome([Reply("Type your question after 'ask'.", personal=True)])
        handlers: dict[str, Callable[[], Outcome]] = {
            "start": lambda: self._home(incoming, position),
            "menu": lambda: self._home(incoming, position),
            "home": lambda: self._home(incoming, position),
            "tracks": lambda: self._tracks(incoming),
            "lessons": lambda: self._lessons_of_current(incoming, position),
            "next": lambda: self._next(incoming, position),
            "back": lambda: self._back(incoming, position),
            "quiz": lambda: self._start_quiz(incoming, position),
            "progress": lambda: self._progress(incoming, position),
            "help": lambda: self._help(incoming),
            "reset": lambda: self._ask_reset(position),
            "review": lambda: self._review(incoming),
            "resume": lambda: self._resume(incoming, position),
            "continue": lambda: self._resume(incoming, position),
            "track": lambda: self._open_track_named(incoming, argument),
            "lesson": lambda: self._open_lesson_named(incoming, position, argument),
            "enable": lambda: self._set_track(incoming, argument, True),
            "disable": lambda: self._set_track(incoming, argument, False),
        }
        if name in handlers:
            return handlers[name]()
        return Outcome([Reply(f"I don't know the command /{argument[:40]}. Type 'help' to see what I understand.",
                              buttons=rows([Button("Help", "help")]), personal=True)])  # fmt: skip

    # ------------------------------------------------------------ button actions

    def _on_action(self, incoming: Incoming, position: Position, action: str) -> Outcome:
        verb, _, rest = action.partition(":")
        args = rest.split(":") if rest else []
        simple: dict[str, Callable[[], Outcome]] = {
            "home": lambda: self._home(incoming, position),
            "help": lambda: self._help(incoming),
            "progress": lambda: self._progress(incoming, position),
            "review": lambda: self._review(incoming),
            "tracks": lambda: self._tracks(incoming),
            "reset": lambda: self._ask_reset(position),
            "w": lambda: self._resume(incoming, position),
        }
        if verb in simple and not args:
            return simple[verb]()
        if verb == "t" and len(args) == 1 and args[0] in self._track_ids:
            return self._track_view(incoming, self._track_ids[args[0]])
        if verb == "l" and len(args) == 2 and (args[0], args[1]) in self._lesson_ids:
            track, lesson = self._lesson_ids[(args[0], args[1])]
            return self._start_lesson(incoming, position, track, lesson)
        if verb in {"me", "md"} and len(args) == 1 and args[0] in self._track_ids:
            return self._set_track(incoming, self._track_ids[args[0]], verb == "me")
        if verb == "v" and len(args) == 2 and args[1].isdigit():
            return self._answer_review(incoming, position, args[0], int(args[1]))
        versioned = {"n", "b", "q", "a", "k", "ry", "rn"}
        if verb in versioned and args and args[0].isdigit():
            if int(args[0]) != position.version:
                return self._stale(incoming, position)
            if verb == "n":
                return self._next(incoming, position)
            if verb == "b":
                return self._back(incoming, position)
            if verb == "q":
                return self._start_quiz(incoming, position)
            if verb == "k":
                return self._keep_going(incoming, position)
            if verb in {"ry", "rn"}:
                return self._confirm_reset(incoming, position, verb == "ry")
            if verb == "a" and len(args) == 2 and args[1].isdigit() and position.step == "quiz":
                return self._answer_quiz(incoming, position, int(args[1]))
        return self._stale(incoming, position)

    def _stale(self, incoming: Incoming, position: Position) -> Outcome:
        now = self._resume(incoming, position)
        note = Reply("That button is from an earlier message, so I didn't act on it. Here's where you are now:",
                     personal=True)  # fmt: skip
        return Outcome([note, *now.replies], now.position)

    # ------------------------------------------------------------ what a community offers

    def offered(self, incoming: Incoming) -> list[Track]:
        """The tracks offered where this turn came from: every track in a DM, the enabled ones elsewhere."""
        if incoming.is_direct:
            return list(self.tracks.values())
        disabled = self.store.disabled_tracks(incoming.community)
        return [track for track in self.tracks.values() if track.id not in disabled]

    def _not_offered(self, incoming: Incoming, track: Track) -> Outcome | None:
        if any(t.id == track.id for t in self.offered(incoming)):
            return None
        text = (f"The track “{track.title}” isn't offered here: this community's moderators turned it off. "
                "Your progress in it is kept; you can continue in a direct message or pick another track.")  # fmt: skip
        return Outcome([Reply(text, buttons=rows([Button("Tracks here", "home")]), personal=True)])

    def _tracks(self, incoming: Incoming) -> Outcome:
        offered = self.offered(incoming)
        lines = [f"• **{t.title}** ({t.id}): {t.description}" for t in offered] or ["No tracks are offered here yet."]
        text = "**Tracks here**\n" + "\n".join(lines)
        buttons = [Button(t.title[:60], f"t:{short_hash(t.id)}") for t in offered]
        if incoming.is_direct:
            text += "\n\nIn a direct message every published track is available."
        elif incoming.is_moderator:
            disabled = self.store.disabled_tracks(incoming.community)
            off = [t for t in self.tracks.values() if t.id in disabled]
            if off:
                text += "\n\n**Turned off here**\n" + "\n".join(f"• {t.title} ({t.id})" for t in off)
            text += "\n\nAs a moderator you can turn tracks on and off: 'enable TRACK' or 'disable TRACK', or the buttons."
            buttons += [Button(f"Turn off {t.title}"[:60], f"md:{short_hash(t.id)}") for t in offered]
            buttons += [Button(f"Turn on {t.title}"[:60], f"me:{short_hash(t.id)}") for t in off]
        else:
            text += "\n\nModerators choose which tracks this community offers."
        return Outcome([Reply(text, buttons=rows(buttons, 1 if len(buttons) <= 5 else 3))])

    def _set_track(self, incoming: Incoming, named: str | Track, enabled: bool) -> Outcome:
        verb = "enable" if enabled else "disable"
        if incoming.is_direct:
            return Outcome([Reply("Track settings belong to a server or group; in a direct message every track is "
                                  "available.", personal=True)])  # fmt: skip
        if not incoming.is_moderator:
            return Outcome([Reply(f"Only this community's moderators can {verb} tracks. Ask one of them.", personal=True)])
        track = named if isinstance(named, Track) else self.tracks.get(named.strip().casefold())
        if track is None:
            known = ", ".join(sorted(self.tracks)) or "none"
            return Outcome([Reply(f"There is no track “{str(named)[:60]}”. Published tracks: {known}.", personal=True)])
        was_enabled = track.id not in self.store.disabled_tracks(incoming.community)
        if was_enabled == enabled:
            state = "already offered" if enabled else "already turned off"
            return Outcome([Reply(f"“{track.title}” is {state} here.", buttons=rows([Button("Tracks", "tracks")]))])
        self.store.set_track_enabled(incoming.community, track.id, enabled, incoming.learner, self.clock())
        done = "now offered" if enabled else "turned off"
        text = f"“{track.title}” is {done} here (changed by {incoming.display_name or incoming.user_id})."
        if not enabled:
            text += " Learners keep their progress in it."
        return Outcome([Reply(text, buttons=rows([Button("Tracks", "tracks")]))])

    # ------------------------------------------------------------ home, tracks, lessons

    def _home(self, incoming: Incoming, position: Position) -> Outcome:
        offered = self.offered(incoming)
        name = f", {incoming.display_name}" if incoming.display_name else ""
        parts = [f"**Welcome to tutorbot{name}!** Pick a track, read short lessons, take the quizzes, and ask me "
                 "anything about the lessons in your own words."]  # fmt: skip
        buttons: list[Button] = []
        where = self._where(position)
        if where:
            parts.append(f"You left off in {where}.")
            buttons.append(Button("Resume ▸", "w"))
        if offered:
            parts.append("**Tracks here**\n" + "\n".join(f"• {t.title} ({len(t.lessons)} lessons)" for t in offered))
            buttons += [Button(t.title[:60], f"t:{short_hash(t.id)}") for t in offered[:15]]
        else:
            parts.append("No tracks are offered here yet; a moderator can turn some on with 'enable TRACK'.")
        buttons += [Button("Progress", "progress"), Button("Help", "help")]
        return Outcome([Reply("\n\n".join(parts), buttons=rows(buttons, 1 if len(buttons) <= 5 else 3))])

    def _where(self, position: Position) -> str | None:
        if position.step == "home":
            return None
        track = self.tracks[position.track or ""]
        lesson = self._lesson(position)
        place = {
            "premise": "at the start",
            "section": f"section {position.section + 1} of {len(lesson.sections)}",
            "wrapup": "at the key terms",
            "quiz": f"the quiz, question {position.question + 1} of {len(lesson.quiz)}",
            "result": "finished",
        }[position.step]
        return f"“{lesson.title}” ({track.title}), {place}"

    def status(self, learner: str) -> str:
        """A one-line summary of where the learner is (for a console status line)."""
        position, _note = self._checked_position(learner)
        if position.step == "home":
            return "no lesson open · type 'start'"
        return self._where(position) or ""

    def _track_view(self, incoming: Incoming, track: Track) -> Outcome:
        blocked = self._not_offered(incoming, track)
        if blocked:
            return blocked
        best = self._best_scores(incoming.learner)
        lines = []
        for number, lesson in enumerate(track.lessons, start=1):
            mark = ""
            if (track.id, lesson.id) in best:
                score, total = best[(track.id, lesson.id)]
                mark = f" ✓ {score}/{total}" if total else " ✓"
            lines.append(f"{number}. {lesson.title} · {lesson.minutes} min{mark}")
        text = f"**{track.title}**\n{track.description}\n\n" + "\n".join(lines)
        if len(track.lessons) <= 4:
            buttons = rows([Button(f"{n}. {lesson.title}"[:60], f"l:{short_hash(track.id)}:{short_hash(lesson.id)}")
                            for n, lesson in enumerate(track.lessons, start=1)], 1)  # fmt: skip
        else:
            numbered = [Button(str(n), f"l:{short_hash(track.id)}:{short_hash(lesson.id)}")
                        for n, lesson in enumerate(track.lessons[:20], start=1)]  # fmt: skip
            buttons = rows(numbered)
            if len(track.lessons) > 20:
                text += "\n\nType 'lesson ID' to open a lesson beyond the 20th."
        return Outcome([Reply(text, buttons=buttons + rows([Button("◂ Tracks", "home")]))])

    def _open_track_named(self, incoming: Incoming, named: str) -> Outcome:
        wanted = named.casefold()
        for track in self.offered(incoming):
            if wanted in {track.id, track.title.casefold()}:
                return self._track_view(incoming, track)
        return Outcome([Reply(f"There is no track “{named[:60]}” here. Type 'tracks' to see them.", personal=True)])

    def _lessons_of_current(self, incoming: Incoming, position: Position) -> Outcome:
        if position.track in self.tracks:
            return self._track_view(incoming, self.tracks[position.track])
        return self._home(incoming, position)

    def _open_lesson_named(self, incoming: Incoming, position: Position, named: str) -> Outcome:
        wanted = named.casefold()
        offered = self.offered(incoming)
        current = [t for t in offered if t.id == position.track]
        for track in current + [t for t in offered if t.id != position.track]:
            for number, lesson in enumerate(track.lessons, start=1):
                if wanted in {lesson.id, lesson.title.casefold()} or (track in current and wanted == str(number)):
                    return self._start_lesson(incoming, position, track, lesson)
        return Outcome([Reply(f"There is no lesson “{named[:60]}” here. Type 'lessons' to list them.", personal=True)])

    def _start_lesson(self, incoming: Incoming, position: Position, track: Track, lesson: Lesson) -> Outcome:
        blocked = self._not_offered(incoming, track)
        if blocked:
            return blocked
        moved = replace(position, track=track.id, lesson=lesson.id, step="premise", section=0, question=0,
                        pending=None, version=position.version + 1)  # fmt: skip
        if self.answerer is not None:
            self.answerer.prefetch(track, lesson)  # while the learner reads, the model reads the lesson too
        return Outcome([self._view(moved)], moved)

    # ------------------------------------------------------------ reading

    def _lesson(self, position: Position) -> Lesson:
        lesson = self.tracks[position.track or ""].lesson(position.lesson or "")
        assert lesson is not None  # _checked_position made sure of it
        return lesson

    def _needs_lesson(self, incoming: Incoming, position: Position) -> Outcome | None:
        if position.step == "home":
            home = self._home(incoming, position)
            return Outcome([Reply("Pick a track and a lesson first.", personal=True), *home.replies])
        return self._not_offered(incoming, self.tracks[position.track or ""])

    def _resume(self, incoming: Incoming, position: Position) -> Outcome:
        blocked = self._needs_lesson(incoming, position)
        return blocked or Outcome([self._view(position, incoming.learner)])

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
            return self._start_quiz(incoming, position) if lesson.quiz else self._finish_without_quiz(position)
        elif step == "quiz":
            return Outcome([Reply("You're in the quiz: pick an answer first.", personal=True), self._view(position)])
        elif step == "result":
            return self._keep_going(incoming, position)
        moved = replace(position, step=step, section=section, pending=None, version=position.version + 1)
        return Outcome([self._view(moved)], moved)

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
            return Outcome([Reply("You're in the quiz: pick an answer first.", personal=True), self._view(position)])
        else:
            return Outcome([Reply("This is the start of the lesson.", personal=True), self._view(position)])
        moved = replace(position, step=step, section=section, pending=None, version=position.version + 1)
        return Outcome([self._view(moved)], moved)

    def _view(self, position: Position, learner: str = "") -> Reply:
        """The message that shows a position: a section, the premise, the key terms, a quiz question…"""
        track = self.tracks[position.track or ""]
        lesson = self._lesson(position)
        v = position.version
        back, forward = Button("◂ Back", f"b:{v}"), Button("Next ▸", f"n:{v}")
        if position.step == "premise":
            outline = "\n".join(f"{n}. {s.heading}" for n, s in enumerate(lesson.sections, start=1))
            text = f"**{lesson.title}** · about {lesson.minutes} min · {track.title}\n\n{lesson.premise}\n\n{outline}"
            return Reply(text, buttons=rows([Button("Start reading ▸", f"n:{v}"), Button("Lessons", f"t:{short_hash(track.id)}")]))
        if position.step == "section":
            section = lesson.sections[position.section]
            text = f"**{section.heading}** · {position.section + 1}/{len(lesson.sections)} · {lesson.title}\n\n{section.text}"
            return Reply(text, buttons=rows([back, forward]))
        if position.step == "wrapup":
            parts = [f"**Wrapping up: {lesson.title}**"]
            if lesson.key_terms:
                parts.append("**Key terms**\n" + "\n".join(f"• **{term}**: {meaning}" for term, meaning in lesson.key_terms))
            if lesson.practice:
                parts.append("**Practice**\n" + "\n".join(f"{n}. {step}" for n, step in enumerate(lesson.practice, 1)))
            done = Button(f"Take the quiz ({len(lesson.quiz)} questions) ▸", f"q:{v}") if lesson.quiz else Button(
                "Finish the lesson ✓", f"n:{v}")  # fmt: skip
            return Reply("\n\n".join(parts), buttons=rows([back, done]))
        if position.step == "quiz":
            return self._question_view(lesson, position)
        return self._result_view(track, lesson, position, learner=learner)

    # ------------------------------------------------------------ the quiz

    def _question_view(self, lesson: Lesson, position: Position) -> Reply:
        question = lesson.quiz[position.question]
        options = "\n".join(f"{option_label(i)}) {option}" for i, option in enumerate(question.options))
        text = f"**Question {position.question + 1} of {len(lesson.quiz)}** · {lesson.title}\n\n{question.prompt}\n\n{options}"
        actions = tuple(f"a:{position.version}:{i}" for i in range(len(question.options)))
        card = QuizCard(question.prompt, question.options, question.correct_index, question.explanation, actions)
        buttons = [Button(option_label(i), action) for i, action in enumerate(actions)]
        return Reply(text, buttons=rows(buttons), quiz=card, personal=True)

    def _start_quiz(self, incoming: Incoming, position: Position) -> Outcome:
        blocked = self._needs_lesson(incoming, position)
        if blocked:
            return blocked
        lesson = self._lesson(position)
        if not lesson.quiz:
            return Outcome([Reply("This lesson has no quiz.", personal=True), self._view(position)])
        if position.step == "quiz":
            return Outcome([self._view(position)])
        moved = replace(position, step="quiz", question=0, quiz_run=position.quiz_run + 1, pending=None,
                        version=position.version + 1)  # fmt: skip
        return Outcome([self._view(moved)], moved)

    def _feedback(self, lesson: Lesson, question: Question, chosen: int) -> str:
        if chosen == question.correct_index:
            text = "✅ **Right!**"
        else:
            text = f"❌ **Not quite.** The answer is {option_label(question.correct_index)}) {question.correct_option}."
        if question.explanation:
            text += f" {question.explanation}"
        if chosen != question.correct_index and question.section:
            section = lesson.section(question.section)
            if section is not None:
                text += f"\nRe-read “{section.heading}” (section {lesson.sections.index(section) + 1})."
        return text

    def _answer_quiz(self, incoming: Incoming, position: Position, chosen: int) -> Outcome:
        blocked = self._needs_lesson(incoming, position)
        if blocked:
            return blocked
        lesson = self._lesson(position)
        question = lesson.quiz[position.question]
        if not 0 <= chosen < len(question.options):
            letters = f"{option_label(0)}–{option_label(len(question.options) - 1)}"
            return Outcome([Reply(f"Pick one of {letters}.", personal=True), self._view(position)])
        now = self.clock()
        correct = chosen == question.correct_index
        attempt = QuizAttempt(position.track or "", lesson.id, position.quiz_run, position.question, chosen, correct, now)
        card = None
        if not correct:
            existing = self._card(incoming.learner, f"{position.track}/{lesson.id}/{position.question}")
            card = self.reviews.missed(position.track or "", lesson.id, position.question, now, existing)
        feedback = Reply(self._feedback(lesson, question, chosen), personal=True)
        if position.question + 1 < len(lesson.quiz):
            moved = replace(position, question=position.question + 1, pending=None, version=position.version + 1)
            return Outcome([feedback, self._view(moved)], moved, attempt, card=card)
        earlier = self.store.attempts(incoming.learner, attempt.track, lesson.id, position.quiz_run)
        right = sum(a.correct for a in earlier if a.question != attempt.question) + correct
        result = LessonResult(attempt.track, lesson.id, right, len(lesson.quiz), now)
        moved = replace(position, step="result", pending=None, version=position.version + 1)
        return Outcome([feedback, self._result_view(self.tracks[attempt.track], lesson, moved, right)], moved,
                       attempt, result, card)  # fmt: skip

    def _finish_without_quiz(self, position: Position) -> Outcome:
        lesson = self._lesson(position)
        moved = replace(position, step="result", pending=None, version=position.version + 1)
        result = LessonResult(position.track or "", lesson.id, 0, 0, self.clock())
        return Outcome([self._result_view(self.tracks[position.track or ""], lesson, moved)], moved, result=result)

    def _result_view(self, track: Track, lesson: Lesson, position: Position, right: int | None = None,
                     learner: str = "") -> Reply:  # fmt: skip
        v = position.version
        if lesson.quiz:
            if right is None:
                attempts = self.store.attempts(learner, track.id, lesson.id, position.quiz_run)
                right = sum(a.correct for a in attempts)
            missed = len(lesson.quiz) - right
            text = f"**Quiz done: {right}/{len(lesson.quiz)}** · {lesson.title}"
            if missed:
                text += f"\nThe {missed} you missed will come back for review later ('review')."
            else:
                text += "\nEvery answer right. 🎉"
        else:
            text = f"**Lesson finished:** {lesson.title} ✓"
        following = self._following(track, lesson)
        buttons = []
        if following:
            text += f"\n\nNext up: “{following.title}”."
            buttons.append(Button("Keep going ▸", f"k:{v}"))
        else:
            text += f"\n\nThat was the last lesson of “{track.title}”."
            buttons.append(Button("Tracks", "home"))
        if lesson.quiz:
            buttons.append(Button("Retake the quiz", f"q:{v}"))
        buttons.append(Button("Progress", "progress"))
        return Reply(text, buttons=rows(buttons))

    @staticmethod
    def _following(track: Track, lesson: Lesson) -> Lesson | None:
        index = track.lessons.index(lesson)
        return track.lessons[index + 1] if index + 1 < len(track.lessons) else None

    def _keep_going(self, incoming: Incoming, position: Position) -> Outcome:
        blocked = self._needs_lesson(incoming, position)
        if blocked:
            return blocked
        track = self.tracks[position.track or ""]
        following = self._following(track, self._lesson(position))
        if following is None:
            home = self._home(incoming, position)
            return Outcome([Reply(f"You've reached the end of “{track.title}”. Pick another track:"), *home.replies])
        return self._start_lesson(incoming, position, track, following)

    # ------------------------------------------------------------ review

    def _card(self, learner: str, key: str) -> ReviewCard | None:
        return next((card for card in self.store.cards(learner) if card.key == key), None)

    def _question_of(self, card: ReviewCard) -> tuple[Lesson, Question] | None:
        track = self.tracks.get(card.track)
        lesson = track.lesson(card.lesson) if track else None
        if lesson is None or card.question >= len(lesson.quiz):
            return None
        return lesson, lesson.quiz[card.question]

    def _due(self, learner: str) -> list[ReviewCard]:
        now = self.clock()
        return [card for card in self.store.cards(learner) if card.due <= now and self._question_of(card)]

    def _review(self, incoming: Incoming) -> Outcome:
        due = self._due(incoming.learner)
        if not due:
            cards = [c for c in self.store.cards(incoming.learner) if self._question_of(c)]
            if cards:
                wait = _duration(cards[0].due - self.clock())
                text = f"Nothing to review right now; the next question comes back in {wait}."
            else:
                text = "Nothing to review: questions you miss in quizzes come back here later, like flashcards."
            return Outcome([Reply(text, buttons=rows([Button("Home", "home")]), personal=True)])
        return Outcome([self._review_view(due[0], len(due))])

    def _review_view(self, card: ReviewCard, due: int) -> Reply:
        found = self._question_of(card)
        assert found is not None
        lesson, question = found
        options = "\n".join(f"{option_label(i)}) {option}" for i, option in enumerate(question.options))
        text = f"**Review** · {due} due · {lesson.title}\n\n{question.prompt}\n\n{options}"
        actions = tuple(f"v:{short_hash(card.key)}:{i}" for i in range(len(question.options)))
        quiz = QuizCard(question.prompt, question.options, question.correct_index, question.explanation, actions)
        return Reply(text, buttons=rows([Button(option_label(i), a) for i, a in enumerate(actions)]), quiz=quiz,
                     personal=True)  # fmt: skip

    def _answer_review(self, incoming: Incoming, position: Position, card_hash: str, chosen: int) -> Outcome:
        due = self._due(incoming.learner)
        card = next((c for c in due if short_hash(c.key) == card_hash), None)
        if card is None:
            note = Reply("You've already reviewed that question.", personal=True)
            return Outcome([note, *self._review(incoming).replies])
        found = self._question_of(card)
        assert found is not None
        lesson, question = found
        if not 0 <= chosen < len(question.options):
            return Outcome([Reply("That answer isn't one of the options.", personal=True), self._review_view(card, len(due))])
        reviewed = self.reviews.reviewed(card, chosen == question.correct_index, self.clock())
        replies = [Reply(self._feedback(lesson, question, chosen), personal=True)]
        rest = [c for c in due if c.key != card.key]
        if rest:
            replies.append(self._review_view(rest[0], len(rest)))
        else:
            replies.append(Reply("Review done for now. 🎉", buttons=rows([Button("Resume lesson", "w"), Button("Home", "home")])))
        return Outcome(replies, position, card=reviewed)

    # ------------------------------------------------------------ progress, help, reset

    def _best_scores(self, learner: str) -> dict[tuple[str, str], tuple[int, int]]:
        best: dict[tuple[str, str], tuple[int, int]] = {}
        for result in self.store.results(learner):
            key = (result.track, result.lesson)
            if key not in best or result.score > best[key][0]:
                best[key] = (result.score, result.total)
        return best

    def _streak(self, learner: str) -> int:
        days = self.store.active_days(learner)
        today = datetime.fromtimestamp(self.clock(), timezone.utc).date()
        expected = today if days and days[0] == today.isoformat() else today - timedelta(days=1)
        streak = 0
        for day in days:
            if date.fromisoformat(day) != expected:
                break
            streak += 1
            expected -= timedelta(days=1)
        return streak

    def _progress(self, incoming: Incoming, position: Position) -> Outcome:
        best = self._best_scores(incoming.learner)
        parts = ["**Your progress**"]
        for track in self.tracks.values():
            done = [lesson for lesson in track.lessons if (track.id, lesson.id) in best]
            if not done and track.id != position.track:
                continue
            lines = []
            for lesson in track.lessons:
                if (track.id, lesson.id) in best:
                    score, total = best[(track.id, lesson.id)]
                    lines.append(f"✓ {lesson.title}" + (f" · best quiz score {score}/{total}" if total else ""))
                else:
                    lines.append(f"· {lesson.title}")
            parts.append(f"**{track.title}**: {len(done)} of {len(track.lessons)} lessons done\n" + "\n".join(lines))
        if len(parts) == 1:
            parts.append("Nothing yet: pick a track and start its first lesson.")
        where = self._where(position)
        buttons = []
        if where:
            parts.append(f"Now: {where}.")
            buttons.append(Button("Resume ▸", "w"))
        upcoming = self._up_next(incoming, position, best)
        if upcoming:
            parts.append(f"Next up: “{upcoming[1].title}” ({upcoming[0].title}).")
            if not where or position.step == "result":
                buttons.append(Button("Start it ▸", f"l:{short_hash(upcoming[0].id)}:{short_hash(upcoming[1].id)}"))
        streak = self._streak(incoming.learner)
        due = len(self._due(incoming.learner))
        parts.append(f"Streak: {streak} day{'s' if streak != 1 else ''} · due for review: {due}")
        if due:
            buttons.append(Button(f"Review ({due})", "review"))
        buttons.append(Button("Home", "home"))
        return Outcome([Reply("\n\n".join(parts), buttons=rows(buttons), personal=True)])

    def _up_next(self, incoming: Incoming, position: Position,
                 best: dict[tuple[str, str], tuple[int, int]]) -> tuple[Track, Lesson] | None:  # fmt: skip
        """The first lesson not yet finished: in the current track after the current lesson, else anywhere here."""
        offered = self.offered(incoming)
        current = [t for t in offered if t.id == position.track]
        for track in current + [t for t in offered if t.id != position.track]:
            start = 0
            if track.id == position.track and position.lesson:
                start = next((n for n, lesson in enumerate(track.lessons) if lesson.id == position.lesson), -1) + 1
            for lesson in track.lessons[start:]:
                if (track.id, lesson.id) not in best:
                    return track, lesson
        return None

    def _help(self, incoming: Incoming) -> Outcome:
        text = (
            "**How to use tutorbot**\n"
            "• start: the tracks here and where you left off\n"
            "• tracks, track ID, lessons, lesson ID: choose what to read\n"
            "• next / back: move through a lesson; quiz: take its quiz\n"
            "• answer a quiz question with its button, or type its letter\n"
            "• progress: lessons done, scores, streak and reviews due; review: missed questions again\n"
            "• reset: erase your progress (asks first)\n"
            "• anything else you type is a question: I answer from the lesson text only and say which section"
        )
        if not incoming.is_direct:
            text += "\n• moderators: enable TRACK / disable TRACK choose the tracks offered here"
        return Outcome([Reply(text, buttons=rows([Button("Home", "home")]), personal=True)])

    def _ask_reset(self, position: Position) -> Outcome:
        moved = replace(position, pending="reset", version=position.version + 1)
        text = "This erases all your progress: where you are, quiz scores and review questions. Erase it?"
        buttons = rows([Button("Yes, erase", f"ry:{moved.version}"), Button("No, keep it", f"rn:{moved.version}")])
        return Outcome([Reply(text, buttons=buttons, personal=True)], moved)

    def _confirm_reset(self, incoming: Incoming, position: Position, confirmed: bool) -> Outcome:
        if position.pending != "reset":
            return self._stale(incoming, position)
        if not confirmed:
            kept = replace(position, pending=None, version=position.version + 1)
            return Outcome([Reply("Kept: nothing was erased.", buttons=rows([Button("Resume ▸", "w")]), personal=True)], kept)
        self.store.reset(incoming.learner)
        fresh = Position(version=position.version + 1)  # keep counting so old buttons stay stale
        home = self._home(incoming, fresh)
        return Outcome([Reply("Done: your progress is erased. Start again whenever you like.", personal=True),
                        *home.replies], fresh)  # fmt: skip

    # ------------------------------------------------------------ questions

    def _answer_track(self, incoming: Incoming, position: Position) -> str | None:
        offered = self.offered(incoming)
        if position.track and any(t.id == position.track for t in offered):
            return position.track
        return offered[0].id if len(offered) == 1 else None

    async def _answer(self, incoming: Incoming, position: Position, question: str, cut: bool) -> AsyncIterator[Reply]:
        if self.answerer is None:
            yield Reply("Questions can't be answered right now (no model is configured).", personal=True)
            return
        if not incoming.is_direct and not self.offered(incoming):
            yield Reply("No tracks are offered here, so there are no lessons to answer from.", personal=True)
            return
        track = self._answer_track(incoming, position)
        lesson = position.lesson if track and track == position.track else None
        shown = ""
        final: Answer | None = None
        try:
            async for event in self.answerer.ask(question, track, lesson, learner=incoming.learner):
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
        text = final.text
        if not final.refused and final.citations:
            text += "\n\nSource: " + "; ".join(c.label() for c in final.citations)
        if cut or final.truncated_question:
            limit = self.answerer.settings.max_question_chars
            text += f"\n\n(Your message was long, so I read only its first {limit} characters.)"
        buttons = rows([Button("Back to the lesson ▸", "w")]) if position.step != "home" else ()
        yield Reply(text, buttons=buttons, citations=tuple(final.citations))


def _duration(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    if minutes < 90:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = round(minutes / 60)
    if hours < 36:
        return f"{hours} hours"
    return f"{round(hours / 24)} days"
