"""The small interfaces the core depends on, and the plain data that crosses them.

Implementations live outside the core (``bot.llm``, ``bot.knowledge``, ``bot.store``); tests use fakes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.core.lessons import Track
from bot.core.messages import Attachment


class ModelBusy(RuntimeError):
    """The model's queue is full; the learner should try again shortly."""

    def __init__(
        self, message: str = "The tutor is busy answering other questions; please try again in a moment."
    ) -> None:
        super().__init__(message)


class ModelFailed(RuntimeError):
    """The model could not produce an answer (it crashed, timed out before a word, or is unreachable)."""


class ModelTimedOut(ModelFailed):
    """The model call reached its time limit before it wrote a word (a long prompt, a stalled model)."""


class StoreUnavailable(RuntimeError):
    """Progress could not be saved or read just now; what was saved before is untouched.

    The message is for the learner; the store logs what happened, and what the host should do, itself.
    """

    def __init__(
        self, message: str = "I couldn't reach your saved progress just now; please try that again in a moment. "
        "Everything you did before is saved."
    ) -> None:  # fmt: skip
        super().__init__(message)


class StoreBusy(StoreUnavailable):
    """Another writer held the progress store longer than the store waits for it."""

    def __init__(
        self, message: str = "The tutor is busy saving other learners' progress; please try that again in a "
        "moment. Everything you did before is saved."
    ) -> None:  # fmt: skip
        super().__init__(message)


class StoreFull(StoreUnavailable):
    """The disk that holds the progress store is full."""

    def __init__(
        self, message: str = "I couldn't save that step: the tutor's storage is full. Everything you did before "
        "is saved; the host has been told. Please try again later."
    ) -> None:  # fmt: skip
        super().__init__(message)


class TurnConflict(RuntimeError):
    """The learner's position changed between this turn's read and its save (the same learner's turn ran in
    another process: a double-tapped button, a second device). Nothing of this turn was stored; run it again."""


@dataclass(frozen=True)
class ChatMessage:
    """One message of a chat prompt."""

    role: str  # "system", "user" or "assistant"
    content: str


@dataclass(frozen=True)
class Generation:
    """Settings of one model call."""

    max_tokens: int = 256
    json_schema: dict[str, Any] | None = None  # constrain the output to JSON matching this schema


class ChatModel(Protocol):
    """A chat model that streams text; calls are queued and run one at a time."""

    def stream(self, messages: Sequence[ChatMessage], generation: Generation) -> AsyncIterator[str]:
        """Yield the reply as it is written, piece by piece; raise ModelBusy when the queue is full."""
        ...

    async def next_word_probabilities(self, messages: Sequence[ChatMessage], words: Sequence[str]) -> dict[str, float]:
        """How likely the reply is to start with each of ``words`` (any case), normalised over them.

        Reads the model's next-token probabilities; nothing is generated. Raises ModelBusy like ``stream``.
        """
        ...

    def warm(self, messages: Sequence[ChatMessage]) -> None:
        """Read a prompt ahead of time when idle, so a later prompt that starts the same way starts sooner.

        Returns at once; a model that cannot do this does nothing.
        """
        ...

    def close(self) -> None:
        """Finish the call in progress, then release the model (call once, before the process exits)."""
        ...


@dataclass(frozen=True)
class Passage:
    """A piece of lesson text found for a question."""

    track: str
    lesson: str
    section: str
    heading: str
    lesson_title: str
    text: str
    score: float = 0.0
    similarity: float = 0.0


class Retriever(Protocol):
    """Finds the lesson text that best answers a question."""

    def search(self, question: str, k: int, track: str | Sequence[str] | None = None,
               lesson: str | None = None) -> list[Passage]:  # fmt: skip
        """The best passage of each of the ``k`` best sections, best first, in one track, several, or all (None)."""
        ...


@dataclass(frozen=True)
class QuestionRecord:
    """What moderators see about one question: was it answered, from where, how fast."""

    question: str
    track: str | None
    lesson: str | None
    refused: bool
    reason: str
    sections: tuple[str, ...] = ()
    learner: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


class QuestionLog(Protocol):
    """Keeps every question and its outcome (for moderators' content-gap reports)."""

    def record(self, entry: QuestionRecord) -> None:
        """Store one question's outcome."""
        ...


# ---------------------------------------------------------------- learner progress


@dataclass(frozen=True)
class Position:
    """Where a learner is: which lesson, which step of it, and a version that every move bumps.

    ``step`` is one of ``"home"`` (no lesson chosen), ``"premise"``, ``"section"`` (reading ``section``),
    ``"wrapup"`` (key terms and practice), ``"quiz"`` (on question ``question`` of quiz run ``quiz_run``)
    or ``"result"`` (the lesson is finished).
    Buttons carry ``version``; a button made for an older version is stale.
    """

    track: str | None = None
    lesson: str | None = None
    step: str = "home"
    section: int = 0
    question: int = 0
    quiz_run: int = 0
    pending: str | None = None  # an action waiting for confirmation (e.g. "reset")
    version: int = 0


@dataclass(frozen=True)
class QuizAttempt:
    """One answer to one quiz question."""

    track: str
    lesson: str
    quiz_run: int
    question: int
    chosen: int
    correct: bool
    answered_at: float  # seconds since the epoch


@dataclass(frozen=True)
class LessonResult:
    """A finished lesson: its quiz score (0 of 0 for a lesson without a quiz)."""

    track: str
    lesson: str
    score: int
    total: int
    completed_at: float


@dataclass(frozen=True)
class ReviewCard:
    """A quiz question that comes back for review, with its scheduler state (opaque JSON) and due time."""

    track: str
    lesson: str
    question: int
    state: str
    due: float

    @property
    def key(self) -> str:
        """``track/lesson/question``: the card's id for a learner."""
        return f"{self.track}/{self.lesson}/{self.question}"


@dataclass(frozen=True)
class TrackChange:
    """A moderator enabling or disabling a track for their community."""

    community: str
    track: str
    enabled: bool
    by: str
    at: float


DEFAULT_REMIND_AT = 19 * 60  # minutes after local midnight: 19:00


@dataclass(frozen=True)
class LearnerSettings:
    """A learner's own settings: timezone, reminders and whether they appear on leaderboards."""

    timezone: str | None = None  # IANA name, e.g. "Europe/Berlin"; None until the learner gives one
    remind: bool = False
    remind_at: int = DEFAULT_REMIND_AT  # minutes after local midnight
    reminded_on: str | None = None  # the local day (YYYY-MM-DD) the last reminder was sent
    stopped: str | None = None  # why reminders stopped by themselves (the platform refused to deliver one)
    quiet: tuple[int, int] | None = None  # the learner's quiet hours (start, end in local minutes); None: the default
    leaderboard: bool = False
    display_name: str = ""


@dataclass(frozen=True)
class LeaderboardRow:
    """One opted-in learner of a community: lessons finished since a given time, and their active days."""

    learner: str
    display_name: str
    lessons: int
    days: tuple[str, ...]  # active days, newest first (for the streak)
    timezone: str | None = None  # the learner's, to know which day is their today


class ProgressStore(Protocol):
    """Learner positions, quiz attempts, results, review cards and community track settings.

    Every ``save`` is one durable transaction: a turn is either wholly stored or not at all.
    """

    def position(self, learner: str) -> Position:
        """The learner's position (a fresh ``Position()`` for a new learner)."""
        ...

    def save(self, learner: str, position: Position, *, at: float, attempt: QuizAttempt | None = None,
             result: LessonResult | None = None, card: ReviewCard | None = None, day: str | None = None,
             started: tuple[str, str] | None = None, expected: int | None = None, reset: bool = False,
             delivery: str | None = None) -> None:  # fmt: skip
        """Store a turn's outcome at once: the new position and whatever the turn produced (``reset``: after
        erasing the learner's attempts, results, cards, activity and lesson starts).

        ``delivery`` is the platform update the turn handles: recorded in the same transaction, and when it was
        recorded already (another process handled it), nothing is stored and ``TurnConflict`` is raised.

        ``expected`` is the position version the turn read: when the stored one differs (another process moved
        the learner meanwhile), nothing is stored and ``TurnConflict`` is raised. None stores unconditionally.

        ``started`` is ``(track, lesson)`` when the turn opened a lesson (only the first opening is kept).

        ``day`` is the learner's own day of the turn (``YYYY-MM-DD``, for the streak); None: the UTC day of ``at``.
        """
        ...

    def delivered(self, delivery: str) -> bool:
        """Whether a turn already handled this platform update (see ``Incoming.delivery``)."""
        ...

    def note_delivery(self, delivery: str, at: float) -> bool:
        """Record a platform update as handled by a turn that stores nothing else; False if it already was."""
        ...

    def attempts(self, learner: str, track: str, lesson: str, quiz_run: int) -> list[QuizAttempt]:
        """The answers of one quiz run, in the order given."""
        ...

    def results(self, learner: str) -> list[LessonResult]:
        """Every finished lesson, oldest first (a lesson finished twice appears twice)."""
        ...

    def cards(self, learner: str) -> list[ReviewCard]:
        """The learner's review cards, soonest due first."""
        ...

    def last_turn_at(self, learner: str) -> float | None:
        """When the learner's last stored turn was (None for a new learner)."""
        ...

    def add_active_day(self, learner: str, day: str) -> None:
        """Count ``day`` (``YYYY-MM-DD``) as a day the learner studied (once; for a changed timezone)."""
        ...

    def active_days(self, learner: str) -> list[str]:
        """The days (``YYYY-MM-DD``, the learner's own as ``save`` was given them) with a turn, newest first."""
        ...

    def reset(self, learner: str) -> None:
        """Forget the learner's position, attempts, results, cards and activity."""
        ...

    def disabled_tracks(self, community: str) -> set[str]:
        """Tracks a community's moderators turned off (every other published track is offered)."""
        ...

    def set_track_enabled(self, community: str, track: str, enabled: bool, by: str, at: float) -> None:
        """Turn a track on or off for a community, and record who did it and when."""
        ...

    def track_changes(self, community: str) -> list[TrackChange]:
        """Every change of a community's tracks, oldest first."""
        ...

    def learner_settings(self, learner: str) -> LearnerSettings:
        """The learner's settings (defaults for a learner who never changed one)."""
        ...

    def save_learner_settings(self, learner: str, settings: LearnerSettings) -> None:
        """Store the learner's settings, all but ``reminded_on`` (which only the claims below write)."""
        ...

    def reminding(self) -> list[tuple[str, LearnerSettings]]:
        """Every learner with reminders on, with their settings."""
        ...

    def claim_reminder(self, learner: str, day: str) -> bool:
        """Mark ``day`` (the learner's local day) as reminded; False when it already was or reminders are off.

        Atomic, so a reminder is sent once even when two schedulers (or a restart) race for it.
        """
        ...

    def release_reminder(self, learner: str, day: str, previous: str | None) -> None:
        """Undo ``claim_reminder`` for ``day`` (the message could not be sent now; it may be tried again)."""
        ...

    def note_member(self, community: str, learner: str, at: float) -> None:
        """Remember that the learner takes turns in the community (for its leaderboard)."""
        ...

    def leaderboard_rows(self, community: str, since: float, active_since: str) -> list[LeaderboardRow]:
        """The community's members who opted in to leaderboards and were active on or after the UTC day
        ``active_since``, with the lessons they finished since ``since``."""
        ...

    def leaderboard_enabled(self, community: str) -> bool:
        """Whether the community shows a leaderboard (on unless its moderators turned it off)."""
        ...

    def set_leaderboard_enabled(self, community: str, enabled: bool, by: str, at: float) -> None:
        """Turn the community's leaderboard on or off, recording who did it and when."""
        ...


# ---------------------------------------------------------------- moderators' tracks and insights


@dataclass(frozen=True)
class Draft:
    """A community's draft of a track, as its last upload left it: the track as read, or what is wrong with it.

    ``problems`` are ``file:line: problem — how to fix`` (paths inside the upload); ``track`` is served under
    the draft's preview id, and is None while there is a problem.
    """

    name: str  # the track's id as its author wrote it
    track: Track | None
    problems: tuple[str, ...] = ()
    files: tuple[str, ...] = ()  # what the last upload wrote (paths inside the draft)


@dataclass(frozen=True)
class TrackVersion:
    """One published version of an uploaded track."""

    version: int
    title: str
    published_by: str
    published_at: float
    restored_from: int | None = None  # the version a rollback brought back


class LibraryError(RuntimeError):
    """A moderator's track command could not be done; the message says why and what to do (nothing changed)."""


class TrackLibrary(Protocol):
    """Drafts and published versions of the tracks moderators upload (``community`` None: the host's own).

    Every method may take seconds (unpacking, indexing): call it off the event loop. Methods that cannot do
    what is asked raise ``LibraryError``.
    """

    def upload(self, community: str | None, name: str | None, filename: str, data: bytes) -> Draft:
        """Put an uploaded lesson ``.md`` or track ``.zip`` into the track's draft and check the draft.

        ``name`` None takes the id from the zip's track.toml. A refused upload changes nothing and comes back
        as a draft whose problems say why.
        """
        ...

    def draft(self, community: str | None, name: str) -> Draft:
        """The track's draft as it is now (``LibraryError`` when there is none)."""
        ...

    def publish(self, community: str | None, name: str, by: str) -> tuple[Track, int]:
        """Index the valid draft as the next version, then make it the one served; the track and its version."""
        ...

    def rollback(self, community: str | None, name: str, version: int, by: str) -> tuple[Track, int]:
        """Publish an earlier version again, as the next version; the track and its new version number."""
        ...

    def history(self, community: str | None, name: str) -> list[TrackVersion]:
        """Every published version of the track, newest first."""
        ...

    def served(self) -> tuple[list[Track], dict[str, str]]:
        """The newest version of every uploaded track, and the community each belongs to (host tracks: absent)."""
        ...

    def stamp(self) -> int:
        """A number that changes whenever any process publishes a version (cheap: asked every few seconds)."""
        ...


class InsightsSource(Protocol):
    """How a community's learners are doing in a track, for its moderators."""

    def insights(self, community: str, track: Track) -> tuple[str, list[Attachment]]:
        """A short Markdown summary and the charts (PNG attachments) that go with it; names never appear."""
        ...
