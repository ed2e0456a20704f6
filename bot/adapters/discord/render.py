"""Replies rendered for Discord: Markdown split into messages of at most 2000 characters (see ``formatting``),
buttons laid out as Discord allows, files attached as many to a message as Discord takes; a reply as a list of
``Outgoing`` messages."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from bot.adapters.discord.components import Outgoing
from bot.adapters.discord.formatting import split_text
from bot.core.messages import Attachment, Button, Reply

log = logging.getLogger(__package__)  # the whole adapter logs as "bot.adapters.discord"

MAX_BUTTONS_PER_ROW = 5
MAX_ROWS = 5
MAX_FILES_PER_MESSAGE = 10
MAX_FILE_BYTES_PER_MESSAGE = 10 * 1024 * 1024  # what any server takes (boosted ones take more)


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


# ---------------------------------------------------------------- files


def file_groups(files: Sequence[Attachment]) -> list[tuple[Attachment, ...]]:
    """Files in order, grouped as one message can carry them: at most ten, within the smallest upload limit
    (a file larger than that goes alone, and Discord decides)."""
    groups: list[list[Attachment]] = []
    size = 0
    for file in files:
        full = bool(groups) and (len(groups[-1]) == MAX_FILES_PER_MESSAGE
                                 or size + len(file.data) > MAX_FILE_BYTES_PER_MESSAGE)  # fmt: skip
        if not groups or full:
            groups.append([])
            size = 0
        groups[-1].append(file)
        size += len(file.data)
    return [tuple(group) for group in groups]


# ---------------------------------------------------------------- replies as messages


def render(reply: Reply, owner: int) -> list[Outgoing]:
    """A reply as messages: its text split to fit, its buttons (laid out for Discord) and its files under the last
    one (files beyond what one message takes in messages of their own).

    A quiz card needs nothing more: the reply's buttons already carry one action per option, and its
    citations are already in its text.
    """
    pieces = split_text(reply.text)
    buttons = tuple(tuple(row) for row in layout(_unique(reply.buttons)))
    groups = file_groups(reply.files) or [()]
    messages = [Outgoing(piece, buttons if n == len(pieces) - 1 else (), owner) for n, piece in enumerate(pieces)]
    messages[-1] = replace(messages[-1], files=groups[0])
    return messages + [Outgoing("", (), owner, group) for group in groups[1:]]
