"""The update handlers: ``TelegramTutor`` runs each turn through the engine and sends its replies; a ``Turn`` says
where they go; a ``LiveMessage`` is a growing answer, one message edited as it grows."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Any

from telegram import CallbackQuery, InlineKeyboardMarkup, Message, PollAnswer, ReplyParameters, Update
from telegram.constants import ChatAction, ChatMemberStatus, ParseMode
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ContextTypes,
    ExtBot,
    MessageHandler,
    PollAnswerHandler,
    filters,
)

from bot.adapters.telegram.files import refused_file, send_attachment, upload_of
from bot.adapters.telegram.formatting import partial_text
from bot.adapters.telegram.limits import Recent
from bot.adapters.telegram.render import NO_PREVIEW, as_poll, message_kwargs, poll_kwargs
from bot.adapters.telegram.translate import (
    PLATFORM,
    PollTicket,
    incoming_from_callback,
    incoming_from_message,
    incoming_from_poll_answer,
    thread_of,
    ticket_from_json,
    ticket_to_json,
    update_summary,
)
from bot.config import TelegramSettings
from bot.core.engine import Engine
from bot.core.messages import Attachment, Incoming, Reply
from bot.core.ports import StoreUnavailable
from bot.core.reminders import Delivery
from bot.store.inbox import Inbox

log = logging.getLogger(__name__)

APOLOGY = "Sorry, something went wrong on my side. Please try again, or type 'resume' to see where you are."
OLD_POLL = "That quiz poll is from before I restarted, so I couldn't count your answer. Here's where you are:"
NOT_YOURS = "These buttons belong to someone else's turn. Send /start to get your own."
TYPING_EVERY = 4.0  # a typing indicator fades after about 5 s


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

    def __init__(self, engine: Engine, settings: TelegramSettings, clock: Callable[[], float] = time.monotonic,
                 inbox: Inbox | None = None) -> None:  # fmt: skip
        self.engine = engine
        # Webhook workers: an update may be handled again (by a worker that took a dead one's chat), and a quiz
        # poll's answer may reach another worker than the one that sent it.
        self.inbox = inbox
        self.settings = settings
        self.clock = clock
        self.polls: Recent = Recent(20_000)  # poll id -> PollTicket
        self.owners: Recent = Recent(20_000)  # (chat id, message id) -> user id, for buttons sent in groups
        self.admins: Recent = Recent(20_000)  # (chat id, user id) -> (is admin, until)

    def install(self, application: Application) -> None:
        """Register the handlers and the error handler."""
        # A document counts in a group too (its caption says what to do with it: "/tracks upload x").
        addressable = filters.TEXT | filters.Document.ALL | filters.ChatType.PRIVATE
        talk = filters.UpdateType.MESSAGE & ~filters.StatusUpdate.ALL & addressable
        application.add_handler(MessageHandler(talk, self.on_message))
        application.add_handler(CallbackQueryHandler(self.on_callback))
        application.add_handler(PollAnswerHandler(self.on_poll_answer))
        application.add_error_handler(self.on_error)

    # ------------------------------------------------------------ handlers

    async def on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A message (with a document, an upload): a turn when it is for the bot; a question counts against the
        learner's budget."""
        message = update.message
        assert message is not None
        upload = upload_of(message, context.bot)  # downloaded only if the engine accepts it
        incoming = incoming_from_message(message, context.bot.username, context.bot.id, upload)
        if incoming is None or message.from_user is None:
            return
        turn = Turn(message.chat.id, message.from_user.id, incoming.is_direct, thread_of(message),
                    None if incoming.is_direct else message.message_id)  # fmt: skip
        incoming = self._once(await self._with_rights(context.bot, incoming, turn), update)
        admission = await self.engine.admit(incoming)
        if admission.refusal is not None:
            await self.send(context.bot, turn, admission.refusal)
            return
        await self.run_turn(context.bot, incoming, turn, typing=admission.question)

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
        await self.run_turn(context.bot, self._once(await self._with_rights(context.bot, incoming, turn), update), turn)

    async def on_poll_answer(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A quiz poll answer: the option's action; a poll from before a restart gets a note and the learner's place."""
        answer = update.poll_answer
        assert answer is not None
        ticket = self.polls.get(answer.poll_id) or await self._shared_ticket(answer.poll_id)
        if ticket is None:
            await self._old_poll(context.bot, answer, update)
            return
        incoming = incoming_from_poll_answer(answer, ticket)
        if incoming is None:
            return  # someone else answering a learner's quiz, or a retracted vote
        self.polls.pop(answer.poll_id, None)
        turn = Turn(ticket.chat_id, ticket.user_id, ticket.is_direct, ticket.thread_id)
        await self.run_turn(context.bot, self._once(await self._with_rights(context.bot, incoming, turn), update), turn)

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

    def _once(self, incoming: Incoming, update: Update) -> Incoming:
        """With webhook workers, the turn carries its update's id, so the engine handles the update only once."""
        return incoming if self.inbox is None else replace(incoming, delivery=f"{PLATFORM}:{update.update_id}")

    async def _shared_ticket(self, poll_id: str) -> PollTicket | None:
        """The ticket of a poll another worker sent (None without webhook workers, or when unknown)."""
        if self.inbox is None:
            return None
        try:
            shared = await asyncio.to_thread(self.inbox.poll, poll_id)
        except StoreUnavailable:
            return None  # the store logged why; the learner gets the note for an unknown poll and their place
        return None if shared is None else ticket_from_json(shared)

    async def _share_ticket(self, poll_id: str, ticket: PollTicket) -> None:
        if self.inbox is None:
            return
        try:
            await asyncio.to_thread(self.inbox.remember_poll, poll_id, ticket.chat_id, ticket_to_json(ticket),
                                    time.time())  # fmt: skip
        except StoreUnavailable:
            log.warning("could not share quiz poll %s: an answer reaching another worker is taken as unknown", poll_id)

    async def _old_poll(self, bot: ExtBot, answer: PollAnswer, update: Update) -> None:
        user = answer.user
        if user is None or not answer.option_ids:
            return
        turn = Turn(user.id, user.id, True)  # its chat is unknown: the learner's private chat
        await self.send(bot, turn, Reply(OLD_POLL))
        incoming = Incoming(PLATFORM, str(user.id), str(user.id), text="resume", display_name=user.first_name or "")
        await self.run_turn(bot, self._once(incoming, update), turn)

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

    async def send_reminder(self, bot: ExtBot, user_id: str, reply: Reply) -> Delivery:
        """Send a reminder to the learner's private chat; a block or a chat the bot can't reach is UNREACHABLE."""
        turn = Turn(int(user_id), int(user_id), True)
        try:
            await self.send(bot, turn, reply)
        except Forbidden:
            return Delivery.UNREACHABLE  # blocked, or the learner never opened a private chat with the bot
        except BadRequest as error:
            if "chat not found" in error.message.lower():
                return Delivery.UNREACHABLE
            log.warning("could not send a reminder to chat %s: %s", user_id, error.message)
            return Delivery.FAILED
        except TelegramError as error:
            log.warning("could not send a reminder to chat %s: %s", user_id, type(error).__name__)
            return Delivery.FAILED
        return Delivery.SENT

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
        """Send a reply: a quiz poll when it fits one, else messages with the keyboard under the last; then its files."""
        if as_poll(reply):
            assert reply.quiz is not None
            sent = await bot.send_poll(turn.chat_id, **poll_kwargs(reply), **turn.placement())
            if sent.poll is not None:
                ticket = PollTicket(turn.user_id, turn.chat_id, turn.thread_id, turn.is_direct, reply.quiz.actions)
                self.polls[sent.poll.id] = ticket
                await self._share_ticket(sent.poll.id, ticket)
        elif reply.text.strip() or reply.buttons or not reply.files:
            for kwargs in message_kwargs(reply):
                await self.send_text(bot, turn, **kwargs)
        await self.send_files(bot, turn, reply.files)

    async def send_files(self, bot: ExtBot, turn: Turn, files: tuple[Attachment, ...]) -> None:
        """Send a reply's files in order (charts as photos); one Telegram refuses is named to the learner."""
        for attachment in files:
            if not await send_attachment(bot, turn.chat_id, attachment, turn.placement()):
                await self.send(bot, turn, Reply(refused_file(attachment.filename), personal=True))

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
        if reply is not None:
            await self.tutor.send_files(self.bot, self.turn, reply.files)

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
