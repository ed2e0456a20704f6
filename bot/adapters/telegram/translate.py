"""Updates to turns: a message, a button press or a quiz poll answer as an ``Incoming`` (None when the bot
stays silent), and a content-free summary of an update for logs."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

from telegram import CallbackQuery, Chat, Message, PollAnswer, Update
from telegram.constants import ChatType

from bot.adapters.telegram.render import action_of
from bot.core.messages import Incoming, Upload

PLATFORM = "telegram"
ALLOWED_UPDATES = (Update.MESSAGE, Update.CALLBACK_QUERY, Update.POLL_ANSWER)


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
    """What a message (or a document's caption) says to the bot, without the bot's @mention; None when it is not
    for the bot.

    Private chat: everything. Group: a command (not one for another bot), a mention, or a reply to the bot.
    """
    text = message.text or message.caption or ""
    mention = _mention(bot_username)
    mentioned = bool(mention.search(text))
    if mentioned:
        # A bare mention is a hello; on a document it only addresses the file to the bot.
        text = mention.sub("", text).strip() or ("" if message.document is not None else "start")
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


def incoming_from_message(message: Message, bot_username: str, bot_id: int,
                          upload: Upload | None = None) -> Incoming | None:  # fmt: skip
    """The turn a message makes, with the ``upload`` of its document (its caption is the text), or None when the
    bot should stay silent (not addressed, or from a bot)."""
    user = message.from_user
    if user is None or user.is_bot:
        return None
    text = addressed_text(message, bot_username, bot_id)
    if text is None:
        return None
    return Incoming(PLATFORM, str(user.id), str(message.chat.id), text=text, display_name=user.first_name or "",
                    is_direct=is_private(message.chat), upload=upload)  # fmt: skip


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


def ticket_to_json(ticket: PollTicket) -> str:
    """A poll ticket as JSON, to share it with other workers."""
    return json.dumps(asdict(ticket))


def ticket_from_json(text: str) -> PollTicket:
    """A poll ticket shared by another worker."""
    fields = json.loads(text)
    return PollTicket(**{**fields, "actions": tuple(fields["actions"])})


def chat_key(update: Update) -> tuple[int, str | None]:
    """The chat whose order an update is handled in, and for a poll answer its poll's id (whose chat is known only
    to the one who sent it: until looked up, the voter's private chat, where the bot sends quizzes to learners)."""
    if update.effective_chat is not None:
        return update.effective_chat.id, None
    poll_id = update.poll_answer.poll_id if update.poll_answer is not None else None
    user = update.effective_user
    return (user.id if user is not None else 0), poll_id


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
