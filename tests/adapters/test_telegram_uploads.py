"""Uploads and reply files on Telegram, end to end: the real python-telegram-bot Application against the fake Bot API.

A document becomes a turn whose ``Upload`` is downloaded (getFile, then the file server) only when the engine
reads it; a reply's files follow its text as sendPhoto (charts) and sendDocument, with the exact bytes. The
engine here is a double (``UploadEngine``) that records each turn, reads the upload when a moderator (or a DM)
sent it, and answers with a text, a chart and a document.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.download import DownloadFailed, read_at_most
from bot.adapters.telegram.files import refused_file
from bot.core.engine import Admission, Engine
from bot.core.markup import plain
from bot.core.messages import Attachment, Incoming, Reply
from bot.core.uploads import MAX_ZIP_BYTES
from tests.adapters.telegram_fake import BOT_USERNAME, TOKEN, Chat, FakeBotApi, Shown, UploadedFile, User
from tests.adapters.test_telegram import ADA, running

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8  # every byte value: what arrives must be exactly this
CHART = Attachment("completion.png", PNG, image=True)
PROBLEMS = Attachment("problems.txt", "lesson.md:3: a heading is missing — add “## …”\n".encode(), image=False)
LESSON_MD = "---\nid: tokens\n---\n# Tokens\n\n## What a token is\n\nA piece of a word. ü\n".encode()
CHART_SENT, PROBLEMS_SENT = (UploadedFile(a.filename, a.data) for a in (CHART, PROBLEMS))  # as the fake records them
GROUP = Chat(-100700, "supergroup", "Study group")
GRACE, LINUS = User(201, "Grace"), User(202, "Linus")


class UploadEngine(Engine):
    """An engine double: records every turn; reads an upload a moderator (or a DM) sent, then answers the sender
    alone (``personal``) with the number of bytes read, a chart and a document; anyone else's upload is refused
    unread; any other turn is answered for everyone with its text and the same files."""

    files: tuple[Attachment, ...] = (CHART, PROBLEMS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[Incoming] = []
        self.read: list[bytes] = []
        self.failures: list[Exception] = []

    async def admit(self, incoming: Incoming) -> Admission:
        return Admission(False)  # an upload is no question for the model

    async def handle(self, incoming: Incoming) -> AsyncGenerator[Reply, None]:
        self.seen.append(incoming)
        upload = incoming.upload
        if upload is None:
            yield Reply(f"You said {incoming.text}", files=self.files)
            return
        if not (incoming.is_moderator or incoming.is_direct):
            yield Reply("Only moderators can upload lessons here.", personal=True)
            return
        try:
            data = await upload.read()
        except ConnectionError as error:  # what an adapter raises when the file can't be fetched
            self.failures.append(error)
            yield Reply("I couldn't fetch your file; please send it again.", personal=True)
            return
        self.read.append(data)
        yield Reply(f"Read {len(data)} bytes of {upload.filename}.", files=self.files, personal=True)


def engine_of(bot: Any) -> UploadEngine:
    assert isinstance(bot.engine, UploadEngine)
    return bot.engine


async def upload(fake: FakeBotApi, user: User, data: bytes, filename: str | None, caption: str | None = None,
                 chat: Chat | None = None, expect: int = 3) -> list[Shown]:  # fmt: skip
    """``user`` sends a document; wait for ``expect`` new messages and return them."""
    chat_id = chat.id if chat else user.id
    before = len(fake.shown(chat_id))
    fake.send_document(user, data, filename, caption, chat)
    await fake.until(lambda: len(fake.shown(chat_id)) >= before + expect, what=f"a reply to {filename}")
    return fake.shown(chat_id)[before:]


def test_a_document_becomes_an_upload_read_back_exactly_and_the_reply_files_follow_its_text(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path, engine_class=UploadEngine) as bot:
            fake, engine = bot.fake, engine_of(bot)
            text, photo, document = await upload(fake, ADA, LESSON_MD, "tokens.md", "/tracks upload ai-foundations")
            [incoming] = engine.seen
            assert incoming.text == "/tracks upload ai-foundations" and incoming.is_direct
            assert incoming.upload is not None and incoming.upload.filename == "tokens.md"
            assert incoming.upload.size == len(LESSON_MD) and engine.read == [LESSON_MD]
            [(path, _data)] = fake.files.values()
            assert fake.downloads == [path]  # fetched once, from the path getFile gave
            assert text.plain == f"Read {len(LESSON_MD)} bytes of tokens.md." and text.kind == "text"
            assert photo.kind == "photo" and photo.file == CHART_SENT and not photo.params.get("caption")
            assert document.kind == "document" and document.file == PROBLEMS_SENT
            assert [c.method for c in fake.calls if c.method.startswith("send")] == [
                "sendMessage", "sendPhoto", "sendDocument"]  # fmt: skip

            # no caption: the text is empty; no file name: the upload still has one
            await upload(fake, ADA, b"PK\x03\x04zip", None)
            assert engine.seen[1].text == "" and engine.seen[1].upload is not None
            assert engine.seen[1].upload.filename == "upload" and engine.read[1] == b"PK\x03\x04zip"

    asyncio.run(scenario())


def test_in_a_group_only_addressed_documents_are_turns_and_only_accepted_ones_are_downloaded(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path, engine_class=UploadEngine) as bot:
            fake, engine = bot.fake, engine_of(bot)
            fake.admins.add((GROUP.id, GRACE.id))
            fake.send_document(LINUS, b"holiday photos", "notes.md", None, GROUP)  # chatter: not for the bot
            fake.send_document(LINUS, b"notes", "notes.md", "have a look, everyone", GROUP)
            await asyncio.sleep(0.3)
            assert not engine.seen and not fake.shown(GROUP.id)

            [refused] = await upload(fake, LINUS, b"a member's file", "mine.md", "/tracks upload x", GROUP, expect=1)
            assert "Only moderators" in refused.plain and not fake.calls_to("getFile") and not fake.downloads
            assert engine.seen[-1].upload is not None and not engine.seen[-1].is_moderator

            caption = f"/tracks@{BOT_USERNAME} upload ai-foundations"  # a group's command menu adds @bot
            reply, _photo, _doc = await upload(fake, GRACE, LESSON_MD, "tokens.md", caption, GROUP)
            assert engine.seen[-1].is_moderator and not engine.seen[-1].is_direct and engine.seen[-1].text == caption
            assert engine.read == [LESSON_MD] and len(fake.downloads) == 1
            assert reply.params["reply_parameters"]["message_id"]  # answers Grace's message, as other turns do

            await upload(fake, GRACE, b"zip", "track.zip", f"@{BOT_USERNAME}", GROUP)  # a bare mention: no words
            await upload(fake, GRACE, b"zip", "track.zip", f"@{BOT_USERNAME} ml-basics", GROUP)
            assert [incoming.text for incoming in engine.seen[-2:]] == ["", "ml-basics"]

    asyncio.run(scenario())


def test_reading_an_upload_stops_one_byte_past_the_largest_zip(tmp_path: Path) -> None:
    huge = bytes(range(251)) * (MAX_ZIP_BYTES // 251 + 40)  # a little over the limit (Telegram's size may be wrong)

    async def scenario() -> None:
        async with running(tmp_path, engine_class=UploadEngine) as bot:
            await upload(bot.fake, ADA, huge, "track.zip", "ai-foundations")
            [data] = engine_of(bot).read
            assert len(data) == MAX_ZIP_BYTES + 1 and data == huge[: MAX_ZIP_BYTES + 1]

    asyncio.run(scenario())


def test_a_file_that_cannot_be_fetched_fails_with_a_reason_that_never_shows_the_token(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path, engine_class=UploadEngine) as bot:
            bot.fake.fail_next("getFile", 400, None, "Bad Request: file is too big")
            [reply] = await upload(bot.fake, ADA, LESSON_MD, "tokens.md", expect=1)
            assert "couldn't fetch your file" in reply.plain
            with socket.socket() as probe:  # a file server that is gone
                probe.bind(("127.0.0.1", 0))
                closed = probe.getsockname()[1]
            with pytest.raises(DownloadFailed) as gone:
                await read_at_most(f"http://127.0.0.1:{closed}/file/bot{TOKEN}/documents/x.md", 100)
        [refused] = engine_of(bot).failures
        assert isinstance(refused, DownloadFailed) and "file is too big" in str(refused).casefold()
        assert str(gone.value) == "Could not fetch the file: the download failed (ConnectError)."
        assert gone.value.__cause__ is None and gone.value.__context__ is None  # no chained error quotes the URL

    asyncio.run(scenario())


def test_a_file_telegram_refuses_is_sent_another_way_or_named_to_the_learner(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.adapters.telegram")

    async def scenario() -> None:
        async with running(tmp_path, engine_class=UploadEngine) as bot:
            fake = bot.fake
            fake.fail_next("sendPhoto", 400, None, "Bad Request: PHOTO_INVALID_DIMENSIONS")
            fake.fail_next("sendDocument", 400, None, "Bad Request: file is too big")  # the chart, as a document
            _text, note, problems = await bot.say(ADA, "insights", expect=3)
            assert note.plain == plain(refused_file("completion.png"))  # said where the chart would have been
            assert problems.kind == "document" and problems.file == PROBLEMS_SENT  # the next file still goes
            logged = caplog.text.casefold()
            assert "completion.png" in logged and "photo_invalid_dimensions" in logged and "file is too big" in logged

            fake.fail_next("sendPhoto", 400, None, "Bad Request: PHOTO_INVALID_DIMENSIONS")
            _text, chart, problems = await bot.say(ADA, "insights", expect=3)
            assert chart.kind == "document" and chart.file == CHART_SENT  # too long a chart for a photo: a file

    asyncio.run(scenario())
