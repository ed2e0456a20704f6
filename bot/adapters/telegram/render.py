"""Replies as Telegram shows them: reply Markdown as HTML messages of at most 4096 visible UTF-16 units (see
``formatting``), buttons as inline keyboards with ``tb:`` callback data, quiz questions as native quiz polls."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Poll
from telegram.constants import ParseMode

from bot.adapters.telegram.formatting import message_texts
from bot.core.markup import plain
from bot.core.messages import POLL_QUESTION_CHARS, Button, Reply

log = logging.getLogger(__name__)

CALLBACK_PREFIX = "tb:"
MAX_CALLBACK_BYTES = 64
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)

# ---------------------------------------------------------------- buttons and polls


def callback_data(action: str) -> str:
    """The callback data of a button: the prefix and the engine's action id (at most 64 bytes)."""
    data = CALLBACK_PREFIX + action
    if len(data.encode("utf-8")) > MAX_CALLBACK_BYTES:
        raise ValueError(f"action id {action[:20]!r}… does not fit {MAX_CALLBACK_BYTES} bytes of callback data")
    return data


def action_of(data: str) -> str:
    """The engine action id in callback data; data of unknown shape comes back whole (the engine calls it stale)."""
    return data[len(CALLBACK_PREFIX) :] if data.startswith(CALLBACK_PREFIX) else data


def keyboard(buttons: Sequence[Sequence[Button]]) -> InlineKeyboardMarkup | None:
    """Reply buttons as an inline keyboard, row by row (None when there are none)."""
    rows = []
    for row in buttons:
        keys = []
        for button in row:
            try:
                keys.append(InlineKeyboardButton(button.label, callback_data=callback_data(button.action)))
            except ValueError as error:
                log.warning("button %r left out: %s", button.label, error)
        if keys:
            rows.append(keys)
    return InlineKeyboardMarkup(rows) if rows else None


def message_kwargs(reply: Reply) -> list[dict[str, Any]]:
    """``send_message`` arguments for a reply: one dict per message, the keyboard under the last one."""
    texts = message_texts(reply.text)
    markup = keyboard(reply.buttons)
    return [{"text": text, "parse_mode": ParseMode.HTML, "link_preview_options": NO_PREVIEW,
             "reply_markup": markup if n == len(texts) - 1 else None} for n, text in enumerate(texts)]  # fmt: skip


def as_poll(reply: Reply) -> bool:
    """Whether a reply is shown as a native quiz poll (a quiz question that fits one)."""
    return reply.quiz is not None and reply.quiz.fits_poll


def poll_question(reply: Reply) -> str:
    """The poll's question: the reply's title line (e.g. "Question 2 of 10 · …") above the question, if it fits."""
    assert reply.quiz is not None
    question = reply.quiz.question
    title = plain(reply.text).split("\n", 1)[0].strip()
    titled = f"{title}\n{question}"
    return titled if title and title != question and len(titled) <= POLL_QUESTION_CHARS else question


def poll_kwargs(reply: Reply) -> dict[str, Any]:
    """``send_poll`` arguments for a quiz question that fits a poll."""
    quiz = reply.quiz
    assert quiz is not None and quiz.fits_poll
    return {"question": poll_question(reply), "options": list(quiz.options), "type": Poll.QUIZ,
            "is_anonymous": False, "correct_option_ids": [quiz.correct_index],
            "explanation": quiz.explanation or None}  # fmt: skip
