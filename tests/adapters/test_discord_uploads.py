"""Moderators' slash commands and reply files on Discord, end to end: the real discord.py client against the fake.

``/tracks upload`` hands the engine the attachment as an ``Upload`` that is fetched only when the engine reads it;
``/tracks preview|publish|history|rollback`` and ``/insights`` become typed text commands; a reply's files arrive
as attachments of its message with the exact bytes, ephemeral when the reply is personal. The engine is the
recording double of the Telegram upload tests.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from bot.adapters.discord import tutor as discord_adapter
from bot.core.messages import Attachment, Incoming, Reply
from bot.store.progress import SqlProgressStore
from tests.adapters.discord_fake import EPHEMERAL, MANAGE_GUILD, FakeDiscord, SentFile, running_fake
from tests.adapters.test_discord import BOB, MOD, TOKEN, TRACK, TRACKS, bot
from tests.adapters.test_telegram_uploads import CHART, LESSON_MD, PROBLEMS, UploadEngine

SENT = [SentFile(CHART.filename, CHART.data), SentFile(PROBLEMS.filename, PROBLEMS.data)]


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, engine_class: type[UploadEngine] = UploadEngine,
                  **settings: object) -> AsyncIterator[tuple[FakeDiscord, UploadEngine]]:  # fmt: skip
    """A fake Discord and the bot serving an engine double against it."""
    store = SqlProgressStore(tmp_path / "db.sqlite3")
    engine = engine_class(TRACKS, store)
    try:
        async with running_fake(token=TOKEN) as fake, bot(fake, engine, **settings):
            yield fake, engine
    finally:
        store.close()


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def test_tracks_upload_gives_the_engine_the_attachment_fetched_only_when_read(tmp_path: Path) -> None:
    async def body() -> None:
        async with serving(tmp_path) as (fake, engine):
            lesson = fake.attachment("tokens.md", LESSON_MD)
            done = await fake.slash(MOD, "tracks", {"file": lesson, "track": TRACK.id}, sub="upload")
            [reply] = await fake.settled(done)
            [incoming] = engine.seen
            assert incoming.text == f"/tracks upload {TRACK.id}" and incoming.is_moderator and not incoming.is_direct
            assert incoming.upload is not None and incoming.upload.filename == "tokens.md"
            assert incoming.upload.size == len(LESSON_MD) and engine.read == [LESSON_MD]
            assert fake.downloads == [lesson.id]
            assert reply.content == f"Read {len(LESSON_MD)} bytes of tokens.md." and reply.files == SENT
            assert reply.ephemeral  # a personal reply stays with the moderator, files and all

            zipped = fake.attachment("track.zip", b"PK\x03\x04 a zip")
            await fake.settled(await fake.slash(MOD, "tracks", {"file": zipped}, sub="upload"))
            assert engine.seen[-1].text == "/tracks upload" and engine.read[-1] == b"PK\x03\x04 a zip"

            theirs = fake.attachment("mine.md", b"# not a moderator")
            [refused] = await fake.settled(await fake.slash(BOB, "tracks", {"file": theirs}, sub="upload"))
            assert "Only moderators" in refused.content and not engine.seen[-1].is_moderator
            assert fake.downloads == [lesson.id, zipped.id]  # the refused file was never fetched

    run(body)


def test_moderator_commands_send_their_typed_text_and_public_replies_carry_files(tmp_path: Path) -> None:
    async def body() -> None:
        async with serving(tmp_path) as (fake, engine):
            track = TRACK.id
            commands = [("tracks", {"track": track}, "preview"), ("tracks", {"track": track}, "publish"),
                        ("tracks", {"track": track}, "history"), ("tracks", {"track": track, "version": 3}, "rollback"),
                        ("insights", {}, None), ("insights", {"track": track}, None)]  # fmt: skip
            replies = []
            for name, options, sub in commands:
                replies += await fake.settled(await fake.slash(MOD, name, dict(options), sub=sub))
            assert [incoming.text for incoming in engine.seen] == [
                f"/tracks preview {track}", f"/tracks publish {track}", f"/tracks history {track}",
                f"/tracks rollback {track} 3", "/insights", f"/insights {track}"]  # fmt: skip
            assert all(incoming.upload is None and incoming.is_moderator for incoming in engine.seen)
            insights = replies[-1]
            assert insights.content == f"You said /insights {track}" and insights.files == SENT
            assert not insights.ephemeral  # a reply for everyone shows its chart to everyone

        registered = {c["name"]: c for c in fake.commands["global"]}
        subcommands = {o["name"]: o for o in registered["tracks"]["options"]}
        file, track_option = subcommands["upload"]["options"]
        assert (file["name"], file["type"], file["required"]) == ("file", 11, True)  # an attachment
        assert track_option["autocomplete"] and not track_option.get("required")
        version = subcommands["rollback"]["options"][1]
        assert (version["name"], version["type"], version["min_value"], version["required"]) == ("version", 4, 1, True)
        insights_command = registered["insights"]
        assert int(insights_command["default_member_permissions"]) == MANAGE_GUILD
        assert insights_command["contexts"] == [0]  # servers only
        assert insights_command["options"][0]["autocomplete"] and not insights_command["options"][0].get("required")

    run(body)


class StreamingEngine(UploadEngine):
    """Shows "Drawing…" as a growing reply first: the final reply, with its files, is an edit of that message."""

    async def handle(self, incoming: Incoming) -> AsyncGenerator[Reply, None]:
        yield Reply("Drawing the charts…", partial=True)
        async for reply in super().handle(incoming):
            yield reply


class SlowEngine(UploadEngine):
    """Takes a while before its first reply (the interaction is deferred meanwhile); twelve files to send."""

    files = tuple(Attachment(f"chart-{n}.png", CHART.data + bytes([n]), image=True) for n in range(12))

    async def handle(self, incoming: Incoming) -> AsyncGenerator[Reply, None]:
        await asyncio.sleep(0.3)
        async for reply in super().handle(incoming):
            yield reply


def test_files_reach_a_streamed_reply_by_its_edit(tmp_path: Path) -> None:
    async def body() -> None:
        async with serving(tmp_path, StreamingEngine, edit_seconds=0.01) as (fake, _engine):
            done = await fake.slash(MOD, "insights")
            [message] = await fake.settled(done)
            assert message.content == "You said /insights" and message.files == SENT and message.edits >= 1

    run(body)


def test_files_fill_a_deferred_reply_ten_to_a_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(discord_adapter, "NAVIGATION_ACK_SECONDS", 0.05)  # Discord's 3 s, scaled down

    async def body() -> None:
        async with serving(tmp_path, SlowEngine) as (fake, _engine):
            lesson = fake.attachment("tokens.md", LESSON_MD)
            done = await fake.slash(MOD, "tracks", {"file": lesson}, sub="upload")
            first, rest = await fake.settled(done, 2)
        assert [callback["type"] for callback in done.callbacks] == [5]  # deferred, then filled
        assert done.callbacks[0]["data"]["flags"] & EPHEMERAL
        assert first.ephemeral and rest.ephemeral  # a personal reply: its follow-up stays ephemeral too
        sent = [SentFile(file.filename, file.data) for file in SlowEngine.files]
        assert first.content == f"Read {len(LESSON_MD)} bytes of tokens.md." and first.files == sent[:10]
        assert rest.content == "" and rest.files == sent[10:]

    run(body)
