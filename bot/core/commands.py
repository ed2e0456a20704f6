"""Typed text before the engine reads it: cleaned, cut to size, and recognised as a command or not.

A command is a command only when it is exactly one: a known word with its arguments and nothing else.
With a slash (``/enable ai-foundations``, ``/ask …``) the learner says it is a command, so any argument goes.
Typed without a slash, a word alone is a command (``next``, ``progress``), and a word with an argument is one
only when the argument has that command's shape: ``remind at 19:00``, ``leaderboard on``, ``quiet 22:00-08:00``,
``tracks publish ml-basics``, or, for ``track``, ``lesson``, ``enable``, ``disable`` and ``insights``, the id
or title of something that exists (the caller
says what exists). "enable caching in attention?" and "track record of GPT-4?" are questions. Quiz answers and
reset confirmations are recognised by the engine itself, because they depend on where the learner is.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Callable

from bot.core.localtime import parse_clock, parse_quiet_hours

MAX_MESSAGE_CHARS = 4000  # longer messages are cut before anything reads them (answers read even less)
DROPPED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn"}  # control, format (zero-width, bidi), surrogates, unassigned
WORD_COMMANDS = {"start", "menu", "home", "tracks", "next", "back", "quiz", "progress", "help", "reset",
                 "review", "resume", "continue", "lessons", "remind", "stop", "tz", "quiet", "leaderboard",
                 "insights"}  # fmt: skip
ARG_COMMANDS = {"track", "lesson", "enable", "disable", "ask", "term", "remind", "tz", "quiet", "leaderboard",
                "tracks", "insights"}  # fmt: skip
TRACKS_SUBCOMMANDS = {"list", "enable", "disable", "upload", "preview", "publish", "history", "rollback"}
YES = {"yes", "y", "yes, erase"}
NO = {"no", "n", "cancel"}


def short_hash(text: str) -> str:
    """Eight hex digits naming a track, lesson or card inside action ids (ids themselves may be long)."""
    return hashlib.blake2s(text.encode("utf-8"), digest_size=4).hexdigest()


def clean_text(text: str, limit: int = MAX_MESSAGE_CHARS) -> tuple[str, bool]:
    """Text safe to read: cut to ``limit``, NFKC-normalised, without control/format/surrogate characters.

    Cut before normalising (so a huge message costs little), and again after: NFKC can make one character 18.
    """
    cut = len(text) > limit
    text = unicodedata.normalize("NFKC", text[:limit])
    kept = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in DROPPED_CATEGORIES)
    if len(kept) > limit:
        kept, cut = kept[:limit], True
    return kept.strip(), cut


def parse_command(text: str, names: Names | None = None) -> tuple[str, str] | None:
    """``(command, argument)`` for ``/next``, ``next``, ``lesson attention``…; None for anything else.

    ``names(command, argument)`` says whether ``argument`` names a track or lesson that exists (for ``track``,
    ``lesson``, ``enable``, ``disable`` typed without a slash); without it, those are commands only with a slash.
    A slash command that is not known comes back as ``("?", name)``.
    """
    if text.startswith("/"):
        word, _, rest = text[1:].partition(" ")
        word = word.split("@", 1)[0].casefold()
        if word in {"lesson", "track"} and not rest.strip():
            return word + "s", ""
        known = word in WORD_COMMANDS or word in ARG_COMMANDS
        return (word, rest.strip()) if known else ("?", word)
    word, _, rest = text.partition(" ")
    word, argument = word.casefold(), rest.strip()
    if not argument:
        if word in WORD_COMMANDS:
            return word, ""
        if word in {"lesson", "track"}:
            return word + "s", ""  # "lesson" alone lists the lessons, "track" alone the tracks
        if word in {"ask", "term"}:
            return word, ""  # alone, a hint on how to use them
        return None
    if word == "ask":
        return word, argument  # the learner said it is a question, of any length
    if word not in ARG_COMMANDS:
        return None
    shape = _ARGUMENT_SHAPES.get(word)
    if shape is not None:
        return (word, argument) if shape(argument.casefold()) else None
    return (word, argument) if names is not None and names(word, argument) else None


Names = Callable[[str, str], bool]
"""``names(command, argument)``: whether the argument of ``track``/``lesson``/``enable``/``disable`` names
something that exists."""

_ARGUMENT_SHAPES: dict[str, Callable[[str], bool]] = {
    "remind": lambda a: a in {"on", "off"} or parse_clock(a.removeprefix("at ").strip()) is not None,
    "leaderboard": lambda a: a in {"on", "off", "enable", "disable"},
    "quiet": lambda a: parse_quiet_hours(a) is not None,
    "term": lambda a: len(a.split()) <= 6 and not a.endswith("?"),  # "term limits of a context window?" asks
    "tz": lambda a: len(a.split()) <= 3 and not a.endswith("?"),  # a zone or city; a wrong one gets explained
    # moderators' "tracks publish ml-basics", "tracks rollback ml-basics 2"; "tracks history of GPT?" asks
    "tracks": lambda a: a.split()[0] in TRACKS_SUBCOMMANDS and len(a.split()) <= 3 and not a.endswith("?"),
}


def question_in(text: str) -> str:
    """The question of typed text: the argument of ``ask QUESTION`` / ``/ask QUESTION``, else the text itself."""
    command = parse_command(text)
    return command[1] if command and command[0] == "ask" else text
