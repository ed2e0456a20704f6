"""What crosses the adapter boundary: ``Incoming`` turns in, ``Reply`` objects out.

Adapters (console, Telegram, Discord) translate platform events into ``Incoming`` and render ``Reply``
objects; the engine never sees a platform type. Reply text is Markdown (CommonMark, plus tables and
``~~strike~~``; raw HTML reads as text): lesson text goes in as its author wrote it, and words people typed or
imported (names, quiz questions) go in escaped with ``bot.core.markup.escape``, so they read as typed. A
line break is a line break. Every adapter renders the text from one parse (``bot.core.markup.parse``) and
splits it with ``bot.adapters.split``: Telegram HTML, Discord Markdown, Rich in the console; links keep
only web and mail targets. A ``partial`` reply may end in unfinished Markdown (an open ``**`` or fence); it
renders all the same.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

MAX_ACTION_BYTES = 48  # Telegram allows 64 bytes of callback data; the rest is room for an adapter's prefix

# Limits of a Telegram quiz poll; a question that fits them may be shown as a native poll.
POLL_QUESTION_CHARS = 300
POLL_OPTION_CHARS = 100
POLL_MAX_OPTIONS = 10
POLL_EXPLANATION_CHARS = 200


@dataclass(frozen=True)
class Citation:
    """Where an answer comes from: a lesson section."""

    track: str
    lesson: str
    section: str
    heading: str
    lesson_title: str

    def label(self) -> str:
        """``Lesson title › Section heading``."""
        return f"{self.lesson_title} › {self.heading}"


@dataclass(frozen=True)
class Upload:
    """A file a moderator sent with a turn (a lesson ``.md`` or a ``.zip`` of a track), not yet downloaded.

    ``size`` is what the platform says; ``read`` downloads the file and is called only once the engine has
    accepted the upload (a moderator, within the limits of ``bot.core.uploads``), so a refused upload costs no
    download. The engine checks the size of what ``read`` returns again.
    """

    filename: str
    size: int
    read: Callable[[], Awaitable[bytes]]


@dataclass(frozen=True)
class Attachment:
    """A file that goes with a reply: a PNG chart shown as a picture (``image``), or a file to download."""

    filename: str
    data: bytes
    image: bool = False


@dataclass(frozen=True)
class Incoming:
    """One thing a learner did: typed ``text`` or pressed a button / answered a poll (``action``)."""

    platform: str  # "console", "telegram", "discord"
    user_id: str
    conversation: str  # the chat, channel or server the turn came from
    text: str | None = None
    action: str | None = None
    display_name: str = ""
    is_direct: bool = True  # a DM: every published track is offered
    is_moderator: bool = False  # as the platform says (Discord Manage Server, Telegram group admin)
    upload: Upload | None = None  # a file sent with the turn; ``text`` is its caption or command
    # The platform's id of this update ("telegram:123") where it may be delivered again (a webhook's retry, a worker
    # that restarted): the engine then handles it once. None: the adapter delivers each update once by itself.
    delivery: str | None = None

    @property
    def learner(self) -> str:
        """The learner's key: the same person has the same progress in every chat of a platform."""
        return f"{self.platform}:{self.user_id}"

    @property
    def community(self) -> str:
        """The community's key: its moderators choose which tracks it offers."""
        return f"{self.platform}:{self.conversation}"


@dataclass(frozen=True)
class Button:
    """A button: its label and the short action id sent back when it is pressed."""

    label: str
    action: str


@dataclass(frozen=True)
class QuizCard:
    """A quiz question an adapter may show natively (a Telegram quiz poll); ``actions[i]`` chooses option i."""

    question: str
    options: tuple[str, ...]
    correct_index: int
    explanation: str | None
    actions: tuple[str, ...]

    @property
    def fits_poll(self) -> bool:
        """Whether a Telegram quiz poll can carry this question whole (otherwise use the buttons)."""
        return (
            len(self.question) <= POLL_QUESTION_CHARS
            and 2 <= len(self.options) <= POLL_MAX_OPTIONS
            and all(len(option) <= POLL_OPTION_CHARS for option in self.options)
            and len(self.explanation or "") <= POLL_EXPLANATION_CHARS
        )


@dataclass(frozen=True)
class Reply:
    """One message to the learner.

    ``partial`` replies grow: each one carries the whole text so far, and the next reply of the same turn
    replaces it (the adapter edits the message it sent). ``personal`` replies concern only this learner
    (Discord may show them ephemerally). ``buttons`` are rows of at most five.
    """

    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    quiz: QuizCard | None = None
    citations: tuple[Citation, ...] = ()
    files: tuple[Attachment, ...] = ()  # sent with the reply (after its text)
    partial: bool = False
    personal: bool = False

    @property
    def actions(self) -> list[str]:
        """Every button's action id, row by row."""
        return [button.action for row in self.buttons for button in row]


def rows(buttons: list[Button], per_row: int = 5) -> tuple[tuple[Button, ...], ...]:
    """Buttons laid out in rows of ``per_row``."""
    return tuple(tuple(buttons[i : i + per_row]) for i in range(0, len(buttons), per_row))
