"""Replies rendered for Discord: text escaped, split into messages of at most 2000 characters and clipped while
streaming; buttons laid out as Discord allows; a reply as a list of ``Outgoing`` messages."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from bot.adapters.discord.components import Outgoing
from bot.core.messages import Button, Reply

log = logging.getLogger(__package__)  # the whole adapter logs as "bot.adapters.discord"

MAX_MESSAGE_CHARS = 2000
MAX_BUTTONS_PER_ROW = 5
MAX_ROWS = 5

_BOLD = re.compile(r"\*\*(.+?)\*\*", re.DOTALL)
_URL = re.compile(r"https?://[^\s<>]+[^\s<>.,:;\"')\]]")
_MARKUP_CHAR = re.compile(r"([\\*_~|`<>\[\]])")
_LINE_START_MARKUP = re.compile(r"^([ \t]*)([#-])", re.MULTILINE)


# ---------------------------------------------------------------- text: escaping and splitting


def discord_length(text: str) -> int:
    """Length as Discord counts it (UTF-16 code units: an emoji outside the BMP counts twice)."""
    return len(text.encode("utf-16-le")) // 2


def escape(text: str) -> str:
    """Text shown literally: every Markdown character escaped, wherever it is (URLs are left whole)."""
    out, last = [], 0
    for match in _URL.finditer(text):
        out.append(_escape_plain(text[last : match.start()]))
        out.append(match.group(0))
        last = match.end()
    out.append(_escape_plain(text[last:]))
    return "".join(out)


def _escape_plain(text: str) -> str:
    # Unlike discord.utils.escape_markdown, escape unpaired characters too: a bold span splits the text into
    # pieces, and a '_' in one piece could pair with a '_' in another once they are joined again.
    return _LINE_START_MARKUP.sub(r"\1\\\2", _MARKUP_CHAR.sub(r"\\\1", text))


def render_text(text: str) -> str:
    """Reply text as Discord Markdown: ``**bold**`` spans stay bold, everything else is shown literally."""
    out, last = [], 0
    for match in _BOLD.finditer(text):
        out.append(escape(text[last : match.start()]))
        out.append(f"**{escape(match.group(1))}**")
        last = match.end()
    out.append(escape(text[last:]))
    return "".join(out)


def split_text(text: str, limit: int = MAX_MESSAGE_CHARS) -> list[str]:
    """Reply text rendered into messages of at most ``limit`` characters, cut at paragraphs, lines or words.

    A bold span cut in two is closed at the end of one message and opened again in the next.
    """
    pieces: list[str] = []
    rest = text.strip()
    while rest and discord_length(render_text(rest)) > limit:
        cut = _cut_point(rest, limit - 4 if "**" in rest else limit)  # room to close and reopen a bold span
        head, rest = rest[:cut].rstrip(), rest[cut:].lstrip()
        if head.count("**") % 2:
            head, rest = head + "**", "**" + rest
        pieces.append(render_text(head))
    if rest:
        pieces.append(render_text(rest))
    return pieces or [""]


def _cut_point(text: str, limit: int) -> int:
    """Where to cut ``text`` so that the part before renders within ``limit``: a boundary when there is one."""
    low, high = 1, len(text)  # the longest prefix that fits, by bisection
    while low < high:
        middle = (low + high + 1) // 2
        if discord_length(render_text(text[:middle])) <= limit:
            low = middle
        else:
            high = middle - 1
    for boundary in ("\n\n", "\n", " "):
        at = text.rfind(boundary, 0, low + 1)
        if at > low // 3:
            return at
    return low


def clip(rendered: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Rendered text cut to ``limit`` characters with an ellipsis (for a streaming answer still being written)."""
    if discord_length(rendered) <= limit:
        return rendered
    cut = rendered[: limit - 2]
    while discord_length(cut) > limit - 2:
        cut = cut[:-1]
    return cut.rstrip("\\") + " …"


# ---------------------------------------------------------------- buttons


def layout(button_rows: Sequence[Sequence[Button]]) -> list[list[Button]]:
    """Button rows that Discord accepts: at most five rows of five (extra rows are reflowed, the rest dropped)."""
    if len(button_rows) <= MAX_ROWS and all(len(row) <= MAX_BUTTONS_PER_ROW for row in button_rows):
        return [list(row) for row in button_rows if row]
    flat = [button for row in button_rows for button in row]
    if len(flat) > MAX_ROWS * MAX_BUTTONS_PER_ROW:
        log.warning("a reply had %d buttons; Discord shows only %d", len(flat), MAX_ROWS * MAX_BUTTONS_PER_ROW)
    flat = flat[: MAX_ROWS * MAX_BUTTONS_PER_ROW]
    return [flat[i : i + MAX_BUTTONS_PER_ROW] for i in range(0, len(flat), MAX_BUTTONS_PER_ROW)]


def _unique(button_rows: Sequence[Sequence[Button]]) -> list[list[Button]]:
    """Rows without a repeated action (Discord refuses a message whose custom ids repeat)."""
    seen: set[str] = set()
    kept: list[list[Button]] = []
    for row in button_rows:
        fresh = []
        for button in row:
            if button.action not in seen:
                seen.add(button.action)
                fresh.append(button)
        if fresh:
            kept.append(fresh)
    return kept


# ---------------------------------------------------------------- replies as messages


def render(reply: Reply, owner: int) -> list[Outgoing]:
    """A reply as messages: its text split to fit, its buttons (laid out for Discord) under the last one.

    A quiz card needs nothing more: the reply's buttons already carry one action per option, and its
    citations are already in its text.
    """
    pieces = split_text(reply.text)
    buttons = tuple(tuple(row) for row in layout(_unique(reply.buttons)))
    return [Outgoing(piece, buttons if n == len(pieces) - 1 else (), owner) for n, piece in enumerate(pieces)]
