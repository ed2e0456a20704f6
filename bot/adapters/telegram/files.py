"""Files both ways: a document a moderator sends becomes an ``Upload`` read only when the engine asks for it, and
a reply's attachments go out as photos (charts) and documents after its text."""

from __future__ import annotations

import functools
import logging
from typing import Any

from telegram import Message
from telegram.error import BadRequest, TelegramError
from telegram.ext import ExtBot

from bot.adapters.download import DownloadFailed, read_upload
from bot.core.markup import escape
from bot.core.messages import Attachment, Upload

log = logging.getLogger(__name__)

MAX_PHOTO_BYTES = 10 * 1024 * 1024  # Telegram takes photos up to 10 MB; a larger image goes as a document
UNNAMED = "upload"


def upload_of(message: Message, bot: ExtBot) -> Upload | None:
    """The document a message carries, as an upload not yet downloaded (None without one)."""
    document = message.document
    if document is None:
        return None
    read = functools.partial(download, bot, document.file_id)
    return Upload(document.file_name or UNNAMED, document.file_size or 0, read)


async def download(bot: ExtBot, file_id: str) -> bytes:
    """A document's bytes (getFile, then the file server), at most one byte past the largest upload allowed."""
    try:
        file = await bot.get_file(file_id)
    except TelegramError as error:  # e.g. "file is too big" (over the Bot API's 20 MB)
        raise DownloadFailed(f"Telegram would not hand out the file: {error.message}") from None
    if not file.file_path:
        raise DownloadFailed("Telegram gave no address for the file.")
    return await read_upload(file.file_path)


async def send_attachment(bot: ExtBot, chat_id: int, attachment: Attachment, where: dict[str, Any]) -> bool:
    """Send one file where ``where`` says: an image as a photo (as a document if Telegram refuses the photo),
    anything else as a document. False when Telegram refused it (logged); other errors are raised."""
    if attachment.image and len(attachment.data) <= MAX_PHOTO_BYTES:
        try:
            await bot.send_photo(chat_id, attachment.data, filename=attachment.filename, **where)
            return True
        except BadRequest as error:  # e.g. PHOTO_INVALID_DIMENSIONS: a very long chart is still a good file
            log.warning("Telegram refused %s as a photo in chat %s (%s); sending it as a document",
                        attachment.filename, chat_id, error.message)  # fmt: skip
    try:
        await bot.send_document(chat_id, attachment.data, filename=attachment.filename, **where)
    except BadRequest as error:
        log.warning("Telegram refused the file %s (%d bytes) in chat %s: %s", attachment.filename,
                    len(attachment.data), chat_id, error.message)  # fmt: skip
        return False
    return True


def refused_file(filename: str) -> str:
    """What the learner reads when Telegram would not take a file of a reply."""
    return (f"Telegram would not take the file {escape(filename)}, so it is missing here. "
            "Please try again later; if it keeps happening, tell the bot's host.")  # fmt: skip
