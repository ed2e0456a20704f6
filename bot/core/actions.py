"""The engine's button actions, by name: what each button does, and the short id it carries on the wire.

An action id is ``verb`` or ``verb:arg:arg`` (Telegram allows 64 bytes of callback data). The verbs are short
because they travel in every button; their names live here. Never change a verb's value: buttons already sent
carry it, and a press after a release must still mean the same thing. Versioned actions carry the learner's
position version first, so a button from an earlier message is recognised as stale.
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    """Every button action the engine understands."""

    HOME = "home"
    HELP = "help"
    PROGRESS = "progress"
    REVIEW = "review"  # start the review of due quiz questions
    TRACKS = "tracks"
    RESET = "reset"  # asks before erasing progress
    RESUME = "w"  # back to where the learner is
    OPEN_TRACK = "t"  # :track hash
    OPEN_LESSON = "l"  # :track hash:lesson hash
    OPEN_SECTION = "s"  # :track hash:lesson hash:section index
    ENABLE_TRACK = "me"  # :track hash (moderators)
    DISABLE_TRACK = "md"  # :track hash (moderators)
    REVIEW_ANSWER = "v"  # :card hash:option
    NEXT = "n"  # :version
    BACK = "b"  # :version
    QUIZ = "q"  # :version
    QUIZ_ANSWER = "a"  # :version:option
    KEEP_GOING = "k"  # :version
    RESET_YES = "ry"  # :version
    RESET_NO = "rn"  # :version

    def __call__(self, *args: object) -> str:
        """The action id with its arguments, e.g. ``Action.NEXT(3) == "n:3"``."""
        return ":".join([self.value, *(str(arg) for arg in args)])


SCREENS = frozenset({Action.HOME, Action.HELP, Action.PROGRESS, Action.REVIEW, Action.TRACKS, Action.RESET,
                     Action.RESUME})  # fmt: skip
"""Actions without arguments that open a screen."""

VERSIONED = frozenset({Action.NEXT, Action.BACK, Action.QUIZ, Action.QUIZ_ANSWER, Action.KEEP_GOING,
                       Action.RESET_YES, Action.RESET_NO})  # fmt: skip
"""Actions that act only on the position they were shown for."""


def action_number(argument: str) -> int | None:
    """The number an action argument carries (a version, an option, a section); None for anything no button
    sends: only ASCII digits ("²" and "١" pass ``str.isdigit``) and not too many (``int`` refuses thousands)."""
    return int(argument) if argument.isascii() and argument.isdigit() and len(argument) <= 9 else None


def parse_action(action: str) -> tuple[Action, list[str]] | None:
    """``(Action, args)`` of an action id; None for an id no release ever sent (forged or garbled)."""
    verb, _, rest = action.partition(":")
    try:
        return Action(verb), rest.split(":") if rest else []
    except ValueError:
        return None
