"""Typed text before the engine reads it: cleaned, cut to size, and recognised as a command or not.

A command is a known word, alone (``next``, ``/progress``) or with a short argument (``lesson attention``,
``/enable ai-foundations``); typed without a slash, commands whose arguments have a shape (``remind at 19:00``,
``leaderboard on``, ``quiet 22:00-08:00``) are commands only with such an argument. Anything else a learner types is a question, except quiz answers and reset
confirmations, which the engine recognises itself because they depend on where the learner is.
"""

from __future__ import annotations

import hashlib
import unicodedata

from bot.core.localtime import parse_clock, parse_quiet_hours

MAX_MESSAGE_CHARS = 4000  # longer messages are cut before anything reads them (answers read even less)
DROPPED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn"}  # control, format (zero-width, bidi), surrogates, unassigned
WORD_COMMANDS = {"start", "menu", "home", "tracks", "next", "back", "quiz", "progress", "help", "reset",
                 "review", "resume", "continue", "lessons", "remind", "stop", "tz", "quiet", "leaderboard"}  # fmt: skip
ARG_COMMANDS = {"track", "lesson", "enable", "disable", "ask", "term", "remind", "tz", "quiet", "leaderboard"}
YES = {"yes", "y", "yes, erase"}
NO = {"no", "n", "cancel"}


def short_hash(text: str) -> str:
    """Eight hex digits naming a track, lesson or card inside action ids (ids themselves may be long)."""
    return hashlib.blake2s(text.encode("utf-8"), digest_size=4).hexdigest()


def clean_text(text: str, limit: int = MAX_MESSAGE_CHARS) -> tuple[str, bool]:
    """Text safe to read: cut to ``limit``, NFKC-normalised, without control/format/surrogate characters."""
    cut = len(text) > limit
    text = unicodedata.normalize("NFKC", text[:limit])
    kept = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in DROPPED_CATEGORIES)
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
        known = word in WORD_COMMANDS or word in ARG_COMMANDS
        return (word, rest.strip()) if known else ("?", word)
    word, _, rest = text.partition(" ")
    word = word.casefold()
    if word in WORD_COMMANDS and not rest.strip():
        return word, ""
    if word == "ask" or (word == "term" and _argument_fits(word, rest.strip())):
        return word, rest.strip()  # a question of any length, or a term; alone, a hint
    if word in ARG_COMMANDS and rest.strip() and len(rest.split()) <= 3 and _argument_fits(word, rest.strip()):
        return word, rest.strip()
    if word in {"lesson", "track"} and not rest.strip():
        return word + "s", ""  # "lesson" alone lists the lessons, "track" alone the tracks
    return None


def _argument_fits(word: str, argument: str) -> bool:
    """Whether typed ``word argument`` is that command exactly ("remind me of softmax" is a question)."""
    shape = _ARGUMENT_SHAPES.get(word)
    return shape is None or shape(argument.casefold())


_ARGUMENT_SHAPES = {
    "remind": lambda a: a in {"on", "off"} or parse_clock(a.removeprefix("at ").strip()) is not None,
    "leaderboard": lambda a: a in {"on", "off", "enable", "disable"},
    "quiet": lambda a: parse_quiet_hours(a) is not None,
    "term": lambda a: len(a.split()) <= 6 and not a.endswith("?"),  # "term limits of a context window?" asks
}


def question_in(text: str) -> str:
    """The question of typed text: the argument of ``ask QUESTION`` / ``/ask QUESTION``, else the text itself."""
    command = parse_command(text)
    return command[1] if command and command[0] == "ask" else text
