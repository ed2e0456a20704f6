"""Replies as Telegram shows them: reply text as escaped HTML spans split into messages of at most 4096
UTF-16 units, buttons as inline keyboards with ``tb:`` callback data, quiz questions as native quiz poll arguments."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Poll
from telegram.constants import ParseMode

from bot.core.messages import POLL_QUESTION_CHARS, Button, Reply

log = logging.getLogger(__name__)

CALLBACK_PREFIX = "tb:"
MAX_CALLBACK_BYTES = 64
MAX_TEXT = 4096  # visible characters of one message, counted in UTF-16 code units as Telegram does
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
_BOLD = re.compile(r"\*\*(.+?)\*\*", re.DOTALL)

# ---------------------------------------------------------------- text


@dataclass(frozen=True)
class Span:
    """A run of reply text, bold or not."""

    text: str
    bold: bool = False


def spans_of(text: str) -> list[Span]:
    """Reply text as spans: ``**x**`` is bold, every other character is literal."""
    spans, last = [], 0
    for match in _BOLD.finditer(text):
        if match.start() > last:
            spans.append(Span(text[last : match.start()]))
        spans.append(Span(match.group(1), True))
        last = match.end()
    if last < len(text):
        spans.append(Span(text[last:]))
    return spans


def to_html(spans: Sequence[Span]) -> str:
    """Spans as Telegram HTML: everything escaped, bold spans in ``<b>``."""
    return "".join(f"<b>{escape(s.text, quote=False)}</b>" if s.bold else escape(s.text, quote=False)
                   for s in spans if s.text)  # fmt: skip


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def _fit(text: str, start: int, limit: int) -> int:
    """The largest ``end`` with ``text[start:end]`` at most ``limit`` UTF-16 code units long."""
    units, end = 0, start
    while end < len(text):
        units += 2 if ord(text[end]) > 0xFFFF else 1
        if units > limit:
            break
        end += 1
    return end


def cut_points(text: str, limit: int = MAX_TEXT) -> list[tuple[int, int]]:
    """``(start, end)`` of each piece of ``text``: at most ``limit`` long, cut at a paragraph, line or word."""
    pieces: list[tuple[int, int]] = []
    start = 0
    while start < len(text) and text[start].isspace():
        start += 1
    while start < len(text):
        end = _fit(text, start, limit)
        if end < len(text):
            window = text[start:end]
            for separator in ("\n\n", "\n", " "):
                at = window.rfind(separator)
                if at > len(window) // 4:  # never a sliver: a hard cut beats a tiny piece
                    end = start + at
                    break
        stop = end
        while stop > start and text[stop - 1].isspace():
            stop -= 1
        if stop > start:
            pieces.append((start, stop))
        start = end
        while start < len(text) and text[start].isspace():
            start += 1
    return pieces


def split_spans(spans: Sequence[Span], limit: int = MAX_TEXT) -> list[list[Span]]:
    """Spans cut into messages of at most ``limit`` visible characters; a bold span cut in two stays bold."""
    visible = "".join(span.text for span in spans)
    bounds, offset = [], 0
    for span in spans:
        bounds.append((offset, offset + len(span.text), span.bold))
        offset += len(span.text)
    parts = []
    for start, end in cut_points(visible, limit):
        pieces = ((max(start, a), min(end, b), bold) for a, b, bold in bounds)
        parts.append([Span(visible[a:b], bold) for a, b, bold in pieces if a < b])
    return parts


def message_texts(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Reply text as HTML messages, each at most ``limit`` visible characters (never empty)."""
    return [to_html(part) for part in split_spans(spans_of(text), limit)] or ["…"]


def partial_text(text: str) -> str:
    """HTML for a growing answer: plain (a bold span may be unfinished), the first message's worth."""
    return message_texts(text.replace("**", ""))[0]


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
    title = reply.text.replace("**", "").split("\n", 1)[0].strip()
    titled = f"{title}\n{question}"
    return titled if title and title != question and len(titled) <= POLL_QUESTION_CHARS else question


def poll_kwargs(reply: Reply) -> dict[str, Any]:
    """``send_poll`` arguments for a quiz question that fits a poll."""
    quiz = reply.quiz
    assert quiz is not None and quiz.fits_poll
    return {"question": poll_question(reply), "options": list(quiz.options), "type": Poll.QUIZ,
            "is_anonymous": False, "correct_option_ids": [quiz.correct_index],
            "explanation": quiz.explanation or None}  # fmt: skip
