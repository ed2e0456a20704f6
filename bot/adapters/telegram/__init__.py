"""The Telegram adapter: Bot API updates in as ``Incoming`` turns, ``Reply`` objects out as messages.

Long polling by default, a webhook when ``webhook_url`` is set. In a private chat every message is a turn; in a
group only what is addressed to the bot (a command, a mention, a reply to the bot). Buttons become inline
keyboards (callback data = ``tb:`` + the engine's action id), quiz questions native quiz polls whose answers come
back as ``poll_answer`` updates, a model answer one message edited as it grows. Sends are throttled per chat, a
429 is waited out and retried, and each learner has a per-minute budget of model questions.

The pure translation functions come first (unit-tested on sample payloads), then the limits, then the plumbing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import logging
import math
import re
import time
import warnings
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, replace
from datetime import timedelta
from html import escape
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from telegram import (
    BotCommand,
    CallbackQuery,
    Chat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    Poll,
    PollAnswer,
    ReplyParameters,
    Update,
)
from telegram.constants import ChatAction, ChatMemberStatus, ChatType, ParseMode
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseRateLimiter,
    CallbackQueryHandler,
    ContextTypes,
    ExtBot,
    MessageHandler,
    PollAnswerHandler,
    filters,
)
from telegram.request import HTTPXRequest

from bot.adapters import AdapterError
from bot.config import TelegramSettings
from bot.core.engine import Engine
from bot.core.messages import POLL_QUESTION_CHARS, Button, Incoming, Reply
from bot.logs import SecretFilter

log = logging.getLogger(__name__)

PLATFORM = "telegram"
CALLBACK_PREFIX = "tb:"
MAX_CALLBACK_BYTES = 64
MAX_TEXT = 4096  # visible characters of one message, counted in UTF-16 code units as Telegram does
ALLOWED_UPDATES = (Update.MESSAGE, Update.CALLBACK_QUERY, Update.POLL_ANSWER)
COMMANDS = (
    ("start", "Tracks here and where you left off"),
    ("tracks", "The tracks you can take here"),
    ("lesson", "Open a lesson: /lesson ID (alone: the lessons of your track)"),
    ("next", "The next part of your lesson"),
    ("quiz", "Take the quiz of your lesson"),
    ("ask", "Ask about the lessons: /ask QUESTION"),
    ("progress", "Lessons done, quiz scores, streak"),
    ("review", "Quiz questions you missed, again"),
    ("help", "What I understand"),
)
TOKEN_REJECTED = "Telegram rejected the bot token: check TUTORBOT_TELEGRAM__TOKEN (from @BotFather)"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
APOLOGY = "Sorry, something went wrong on my side. Please try again, or type 'resume' to see where you are."
OLD_POLL = "That quiz poll is from before I restarted, so I couldn't count your answer. Here's where you are:"
NOT_YOURS = "These buttons belong to someone else's turn. Send /start to get your own."
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
POLL_SECONDS = 30  # long-polling timeout of getUpdates
TYPING_EVERY = 4.0  # a typing indicator fades after about 5 s
CONCURRENT_UPDATES = 256  # turns handled at once; the engine keeps each learner's turns in order
TOKEN_LOGGERS = ("httpx", "telegram.Bot", "telegram.ext.ExtBot")  # they log Bot API URLs, and the token is in each
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


# ---------------------------------------------------------------- updates to turns


def is_private(chat: Chat) -> bool:
    """Whether a chat is a private chat with the bot."""
    return chat.type == ChatType.PRIVATE


def _mention(username: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w@])@{re.escape(username)}\b", re.IGNORECASE)


def _replies_to_bot(message: Message, bot_id: int) -> bool:
    replied = message.reply_to_message
    if replied is None or replied.from_user is None or replied.from_user.id != bot_id:
        return False
    # In a forum topic every message "replies" to the topic's first message: that is not a reply to the bot.
    return not (message.is_topic_message and replied.message_id == message.message_thread_id)


def addressed_text(message: Message, bot_username: str, bot_id: int) -> str | None:
    """What a message says to the bot, without the bot's @mention; None when it is not for the bot.

    Private chat: everything. Group: a command (not one for another bot), a mention, or a reply to the bot.
    """
    text = message.text or ""
    mention = _mention(bot_username)
    mentioned = bool(mention.search(text))
    if mentioned:
        text = mention.sub("", text).strip() or "start"  # a bare mention is a hello
    if text.startswith("/"):
        name, _, rest = text.split(maxsplit=1)[0][1:].partition("@")
        if rest and rest.casefold() != bot_username.casefold():
            return None  # a command for another bot
        return text
    if is_private(message.chat) or mentioned or _replies_to_bot(message, bot_id):
        return text
    return None


def thread_of(message: object) -> int | None:
    """The forum topic a message is in (replies go to the same topic)."""
    return getattr(message, "message_thread_id", None) if getattr(message, "is_topic_message", False) else None


def incoming_from_message(message: Message, bot_username: str, bot_id: int) -> Incoming | None:
    """The turn a message makes, or None when the bot should stay silent (not addressed, or from a bot)."""
    user = message.from_user
    if user is None or user.is_bot:
        return None
    text = addressed_text(message, bot_username, bot_id)
    if text is None:
        return None
    return Incoming(PLATFORM, str(user.id), str(message.chat.id), text=text, display_name=user.first_name or "",
                    is_direct=is_private(message.chat))  # fmt: skip


def incoming_from_callback(query: CallbackQuery) -> Incoming | None:
    """The turn a button press makes (None for buttons not under a chat message)."""
    if query.message is None or query.data is None:
        return None
    user = query.from_user
    return Incoming(PLATFORM, str(user.id), str(query.message.chat.id), action=action_of(query.data),
                    display_name=user.first_name or "", is_direct=is_private(query.message.chat))  # fmt: skip


@dataclass(frozen=True)
class PollTicket:
    """What a sent quiz poll stands for: whose question it is, where it was sent, each option's action."""

    user_id: int
    chat_id: int
    thread_id: int | None
    is_direct: bool
    actions: tuple[str, ...]


def incoming_from_poll_answer(answer: PollAnswer, ticket: PollTicket) -> Incoming | None:
    """The turn a poll answer makes; None for someone else's quiz, a retracted vote or an unknown option."""
    user = answer.user
    if user is None or user.id != ticket.user_id or len(answer.option_ids) != 1:
        return None
    option = answer.option_ids[0]
    if not 0 <= option < len(ticket.actions):
        return None
    return Incoming(PLATFORM, str(user.id), str(ticket.chat_id), action=ticket.actions[option],
                    display_name=user.first_name or "", is_direct=ticket.is_direct)  # fmt: skip


def update_summary(update: object) -> tuple[str, int | None]:
    """``(kind of update, chat id)`` for logs and apologies: never the update's content."""
    if not isinstance(update, Update):
        return "non-update", None
    kind = next((k for k in ALLOWED_UPDATES if getattr(update, k, None) is not None), "other")
    if update.effective_chat is not None:
        return kind, update.effective_chat.id
    if update.poll_answer is not None and update.poll_answer.user is not None:
        return kind, update.poll_answer.user.id  # its private chat: a poll answer carries no chat
    return kind, None


# ---------------------------------------------------------------- limits


class Window(NamedTuple):
    """At most ``count`` sends in any ``seconds``."""

    count: int
    seconds: float


@dataclass(frozen=True)
class SendLimits:
    """How fast the bot sends (sliding windows) and how many 429s one call waits out before giving up."""

    private: tuple[Window, ...] = (Window(3, 3.0),)  # about one message a second per chat, short bursts allowed
    group: tuple[Window, ...] = (Window(3, 3.0), Window(20, 60.0))  # and at most 20 a minute in a group
    overall: tuple[Window, ...] = (Window(30, 1.0),)  # across all chats
    retries: int = 3


THROTTLED = frozenset({"sendMessage", "sendPoll", "editMessageText", "editMessageReplyMarkup"})


def retry_seconds(error: RetryAfter) -> float:
    """How long Telegram asked to wait."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the int/timedelta migration warning of python-telegram-bot 22
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def is_group_id(chat_id: object) -> bool:
    """Whether a chat id is a group's or a channel's (negative, or an @username)."""
    try:
        return int(str(chat_id)) < 0
    except ValueError:
        return True


class SlidingWindows:
    """Times of recent sends per key; how long the next send must wait to fit every window."""

    def __init__(self) -> None:
        self._sent: dict[object, deque[float]] = {}

    def delay(self, key: object, windows: Sequence[Window], now: float) -> float:
        """Seconds until one more send under ``key`` fits ``windows`` (0 when it fits now)."""
        sent = self._sent.get(key)
        if not sent or not windows:
            return 0.0
        while sent and sent[0] <= now - max(w.seconds for w in windows):
            sent.popleft()
        if not sent:
            del self._sent[key]
            return 0.0
        wait = 0.0
        for count, seconds in windows:
            recent = [at for at in sent if at > now - seconds]
            if len(recent) >= count:
                wait = max(wait, recent[-count] + seconds - now)
        return wait

    def record(self, key: object, now: float) -> None:
        """Count a send under ``key``."""
        self._sent.setdefault(key, deque()).append(now)


class ChatRateLimiter(BaseRateLimiter[None]):
    """Spaces sends per chat and overall, and waits out a 429's ``retry_after`` before trying the call again."""

    def __init__(self, limits: SendLimits, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Any] = asyncio.sleep) -> None:  # fmt: skip
        self.limits = limits
        self.clock = clock
        self.sleep = sleep
        self._windows = SlidingWindows()
        self._paused: dict[object, float] = {}  # key -> until when Telegram asked us to wait

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""

    async def process_request(self, callback: Callable[..., Any], args: Any, kwargs: dict[str, Any], endpoint: str,
                              data: dict[str, Any], rate_limit_args: None) -> Any:  # fmt: skip
        """Make the call when it fits the limits; after a 429, wait as asked and make it again."""
        chat = data.get("chat_id") if endpoint in THROTTLED else None
        for attempt in itertools.count():
            await self.wait_turn(chat)
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as error:
                if attempt >= self.limits.retries:
                    raise
                seconds = retry_seconds(error)
                log.warning("Telegram asked to slow down: %s to chat %s waits %.1f s", endpoint, chat, seconds)
                key = chat if chat is not None else "all"
                self._paused[key] = max(self._paused.get(key, 0.0), self.clock() + seconds)
        raise AssertionError("unreachable")  # pragma: no cover

    async def wait_turn(self, chat: object) -> None:
        """Wait until one more send to ``chat`` (None: a call not tied to a chat) fits every limit, and count it."""
        keys: list[tuple[object, Sequence[Window]]] = [("all", self.limits.overall)]
        if chat is not None:
            keys.append((chat, self.limits.group if is_group_id(chat) else self.limits.private))
        while True:
            now = self.clock()
            wait = max([self._paused.get(key, 0.0) - now for key, _ in keys]
                       + [self._windows.delay(key, windows, now) for key, windows in keys])  # fmt: skip
            if wait <= 0:
                for key, _ in keys:
                    self._windows.record(key, now)
                    self._paused.pop(key, None)
                return
            await self.sleep(wait)


class QuestionBudget:
    """At most ``per_minute`` model questions per learner in any 60 seconds."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = Window(per_minute, 60.0)
        self.clock = clock
        self._asked = SlidingWindows()

    def wait(self, learner: str) -> float:
        """0 (and the question is counted) when ``learner`` may ask now, else the seconds until they may."""
        now = self.clock()
        wait = self._asked.delay(learner, [self.window], now)
        if wait <= 0:
            self._asked.record(learner, now)
        return wait


def too_many_questions(per_minute: int, wait: float) -> str:
    """The polite answer to a learner over their question budget."""
    asked = "one question" if per_minute == 1 else f"{per_minute} questions"
    return (f"You've asked {asked} in the last minute, which is as many as I can take. "
            f"Please ask again in {math.ceil(wait)} seconds; lessons and quizzes work meanwhile.")  # fmt: skip


class Recent(OrderedDict):
    """A dict that forgets its oldest entries beyond ``size`` (poll tickets, button owners, admin checks)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def __setitem__(self, key: object, value: object) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


# ---------------------------------------------------------------- turns


@dataclass
class Turn:
    """Where one turn's replies go: the chat (and topic), whose turn it is, and in a group the message to answer."""

    chat_id: int
    user_id: int
    is_direct: bool
    thread_id: int | None = None
    reply_to: int | None = None  # cleared once the first message of the turn is sent

    def placement(self) -> dict[str, Any]:
        """Where the next message goes: the turn's topic; the first one answers the learner's message."""
        where: dict[str, Any] = {"message_thread_id": self.thread_id}
        if self.reply_to is not None:
            where["reply_parameters"] = ReplyParameters(self.reply_to, allow_sending_without_reply=True)
            self.reply_to = None
        return where


class TelegramTutor:
    """The update handlers: turn updates into engine turns and send the replies by Telegram's rules."""

    def __init__(self, engine: Engine, settings: TelegramSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.questions = QuestionBudget(settings.questions_per_minute, clock)
        self.polls: Recent = Recent(20_000)  # poll id -> PollTicket
        self.owners: Recent = Recent(20_000)  # (chat id, message id) -> user id, for buttons sent in groups
        self.admins: Recent = Recent(20_000)  # (chat id, user id) -> (is admin, until)

    def install(self, application: Application) -> None:
        """Register the handlers and the error handler."""
        talk = filters.UpdateType.MESSAGE & ~filters.StatusUpdate.ALL & (filters.TEXT | filters.ChatType.PRIVATE)
        application.add_handler(MessageHandler(talk, self.on_message))
        application.add_handler(CallbackQueryHandler(self.on_callback))
        application.add_handler(PollAnswerHandler(self.on_poll_answer))
        application.add_error_handler(self.on_error)

    # ------------------------------------------------------------ handlers

    async def on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A message: a turn when it is for the bot; a question counts against the learner's budget."""
        message = update.message
        assert message is not None
        incoming = incoming_from_message(message, context.bot.username, context.bot.id)
        if incoming is None or message.from_user is None:
            return
        turn = Turn(message.chat.id, message.from_user.id, incoming.is_direct, thread_of(message),
                    None if incoming.is_direct else message.message_id)  # fmt: skip
        incoming = await self._with_rights(context.bot, incoming, turn)
        question = self.engine.is_question(incoming)
        if question:
            wait = self.questions.wait(incoming.learner)
            if wait > 0:
                await self.send(context.bot, turn, Reply(too_many_questions(self.settings.questions_per_minute, wait)))
                return
        await self.run_turn(context.bot, incoming, turn, typing=question)

    async def on_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A button press: always answered; in a group only the learner whose turn showed the buttons may press."""
        query = update.callback_query
        assert query is not None
        message = query.message
        owner = self.owners.get((message.chat.id, message.message_id)) if message is not None else None
        if owner is not None and owner != query.from_user.id:
            await _answer(query, NOT_YOURS)
            return
        await _answer(query)
        incoming = incoming_from_callback(query)
        if incoming is None or message is None:
            return
        turn = Turn(message.chat.id, query.from_user.id, incoming.is_direct, thread_of(message))
        await self.run_turn(context.bot, await self._with_rights(context.bot, incoming, turn), turn)

    async def on_poll_answer(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A quiz poll answer: the option's action; a poll from before a restart gets a note and the learner's place."""
        answer = update.poll_answer
        assert answer is not None
        ticket = self.polls.get(answer.poll_id)
        if ticket is None:
            await self._old_poll(context.bot, answer)
            return
        incoming = incoming_from_poll_answer(answer, ticket)
        if incoming is None:
            return  # someone else answering a learner's quiz, or a retracted vote
        self.polls.pop(answer.poll_id, None)
        turn = Turn(ticket.chat_id, ticket.user_id, ticket.is_direct, ticket.thread_id)
        await self.run_turn(context.bot, await self._with_rights(context.bot, incoming, turn), turn)

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log a failed update with its context (never its token) and apologise to the learner."""
        kind, chat_id = update_summary(update)
        error = context.error
        if isinstance(error, Forbidden):
            log.info("could not write to chat %s (%s update): the bot was blocked or removed", chat_id, kind)
            return
        log.error("handling a %s update in chat %s failed", kind, chat_id, exc_info=error)
        if chat_id is None:
            return
        try:
            await context.bot.send_message(chat_id, APOLOGY)
        except TelegramError as failure:
            log.warning("could not apologise in chat %s: %s", chat_id, type(failure).__name__)

    async def _old_poll(self, bot: ExtBot, answer: PollAnswer) -> None:
        user = answer.user
        if user is None or not answer.option_ids:
            return
        turn = Turn(user.id, user.id, True)  # its chat is unknown: the learner's private chat
        await self.send(bot, turn, Reply(OLD_POLL))
        incoming = Incoming(PLATFORM, str(user.id), str(user.id), text="resume", display_name=user.first_name or "")
        await self.run_turn(bot, incoming, turn)

    async def _with_rights(self, bot: ExtBot, incoming: Incoming, turn: Turn) -> Incoming:
        if incoming.is_direct:
            return incoming
        return replace(incoming, is_moderator=await self._is_admin(bot, turn.chat_id, turn.user_id))

    async def _is_admin(self, bot: ExtBot, chat_id: int, user_id: int) -> bool:
        """Whether a user administers a group (getChatMember), remembered for ``admin_cache_seconds``."""
        now = self.clock()
        known = self.admins.get((chat_id, user_id))
        if known is not None and known[1] > now:
            return known[0]
        try:
            member = await bot.get_chat_member(chat_id, user_id)
        except TelegramError as error:
            log.warning("could not check whether user %s administers chat %s: %s", user_id, chat_id,
                        type(error).__name__)  # fmt: skip
            return False
        is_admin = member.status in {ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER}
        self.admins[(chat_id, user_id)] = (is_admin, now + self.settings.admin_cache_seconds)
        return is_admin

    # ------------------------------------------------------------ replies

    async def run_turn(self, bot: ExtBot, incoming: Incoming, turn: Turn, typing: bool = False) -> None:
        """Run a turn through the engine and send its replies; a growing answer is one message, edited."""
        typist = asyncio.create_task(self._keep_typing(bot, turn)) if typing else None
        live: LiveMessage | None = None
        try:
            async with aclosing(self.engine.handle(incoming)) as replies:
                async for reply in replies:
                    if reply.partial:
                        live = live or LiveMessage(self, bot, turn, self.settings.edit_seconds, self.clock)
                        await live.show(reply.text)
                    elif live is not None:
                        await live.finish(reply)
                        live = None
                    else:
                        await self.send(bot, turn, reply)
                    if typist is not None and (live is None or live.message_id is not None):
                        typist.cancel()  # something is on screen now
                        typist = None
            if live is not None:
                await live.finish(None)
        finally:
            if typist is not None:
                typist.cancel()

    async def send(self, bot: ExtBot, turn: Turn, reply: Reply) -> None:
        """Send a reply: a quiz poll when it fits one, else messages with the keyboard under the last."""
        if as_poll(reply):
            assert reply.quiz is not None
            sent = await bot.send_poll(turn.chat_id, **poll_kwargs(reply), **turn.placement())
            if sent.poll is not None:
                self.polls[sent.poll.id] = PollTicket(turn.user_id, turn.chat_id, turn.thread_id, turn.is_direct,
                                                      reply.quiz.actions)  # fmt: skip
            return
        for kwargs in message_kwargs(reply):
            await self.send_text(bot, turn, **kwargs)

    async def send_text(self, bot: ExtBot, turn: Turn, **kwargs: Any) -> Message:
        """Send one message of a turn; remember who owns the buttons of a message sent to a group."""
        sent = await bot.send_message(turn.chat_id, **kwargs, **turn.placement())
        if kwargs.get("reply_markup") is not None:
            self.own(turn, sent.message_id)
        return sent

    def own(self, turn: Turn, message_id: int) -> None:
        """Buttons in a group belong to the learner whose turn showed them."""
        if not turn.is_direct:
            self.owners[(turn.chat_id, message_id)] = turn.user_id

    async def _keep_typing(self, bot: ExtBot, turn: Turn) -> None:
        while True:
            with contextlib.suppress(TelegramError):
                await bot.send_chat_action(turn.chat_id, ChatAction.TYPING, message_thread_id=turn.thread_id)
            await asyncio.sleep(TYPING_EVERY)


async def _answer(query: CallbackQuery, text: str | None = None) -> None:
    """Answer a button press (stops its spinner); one too old to answer (pressed before a restart) is still acted on."""
    try:
        await query.answer(text)
    except BadRequest as error:
        log.info("could not answer a button press: %s", error.message)


class LiveMessage:
    """One message showing a growing answer: sent once, edited at most every ``interval`` s, ending on the final."""

    def __init__(self, tutor: TelegramTutor, bot: ExtBot, turn: Turn, interval: float,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.tutor, self.bot, self.turn = tutor, bot, turn
        self.interval = interval
        self.clock = clock
        self.message_id: int | None = None
        self.shown = ""  # HTML on screen now
        self.latest = ""  # newest text, shown or not
        self.changed_at = -math.inf

    async def show(self, text: str) -> None:
        """Show the answer so far, unless the last change was less than ``interval`` ago (a later one follows)."""
        self.latest = text
        if not any(char.isalnum() for char in text):
            return  # nothing worth a message yet (an opening quote mark): the typing indicator goes on
        html = partial_text(text)
        if self.message_id is None:
            sent = await self.tutor.send_text(self.bot, self.turn, text=html, parse_mode=ParseMode.HTML,
                                              link_preview_options=NO_PREVIEW)  # fmt: skip
            self.message_id, self.shown, self.changed_at = sent.message_id, html, self.clock()
        elif html != self.shown and self.clock() - self.changed_at >= self.interval:
            await self._edit(html, None)

    async def finish(self, reply: Reply | None) -> None:
        """Replace the growing text by the final reply (or the last text, when none came), split if long."""
        if reply is None and self.message_id is None:
            return  # nothing was worth showing, and nothing more came
        if (reply is not None and as_poll(reply)) or self.message_id is None:
            await self.tutor.send(self.bot, self.turn, reply or Reply(self.latest))
            return
        parts = message_kwargs(reply if reply is not None else Reply(self.latest))
        first = parts[0]
        if first["text"] != self.shown or first["reply_markup"] is not None:
            wait = self.changed_at + self.interval - self.clock()
            if wait > 0:
                await asyncio.sleep(wait)
            if not await self._edit(first["text"], first["reply_markup"]):
                await self.tutor.send_text(self.bot, self.turn, **first)
        for kwargs in parts[1:]:
            await self.tutor.send_text(self.bot, self.turn, **kwargs)

    async def _edit(self, html: str, markup: InlineKeyboardMarkup | None) -> bool:
        """Edit the message; False when it cannot be edited (deleted, say)."""
        assert self.message_id is not None
        try:
            await self.bot.edit_message_text(html, chat_id=self.turn.chat_id, message_id=self.message_id,
                                             parse_mode=ParseMode.HTML, reply_markup=markup,
                                             link_preview_options=NO_PREVIEW)  # fmt: skip
        except BadRequest as error:
            if "not modified" not in error.message.lower():
                log.warning("could not edit a message in chat %s: %s", self.turn.chat_id, error.message)
                return False
        self.shown, self.changed_at = html, self.clock()
        if markup is not None:
            self.tutor.own(self.turn, self.message_id)
        return True


# ---------------------------------------------------------------- serving


def build_application(settings: TelegramSettings, limits: SendLimits,
                      requests: tuple[HTTPXRequest, HTTPXRequest]) -> Application:  # fmt: skip
    """The python-telegram-bot Application: our rate limiter, concurrent turns, the Bot API server if overridden."""
    assert settings.token is not None
    builder = (
        ApplicationBuilder()
        .token(settings.token.get_secret_value())
        .request(requests[0])
        .get_updates_request(requests[1])
        .rate_limiter(ChatRateLimiter(limits))
        .concurrent_updates(CONCURRENT_UPDATES)
    )
    if settings.base_url:
        base = settings.base_url.rstrip("/")
        builder = builder.base_url(f"{base}/bot").base_file_url(f"{base}/file/bot")
    if settings.webhook_url:
        builder = builder.updater(None)  # webhook calls are received by our own small server (see _receive_webhooks)
    return builder.build()


@contextlib.contextmanager
def token_masked(token: str) -> Iterator[None]:
    """Mask the token in every record of the loggers that write Bot API URLs, whatever the logging set-up."""
    mask = SecretFilter([token])
    loggers = [logging.getLogger(name) for name in TOKEN_LOGGERS]
    for logger in loggers:
        logger.addFilter(mask)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(mask)


async def serve(engine: Engine, settings: TelegramSettings, stop: asyncio.Event, *,
                limits: SendLimits | None = None) -> None:  # fmt: skip
    """Serve learners on Telegram until ``stop`` is set, then finish the turns in flight and shut down.

    ``limits`` overrides the send limits (tests relax them). Raises ``AdapterError`` when Telegram refuses to start.
    """
    if settings.token is None:
        raise AdapterError("No Telegram bot token: set TUTORBOT_TELEGRAM__TOKEN (from @BotFather).")
    with token_masked(settings.token.get_secret_value()):
        requests = (HTTPXRequest(), HTTPXRequest(connection_pool_size=1))
        application = build_application(settings, limits or SendLimits(), requests)
        TelegramTutor(engine, settings).install(application)
        await _initialize(application, requests)
        try:
            await _announce_commands(application.bot)
            await application.start()
            if settings.webhook_url:
                await _receive_webhooks(application, settings, stop)
            else:
                await _poll(application, stop)
        finally:
            await _shut_down(application)


async def _initialize(application: Application, requests: tuple[HTTPXRequest, HTTPXRequest]) -> None:
    """Initialize (getMe checks the token); a refusal becomes an AdapterError that never carries the token."""
    problem = None
    try:
        await application.initialize()
    except InvalidToken:  # its message quotes the token: it is neither kept nor chained
        problem = TOKEN_REJECTED
    except NetworkError as error:
        problem = (f"Could not reach the Telegram Bot API ({type(error).__name__}): check the network, or "
                   "TUTORBOT_TELEGRAM__BASE_URL if you set it.")  # fmt: skip
    if problem is not None:
        await asyncio.gather(*(request.shutdown() for request in requests))
        raise AdapterError(problem)
    log.info("Telegram: signed in as @%s", application.bot.username)


async def _announce_commands(bot: ExtBot) -> None:
    """Put the commands, with descriptions, in Telegram's command menu."""
    try:
        await bot.set_my_commands([BotCommand(name, description) for name, description in COMMANDS])
    except TelegramError as error:
        log.warning("could not set the command menu: %s", type(error).__name__)


def _polling_failed(error: TelegramError) -> None:
    if isinstance(error, Conflict):
        log.error("another process is fetching updates with this bot token; stop it (retrying)")
    else:
        log.warning("fetching updates failed (%s: %s); retrying", type(error).__name__, error)


async def _poll(application: Application, stop: asyncio.Event) -> None:
    """Long polling until ``stop`` is set."""
    assert application.updater is not None
    await application.updater.start_polling(poll_interval=0.0, timeout=POLL_SECONDS,
                                            allowed_updates=list(ALLOWED_UPDATES),
                                            error_callback=_polling_failed)  # fmt: skip
    log.info("Telegram: long polling")
    await stop.wait()


def webhook_app(application: Application, path: str, secret: str | None) -> Any:
    """An aiohttp app taking webhook calls at ``path``: a wrong secret header gets 403, an update is queued."""
    from aiohttp import web  # aiohttp comes with discord.py; PTB's own webhook server needs tornado, not installed

    async def receive(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "")
        if secret is not None and not hmac.compare_digest(given.encode(), secret.encode()):
            return web.Response(status=403)
        try:
            update = Update.de_json(await request.json(), application.bot)
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("a webhook call did not carry an update")
            return web.Response(status=400)
        await application.update_queue.put(update)
        return web.Response()

    app = web.Application()
    app.router.add_post(path, receive)
    return app


async def _receive_webhooks(application: Application, settings: TelegramSettings, stop: asyncio.Event) -> None:
    """Take webhook calls until ``stop`` is set (the webhook stays registered: updates wait for the next start)."""
    from aiohttp import web

    assert settings.webhook_url is not None
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    if secret is None:
        log.warning("the webhook has no secret: anyone who finds its URL can post updates; "
                    "set TUTORBOT_TELEGRAM__WEBHOOK_SECRET")  # fmt: skip
    app = webhook_app(application, urlsplit(settings.webhook_url).path or "/", secret)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.webhook_listen, settings.webhook_port)
        try:
            await site.start()
        except OSError as error:
            where = f"{settings.webhook_listen}:{settings.webhook_port}"
            raise AdapterError(f"Could not listen for webhook calls on {where} ({error.strerror}): "
                               "set TUTORBOT_TELEGRAM__WEBHOOK_PORT to a free port.") from None  # fmt: skip
        try:
            await application.bot.set_webhook(settings.webhook_url, allowed_updates=list(ALLOWED_UPDATES),
                                              secret_token=secret)  # fmt: skip
        except BadRequest as error:
            raise AdapterError(f"Telegram refused the webhook ({error.message}): "
                               "check TUTORBOT_TELEGRAM__WEBHOOK_URL.") from None  # fmt: skip
        log.info("Telegram: receiving webhook calls on %s:%s", settings.webhook_listen, settings.webhook_port)
        await stop.wait()
    finally:
        await runner.cleanup()


async def _shut_down(application: Application) -> None:
    """Stop fetching, let the turns in flight finish, then close."""
    if application.updater is not None and application.updater.running:
        await application.updater.stop()
    if application.running:
        await application.stop()
    await application.shutdown()
